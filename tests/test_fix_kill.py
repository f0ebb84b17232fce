"""A repair killed with SIGKILL mid-apply leaves a consistent database; a re-run finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.seed import Seeder

ORPHANS = 3000


def consistent(seed: Seeder) -> tuple[int, int]:
    """(attached users, accounts they own) — equal whenever every batch was whole."""
    attached = seed.scalar(
        "SELECT count(*) FROM igny8_core_auth_user u JOIN igny8_core_auth_account a "
        "ON a.id = u.account_id AND a.owner_id = u.id WHERE u.username LIKE 'bulk%'")
    created = seed.scalar(
        "SELECT count(*) FROM igny8_core_auth_account a JOIN igny8_core_auth_user u "
        "ON u.id = a.owner_id WHERE u.username LIKE 'bulk%'")
    return int(attached), int(created)


@pytest.mark.slow
def test_sigkill_mid_apply_then_rerun(seed: Seeder, db_url: str) -> None:
    seed.plan("free")
    seed.execute(
        "INSERT INTO igny8_core_auth_user (password, is_superuser, username, first_name, "
        "last_name, email, is_staff, is_active, date_joined, role) "
        "SELECT '!', false, 'bulk' || n, '', '', 'bulk' || n || '@example.com', false, true, "
        ":now, 'editor' FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
        "WHERE n < :count) SELECT n FROM s) AS numbers",
        now=seed_now(), count=ORPHANS)
    command = [sys.executable, "-m", "igny8ctl", "fix", "orphaned-users", "-s",
               "create-account", "--apply", "--yes", "--batch-size", "50",
               "--database-url", seed.url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = seed.scalar("SELECT count(*) FROM igny8_core_auth_user "
                           "WHERE account_id IS NOT NULL")
        if done and done >= 200:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    attached, created = consistent(seed)
    assert 0 < attached == created < ORPHANS, "only whole batches, each user with its account"

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert consistent(seed) == (ORPHANS, ORPHANS)
    assert seed.scalar("SELECT count(*) FROM igny8_core_auth_account") == ORPHANS, \
        "no duplicate accounts"
    assert seed.scalar("SELECT count(*) FROM igny8_core_auth_user WHERE account_id IS NULL") == 0


def seed_now() -> object:
    from tests.seed import NOW

    return NOW
