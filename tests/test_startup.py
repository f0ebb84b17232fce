"""Start-up cost: what ``check --format json`` imports must not grow (issue: start-up time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from igny8ctl.checks import REGISTRY
from igny8ctl.demo import create_demo_database

#: igny8ctl modules a JSON check of a SQLite database imports today besides one module per
#: check; raise it only with a measurement that shows the new module pays for itself.
MODULES_BESIDES_CHECKS = 24  # 24th: igny8ctl.outputs (the SQLite file is never an output), 1 ms
NEVER_FOR_A_JSON_CHECK = ("rich", "alembic", "openai", "pydantic", "psycopg", "mako",
                          "igny8ctl.fixes", "igny8ctl.journal", "igny8ctl.cluster",
                          "igny8ctl.migrations", "igny8ctl.cli.fix", "igny8ctl.cli.cluster",
                          "igny8ctl.cli.migrate", "igny8ctl.render.human")

PROBE = """
import contextlib, io, json, sys
from igny8ctl.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(["check", "--database-url", sys.argv[1], "--format", "json"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_a_json_check_imports_only_what_it_needs(tmp_path: Path) -> None:
    database = create_demo_database(tmp_path / "demo.sqlite3")
    completed = subprocess.run([sys.executable, "-c", PROBE, f"sqlite:///{database}"],
                               capture_output=True, text=True, timeout=60, check=True)
    probe = json.loads(completed.stdout)
    assert probe["code"] == 1, "the demo has defects"
    modules = probe["modules"]
    loaded = [m for m in modules if m.split(".")[0] in NEVER_FOR_A_JSON_CHECK
              or any(m == p or m.startswith(p + ".") for p in NEVER_FOR_A_JSON_CHECK)]
    assert loaded == []
    ours = [m for m in modules if m == "igny8ctl" or m.startswith("igny8ctl.")]
    assert len(ours) <= MODULES_BESIDES_CHECKS + len(REGISTRY), ours
