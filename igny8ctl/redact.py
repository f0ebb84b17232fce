"""Masking of secrets in anything that may reach a terminal, a log or a file."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# Greedy up to the last '@' before the host, so a password containing '@' is masked whole.
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^\s/]*)(?=@[^@\s/]+)")
_KEYWORD_SECRET = re.compile(
    r"(?P<head>\b(?:password|passwd|api_key|apikey|secret|token)\s*[=:]\s*['\"]?)(?P<secret>[^\s'\",;&]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<secret>\S+)", re.IGNORECASE)
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide URL passwords, ``password=``/``api_key=`` values, bearer tokens and given secrets."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KEYWORD_SECRET.sub(lambda m: m["head"] + MASK, text)
    text = _BEARER.sub(lambda m: m["head"] + MASK, text)
    return _OPENAI_KEY.sub("sk-" + MASK, text)
