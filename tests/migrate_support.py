"""Catalog reads, a timed writer and a lock holder for the ``migrate`` tests.

The catalog reads are written out here rather than borrowed from ``igny8ctl.catalog``, so
the tests check the migration against PostgreSQL's and SQLite's own view.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from tests.seed import NOW, Seeder

USER = "igny8_core_auth_user"
ACCOUNT = "igny8_core_auth_account"
DJANGO_FK = "igny8_core_auth_user_account_id_6f983e23_fk_igny8_cor"


@dataclass(frozen=True)
class Enforcement:
    not_null: bool
    foreign_keys: tuple[tuple[str, bool, bool], ...]
    checks: tuple[str, ...]


def enforcement(seed: Seeder) -> Enforcement:
    """NOT NULL, the (name, validated, deferred) foreign keys and the CHECKs on account_id."""
    if seed.dialect == "postgresql":
        not_null = seed.scalar(
            "SELECT attnotnull FROM pg_attribute "
            f"WHERE attrelid = '{USER}'::regclass AND attname = 'account_id'")
        with seed.engine.connect() as connection:
            keys = connection.exec_driver_sql(
                "SELECT conname, convalidated, condeferred FROM pg_constraint "
                f"WHERE conrelid = '{USER}'::regclass AND contype = 'f' "
                f"AND confrelid = '{ACCOUNT}'::regclass ORDER BY conname").all()
            checks = connection.exec_driver_sql(
                "SELECT conname FROM pg_constraint "
                f"WHERE conrelid = '{USER}'::regclass AND contype = 'c'").scalars().all()
        return Enforcement(bool(not_null), tuple((k[0], k[1], k[2]) for k in keys),
                           tuple(checks))
    with seed.engine.connect() as connection:
        columns = connection.exec_driver_sql(f"PRAGMA table_info({USER})").mappings().all()
        keys = connection.exec_driver_sql(f"PRAGMA foreign_key_list({USER})").mappings().all()
        sql = connection.exec_driver_sql(
            f"SELECT sql FROM sqlite_master WHERE name = '{USER}'").scalar_one()
    not_null = next(bool(c["notnull"]) for c in columns if c["name"] == "account_id")
    deferred = "DEFERRABLE INITIALLY DEFERRED" in sql.upper()
    return Enforcement(not_null, tuple(("(unnamed)", True, deferred) for k in keys
                                       if k["from"] == "account_id" and k["table"] == ACCOUNT),
                       ())


def version_table_exists(seed: Seeder) -> bool:
    if seed.dialect == "postgresql":
        return bool(seed.scalar("SELECT to_regclass('igny8ctl_alembic_version') IS NOT NULL"))
    return bool(seed.scalar("SELECT count(*) FROM sqlite_master "
                            "WHERE name = 'igny8ctl_alembic_version'"))


@dataclass
class Writer:
    """An application stand-in: autocommit INSERTs and UPDATEs of users, each one timed."""

    url: str
    account: int
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        while not self.latencies:
            assert self._thread.is_alive(), "the writer failed to start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    @property
    def worst(self) -> float:
        return max(self.latencies)

    def _run(self) -> None:
        prefix = "writer-" + secrets.token_hex(4)
        with psycopg.connect(self.url, autocommit=True, application_name="test-writer") as db:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                started = time.perf_counter()
                if n % 2:
                    db.execute(f"UPDATE {USER} SET last_login = now() WHERE id = "
                               f"(SELECT max(id) FROM {USER})")
                else:
                    db.execute(
                        f"INSERT INTO {USER} (password, is_superuser, username, first_name, "
                        "last_name, email, is_staff, is_active, date_joined, role, account_id) "
                        "VALUES ('!', false, %s, '', '', '', false, true, %s, 'editor', %s)",
                        (f"{prefix}-{n}", NOW, self.account))
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.002)


def hold_lock(url: str) -> psycopg.Connection:
    """A session inside a transaction holding ACCESS SHARE on the user table, like a long read."""
    connection = psycopg.connect(url, application_name="test-blocker")
    connection.execute(f"LOCK TABLE {USER} IN ACCESS SHARE MODE")
    return connection


def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
