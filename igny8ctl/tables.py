"""igny8's tables as igny8ctl reads them: one class per logical table, columns as attributes.

A misspelt column (``schema.user.acount_id``) is a mypy error, and this module is the one
place that names Django's defaults; ``[tables]`` and ``[columns.<table>]`` in
``igny8ctl.toml`` map them to a renamed installation. It imports no SQLAlchemy at run time,
so the configuration can be validated against it before anything heavy loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, overload

if TYPE_CHECKING:
    import sqlalchemy as sa


class Col:
    """A logical column: resolves to the mapped table's reflected column."""

    def __set_name__(self, owner: type[MappedTable], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[MappedTable]) -> Col: ...

    @overload
    def __get__(self, instance: MappedTable, owner: type[MappedTable]) -> sa.Column[Any]: ...

    def __get__(self, instance: MappedTable | None,
                owner: type[MappedTable]) -> Col | sa.Column[Any]:
        if instance is None:
            return self
        return instance.columns[self.name]


class MappedTable:
    """A reflected igny8 table; subclasses declare their logical columns as ``Col()``."""

    logical: ClassVar[str]
    default_name: ClassVar[str]
    id = Col()

    def __init__(self, table: sa.Table, columns: Mapping[str, sa.Column[Any]]) -> None:
        self.table = table
        self.columns = dict(columns)

    @classmethod
    def logical_columns(cls) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            names.update((name, None) for name, value in vars(klass).items()
                         if isinstance(value, Col))
        return tuple(names)

    @property
    def pk(self) -> sa.Column[Any]:
        return self.id


class PlanTable(MappedTable):
    logical = "plan"
    default_name = "igny8_core_auth_plan"
    slug = Col()


class AccountTable(MappedTable):
    logical = "account"
    default_name = "igny8_core_auth_account"
    name = Col()
    slug = Col()
    credits = Col()
    status = Col()
    created_at = Col()
    updated_at = Col()
    owner_id = Col()
    plan_id = Col()


class UserTable(MappedTable):
    logical = "user"
    default_name = "igny8_core_auth_user"
    username = Col()
    email = Col()
    first_name = Col()
    last_name = Col()
    role = Col()
    is_active = Col()
    date_joined = Col()
    account_id = Col()


class SiteTable(MappedTable):
    logical = "site"
    default_name = "igny8_core_auth_site"
    account_id = Col()


class ClusterTable(MappedTable):
    logical = "cluster"
    default_name = "planner_clusters"
    name = Col()
    description = Col()
    keywords_count = Col()
    volume = Col()
    status = Col()
    created_at = Col()
    updated_at = Col()
    account_id = Col()
    site_id = Col()


class KeywordTable(MappedTable):
    logical = "keyword"
    default_name = "planner_keywords"
    keyword = Col()
    volume = Col()
    status = Col()
    updated_at = Col()
    account_id = Col()
    cluster_id = Col()
    site_id = Col()


class SettingsTable(MappedTable):
    logical = "settings"
    default_name = "system_integrationsettings"
    integration_type = Col()
    config = Col()
    is_active = Col()
    account_id = Col()


TABLES: dict[str, type[MappedTable]] = {
    table.logical: table
    for table in (PlanTable, AccountTable, UserTable, SiteTable, ClusterTable, KeywordTable,
                  SettingsTable)
}
