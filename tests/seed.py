"""Insert igny8 rows with sensible defaults, so each test states only what matters to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from igny8ctl.db import normalize_url

NOW = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)

TABLES = {
    "plan": "igny8_core_auth_plan",
    "account": "igny8_core_auth_account",
    "user": "igny8_core_auth_user",
    "site": "igny8_core_auth_site",
    "cluster": "planner_clusters",
    "keyword": "planner_keywords",
    "settings": "system_integrationsettings",
    "admin_log": "django_admin_log",
    "user_groups": "igny8_core_auth_user_groups",
    "group": "auth_group",
    "content_type": "django_content_type",
}


class Seeder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
        self.dialect = self.engine.dialect.name
        self.metadata = sa.MetaData()
        self.metadata.reflect(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def table(self, logical: str) -> sa.Table:
        return self.metadata.tables[TABLES.get(logical, logical)]

    def insert(self, logical: str, **values: Any) -> int:
        with self.engine.begin() as connection:
            return int(connection.execute(
                sa.insert(self.table(logical)).values(**values).returning(
                    self.table(logical).c.id)
            ).scalar_one())

    def plan(self, slug: str = "free", **values: Any) -> int:
        existing = self.scalar(f"SELECT id FROM igny8_core_auth_plan WHERE slug = '{slug}'")
        if existing is not None:
            return int(existing)
        row = {"name": slug.title(), "slug": slug, "monthly_credits": 100, "max_users": 1,
               "is_active": True}
        return self.insert("plan", **(row | values))

    def account(self, slug: str, plan: int | None = None, owner: int | None = None,
                **values: Any) -> int:
        row = {"name": slug.replace("-", " ").title(), "slug": slug, "credits": 0,
               "status": "active", "created_at": NOW, "updated_at": NOW, "owner_id": owner,
               "plan_id": plan if plan is not None else self.plan()}
        return self.insert("account", **(row | values))

    def user(self, username: str, account: int | None = None, role: str = "editor",
             **values: Any) -> int:
        row = {"password": "!", "last_login": None, "is_superuser": False,
               "username": username, "first_name": username.split(".")[0].title(),
               "last_name": "", "email": f"{username}@example.com", "is_staff": False,
               "is_active": True, "date_joined": NOW, "role": role, "account_id": account}
        return self.insert("user", **(row | values))

    def site(self, account: int, name: str = "Site", **values: Any) -> int:
        row = {"name": name, "domain": name.lower().replace(" ", "") + ".example",
               "is_active": True, "created_at": NOW, "account_id": account}
        return self.insert("site", **(row | values))

    def cluster(self, account: int, site: int, name: str, keywords_count: int = 0,
                volume: int = 0, **values: Any) -> int:
        row = {"name": name, "description": "", "keywords_count": keywords_count,
               "volume": volume, "status": "active", "created_at": NOW, "updated_at": NOW,
               "account_id": account, "site_id": site}
        return self.insert("cluster", **(row | values))

    def keyword(self, account: int, site: int, keyword: str, volume: int = 100,
                cluster: int | None = None, status: str = "pending", **values: Any) -> int:
        row = {"keyword": keyword, "volume": volume, "difficulty": 10,
               "intent": "informational", "status": status, "created_at": NOW,
               "updated_at": NOW, "account_id": account, "cluster_id": cluster,
               "site_id": site}
        return self.insert("keyword", **(row | values))

    def openai_settings(self, account: int, api_key: str | None = "sk-test-key-123456",
                        active: bool = True, **config: Any) -> int:
        document = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 4000} | config
        if api_key is not None:
            document["api_key"] = api_key
        return self.insert("settings", integration_type="openai", config=json.dumps(document)
                           if self.dialect == "sqlite" else document, is_active=active,
                           created_at=NOW, updated_at=NOW, account_id=account)

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(sql), params)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def rows(self, logical: str) -> list[dict[str, Any]]:
        """Every row of a table, by id: for byte-for-byte comparisons before and after."""
        table = self.table(logical)
        with self.engine.connect() as connection:
            order = list(table.primary_key.columns) or list(table.c)
            return [dict(r._mapping) for r in connection.execute(
                sa.select(table).order_by(*order))]

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return {name: self.rows(name) for name in self.metadata.tables}

    def drop_user_account_fk(self) -> None:
        """Recreate the incident: the FK on user.account_id dropped by hand."""
        if self.dialect == "postgresql":
            self.execute(
                "ALTER TABLE igny8_core_auth_user DROP CONSTRAINT IF EXISTS "
                "igny8_core_auth_user_account_id_6f983e23_fk_igny8_cor"
            )

    def dangling_user(self, username: str, account_id: int = 999_999, **values: Any) -> int:
        """A user whose account does not exist (the FK is dropped first on PostgreSQL)."""
        self.drop_user_account_fk()
        with self.engine.begin() as connection:
            row = {"password": "!", "is_superuser": False, "username": username,
                   "first_name": "", "last_name": "", "email": f"{username}@example.com",
                   "is_staff": False, "is_active": True, "date_joined": NOW, "role": "editor",
                   "account_id": account_id} | values
            return int(connection.execute(
                sa.insert(self.table("user")).values(**row).returning(self.table("user").c.id)
            ).scalar_one())
