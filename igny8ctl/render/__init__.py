"""Renderers: results in, text out. Nothing in the core formats anything."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from igny8ctl.report import CheckReport


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    JUNIT = "junit"
    MARKDOWN = "markdown"


def machine_renderers() -> dict[Format, Callable[[CheckReport], str]]:
    from igny8ctl.render import json_report, junit, markdown

    return {
        Format.JSON: json_report.render,
        Format.JUNIT: junit.render,
        Format.MARKDOWN: markdown.render,
    }
