"""Importing ``openai`` in the background, started as early as a command knows it will
need it: the import costs about as much as everything else before the first request."""

from __future__ import annotations

import importlib
import threading

OPENAI_MODULES = ("igny8ctl.cluster.openai_engine", "openai.resources.chat")

_started: threading.Thread | None = None
_lock = threading.Lock()


def start() -> None:
    """Start importing the OpenAI engine, once per process; ``wait`` joins it."""
    global _started
    with _lock:
        if _started is None:
            _started = threading.Thread(target=_import, name="igny8ctl-import", daemon=True)
            _started.start()


def wait() -> None:
    with _lock:
        started = _started
    if started is not None:
        started.join()


def _import() -> None:
    for module in OPENAI_MODULES:
        try:
            importlib.import_module(module)
        except Exception:  # the import in the main thread reports it
            return
