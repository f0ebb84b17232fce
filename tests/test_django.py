"""igny8's Django step against a real Django project (``tests/django_igny8``, Django 5.2).

The project's models produce exactly the shared DDL; the database is built from that DDL and
Django's migrations are recorded as applied (``migrate --fake``), as on a live igny8. Then the
incident's last step, rewritten: ``igny8ctl migrate apply``, change the model, ``makemigrations``,
``igny8ctl migrate django-state``, ``migrate``. Each ``manage.py`` command runs as a process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from igny8ctl.errors import ExitCode
from tests.conftest import Result
from tests.migrate_support import DJANGO_MIGRATION
from tests.seed import Seeder

Cli = Callable[..., Result]
PROJECT = Path(__file__).resolve().parent / "django_igny8"
MODEL = "igny8_core/auth/models.py"
NULLABLE = '''    account = models.ForeignKey("igny8_core_auth.Account", on_delete=models.CASCADE,
                                null=True, blank=True, related_name="users")'''
REQUIRED = NULLABLE.replace("null=True, blank=True", "null=False, blank=False")
MIGRATION = DJANGO_MIGRATION


class Django:
    """The test project copied to a directory of its own, on one database."""

    def __init__(self, directory: Path, database_url: str) -> None:
        shutil.copytree(PROJECT, directory, ignore=shutil.ignore_patterns("__pycache__"))
        self.directory = directory
        self.env = {**os.environ, "IGNY8_DJANGO_DATABASE_URL": database_url,
                    "PYTHONDONTWRITEBYTECODE": "1"}

    def manage(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("manage.py", *args, ok=ok)

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, *args], cwd=self.directory, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if ok:
            assert done.returncode == 0, done.stderr[-2000:]
        return done

    def require_account(self) -> None:
        model = self.directory / MODEL
        text = model.read_text()
        assert NULLABLE in text
        model.write_text(text.replace(NULLABLE, REQUIRED))


@pytest.fixture
def django(db_url: str, tmp_path: Path) -> Django:
    project = Django(tmp_path / "igny8", db_url)
    project.manage("migrate", "--fake", "-v0")
    return project


@pytest.mark.slow
def test_the_django_step_runs_no_ddl_after_igny8ctl(db_url: str, seed: Seeder, cli: Cli,
                                                    django: Django) -> None:
    account = seed.account("acme")
    seed.user("maya", account, role="owner")
    django.require_account()
    django.manage("makemigrations", "igny8_core_auth", "--noinput", "--name",
                  "user_account_required")
    migration = django.directory / MIGRATION
    written = migration.read_text()
    before = django.manage("sqlmigrate", "igny8_core_auth", "0002").stdout
    if seed.dialect == "postgresql":
        assert 'DROP CONSTRAINT "igny8_core_auth_user_account_id_6f983e23_fk_igny8_cor"' in before
        assert "SET NOT NULL" in before and "FOREIGN KEY" in before
    else:
        assert 'CREATE TABLE "new__igny8_core_auth_user"' in before, "SQLite remakes the table"

    check = cli("migrate", "django-state", "--check", str(migration))
    assert check.code == ExitCode.FINDINGS
    assert "AlterField user.account" in check.stdout and "drops the" in check.stdout
    refused = cli("migrate", "django-state", str(migration), "--database-url", db_url)
    assert refused.code == ExitCode.FINDINGS
    assert "run igny8ctl migrate apply first" in refused.stderr
    assert migration.read_text() == written, "refused: the file is left unchanged"

    assert cli("migrate", "apply", "--database-url", db_url).code == 0
    rewritten = cli("migrate", "django-state", str(migration), "--database-url", db_url)

    assert rewritten.code == 0, rewritten.stderr
    text = migration.read_text()
    compile(text, str(migration), "exec")
    operation = written[written.index("migrations.AlterField("):written.rindex("),\n    ]") + 1]
    assert text.count("migrations.AlterField(") == 1
    assert written.split("operations = [")[0] == text.split("operations = [")[0], \
        "the header, imports and dependencies are untouched"
    inner = "\n".join("        " + line if index else line
                      for index, line in enumerate(operation.split("\n")))
    assert ("        migrations.SeparateDatabaseAndState(\n"
            "            state_operations=[\n"
            f"                {inner},\n"
            "            ],\n"
            "            database_operations=[],\n"
            "        ),\n") in text
    after = django.manage("sqlmigrate", "igny8_core_auth", "0002").stdout
    assert "ALTER TABLE" not in after and "CREATE TABLE" not in after
    django.manage("migrate", "-v0")
    assert "No changes detected" in django.manage("makemigrations", "--check",
                                                  "--dry-run").stdout
    assert cli("migrate", "django-state", "--check", str(migration)).code == 0
    again = cli("migrate", "django-state", str(migration), "--database-url", db_url)
    assert again.code == 0 and "already state-only" in again.stdout
    assert cli("check", "--database-url", db_url, "-c", "schema.*",
               "--fail-on", "warning").code == 0


@pytest.mark.slow
def test_django_keeps_working_with_the_tenant_keys(db_url: str, cli: Cli,
                                                   django: Django) -> None:
    assert cli("migrate", "apply", "--database-url", db_url).code == 0

    outcome = json.loads(django.run("orm_scenario.py").stdout)

    assert outcome["refused"] == ["keyword into another tenant's cluster",
                                  "cluster onto another tenant's site",
                                  "owner from another account"]
    assert outcome["detached"] == 3, "deleting a cluster set its keywords' cluster_id to NULL"
    globex_account, globex_owner, globex_site, globex_cluster = outcome["globex"]
    assert outcome["left"]["Account"] == [globex_account], "the account's cascade ran"
    assert outcome["left"]["User"] == [globex_owner]
    assert outcome["left"]["Site"] == [globex_site]
    assert outcome["left"]["Clusters"] == [globex_cluster]
    assert len(outcome["left"]["Keywords"]) == 3
    assert len(outcome["left"]["IntegrationSettings"]) == 1
