"""Settings from flags, environment and ``igny8ctl.toml``, including the table-name mapping.

Precedence of the database URL: ``--database-url``, then the selected profile's URL (a
profile is chosen on purpose, so it beats ambient variables), then ``IGNY8_DATABASE_URL``,
then ``DATABASE_URL``, then the top level of the configuration file. There is no default
database: running against the wrong one is worse than not running.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igny8ctl.errors import ConfigError

DEFAULT_CONFIG_FILE = "igny8ctl.toml"
SYSTEM_ACCOUNT_SLUG = "aws-admin"

#: Logical table -> (default table name, logical columns). Defaults follow Django's DDL.
SCHEMA: dict[str, tuple[str, tuple[str, ...]]] = {
    "plan": ("igny8_core_auth_plan", ("id", "slug")),
    "account": (
        "igny8_core_auth_account",
        ("id", "name", "slug", "credits", "status", "created_at", "updated_at", "owner_id",
         "plan_id"),
    ),
    "user": (
        "igny8_core_auth_user",
        ("id", "username", "email", "first_name", "last_name", "role", "date_joined",
         "account_id"),
    ),
    "site": ("igny8_core_auth_site", ("id", "account_id")),
    "cluster": (
        "planner_clusters",
        ("id", "name", "description", "keywords_count", "volume", "status", "created_at",
         "updated_at", "account_id", "site_id"),
    ),
    "keyword": (
        "planner_keywords",
        ("id", "keyword", "volume", "status", "updated_at", "account_id", "cluster_id",
         "site_id"),
    ),
    "settings": (
        "system_integrationsettings",
        ("id", "integration_type", "config", "is_active", "account_id"),
    ),
}

_KNOWN_KEYS = {
    "database_url", "database_url_env", "statement_timeout_ms", "lock_timeout_ms",
    "lock_retries", "system_account", "tables", "columns", "repair", "profiles",
}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to reach and interpret one igny8 database."""

    database_url: str | None = None
    url_source: str = "nowhere"
    profile: str | None = None
    statement_timeout_ms: int = 60_000
    lock_timeout_ms: int = 2_000
    lock_retries: int = 5
    system_account: str = SYSTEM_ACCOUNT_SLUG
    tables: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    repair_policy: Mapping[str, str] = field(default_factory=dict)

    def table_name(self, logical: str) -> str:
        return self.tables.get(logical, SCHEMA[logical][0])

    def column_name(self, logical_table: str, logical_column: str) -> str:
        return self.columns.get(logical_table, {}).get(logical_column, logical_column)

    def require_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "no database configured: pass --database-url, set IGNY8_DATABASE_URL or "
                f"DATABASE_URL, or put database_url in {DEFAULT_CONFIG_FILE}"
            )
        return self.database_url


def load_settings(
    database_url: str | None = None,
    config_path: Path | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if env is None else env
    document = _read_config(config_path)
    profile = profile or env.get("IGNY8CTL_PROFILE") or None
    merged = _select_profile(document, profile)

    url, source = _resolve_url(database_url, merged, profile, env)
    tables = _string_table(merged.get("tables", {}), "tables")
    unknown_tables = sorted(set(tables) - set(SCHEMA))
    if unknown_tables:
        raise ConfigError(f"unknown table key tables.{unknown_tables[0]} in configuration "
                          f"(known: {', '.join(SCHEMA)})")
    columns_doc = merged.get("columns", {})
    if not isinstance(columns_doc, dict):
        raise ConfigError("columns must be a table of tables, e.g. [columns.user]")
    columns: dict[str, dict[str, str]] = {}
    for logical, mapping in columns_doc.items():
        if logical not in SCHEMA:
            raise ConfigError(f"unknown table key columns.{logical} in configuration")
        columns[logical] = _string_table(mapping, f"columns.{logical}")
    return Settings(
        database_url=url,
        url_source=source,
        profile=profile,
        statement_timeout_ms=_non_negative_int(merged, "statement_timeout_ms", 60_000),
        lock_timeout_ms=_non_negative_int(merged, "lock_timeout_ms", 2_000),
        lock_retries=_non_negative_int(merged, "lock_retries", 5),
        system_account=str(merged.get("system_account", SYSTEM_ACCOUNT_SLUG)),
        tables=tables,
        columns=columns,
        repair_policy=_string_table(merged.get("repair", {}), "repair"),
    )


def _read_config(config_path: Path | None) -> dict[str, Any]:
    path = config_path or Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if config_path is not None:
            raise ConfigError(f"configuration file {path} does not exist")
        return {}
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    unknown = sorted(set(document) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}")
    return document


def _select_profile(document: dict[str, Any], profile: str | None) -> dict[str, Any]:
    base = {key: value for key, value in document.items() if key != "profiles"}
    if profile is None:
        return base
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("profiles must be a table of tables, e.g. [profiles.production]")
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none defined"
        raise ConfigError(f"profile {profile!r} is not in the configuration (profiles: {known})")
    chosen = profiles[profile]
    if not isinstance(chosen, dict):
        raise ConfigError(f"profiles.{profile} must be a table, e.g. [profiles.{profile}]")
    unknown = sorted(set(chosen) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"profiles.{profile}: unknown key {unknown[0]!r}")
    merged = dict(base)
    for key, value in chosen.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged["_profile_keys"] = set(chosen)
    return merged


def _resolve_url(
    flag: str | None, merged: dict[str, Any], profile: str | None, env: Mapping[str, str]
) -> tuple[str | None, str]:
    if flag:
        return flag, "--database-url"
    if profile and merged.get("_profile_keys", set()) & {"database_url", "database_url_env"}:
        return _configured_url(merged, env), f"profile {profile}"
    for variable in ("IGNY8_DATABASE_URL", "DATABASE_URL"):
        if env.get(variable):
            return env[variable], variable
    configured = _configured_url(merged, env)
    if configured:
        return configured, "configuration file"
    return None, "nowhere"


def _configured_url(merged: dict[str, Any], env: Mapping[str, str]) -> str | None:
    if "database_url_env" in merged:
        variable = str(merged["database_url_env"])
        if not env.get(variable):
            raise ConfigError(f"database_url_env names {variable}, which is not set")
        return env[variable]
    url = merged.get("database_url")
    return str(url) if url else None


def _string_table(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{key} must map names to strings")
    return dict(value)


def _non_negative_int(merged: dict[str, Any], key: str, default: int) -> int:
    value = merged.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be a non-negative integer")
    return value
