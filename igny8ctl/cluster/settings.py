"""Which OpenAI settings a tenant's cluster run uses, resolved the way the app does it.

The tenant's own active ``openai`` IntegrationSettings with an api_key, else the system
account's (the sanctioned, visible fallback), by the same rule as the ``ai.settings``
check. Flags override single fields. ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are never
read: a tenant's job must not silently run on whatever key the operator's shell holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.checks.ai_settings import usable_openai_settings
from igny8ctl.db import Igny8Schema
from igny8ctl.errors import ConfigError

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV = "IGNY8CTL_OPENAI_API_KEY"


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str


@dataclass(frozen=True)
class Overrides:
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    no_fallback: bool = False


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
        return f"{self.source}; model {self.model} at {self.base_url}{key}"


def resolve_openai_settings(
    connection: Connection,
    schema: Igny8Schema,
    tenant: Tenant,
    system_slug: str,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> OpenAISettings:
    env = os.environ if env is None else env
    config: dict[str, Any] = {}
    fallback = False
    if _usable(connection, schema, tenant.id):
        config = _config(connection, schema, tenant.id)
        source = f"tenant {tenant.slug}'s openai settings"
    else:
        system_id = connection.scalar(
            sa.select(schema.account.id).where(schema.account.slug == system_slug))
        if overrides.no_fallback or system_id is None or not _usable(
                connection, schema, int(system_id)):
            source = f"tenant {tenant.slug} has no openai settings"
        else:
            config = _config(connection, schema, int(system_id))
            fallback = True
            source = (f"system account {system_slug}'s openai settings "
                      f"(fallback: tenant {tenant.slug} has none)")

    if overrides.api_key:
        api_key, key_source = overrides.api_key, "--api-key"
    elif env.get(KEY_ENV):
        api_key, key_source = env[KEY_ENV], KEY_ENV
    else:
        api_key, key_source = str(config.get("api_key") or ""), "settings"
    if not api_key:
        why = (f"--no-fallback forbids the system account {system_slug}'s"
               if overrides.no_fallback
               else f"neither has the system account {system_slug}")
        raise ConfigError(
            f"no usable OpenAI API key for tenant {tenant.slug}: it has no active openai "
            f"settings with an api_key, and {why}; add settings, or pass --api-key or set "
            f"{KEY_ENV}"
        )
    return OpenAISettings(
        api_key=api_key,
        model=overrides.model or str(config.get("model") or DEFAULT_MODEL),
        base_url=overrides.base_url or str(config.get("base_url") or DEFAULT_BASE_URL),
        temperature=_float(config.get("temperature")),
        max_tokens=_int(config.get("max_tokens")),
        source=source,
        fallback=fallback,
        key_source=key_source,
    )


def _usable(connection: Connection, schema: Igny8Schema, account_id: int) -> bool:
    return bool(connection.scalar(
        sa.select(usable_openai_settings(schema, sa.literal(account_id)))))


def _config(connection: Connection, schema: Igny8Schema, account_id: int) -> dict[str, Any]:
    settings = schema.settings
    value = connection.scalar(sa.select(settings.config).where(
        settings.account_id == account_id, settings.integration_type == "openai",
        settings.is_active == sa.true()))
    document = json.loads(value) if isinstance(value, str) else value
    return document if isinstance(document, dict) else {}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number > 0 else None
