"""Real databases for every test: PostgreSQL on 127.0.0.1 and SQLite files, from the shared DDL."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from igny8ctl.cli.main import main
from tests.seed import Seeder

ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMA = ROOT.parent / "shared" / "igny8-schema"
PACKAGED_SCHEMA = ROOT / "igny8ctl" / "schema"
PG_ADMIN = os.environ.get("IGNY8CTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DIALECTS = ["postgresql", "sqlite"]
_counter = itertools.count()


def schema_file(name: str) -> Path:
    """The contract is the shared DDL; the packaged copy stands in only where it is absent."""
    shared = SHARED_SCHEMA / name
    return shared if shared.exists() else PACKAGED_SCHEMA / name


def pg_url(database: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + database


def _admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN, autocommit=True)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"igny8ctl_tpl_{os.getpid()}"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(pg_url(name), autocommit=True) as connection:
        connection.execute(schema_file("postgresql.sql").read_text())
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "igny8.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(schema_file("sqlite.sql").read_text())
    connection.close()
    return path


def new_pg_database(template: str) -> str:
    name = f"igny8ctl_t{os.getpid()}_{next(_counter)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop_pg_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(pg_template: str) -> Iterator[str]:
    name = new_pg_database(pg_template)
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "igny8.sqlite3"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh igny8 database, once per dialect."""
    fixture = "postgres_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def seed(db_url: str) -> Iterator[Seeder]:
    seeder = Seeder(db_url)
    yield seeder
    seeder.close()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient database URL, profile or configuration file leaks into a test."""
    for variable in ("IGNY8_DATABASE_URL", "DATABASE_URL", "IGNY8CTL_PROFILE",
                     "IGNY8CTL_OPENAI_API_KEY", "OPENAI_API_KEY", "IGNY8CTL_DEBUG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run igny8ctl in-process, as the console script would, and capture its streams."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(int(code), out, err)

    return run
