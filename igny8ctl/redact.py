"""Secrets out of everything that may reach a terminal, a log, a file or the journal.

Masking works from parsed structure, never by guessing over text: a URL is split into its
parts (``split_url``) and its password and password-like query values are replaced; every
secret igny8ctl learns while parsing (a database password, an API key) is registered with
``register_secret``, and ``redact`` replaces those exact values wherever they appear
(a driver's error message quoting its connection string, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"
#: Query parameters of a URL whose values are secrets.
SECRET_QUERY_KEYS = frozenset({"password", "sslpassword", "api_key", "apikey", "key", "token",
                               "secret", "access_token"})
#: Shorter secrets are masked in URLs (structurally) but not replaced in free text, where
#: they would mangle ordinary words.
MIN_TEXT_SECRET = 4

_secrets: set[str] = set()
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-%~]*)(:\d*)?$")


def register_secret(value: str | None) -> None:
    """Remember ``value`` so ``redact`` masks it wherever it turns up."""
    if value:
        _secrets.add(value)
        decoded = unquote(value)
        if decoded != value:
            _secrets.add(decoded)
        _secrets.add(quote(value, safe=""))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered (and given) secret replaced by ``***``."""
    for secret in sorted({*_secrets, *secrets}, key=len, reverse=True):
        if len(secret) >= MIN_TEXT_SECRET:
            text = text.replace(secret, MASK)
    return text


@dataclass(frozen=True)
class SplitUrl:
    """A URL's parts, split the way an operator meant them.

    Passwords may hold unencoded ``/``, ``@``, ``#``, ``%`` or spaces: the authority ends at
    the last ``@`` that is followed by something shaped like a host, not at the first.
    """

    scheme: str
    username: str | None
    password: str | None
    hostport: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        found = [self.password] if self.password else []
        return found + [value for key, value in self.query
                        if key.lower() in SECRET_QUERY_KEYS and value]

    def masked(self) -> str:
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = quote(self.username or "", safe="")
            userinfo += f":{MASK}" if self.password is not None else ""
            userinfo += "@"
        query = "&".join(
            f"{key}={MASK if key.lower() in SECRET_QUERY_KEYS else value}"
            for key, value in self.query)
        return (f"{self.scheme}://{userinfo}{self.hostport}{self.path}"
                + (f"?{query}" if query else ""))


def split_url(raw: str) -> SplitUrl | None:
    """The parts of ``scheme://[user[:password]@]host[:port][/path][?query]``, or None."""
    scheme, sep, rest = raw.partition("://")
    if not sep or not scheme:
        return None
    userinfo, tail = None, rest
    # Rightmost '@' before a host wins; one whose left side holds a '?' is more likely
    # inside the query (``sslrootcert=/a@b``), so it is taken only if nothing else fits.
    ats = [i for i, char in enumerate(rest) if char == "@"]
    candidates = [i for i in ats
                  if _HOST.match(re.split(r"[/?]", rest[i + 1:], maxsplit=1)[0])] or ats
    plain = [i for i in candidates if "?" not in rest[:i]]
    at = max(plain or candidates, default=None)
    if at is not None:
        userinfo, tail = rest[:at], rest[at + 1:]
    cut = min((i for i in (tail.find("/"), tail.find("?")) if i >= 0), default=len(tail))
    hostport, remainder = tail[:cut], tail[cut:]
    path, _, query = remainder.partition("?")
    username = password = None
    if userinfo is not None:
        name, colon, secret = userinfo.partition(":")
        username = unquote(name)
        password = unquote(secret) if colon else None
    return SplitUrl(scheme, username, password, hostport, path,
                    parse_qsl(query, keep_blank_values=True))


def mask_url(raw: str) -> str:
    """``raw`` with its password and secret query values masked, even if it will not parse.

    What cannot be split at all is shown as its scheme only: it might be a secret itself.
    """
    parts = split_url(raw)
    if parts is None:
        scheme = raw.partition(":")[0]
        return f"{scheme}:…" if scheme and scheme.isascii() and scheme.isalnum() else "…"
    return parts.masked()
