"""Boundary: output paths. ``--output`` and ``--metrics-file`` replace a regular file (or
create one) atomically, write devices, FIFOs and /dev/stdout in place, keep symlinks, and
refuse the rest; nothing that is not a regular file is ever replaced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from igny8ctl.demo import create_demo_database
from tests.conftest import Result

Cli = Callable[..., Result]
OPTIONS = ["--output", "--metrics-file"]


@pytest.fixture
def demo(tmp_path: Path) -> str:
    return f"sqlite:///{create_demo_database(tmp_path / 'demo.sqlite3')}"


def run(cli: Cli, demo: str, option: str, target: Path | str) -> Result:
    return cli("check", "--database-url", demo, "-f", "json", option, str(target))


def written(text: str, option: str) -> bool:
    return ('"kind": "check.report"' in text) if option == "--output" else (
        "igny8ctl_check_findings" in text)


@pytest.mark.parametrize("option", OPTIONS)
def test_a_new_path_and_a_regular_file_are_replaced_atomically(
        cli: Cli, demo: str, tmp_path: Path, option: str) -> None:
    fresh = tmp_path / "fresh.out"
    assert run(cli, demo, option, fresh).code == 1
    assert written(fresh.read_text(), option)
    existing = tmp_path / "existing.out"
    existing.write_text("old")
    existing.chmod(0o600)
    inode = existing.stat().st_ino
    assert run(cli, demo, option, existing).code == 1
    assert written(existing.read_text(), option)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600 and existing.stat().st_ino != inode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("option", OPTIONS)
def test_a_symlink_stays_a_symlink(cli: Cli, demo: str, tmp_path: Path, option: str) -> None:
    target = tmp_path / "target.out"
    target.write_text("old")
    link = tmp_path / "link.out"
    link.symlink_to(target)
    assert run(cli, demo, option, link).code == 1
    assert link.is_symlink() and written(target.read_text(), option)


@pytest.mark.parametrize("option", OPTIONS)
def test_dev_null_stays_a_device(cli: Cli, demo: str, option: str) -> None:
    assert run(cli, demo, option, "/dev/null").code == 1
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("option", OPTIONS)
def test_a_fifo_is_written_when_read_and_refused_without_a_reader(
        cli: Cli, demo: str, tmp_path: Path, option: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    refused = run(cli, demo, option, fifo)
    assert refused.code == 2 and "a FIFO with no reader" in refused.stderr
    assert time.monotonic() - started < 10
    received: list[str] = []
    opened = threading.Event()

    def reader() -> None:
        with open(fifo) as handle:
            opened.set()
            received.append(handle.read())

    thread = threading.Thread(target=reader)
    thread.start()
    # The reader's open blocks until a writer arrives: give it a moment to be waiting.
    time.sleep(0.2)
    assert run(cli, demo, option, fifo).code == 1
    thread.join(10)
    assert written(received[0], option) and stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("target, message", [
    ("dangling", "it is a symlink to nothing"),
    ("directory", "is a directory"),
    ("missing/parent.out", "does not exist"),
    ("/proc/version", "cannot write"),
])
def test_what_cannot_be_written_is_one_line(cli: Cli, demo: str, tmp_path: Path, option: str,
                                            target: str, message: str) -> None:
    path = Path(target) if target.startswith("/") else tmp_path / target
    if target == "dangling":
        path.symlink_to(tmp_path / "nowhere")
    elif target == "directory":
        path.mkdir()
    result = run(cli, demo, option, path)
    assert result.code == 2 and message in result.stderr and option in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if target == "dangling":
        assert path.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("command", [
    ("check", "-f", "json", "--output"),
    ("check", "-f", "json", "--metrics-file"),
    ("fix", "orphaned-users", "--strategy", "create-account", "--save-plan"),
    ("cluster", "run", "--tenant", "acme-seo", "--engine", "local", "--save-plan"),
], ids=lambda command: " ".join(command))
@pytest.mark.parametrize("way", ["the file", "a symlink to it", "a hard link of it"])
def test_the_database_file_is_never_an_output(cli: Cli, demo: str, tmp_path: Path,
                                              command: tuple[str, ...], way: str) -> None:
    database = Path(demo.removeprefix("sqlite:///"))
    target = database
    if way == "a symlink to it":
        target = tmp_path / "link.out"
        target.symlink_to(database)
    elif way == "a hard link of it":
        target = tmp_path / "hard.out"
        target.hardlink_to(database)
    before = database.read_bytes()
    result = cli(*command, str(target), "--database-url", demo)
    assert result.code == 2, result
    assert "it is the database igny8ctl is working on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert database.read_bytes() == before


def test_dev_stdout_works(demo: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "igny8ctl", "check", "--database-url", demo, "-f", "json",
         "--output", "/dev/stdout"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1 and '"kind": "check.report"' in completed.stdout
