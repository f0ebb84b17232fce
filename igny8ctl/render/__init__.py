"""The output layer: results in, text out. Nothing in the core formats anything.

Every result type carries a ``KIND`` (``check.report``, ``fix.plan``, …). ``RENDERERS``
maps (kind, format) to the function that renders it, named as ``module:function`` so
that asking for JSON never imports Rich and asking for a table never imports JUnit.
Human renderers take ``(result, console)``; machine renderers return the text. Every JSON
document igny8ctl writes is wrapped in one envelope (``envelope``), errors included.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from igny8ctl import __version__
from igny8ctl.errors import ConfigError

#: Bump on any incompatible change of a JSON document; documented in the README.
SCHEMA_VERSION = 2


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    JUNIT = "junit"
    MARKDOWN = "markdown"


class Result(Protocol):
    KIND: ClassVar[str]


Registry = dict[tuple[str, OutputFormat], str]

_CHECK: Registry = {
    ("check.report", OutputFormat.TABLE): "igny8ctl.render.human:render_report",
    ("check.report", OutputFormat.JSON): "igny8ctl.render.json_report:render",
    ("check.report", OutputFormat.JUNIT): "igny8ctl.render.junit:render",
    ("check.report", OutputFormat.MARKDOWN): "igny8ctl.render.markdown:render",
    ("check.catalogue", OutputFormat.TABLE): "igny8ctl.render.human:render_catalogue",
    ("check.catalogue", OutputFormat.JSON): "igny8ctl.render.json_report:catalogue",
    ("check.history", OutputFormat.TABLE): "igny8ctl.render.human:render_trends",
    ("check.history", OutputFormat.JSON): "igny8ctl.render.json_report:trends",
}

_FIX: Registry = {
    ("fix.plan", OutputFormat.TABLE): "igny8ctl.render.fix:render_plan",
    ("fix.plan", OutputFormat.JSON): "igny8ctl.render.fix:plan_json",
    ("fix.result", OutputFormat.TABLE): "igny8ctl.render.fix:render_result",
    ("fix.result", OutputFormat.JSON): "igny8ctl.render.fix:result_json",
    ("fix.history", OutputFormat.TABLE): "igny8ctl.render.fix:render_history",
    ("fix.history", OutputFormat.JSON): "igny8ctl.render.fix:history_json",
    ("fix.undo-plan", OutputFormat.TABLE): "igny8ctl.render.fix:render_undo_plan",
    ("fix.undo-plan", OutputFormat.JSON): "igny8ctl.render.fix:undo_plan_json",
    ("fix.undo", OutputFormat.TABLE): "igny8ctl.render.fix:render_undo",
    ("fix.undo", OutputFormat.JSON): "igny8ctl.render.fix:undo_json",
}

_MIGRATE: Registry = {
    ("migrate.status", OutputFormat.TABLE): "igny8ctl.render.migrate:render_status",
    ("migrate.status", OutputFormat.JSON): "igny8ctl.render.migrate:status_json",
    ("migrate.run", OutputFormat.TABLE): "igny8ctl.render.migrate:render_run",
    ("migrate.run", OutputFormat.JSON): "igny8ctl.render.migrate:run_json",
    ("migrate.generate", OutputFormat.TABLE): "igny8ctl.render.migrate:render_generated",
    ("migrate.generate", OutputFormat.JSON): "igny8ctl.render.migrate:generated_json",
    ("migrate.django-state", OutputFormat.TABLE): "igny8ctl.render.migrate:render_django_state",
    ("migrate.django-state", OutputFormat.JSON): "igny8ctl.render.migrate:django_state_json",
}

_CLUSTER: Registry = {
    ("cluster.proposal", OutputFormat.TABLE): "igny8ctl.render.cluster:render_proposal",
    ("cluster.proposal", OutputFormat.JSON): "igny8ctl.render.cluster:proposal_json",
    ("cluster.result", OutputFormat.TABLE): "igny8ctl.render.cluster:render_result",
    ("cluster.result", OutputFormat.JSON): "igny8ctl.render.cluster:result_json",
}

_DOCTOR: Registry = {
    ("doctor.user", OutputFormat.TABLE): "igny8ctl.render.doctor:render_table",
    ("doctor.user", OutputFormat.JSON): "igny8ctl.render.doctor:render_json",
    ("doctor.user", OutputFormat.MARKDOWN): "igny8ctl.render.doctor:render_markdown",
    ("doctor.tenant", OutputFormat.TABLE): "igny8ctl.render.doctor:render_table",
    ("doctor.tenant", OutputFormat.JSON): "igny8ctl.render.doctor:render_json",
    ("doctor.tenant", OutputFormat.MARKDOWN): "igny8ctl.render.doctor:render_markdown",
}

RENDERERS: Registry = {
    **_CHECK, **_FIX, **_MIGRATE, **_CLUSTER, **_DOCTOR,
    ("error", OutputFormat.JSON): "igny8ctl.render:error_json",
}


def renderer(kind: str, output_format: OutputFormat) -> Callable[..., Any]:
    """The function rendering ``kind`` as ``output_format``; a usage error if there is none."""
    target = RENDERERS.get((kind, output_format))
    if target is None:
        formats = [f.value for (k, f) in RENDERERS if k == kind]
        raise ConfigError(f"--format {output_format.value} is not available here (choose "
                          f"{' or '.join(formats)})", key="--format")
    module, _, function = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return found


def envelope(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The frame of every JSON document: version, tool, kind, then the document's own keys."""
    return {"schema_version": SCHEMA_VERSION,
            "tool": {"name": "igny8ctl", "version": __version__},
            "kind": kind, **body}


def dumps(kind: str, body: Mapping[str, Any]) -> str:
    """An enveloped JSON document. ASCII-only: escapes and lone surrogates stay escapes."""
    return json.dumps(envelope(kind, body), indent=2, default=str) + "\n"


def emit(result: Result, output_format: OutputFormat, output: Path | None = None,
         option: str = "--output") -> None:
    """Render ``result`` to stdout, or to ``output`` (written by ``igny8ctl.outputs``)."""
    render = renderer(result.KIND, output_format)
    if output_format is OutputFormat.TABLE:
        from igny8ctl.render.console import capture, stdout

        if output is None:
            render(result, stdout())
            return
        text = capture(lambda console: render(result, console))
    else:
        text = render(result)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from igny8ctl.outputs import write_output

    write_output(output, text, option)


_requested = OutputFormat.TABLE


def request_format(output_format: OutputFormat) -> None:
    """Record the format a command was asked for, so errors come out in it too."""
    global _requested
    _requested = output_format


def requested_format() -> OutputFormat:
    return _requested


def error_json(error: Any) -> str:
    return dumps("error", {"error": error.to_dict()})
