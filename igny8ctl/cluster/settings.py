"""Which OpenAI settings a tenant's job uses, resolved the way the app does it, and where its
key may go.

The tenant's own active ``openai`` IntegrationSettings with an api_key, else the system
account's (the sanctioned, visible fallback), by the same rule as the ``ai.settings``
check. A settings row is untrusted input (a tenant edits its own): every field is
validated, and a key travels only with the server of the row it came from. Flags override
single fields; an operator's key (``--api-key``, ``IGNY8CTL_OPENAI_API_KEY``) goes only to
a server the operator chose or to OpenAI itself, never to a ``base_url`` from a row, and a
row's key only to that row's own server (never to ``--base-url``).
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are never read.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.checks.ai_settings import usable_openai_rows
from igny8ctl.db import Igny8Schema
from igny8ctl.errors import ConfigError
from igny8ctl.redact import mask_url, register_secret, split_url
from igny8ctl.render.text import printable
from igny8ctl.tenants import Tenant

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV = "IGNY8CTL_OPENAI_API_KEY"
MAX_TOKENS_LIMIT = 1_000_000


@dataclass(frozen=True)
class Overrides:
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    no_fallback: bool = False
    allow_insecure_base_url: bool = False


@dataclass(frozen=True)
class SettingsRow:
    """The IntegrationSettings row a tenant's job would use, as read (config unvalidated)."""

    account: Tenant
    settings_id: int
    config: Mapping[str, Any] = field(repr=False)
    fallback: bool


@dataclass(frozen=True)
class Resolution:
    """Where a tenant's OpenAI settings come from; read-only, and never raises for absence.

    ``row`` is None when neither the tenant nor the system account has usable settings;
    ``system_accounts`` counts accounts holding the system slug (more than one makes the
    fallback ambiguous, a refusal).
    """

    tenant: Tenant
    system_slug: str
    row: SettingsRow | None
    own: bool
    system_accounts: int
    no_fallback: bool

    def describe(self) -> str:
        if self.row is None:
            return f"tenant {self.tenant.slug} has no openai settings"
        if not self.row.fallback:
            return f"tenant {self.tenant.slug}'s openai settings"
        return (f"system account {self.system_slug}'s openai settings "
                f"(fallback: tenant {self.tenant.slug} has none)")


@dataclass(frozen=True)
class OpenAISettings:
    """Resolved settings. ``api_key`` is kept out of ``repr`` and ``describe``."""

    api_key: str = field(repr=False)
    model: str
    base_url: str
    temperature: float | None
    max_tokens: int | None
    source: str
    fallback: bool
    key_source: str

    def describe(self) -> str:
        key = "" if self.key_source == "settings" else f", API key from {self.key_source}"
        return f"{self.source}; model {self.model} at {mask_url(self.base_url)}{key}"


def resolve_settings_row(connection: Connection, schema: Igny8Schema, tenant: Tenant,
                         system_slug: str, no_fallback: bool = False) -> Resolution:
    """The tenant's own usable settings, else the system account's unless ``no_fallback``."""
    account = schema.account
    system_ids = [int(i) for i in connection.scalars(
        sa.select(account.id).where(account.slug == system_slug).order_by(account.id)
        .limit(2))]
    own = _usable_row(connection, schema, tenant)
    row = own
    if own is None and not no_fallback and len(system_ids) == 1:
        system = Tenant(system_ids[0], system_slug)
        found = _usable_row(connection, schema, system)
        row = SettingsRow(system, found.settings_id, found.config, True) if found else None
    return Resolution(tenant, system_slug, row, own is not None, len(system_ids), no_fallback)


def openai_settings(resolution: Resolution, overrides: Overrides = Overrides(),
                    env: Mapping[str, str] | None = None) -> OpenAISettings:
    """The settings a job runs with: validated, with the key bound to its own server."""
    env = os.environ if env is None else env
    tenant, system_slug = resolution.tenant, resolution.system_slug
    if resolution.system_accounts > 1 and not resolution.own and not overrides.no_fallback:
        raise ConfigError(
            f"{resolution.system_accounts} accounts have the system slug {system_slug!r}: the "
            f"fallback for tenant {tenant.slug} is ambiguous; make the slug unique (run "
            "igny8ctl check --check ai.settings) or pass --no-fallback", key="system_account")
    row = resolution.row
    config = row.config if row else {}
    where = (f"openai settings {row.settings_id} of account {row.account.slug}"
             if row else "the flags")
    operator_key = overrides.api_key or env.get(KEY_ENV) or None
    if operator_key:
        api_key = operator_key
        key_source = "--api-key" if overrides.api_key else KEY_ENV
    else:
        api_key, key_source = _text(config.get("api_key"), "api_key", where) or "", "settings"
    if not api_key:
        why = (f"--no-fallback forbids the system account {system_slug}'s"
               if overrides.no_fallback
               else f"neither has the system account {system_slug}")
        raise ConfigError(
            f"no usable OpenAI API key for tenant {tenant.slug}: it has no active openai "
            f"settings with an api_key, and {why}; add settings, or pass --api-key or set "
            f"{KEY_ENV}", key="api_key")
    row_base_url = _text(config.get("base_url"), "base_url", where)
    if overrides.base_url:
        own_server = row_base_url or DEFAULT_BASE_URL
        if not operator_key and overrides.base_url.rstrip("/") != own_server.rstrip("/"):
            raise ConfigError(
                f"refusing to send the API key of {where} to --base-url: a settings row's "
                f"key goes only to that row's server; pass --api-key (or set {KEY_ENV}) "
                "for the server you chose", key="base_url")
        base_url = overrides.base_url
    elif row_base_url and operator_key:
        raise ConfigError(
            f"refusing to send the API key from {key_source} to the base_url of {where}: "
            "a settings row must not choose where an operator's key goes; pass --base-url",
            key="base_url")
    else:
        base_url = row_base_url or DEFAULT_BASE_URL
    checked_url = check_base_url(base_url, overrides.allow_insecure_base_url,
                                 "--base-url" if overrides.base_url else where)
    register_secret(api_key)
    return OpenAISettings(
        api_key=api_key,
        model=overrides.model or _text(config.get("model"), "model", where) or DEFAULT_MODEL,
        base_url=checked_url,
        temperature=_temperature(config.get("temperature"), where),
        max_tokens=_max_tokens(config.get("max_tokens"), where),
        source=resolution.describe(),
        fallback=row.fallback if row else False,
        key_source=key_source,
    )


def check_base_url(base_url: str, allow_insecure: bool, where: str) -> str:
    """``base_url`` if it is an http(s) URL igny8ctl may send a key to; else a usage error.

    Plain ``http://`` is for loopback servers only (a local model), unless the operator
    passes ``--allow-insecure-base-url``. Credentials in the URL are registered as secrets.
    """
    parts = split_url(base_url)
    for secret in parts.secrets if parts else ():
        register_secret(secret)
    shown = mask_url(base_url)
    try:
        split = urlsplit(base_url)
        host = split.hostname
        _ = split.port
    except ValueError:
        host = None
    if split_url(base_url) is None or host is None or any(
            ch.isspace() or not ch.isprintable() for ch in base_url):
        raise ConfigError(f"base_url {printable(shown)[:200]!r} from {where} is not an "
                          "http(s) URL", key="base_url")
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"base_url {printable(shown)[:200]!r} from {where} must be http:// "
                          "or https://", key="base_url")
    if scheme == "http" and not allow_insecure and not _loopback(host):
        raise ConfigError(
            f"refusing to send an API key in clear text to {printable(shown)[:200]!r} from "
            f"{where}: use https://, or pass --allow-insecure-base-url", key="base_url")
    return base_url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _usable_row(connection: Connection, schema: Igny8Schema,
                account: Tenant) -> SettingsRow | None:
    """The account's lowest-id active openai settings with a non-empty api_key, if any."""
    settings = schema.settings
    found = connection.execute(
        sa.select(settings.id, settings.config)
        .where(usable_openai_rows(schema, sa.literal(account.id)))
        .order_by(settings.id).limit(1)).first()
    if found is None:
        return None
    settings_id, value = found
    where = f"openai settings {settings_id} of account {account.slug}"
    try:
        document = json.loads(value) if isinstance(value, str | bytes) else value
    except (ValueError, RecursionError):
        raise ConfigError(f"{where}: config is not JSON", key="config") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: config is not a JSON object", key="config")
    return SettingsRow(account, int(settings_id), document, False)


def _text(value: Any, name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048 or "\x00" in value:
        raise ConfigError(f"{where}: {name} must be a string of at most 2048 characters",
                          key=name)
    return value


def _temperature(value: Any, where: str) -> float | None:
    if value is None:
        return None
    # A range test, not math.isfinite: it rejects nan and inf, and jsonb turns 1e999 into
    # an integer too large for a float.
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value <= 2:
        raise ConfigError(f"{where}: temperature must be a number from 0 to 2, got "
                          f"{printable(str(value))[:40]}", key="temperature")
    return float(value)


def _max_tokens(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ConfigError(f"{where}: max_tokens must be an integer from 1 to "
                          f"{MAX_TOKENS_LIMIT}, got {printable(str(value))[:40]}",
                          key="max_tokens")
    return value
