"""Settings from flags, environment and ``igny8ctl.toml``, including the table-name mapping.

Precedence of the database URL: ``--database-url``, then the selected profile's URL (a
profile is chosen on purpose, so it beats ambient variables), then ``IGNY8_DATABASE_URL``,
then ``DATABASE_URL``, then the top level of the configuration file. There is no default
database: running against the wrong one is worse than not running.

The file is validated against ``_SPEC`` before anything uses it: an unknown key, a value of
the wrong type or out of range, or a file that is not UTF-8 TOML is one error naming the
key. Names from ``[tables]`` and ``[columns]`` are data: they reach SQL only as quoted
identifiers.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igny8ctl.errors import ConfigError
from igny8ctl.tables import TABLES

DEFAULT_CONFIG_FILE = "igny8ctl.toml"
SYSTEM_ACCOUNT_SLUG = "aws-admin"
#: PostgreSQL's settings are 32-bit integers.
PG_INT_MAX = 2_147_483_647
MAX_NAME = 255

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to reach and interpret one igny8 database."""

    database_url: str | None = field(default=None, repr=False)
    url_source: str = "nowhere"
    profile: str | None = None
    statement_timeout_ms: int = 60_000
    lock_timeout_ms: int = 2_000
    lock_retries: int = 5
    system_account: str = SYSTEM_ACCOUNT_SLUG
    tables: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    repair_policy: Mapping[str, str] = field(default_factory=dict)
    tenant_keys_exclude: tuple[str, ...] = ()

    def table_name(self, logical: str) -> str:
        return self.tables.get(logical, TABLES[logical].default_name)

    def column_name(self, logical_table: str, logical_column: str) -> str:
        return self.columns.get(logical_table, {}).get(logical_column, logical_column)

    def require_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "no database configured: pass --database-url, set IGNY8_DATABASE_URL or "
                f"DATABASE_URL, or put database_url in {DEFAULT_CONFIG_FILE}",
                key="database_url")
        return self.database_url


# -- the file's schema -------------------------------------------------------------------

Validator = Callable[[Any, str], Any]


def _text(max_length: int = 4096) -> Validator:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {_type(value)}", key=key)
        if not value or len(value) > max_length or "\x00" in value:
            raise ConfigError(f"{key} must be a non-empty string of at most {max_length} "
                              "characters, without NUL", key=key)
        return value
    return check


def _integer(low: int, high: int) -> Validator:
    def check(value: Any, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, not {_type(value)}", key=key)
        if not low <= value <= high:
            raise ConfigError(f"{key} must be between {low} and {high}, got {value}", key=key)
        return value
    return check


def _env_name(value: Any, key: str) -> str:
    name = _text(255)(value, key)
    if not _ENV_NAME.match(name):
        raise ConfigError(f"{key} must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
                          key=key)
    return str(name)


def _names(known: Mapping[str, Any], what: str) -> Validator:
    """A table of logical name -> actual name, for ``[tables]`` or one ``[columns.X]``."""
    def check(value: Any, key: str) -> dict[str, str]:
        document = _table(value, key)
        result = {}
        for name, actual in document.items():
            if name not in known:
                raise ConfigError(f"unknown {what} {key}.{name} (known: {', '.join(known)})",
                                  key=f"{key}.{name}")
            result[name] = _text(MAX_NAME)(actual, f"{key}.{name}")
        return result
    return check


def _columns(value: Any, key: str) -> dict[str, dict[str, str]]:
    document = _table(value, key)
    result = {}
    for logical, mapping in document.items():
        if logical not in TABLES:
            raise ConfigError(f"unknown table {key}.{logical} (known: {', '.join(TABLES)})",
                              key=f"{key}.{logical}")
        columns = dict.fromkeys(TABLES[logical].logical_columns())
        result[logical] = _names(columns, "column")(mapping, f"{key}.{logical}")
    return result


def _strings(value: Any, key: str) -> dict[str, str]:
    document = _table(value, key)
    return {name: _text(255)(item, f"{key}.{name}") for name, item in document.items()}


def _repair_policy(value: Any, key: str) -> dict[str, str]:
    """Every action parsed when the file is read, in every profile: a misspelt action is
    a usage error of any command, not a surprise at 3 a.m. when cron first needs it."""
    from igny8ctl.fixes.params import policy_params

    policy = _strings(value, key)
    for fix, action in policy.items():
        policy_params(fix, action, key=f"{key}.{fix}")
    return policy


def _migrate(value: Any, key: str) -> dict[str, Any]:
    document = _table(value, key)
    unknown = sorted(set(document) - {"tenant_keys_exclude"})
    if unknown:
        raise ConfigError(f"unknown key {key}.{unknown[0]}", key=f"{key}.{unknown[0]}")
    excluded = document.get("tenant_keys_exclude", [])
    name = f"{key}.tenant_keys_exclude"
    if not isinstance(excluded, list):
        raise ConfigError(f"{name} must be a list of \"table.column\" strings", key=name)
    for item in excluded:
        if not isinstance(item, str) or "." not in item.strip(".") or "\x00" in item:
            raise ConfigError(f"{name} must be a list of \"table.column\" strings, got "
                              f"{_type(item)} {str(item)[:80]!r}", key=name)
    return {"tenant_keys_exclude": tuple(excluded)}


_SPEC: dict[str, Validator] = {
    "database_url": _text(),
    "database_url_env": _env_name,
    "statement_timeout_ms": _integer(0, PG_INT_MAX),
    "lock_timeout_ms": _integer(0, PG_INT_MAX),
    "lock_retries": _integer(0, 1000),
    "system_account": _text(50),
    "tables": _names(TABLES, "table"),
    "columns": _columns,
    "repair": _repair_policy,
    "migrate": _migrate,
}


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, e.g. [{key}]", key=key)
    return value


def _type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return names.get(type(value), type(value).__name__)


def _validated(document: dict[str, Any], path: Path, prefix: str = "") -> dict[str, Any]:
    values = {}
    for key, value in document.items():
        if key not in _SPEC:
            raise ConfigError(f"{path}: unknown key {prefix}{key}", key=prefix + key)
        values[key] = _SPEC[key](value, prefix + key)
    return values


# -- loading ----------------------------------------------------------------------------


def load_settings(
    database_url: str | None = None,
    config_path: Path | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if env is None else env
    base, profiles = _read_config(config_path)
    profile = profile or env.get("IGNY8CTL_PROFILE") or None
    chosen = _select_profile(profiles, profile)
    merged = _merge(base, chosen)
    url, source = _resolve_url(database_url, merged, chosen, profile, env)
    migrate = merged.get("migrate", {})
    return Settings(
        database_url=url,
        url_source=source,
        profile=profile,
        statement_timeout_ms=merged.get("statement_timeout_ms", 60_000),
        lock_timeout_ms=merged.get("lock_timeout_ms", 2_000),
        lock_retries=merged.get("lock_retries", 5),
        system_account=merged.get("system_account", SYSTEM_ACCOUNT_SLUG),
        tables=merged.get("tables", {}),
        columns=merged.get("columns", {}),
        repair_policy=merged.get("repair", {}),
        tenant_keys_exclude=migrate.get("tenant_keys_exclude", ()),
    )


def _read_config(config_path: Path | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The file's top level and its profiles, both validated."""
    path = config_path or Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if config_path is not None:
            raise ConfigError(f"configuration file {path} does not exist", key="--config")
        return {}, {}
    if not path.is_file():
        raise ConfigError(f"configuration file {path} is not a regular file", key="--config")
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", key="--config") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", key="--config") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key="--config") from None
    raw_profiles = _table(document.pop("profiles", {}), "profiles")
    base = _validated(document, path)
    profiles = {}
    for name, body in raw_profiles.items():
        where = f"profiles.{name}."
        if "profiles" in _table(body, where.rstrip(".")):
            raise ConfigError(f"{path}: profiles do not nest", key=where + "profiles")
        profiles[name] = _validated(body, path, where)
    return base, profiles


def _select_profile(profiles: dict[str, dict[str, Any]], profile: str | None) -> dict[str, Any]:
    if profile is None:
        return {}
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none defined"
        raise ConfigError(f"profile {profile!r} is not in the configuration (profiles: {known})",
                          key="--profile")
    return profiles[profile]


def _merge(base: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in chosen.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _resolve_url(flag: str | None, merged: dict[str, Any], chosen: dict[str, Any],
                 profile: str | None, env: Mapping[str, str]) -> tuple[str | None, str]:
    if flag:
        return flag, "--database-url"
    if profile and {"database_url", "database_url_env"} & set(chosen):
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
        variable = merged["database_url_env"]
        if not env.get(variable):
            raise ConfigError(f"database_url_env names {variable}, which is not set",
                              key="database_url_env")
        return env[variable]
    url = merged.get("database_url")
    return str(url) if url else None
