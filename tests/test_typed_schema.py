"""The logical schema is typed: a misspelt table or column is a mypy error, not a runtime one."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
from igny8ctl.db import Igny8Schema

def orphans(schema: Igny8Schema) -> object:
    return schema.user.{column}.is_(None)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("column", "clean"), [("account_id", True), ("acount_id", False)])
def test_mypy_strict_catches_a_misspelt_column(column: str, clean: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    report, errors, status = api.run(
        ["--strict", "--no-error-summary", "-c", PROGRAM.format(column=column)])
    assert (status == 0) is clean, report + errors
    if not clean:
        assert '"UserTable" has no attribute "acount_id"' in report
