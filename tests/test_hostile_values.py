"""Boundary: values from the command line and the files it names. Every bad value is one
line and exit 2 (3 for the database), with no traceback and no hang; Ctrl-C is exit 130."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.demo import create_demo_database
from tests.conftest import Result

Cli = Callable[..., Result]


@pytest.fixture
def demo(tmp_path: Path) -> str:
    return f"sqlite:///{create_demo_database(tmp_path / 'demo.sqlite3')}"


def one_line(result: Result, code: int, fragment: str) -> None:
    assert result.code == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("igny8ctl: error: "), result.stderr
    assert fragment in lines[0], lines[0]


CHECK_VALUES = [
    ("negative sample", ["--sample", "-1"], "--sample"),
    ("sample beyond any int", ["--sample", "99999999999999999999999"], "--sample"),
    ("sample that is not a number", ["--sample", "nan"], "--sample"),
    ("an exclusion that leaves nothing", ["-x", "*"], "leave no check to run"),
    ("an unknown check", ["--check", "users.nope"], "unknown check 'users.nope'"),
    ("a check id with escapes", ["--check", "\x1b[31mred"], "unknown check '\\\\x1b[31mred'"),
    ("an unknown fail-on", ["--fail-on", "sometimes"], "--fail-on"),
    ("an unknown format", ["--format", "yaml"], "--format"),
]


@pytest.mark.parametrize("args, fragment", [c[1:] for c in CHECK_VALUES],
                         ids=[c[0] for c in CHECK_VALUES])
def test_bad_check_values(cli: Cli, demo: str, args: list[str], fragment: str) -> None:
    one_line(cli("check", "--database-url", demo, *args), 2, fragment)


RUN_IDS = [
    ("100,000 characters", "x" * 100_000, "is not a run id"),
    ("one past the column", "2" * 41, "is not a run id"),
    ("escapes", "\x1b]0;owned\x07", "no run '\\x1b]0;owned\\x07'"),
    ("unknown", "20261203T000000-000000", "no run '20261203T000000-000000'"),
]


@pytest.mark.parametrize("run_id, fragment", [c[1:] for c in RUN_IDS],
                         ids=[c[0] for c in RUN_IDS])
def test_bad_run_ids(cli: Cli, demo: str, run_id: str, fragment: str) -> None:
    """A run id is echoed at most 24 characters long, escaped; nothing is written."""
    for args in (["fix", "undo", run_id], ["fix", "undo", run_id, "--apply", "--yes"]):
        result = cli(*args, "--database-url", demo)
        one_line(result, 2, fragment)
        assert len(result.stderr) < 300


SET_VALUES = [
    ("text for a number", "credits=abc", "is not a value of"),
    ("a float for an integer", "credits=1.5", "is not a value of"),
    ("longer than the column", "status=" + "x" * 300, "the column holds"),
    ("a column the fix sets", "owner_id=1", "sets owner_id itself"),
    ("no such column", "nope=1", "no such column"),
]


@pytest.mark.parametrize("assignment, fragment", [c[1:] for c in SET_VALUES],
                         ids=[c[0] for c in SET_VALUES])
def test_set_values_are_checked_before_the_preview(cli: Cli, demo: str, assignment: str,
                                                   fragment: str) -> None:
    one_line(cli("fix", "orphaned-users", "--strategy", "create-account", "--set", assignment,
                 "--database-url", demo), 2, fragment)


def test_history_runs_must_be_positive(cli: Cli, demo: str) -> None:
    one_line(cli("check", "history", "--database-url", demo, "--runs", "0"), 2, "--runs")


BASELINES: list[tuple[str, bytes]] = [
    ("infinite count", b'{"schema_version": 2, "kind": "check.report", "checks": [{"id": "a", '
                       b'"findings": [{"code": "b", "count": 1e400, "sample_ids": []}]}]}'),
    ("negative count", b'{"schema_version": 2, "kind": "check.report", "checks": [{"id": "a", '
                       b'"findings": [{"code": "b", "count": -5, "sample_ids": []}]}]}'),
    ("ids beyond bigint", b'{"schema_version": 2, "kind": "check.report", "checks": [{"id": '
                          b'"a", "findings": [{"code": "b", "count": 1, "sample_ids": '
                          b'[99999999999999999999999]}]}]}'),
    ("count as text", b'{"schema_version": 2, "kind": "check.report", "checks": [{"id": "a", '
                      b'"findings": [{"code": "b", "count": "3", "sample_ids": []}]}]}'),
    ("boolean count", b'{"schema_version": 2, "kind": "check.report", "checks": [{"id": "a", '
                      b'"findings": [{"code": "b", "count": true, "sample_ids": []}]}]}'),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000),
    ("not UTF-8", b'{"checks": "\xff\xfe"}'),
    ("another kind of document", b'{"schema_version": 2, "kind": "fix.plan", "checks": []}'),
    ("a future version", b'{"schema_version": 99, "kind": "check.report", "checks": []}'),
    ("a list", b"[]"),
    ("empty", b""),
]


@pytest.mark.parametrize("text", [b[1] for b in BASELINES], ids=[b[0] for b in BASELINES])
def test_hostile_baselines(cli: Cli, demo: str, tmp_path: Path, text: bytes) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(text)
    one_line(cli("check", "--database-url", demo, "--baseline", str(baseline)), 2, "baseline")


@pytest.mark.parametrize("where, fragment", [
    ("missing/demo.sqlite3", "does not exist"),
    ("/dev/null", "is not a regular file"),
    ("directory", "is a directory"),
])
def test_demo_paths(cli: Cli, tmp_path: Path, where: str, fragment: str) -> None:
    path = Path(where) if where.startswith("/") else tmp_path / where
    if where == "directory":
        path.mkdir()
    one_line(cli("demo", str(path), "--force"), 2, fragment)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[str]:
    """A demo database in a directory nothing can be created in (immutable: root too)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    directory = tmp_path / "frozen"
    directory.mkdir()
    create_demo_database(directory / "demo.sqlite3")
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode:
        pytest.skip("this filesystem cannot make a directory immutable")
    try:
        yield f"sqlite:///{directory / 'demo.sqlite3'}"
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_a_read_only_directory_beside_sqlite(cli: Cli, read_only_directory: str) -> None:
    url = read_only_directory
    assert cli("check", "--database-url", url).code == 1, "reading needs no write access"
    one_line(cli("check", "--database-url", url, "--record"), 3, "is its directory writable")
    one_line(cli("fix", "orphaned-users", "--strategy", "create-account", "--apply", "--yes",
                 "--database-url", url), 2, "writes need a writable directory")


def test_an_internal_error_is_exit_2_with_and_without_tracebacks(
        cli: Cli, demo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "run_checks", broken)
    one_line(cli("check", "--database-url", demo), 2, "internal error: RuntimeError: a bug")
    verbose = cli("-vv", "check", "--database-url", demo)
    assert verbose.code == 2 and "Traceback" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("igny8ctl: error: internal error")
    monkeypatch.delenv("IGNY8CTL_DEBUG", raising=False)


def test_ctrl_c_at_the_prompt_is_130_within_a_second(demo: str) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "igny8ctl", "fix", "orphaned-users", "--strategy",
         "create-account", "--apply", "--database-url", demo],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # A shell without job control starts background jobs with SIGINT ignored; an
        # operator's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(terminal)
    try:
        deadline, seen = time.monotonic() + 60, b""
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1)
            if ready:
                assert process.stderr is not None
                seen += os.read(process.stderr.fileno(), 4096)
        assert b"[y/N]" in seen, seen
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
        assert code == 130 and time.monotonic() - interrupted < 1
    finally:
        process.kill()
        os.close(controller)
    assert api.fix_history(Settings(database_url=demo)).runs == [], "nothing was written"


def test_sigterm_while_waiting_for_a_lock_is_130(demo: str) -> None:
    from igny8ctl.db import create_engine, job_lock

    with job_lock(create_engine(Settings(database_url=demo)), "fix:cluster-counts"):
        process = subprocess.Popen(
            [sys.executable, "-m", "igny8ctl", "fix", "cluster-counts", "--apply", "--yes",
             "--wait", "60", "--database-url", demo],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert process.poll() is None, "still waiting for the lock"
        terminated = time.monotonic()
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130 and time.monotonic() - terminated < 1
    assert stderr.strip().splitlines()[-1].startswith("igny8ctl: error: interrupted")
