"""Operational events on stderr: readable lines on a terminal, JSON lines for log shippers.

Every field passes through ``redact`` first, so a password or an API key that reached an
event (an error message quoting a URL, say) is masked before it is written.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from igny8ctl.redact import redact

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass
class EventLog:
    format: LogFormat = LogFormat.TEXT
    threshold: str = "info"
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def emit(self, event: str, message: str, level: str = "info", **fields: Any) -> None:
        if LEVELS[level] < LEVELS[self.threshold]:
            return
        clean = {key: self._clean(value) for key, value in fields.items() if value is not None}
        if self.format is LogFormat.JSON:
            record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                      "level": level, "event": event, "message": self._clean(message), **clean}
            line = json.dumps(record, default=str)
        else:
            prefix = "" if level == "info" else f"{level}: "
            line = f"igny8ctl: {prefix}{self._clean(message)}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


_current = EventLog()


def configure(log: EventLog) -> None:
    global _current
    _current = log


def current() -> EventLog:
    return _current
