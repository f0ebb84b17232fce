"""Every igny8ctl command line the README shows runs against a demo database.

Lines are taken from every fenced block (shell, YAML, cron, systemd); what follows
``igny8ctl`` up to a redirection or pipe is run in-process, in README order, with
``IGNY8_DATABASE_URL`` pointing at a fresh demo database. A documented command may find
must exit as documented: 0, unless its line, or a comment line just above it, says
``# exit N`` (a check that finds the demo's defects exits 1). Clustering
through OpenAI goes to a fake OpenAI-compatible server on 127.0.0.1 (``--base-url``).
"""

from __future__ import annotations

import io
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.fake_openai import FakeOpenAI
from tests.migrate_support import ALTER, DJANGO_MIGRATION, HEAD, TAIL

README = Path(__file__).resolve().parent.parent / "README.md"
STOP = {">", ">>", "|", "&&", ";", "2>&1", "#"}
#: Tokens after which ``igny8ctl`` is the command, not an argument (cron's user field too).
COMMAND_POSITION = {"&&", ";", "|", "-", "igny8", "run:"}
#: Commands that change the machine rather than the database.
NOT_RUN = ("--install-completion",)
DOCUMENTED_EXIT = re.compile(r"#.*\bexit (\d+)\b")


def is_command(token: str, previous: str | None) -> bool:
    if token.rsplit("=", 1)[-1].rsplit("/", 1)[-1] != "igny8ctl":
        return False
    return ("=" in token or previous is None or previous in COMMAND_POSITION
            or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", previous) is not None)


def readme_commands() -> list[tuple[list[str], int]]:
    """Each command line of the README with the exit code it documents."""
    commands = []
    in_block = False
    announced: int | None = None  # a comment line's "exit N" applies to the next command
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block, announced = not in_block, None
            continue
        if not in_block:
            continue
        if line.lstrip().startswith("#"):
            documented = DOCUMENTED_EXIT.search(line)
            announced = int(documented[1]) if documented else announced
            continue
        tokens = shlex.split(line, comments=False)
        for index, token in enumerate(tokens):
            if is_command(token, tokens[index - 1] if index else None):
                rest = tokens[index + 1:]
                stop = next((i for i, t in enumerate(rest) if t in STOP), len(rest))
                documented = DOCUMENTED_EXIT.search(line)
                expected = int(documented[1]) if documented else announced
                commands.append((rest[:stop], 0 if expected is None else expected))
                announced = None
                break
    return commands


def test_readme_shows_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    assert commands[0] == (["demo"], 0), "the README starts with the demo"


def test_every_readme_command_runs(cli: Callable[..., Result], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    demo = tmp_path / "igny8ctl-demo.sqlite3"
    monkeypatch.setenv("IGNY8_DATABASE_URL", f"sqlite:///{demo}")
    migration = tmp_path / DJANGO_MIGRATION  # what the migrate section's django-state reads
    migration.parent.mkdir(parents=True)
    migration.write_text(HEAD + ALTER + TAIL)
    monkeypatch.setattr("igny8ctl.cli.options.stdin_is_terminal", lambda: True)
    with FakeOpenAI() as fake:
        for command, documented in readme_commands():
            if command[:2] == ["cluster", "run"] and "local" not in command:
                # a row's key goes only to its own server: the fake one takes an operator's
                command = [*command, "--base-url", fake.url, "--api-key", "sk-readme-0000"]
            run_readme_command(cli, command, documented, tmp_path, monkeypatch)


def run_readme_command(cli: Callable[..., Result], command: list[str], documented: int,
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if any(flag in command for flag in NOT_RUN):
        return
    if "RUN_ID" in command:
        runs = json.loads(cli("fix", "history", "--format", "json").stdout)
        command = [runs["runs"][0]["run_id"] if arg == "RUN_ID" else arg for arg in command]
    command = [str(tmp_path / Path(arg).name) if arg.startswith("/") else arg
               for arg in command]
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    result = cli(*command)
    assert result.code == documented, (command, result.code, result.stderr)
