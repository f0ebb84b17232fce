"""What each fix can be asked to do, as typed values: the CLI, the ``[repair]`` policy and a
plan file all parse into these, so a misspelt key or value is a usage error naming it, never
a silent default. Pure Python: parsing options and the policy loads no SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar

from igny8ctl.errors import ConfigError

#: Largest value of a PostgreSQL bigint: ids beyond it cannot name a row.
BIGINT_MAX = 2**63 - 1
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")
_DOMAIN = re.compile(r"@?[A-Za-z0-9.-]{1,253}")
_COLUMN = re.compile(r"[^\x00-\x1f\x7f]{1,63}")


class Strategy(StrEnum):
    CREATE_ACCOUNT = "create-account"
    ASSIGN = "assign"
    DELETE = "delete"


class Role(StrEnum):
    """igny8's user roles (``User.role`` choices)."""

    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    SYSTEM_BOT = "system_bot"


def slug(value: Any, key: str) -> str:
    """A slug as igny8 stores them (plan or account), checked before it reaches a query."""
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise ConfigError(f"{key}: {_shown(value)} is not a slug (letters, digits, - or _, "
                          "at most 50)", key=key)
    return value


def row_id(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= BIGINT_MAX:
        raise ConfigError(f"{key}: {_shown(value)} is not a row id (1 to {BIGINT_MAX})", key=key)
    return value


def _shown(value: Any) -> str:
    return repr(value)[:60]


def _choice(kind: type[StrEnum], value: Any, key: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigError(f"{key}: {_shown(value)} is not one of {choices}", key=key) from None


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {_shown(value)} is not true or false", key=key)
    return value


@dataclass(frozen=True)
class FixParams:
    """Base of every fix's parameters; a fix without any uses it as is."""

    FLAGS: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def parse(cls, raw: Mapping[str, Any], prefix: str = "") -> FixParams:
        """From a mapping (a plan file's ``params``, the CLI's options): unknown keys refused."""
        known = {f.name for f in fields(cls)}
        for key in raw:
            if key not in known:
                raise ConfigError(f"unknown parameter {prefix}{key!r} "
                                  f"(known: {', '.join(sorted(known)) or 'none'})",
                                  key=f"{prefix}{key}")
        return cls._build(raw, prefix)

    @classmethod
    def _build(cls, raw: Mapping[str, Any], prefix: str) -> FixParams:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON values, for ``igny8ctl_runs`` and plan files."""
        return {key: value for key, value in asdict(self).items()
                if value not in (None, False, (), [], {})}


ACCOUNT_COLUMNS_SET_BY_FIX = ("id", "owner_id", "name", "slug", "plan_id", "created_at",
                              "updated_at")


@dataclass(frozen=True)
class UserRepairParams(FixParams):
    """orphaned-users and dangling-accounts: one strategy and what it needs."""

    strategy: Strategy = Strategy.CREATE_ACCOUNT
    plan: str = "free"
    role: Role | None = None
    account: str | None = None
    email_domain: str | None = None
    user_ids: tuple[int, ...] = ()
    cascade: bool = False
    set: tuple[tuple[str, str], ...] = ()

    @classmethod
    def _build(cls, raw: Mapping[str, Any], prefix: str) -> UserRepairParams:
        if "strategy" not in raw:
            raise ConfigError("choose --strategy create-account, assign or delete",
                              key=f"{prefix}strategy")
        strategy = _choice(Strategy, raw["strategy"], f"{prefix}strategy")
        role = raw.get("role")
        if role is None and strategy is Strategy.CREATE_ACCOUNT:
            role = Role.OWNER
        account = raw.get("account")
        if strategy is Strategy.ASSIGN and account is None:
            raise ConfigError("--strategy assign needs --account SLUG", key=f"{prefix}account")
        domain = raw.get("email_domain")
        if domain is not None and (not isinstance(domain, str) or not _DOMAIN.fullmatch(domain)):
            raise ConfigError(f"{prefix}email_domain: {_shown(domain)} is not a domain",
                              key=f"{prefix}email_domain")
        ids = raw.get("user_ids") or ()
        if not isinstance(ids, list | tuple):
            raise ConfigError(f"{prefix}user_ids must be a list of ids", key=f"{prefix}user_ids")
        extra = raw.get("set") or {}
        if isinstance(extra, list | tuple):
            extra = dict(extra)
        if not isinstance(extra, dict):
            raise ConfigError(f"{prefix}set must map columns to values", key=f"{prefix}set")
        for column, value in extra.items():
            if not isinstance(column, str) or not _COLUMN.fullmatch(column) \
                    or not isinstance(value, str):
                raise ConfigError(f"--set {_shown(column)}: expects COLUMN=VALUE",
                                  key=f"{prefix}set")
            if column in ACCOUNT_COLUMNS_SET_BY_FIX:
                raise ConfigError(f"--set {column}: create-account sets {column} itself"
                                  + (" (use --plan SLUG)" if column == "plan_id" else ""),
                                  key=f"{prefix}set")
        if extra and strategy is not Strategy.CREATE_ACCOUNT:
            raise ConfigError("--set applies to --strategy create-account only",
                              key=f"{prefix}set")
        return cls(
            strategy=strategy,
            plan=slug(raw.get("plan", "free"), f"{prefix}plan"),
            role=None if role is None else _choice(Role, role, f"{prefix}role"),
            account=None if account is None else slug(account, f"{prefix}account"),
            email_domain=domain.lstrip("@").lower() if domain else None,
            user_ids=tuple(sorted({row_id(i, f"{prefix}user_ids") for i in ids})),
            cascade=_flag(raw.get("cascade", False), f"{prefix}cascade"),
            set=tuple(sorted(extra.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        if self.set:
            values["set"] = dict(self.set)
        if self.user_ids:
            values["user_ids"] = list(self.user_ids)
        return values


@dataclass(frozen=True)
class EmptyAccountsParams(FixParams):
    delete: bool = False
    cascade: bool = False

    @classmethod
    def _build(cls, raw: Mapping[str, Any], prefix: str) -> EmptyAccountsParams:
        delete = _flag(raw.get("delete", False), f"{prefix}delete")
        if not delete:
            raise ConfigError("empty-accounts only deletes: pass --delete to plan the deletion",
                              key=f"{prefix}delete")
        return cls(delete=delete, cascade=_flag(raw.get("cascade", False), f"{prefix}cascade"))


#: Which parameters each fix takes.
PARAMS: dict[str, type[FixParams]] = {
    "orphaned-users": UserRepairParams,
    "dangling-accounts": UserRepairParams,
    "cross-tenant": FixParams,
    "cluster-counts": FixParams,
    "account-owners": FixParams,
    "empty-accounts": EmptyAccountsParams,
}


def parse_params(fix: str, raw: Mapping[str, Any] | FixParams, prefix: str = "") -> FixParams:
    if fix not in PARAMS:
        raise ConfigError(f"unknown fix {fix!r} (fixes: {', '.join(PARAMS)})", key="fix")
    kind = PARAMS[fix]
    if isinstance(raw, FixParams):
        if not isinstance(raw, kind):
            raise ConfigError(f"{fix} does not take {type(raw).__name__}", key="params")
        return raw
    return kind.parse(raw, prefix)


def policy_params(fix: str, action: Any, key: str | None = None) -> FixParams | None:
    """A ``[repair]`` entry parsed into the fix's parameters; None when it says ``off``.
    ``key`` names the entry in errors (``profiles.nightly.repair.orphaned-users``)."""
    key = key or f"repair.{fix}"
    if fix not in PARAMS:
        raise ConfigError(f"repair policy names unknown fix {fix!r} (fixes: "
                          f"{', '.join(PARAMS)})", key=key)
    if not isinstance(action, str):
        raise ConfigError(f"{key} must be a string", key=key)
    if action == "off":
        return None
    verb, _, argument = action.partition(":")
    raw: dict[str, Any] | None = None
    if PARAMS[fix] is UserRepairParams:
        if verb == "create-account" and (argument or ":" not in action):
            raw = {"strategy": verb, "plan": argument or "free", "role": "owner"}
        elif verb == "assign" and argument:
            raw = {"strategy": verb, "account": argument}
        elif verb in ("delete", "delete-cascade") and not argument:
            raw = {"strategy": "delete", "cascade": verb == "delete-cascade"}
    elif fix == "empty-accounts" and action in ("delete", "delete-cascade"):
        raw = {"delete": True, "cascade": action == "delete-cascade"}
    elif PARAMS[fix] is FixParams and action == "on":
        raw = {}
    if raw is None:
        raise ConfigError(f"{key} = {action[:60]!r} is not an action for this fix "
                          "(see igny8ctl.example.toml)", key=key)
    return parse_params(fix, raw, prefix=f"{key}.")
