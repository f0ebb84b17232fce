"""Plan files, shared by ``fix`` and ``cluster``: what a write will do, saved to be applied later.

A plan is an enveloped JSON document (``igny8ctl.render.envelope``) whose ``kind`` names
what wrote it (``fix.plan``, ``cluster.plan``). It binds its targets: their ids and a
fingerprint of the values that made them targets, so applying it refuses when anything
changed since. A plan file is untrusted input when read back: ``read_plan`` checks the
frame; each kind validates its own body, and every id in it is checked against the
database before anything is written. Secrets never go into a plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from igny8ctl.errors import ConfigError
from igny8ctl.render import SCHEMA_VERSION, dumps

#: A plan larger than this is not one igny8ctl wrote.
MAX_PLAN_BYTES = 256 * 1024 * 1024


def plan_text(kind: str, body: Mapping[str, Any]) -> str:
    return dumps(kind, body)


def read_plan(path: Path, kind: str) -> dict[str, Any]:
    """The body of the plan at ``path``, after checking it is a ``kind`` plan of this version."""
    try:
        # A FIFO would block and /dev/zero never end: only a regular file is a plan (opened
        # without blocking, so a FIFO with no writer is refused, not waited for).
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ConfigError(f"{path} is not a plan: not a regular file", key="PLAN")
            data = handle.read(MAX_PLAN_BYTES + 1)
        if len(data) > MAX_PLAN_BYTES:
            raise ConfigError(f"{path} is not a plan: larger than {MAX_PLAN_BYTES} bytes",
                              key="PLAN")
        document = json.loads(data)
    except OSError as error:
        raise ConfigError(f"cannot read plan {path}: {error.strerror}", key="PLAN") from None
    except (ValueError, RecursionError):
        raise ConfigError(f"{path} is not a plan: not JSON", key="PLAN") from None
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise ConfigError(f"{path} is not a {kind} file (its \"kind\" must be {kind!r})",
                          key="PLAN")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: plan schema_version {document.get('schema_version')!r} is "
                          f"not supported (this igny8ctl writes {SCHEMA_VERSION})", key="PLAN")
    return document


class Fingerprint:
    """A digest of rows fed one at a time (in the order given), so rows can be streamed."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, row: Sequence[Any]) -> None:
        self._digest.update(json.dumps(list(row), default=str, ensure_ascii=True).encode()
                            + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def fingerprint(rows: Iterable[Sequence[Any]]) -> str:
    """A digest of rows (in the order given) that changes when any value does."""
    digest = Fingerprint()
    for row in rows:
        digest.add(row)
    return digest.hexdigest()
