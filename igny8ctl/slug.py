"""Account slugs, computed the same way in Python (SQLite) and in SQL (PostgreSQL)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
SQLITE_FUNCTION = "igny8ctl_slugify"


def slugify(text: str | None, max_length: int) -> str:
    """Lowercase ASCII letters and digits, runs of anything else as one '-'.

    A slug made this way never contains '--', which keeps '<base>--<id>' free for
    disambiguation.
    """
    if text is None:
        return ""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:max_length].rstrip("-")


def slugify_sql(text: sa.ColumnElement[Any], max_length: int,
                dialect: str) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        collapsed = sa.func.regexp_replace(sa.func.lower(text), "[^a-z0-9]+", "-", "g")
        trimmed = sa.func.btrim(collapsed, "-")
        return sa.func.rtrim(sa.func.substr(trimmed, 1, max_length), "-")
    return sa.func.igny8ctl_slugify(text, max_length, type_=sa.String)
