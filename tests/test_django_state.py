"""``migrate django-state`` on migration files given as data: what is rewritten and how,
what ``--check`` reports, and every file it must refuse to read (one line, exit 2)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from igny8ctl.config import Settings
from igny8ctl.errors import ExitCode
from igny8ctl.migrations import runner
from igny8ctl.migrations.django_state import MAX_BYTES
from tests.conftest import Result
from tests.migrate_support import ALTER, FK, HEAD, TAIL

Cli = Callable[..., Result]

WRAPPED = f"""        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='user',
                    name='account',
                    field={FK},
                ),
            ],
            database_operations=[],
        ),
"""
OTHER = """        # keep me
        migrations.AddField(
            model_name='site',
            name='note',
            field=models.TextField(default=''),  # and me
        ),
"""

REWRITES = [
    pytest.param(HEAD + ALTER + TAIL, HEAD + WRAPPED + TAIL, id="makemigrations"),
    pytest.param(HEAD + OTHER + ALTER + OTHER + TAIL, HEAD + OTHER + WRAPPED + OTHER + TAIL,
                 id="other-operations-and-comments-stay"),
    pytest.param((HEAD + ALTER + TAIL).replace("\n", "\r\n"),
                 (HEAD + WRAPPED + TAIL).replace("\n", "\r\n"), id="crlf"),
    pytest.param("\ufeff" + HEAD + ALTER + TAIL, "\ufeff" + HEAD + WRAPPED + TAIL, id="bom"),
    pytest.param(HEAD + ALTER.replace("related_name='users', ",
                                      "related_name='users', help_text='''line one\nline two'''"
                                      ", ") + TAIL,
                 HEAD + WRAPPED.replace("related_name='users', ",
                                        "related_name='users', help_text='''line one\nline two'''"
                                        ", ") + TAIL, id="multi-line-string-kept-verbatim"),
    pytest.param(HEAD + f"        migrations.AlterField('user', 'account', {FK}),\n" + TAIL,
                 HEAD + "        migrations.SeparateDatabaseAndState(\n"
                 "            state_operations=[\n"
                 f"                migrations.AlterField('user', 'account', {FK}),\n"
                 "            ],\n            database_operations=[],\n        ),\n" + TAIL,
                 id="positional"),
    pytest.param((HEAD + ALTER + TAIL).replace("from django.db import migrations, models",
                                               "from django.db import migrations as m, models")
                 .replace("migrations.AlterField", "m.AlterField"),
                 (HEAD + WRAPPED + TAIL).replace("from django.db import migrations, models",
                                                 "from django.db import migrations as m, models")
                 .replace("migrations.AlterField", "m.AlterField")
                 .replace("migrations.SeparateDatabaseAndState", "m.SeparateDatabaseAndState"),
                 id="aliased-module"),
]

NOT_REWRITTEN = [
    pytest.param(HEAD + ALTER.replace("to='igny8_core_auth.account'",
                                      "to='igny8_core_auth.account', null=True") + TAIL,
                 "nothing rewritten", id="still-nullable"),
    pytest.param(HEAD + ALTER.replace("name='account'", "name='plan'") + TAIL,
                 "nothing rewritten", id="another-field"),
    pytest.param(HEAD + ALTER.replace("to='igny8_core_auth.account'",
                                      "to='igny8_core_auth.account', db_index=False") + TAIL,
                 "it also changes db_index", id="changes-more-than-igny8ctl-did"),
]

HAZARDS = [
    pytest.param(ALTER, ["AlterField user.account"], id="alter-foreign-key"),
    pytest.param(ALTER.replace("model_name='user'", "model_name='keywords'")
                 .replace("name='account'", "name='cluster'"),
                 ["AlterField keywords.cluster"], id="alter-another-foreign-key"),
    pytest.param("        migrations.AddField(model_name='keywords', name='owner', field="
                 f"{FK.replace('CASCADE', 'SET_NULL')}),\n", ["AddField keywords.owner"],
                 id="add-foreign-key"),
    pytest.param("        migrations.AddConstraint(model_name='keywords', constraint="
                 "models.CheckConstraint(condition=models.Q(volume__gte=0), name='v')),\n",
                 ["AddConstraint keywords"], id="add-check"),
    pytest.param("        migrations.AddConstraint(model_name='keywords', constraint="
                 "models.UniqueConstraint(fields=('site', 'keyword'), name='u')),\n",
                 ["AddConstraint keywords"], id="add-unique"),
    pytest.param("        migrations.AlterUniqueTogether(name='keywords', unique_together="
                 "{('site', 'keyword')}),\n", ["AlterUniqueTogether keywords"],
                 id="unique-together"),
    pytest.param("        migrations.SeparateDatabaseAndState(state_operations=[], "
                 f"database_operations=[{ALTER.strip().rstrip(',')}]),\n",
                 ["AlterField user.account (in database_operations)"],
                 id="inside-database-operations"),
    pytest.param(WRAPPED, [], id="already-state-only"),
    pytest.param(OTHER, [], id="add-plain-column"),
    pytest.param("        migrations.AddConstraint(model_name='keywords', constraint="
                 "models.UniqueConstraint(fields=('site',), condition=models.Q(volume=0), "
                 "name='u')),\n", [], id="partial-unique-is-an-index"),
    pytest.param(ALTER.replace("to='igny8_core_auth.account'",
                               "to='igny8_core_auth.account', db_constraint=False"), [],
                 id="no-database-constraint"),
]


@pytest.fixture
def enforced(sqlite_url: str) -> str:
    runner.apply(Settings(database_url=sqlite_url), to="account-not-null")
    return sqlite_url


@pytest.mark.parametrize(("source", "expected"), REWRITES)
def test_rewrites_only_the_operation(tmp_path: Path, cli: Cli, enforced: str, source: str,
                                     expected: str) -> None:
    path = tmp_path / "0002_user_account_required.py"
    path.write_bytes(source.encode())

    result = cli("migrate", "django-state", str(path), "--database-url", enforced)

    assert result.code == 0, result.stderr
    assert path.read_bytes().decode() == expected
    compile(expected.lstrip("\ufeff"), str(path), "exec")
    again = cli("migrate", "django-state", str(path), "--database-url", enforced)
    assert again.code == 0 and "already state-only" in again.stdout
    assert path.read_bytes().decode() == expected


@pytest.mark.parametrize(("source", "said"), NOT_REWRITTEN)
def test_leaves_other_alterations_alone(tmp_path: Path, cli: Cli, enforced: str, source: str,
                                        said: str) -> None:
    path = tmp_path / "0002.py"
    path.write_text(source)

    result = cli("migrate", "django-state", str(path), "--database-url", enforced, "-f", "json")

    assert result.code == ExitCode.FINDINGS
    document = json.loads(result.stdout)
    assert said in document["verdict"] + " ".join(
        h["reason"] for f in document["files"] for h in f["hazards"])
    assert path.read_text() == source


@pytest.mark.parametrize(("operations", "flagged"), HAZARDS)
def test_check_reports_what_stalls_a_table(tmp_path: Path, cli: Cli, operations: str,
                                           flagged: list[str]) -> None:
    path = tmp_path / "0003.py"
    path.write_text(HEAD + operations + TAIL)

    result = cli("migrate", "django-state", "--check", str(path), "--format", "json")

    document = json.loads(result.stdout)
    assert document["kind"] == "migrate.django-state"
    assert [h["operation"] for h in document["files"][0]["hazards"]] == flagged
    assert all("ACCESS EXCLUSIVE" in h["reason"] for h in document["files"][0]["hazards"])
    assert result.code == (ExitCode.FINDINGS if flagged else 0)
    assert path.read_text() == HEAD + operations + TAIL, "--check never writes"


def test_refuses_on_a_database_that_does_not_enforce_it(tmp_path: Path, cli: Cli,
                                                        sqlite_url: str) -> None:
    path = tmp_path / "0002.py"
    path.write_text(HEAD + ALTER + TAIL)

    result = cli("migrate", "django-state", str(path), "--database-url", sqlite_url)

    assert result.code == ExitCode.FINDINGS
    assert "allows NULL, so a state-only migration would claim" in result.stderr
    assert path.read_text() == HEAD + ALTER + TAIL


def _huge(path: Path) -> None:
    path.write_bytes(b"#" * (MAX_BYTES + 1))


BAD_FILES: list[object] = [
    pytest.param(lambda p: p.write_text(HEAD + "        migrations.AlterField(\n"),
                 "is not valid Python", id="syntax-error"),
    pytest.param(lambda p: p.write_text("print('not a migration')\n"),
                 "is not a Django migration", id="not-a-migration"),
    pytest.param(lambda p: p.write_text("class Migration:\n    operations = 5\n"),
                 "is not a Django migration", id="operations-not-a-list"),
    pytest.param(_huge, "is larger than 4 MiB", id="huge"),
    pytest.param(lambda p: p.write_bytes(b"\xff\xfe not utf-8"), "is not UTF-8 text",
                 id="not-utf-8"),
    pytest.param(lambda p: p.write_bytes(b"x = 1\x00\n"), "null bytes", id="nul-byte"),
    pytest.param(lambda p: p.write_text("x = " + "(" * 5000 + ")" * 5000 + "\n"),
                 "is not valid Python: too many nested parentheses", id="deeply-nested"),
    pytest.param(lambda p: p.write_text("x = " + "-" * 200_000 + "1\n"),
                 "nested too deeply", id="deep-expression"),
    pytest.param(lambda p: p.mkdir(), "is not a regular file", id="directory"),
    pytest.param(lambda p: os.mkfifo(p), "is not a regular file", id="fifo"),
    pytest.param(lambda p: p.symlink_to("/dev/null"), "is not a regular file",
                 id="symlink-to-a-device"),
    pytest.param(lambda p: None, "No such file or directory", id="missing"),
]


@pytest.mark.parametrize(("make", "said"), BAD_FILES)
@pytest.mark.parametrize("mode", ["--check", "rewrite"])
def test_an_untrusted_file_is_one_line_and_exit_2(tmp_path: Path, cli: Cli, enforced: str,
                                                  make: Callable[[Path], None], said: str,
                                                  mode: str) -> None:
    path = tmp_path / "0002.py"
    make(path)
    before = path.read_bytes() if path.is_file() and not path.is_symlink() else None

    args = ["--check"] if mode == "--check" else ["--database-url", enforced]
    result = cli("migrate", "django-state", *args, str(path))

    assert result.code == ExitCode.USAGE, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and message.startswith("igny8ctl: error: ")
    assert said in message and "Traceback" not in message
    if before is not None:
        assert path.read_bytes() == before
