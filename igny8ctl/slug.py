"""Account slugs: the rule, in Python (registered as a SQLite function); PostgreSQL computes
the same in SQL (``igny8ctl.dialects.postgresql``)."""

from __future__ import annotations

import re

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
