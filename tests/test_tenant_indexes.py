"""Doctor and ``check --tenant`` read a tenant through indexes, never a whole table.

Every statement they send is captured and explained by PostgreSQL on a database large
enough for the planner to prefer indexes where they exist; none may scan a tenant table
whole. The same detector, run on a whole-database check, does find scans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.db import normalize_url
from tests.conftest import drop_pg_database, new_pg_database, pg_url

ACCOUNTS, USERS_PER_ACCOUNT = 2000, 10
TABLES = {"igny8_core_auth_user", "igny8_core_auth_account", "igny8_core_auth_site",
          "planner_clusters", "planner_keywords", "system_integrationsettings"}
BUILD = [
    "INSERT INTO igny8_core_auth_plan (name, slug, monthly_credits, max_users, is_active) "
    "VALUES ('Free', 'free', 100, 1, true)",
    f"INSERT INTO igny8_core_auth_account (id, name, slug, credits, status, created_at, "
    f"updated_at, owner_id, plan_id) OVERRIDING SYSTEM VALUE SELECT n, 'Tenant ' || n, "
    f"CASE WHEN n = 1 THEN 'aws-admin' ELSE 'tenant-' || n END, 0, 'active', now(), now(), "
    f"NULL, 1 FROM generate_series(1, {ACCOUNTS}) n",
    f"INSERT INTO igny8_core_auth_user (id, password, is_superuser, username, first_name, "
    f"last_name, email, is_staff, is_active, date_joined, role, account_id) OVERRIDING SYSTEM "
    f"VALUE SELECT n, '!', false, 'user' || n, '', '', 'user' || n || '@example.com', false, "
    f"true, now(), CASE WHEN n % {USERS_PER_ACCOUNT} = 1 THEN 'owner' ELSE 'editor' END, "
    f"(n + {USERS_PER_ACCOUNT - 1}) / {USERS_PER_ACCOUNT} "
    f"FROM generate_series(1, {ACCOUNTS * USERS_PER_ACCOUNT}) n",
    f"UPDATE igny8_core_auth_account SET owner_id = id * {USERS_PER_ACCOUNT} - "
    f"{USERS_PER_ACCOUNT - 1}",
    f"INSERT INTO igny8_core_auth_site (id, name, domain, is_active, created_at, account_id) "
    f"OVERRIDING SYSTEM VALUE SELECT n, 'Site', 'site.example', true, now(), (n + 1) / 2 "
    f"FROM generate_series(1, {ACCOUNTS * 2}) n",
    f"INSERT INTO planner_clusters (id, name, description, keywords_count, volume, status, "
    f"created_at, updated_at, account_id, site_id) OVERRIDING SYSTEM VALUE SELECT n, "
    f"'Cluster ' || n, '', 0, 0, 'active', now(), now(), (n + 3) / 4, (n + 1) / 2 "
    f"FROM generate_series(1, {ACCOUNTS * 4}) n",
    f"INSERT INTO planner_keywords (keyword, volume, difficulty, intent, status, created_at, "
    f"updated_at, account_id, cluster_id, site_id) SELECT 'keyword ' || n, 100, 10, "
    f"'informational', CASE WHEN n % 2 = 0 THEN 'clustered' ELSE 'pending' END, now(), now(), "
    f"(n + 19) / 20, CASE WHEN n % 2 = 0 THEN (n + 4) / 5 END, (n + 9) / 10 "
    f"FROM generate_series(1, {ACCOUNTS * 20}) n",
    "UPDATE planner_clusters c SET keywords_count = k.n, volume = k.v FROM (SELECT cluster_id, "
    "count(*) n, sum(volume) v FROM planner_keywords WHERE cluster_id IS NOT NULL "
    "GROUP BY cluster_id) k WHERE k.cluster_id = c.id",
    "INSERT INTO system_integrationsettings (integration_type, config, is_active, created_at, "
    "updated_at, account_id) SELECT 'openai', jsonb_build_object('api_key', 'sk-x', 'model', "
    f"'gpt-4o-mini'), true, now(), now(), n FROM generate_series(1, {ACCOUNTS}, 3) n",
    "VACUUM ANALYZE",
]

Statement = tuple[str, Any]


@pytest.fixture(scope="module")
def large(pg_template: str) -> Iterator[str]:
    """Built once for the module: every test here only reads it."""
    name = new_pg_database(pg_template)
    with psycopg.connect(pg_url(name), autocommit=True) as connection:
        for statement in BUILD:
            connection.execute(statement)  # type: ignore[arg-type]
    yield pg_url(name)
    drop_pg_database(name)


def captured(action: Callable[[], object]) -> list[Statement]:
    statements: list[Statement] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        action()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    return [s for s in statements if s[0].lstrip().upper().startswith(("SELECT", "WITH"))]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def whole_table_scans(url: str, statements: list[Statement]) -> list[tuple[str, str]]:
    """(table, statement) for every sequential scan of a tenant table in the plans."""
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    scans = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement,
                                              parameters).scalar_one()
            scans += [(node["Relation Name"], statement) for node in _nodes(plan[0]["Plan"])
                      if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in TABLES]
    engine.dispose()
    return scans


SCOPED: dict[str, Callable[[Settings], object]] = {
    "check --tenant (slug)": lambda s: api.run_checks(s, tenants=["tenant-77"]),
    "check --tenant (id, two tenants)": lambda s: api.run_checks(s, tenants=["77", "1500"]),
    "doctor user (username)": lambda s: api.doctor_user(s, "user765"),
    "doctor user (id)": lambda s: api.doctor_user(s, "765"),
    "doctor tenant": lambda s: api.doctor_tenant(s, "tenant-77"),
}


@pytest.mark.parametrize("action", SCOPED.values(), ids=SCOPED.keys())
def test_tenant_runs_use_indexes_only(large: str, action: Callable[[Settings], object]) -> None:
    settings = Settings(database_url=large)
    statements = captured(lambda: action(settings))
    assert len(statements) > 5
    assert whole_table_scans(large, statements) == []


def test_the_detector_sees_a_whole_database_check(large: str) -> None:
    statements = captured(lambda: api.run_checks(Settings(database_url=large)))
    assert {table for table, _ in whole_table_scans(large, statements)} >= {
        "igny8_core_auth_user", "planner_keywords"}
