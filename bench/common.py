"""Helpers shared by the benchmark scripts: scratch PostgreSQL databases and timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN = os.environ.get("IGNY8CTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = ROOT.parent / "shared" / "igny8-schema" / "postgresql.sql"
if not SCHEMA.exists():
    SCHEMA = ROOT / "igny8ctl" / "schema" / "postgresql.sql"
IGNY8CTL = str(ROOT / ".venv" / "bin" / "igny8ctl")


def url(database: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + database


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def create_database(name: str, template: str | None = None) -> str:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    if template is None:
        with psycopg.connect(url(name), autocommit=True) as connection:
            connection.execute(SCHEMA.read_text())  # type: ignore[arg-type]
    return url(name)


def drop_database(name: str) -> None:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_sql(database_url: str, *statements: str, transaction: bool = False) -> None:
    """Run statements, each committed on its own or (``transaction``) all in one."""
    with psycopg.connect(database_url, autocommit=not transaction) as connection:
        for statement in statements:
            connection.execute(statement)  # type: ignore[arg-type]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def best_of(repeats: int, action: Callable[[], object]) -> tuple[float, float]:
    """(best, median) wall seconds over ``repeats`` runs."""
    times = [timed(action) for _ in range(repeats)]
    return min(times), statistics.median(times)


def run(command: Sequence[str], ok_codes: Sequence[int] = (0,)) -> None:
    completed = subprocess.run(list(command), capture_output=True, text=True)
    if completed.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(command)} exited {completed.returncode}: "
                         f"{completed.stderr.strip()}")


def tenants_sql(accounts: int) -> list[str]:
    """The free plan and ``accounts`` owner-less tenants, as set-based statements."""
    return [
        "INSERT INTO igny8_core_auth_plan (name, slug, monthly_credits, max_users, is_active) "
        "VALUES ('Free', 'free', 100, 1, true)",
        "INSERT INTO igny8_core_auth_account (name, slug, credits, status, created_at, "
        "updated_at, owner_id, plan_id) SELECT 'Tenant ' || n, 'tenant-' || n, 0, 'active', "
        f"now(), now(), NULL, 1 FROM generate_series(1, {accounts}) n",
    ]
