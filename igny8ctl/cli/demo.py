"""``igny8ctl demo``: build a SQLite sandbox with known defects and check it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from igny8ctl.render.console import stderr, stdout


def demo(
    path: Annotated[Path, typer.Argument(help="Where to create the sandbox.", dir_okay=False)]
    = Path("igny8ctl-demo.sqlite3"),
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite PATH even if it is not an earlier demo database.")] = False,
) -> None:
    """Create a SQLite sandbox of a small igny8 with known defects, then run the checks on it."""
    from igny8ctl import api
    from igny8ctl.render.human import render_report

    settings, report = api.demo(path, force=force)
    console = stdout()
    render_report(report, console)
    url = settings.database_url
    err = stderr()
    err.print(f"\nSandbox: {path}  (no server, no network)", highlight=False)
    err.print("Try next:", highlight=False)
    for line in (
        f"igny8ctl check --database-url {url} --format json",
        f"igny8ctl fix orphaned-users --strategy create-account --database-url {url}",
        f"igny8ctl cluster run --tenant acme-seo --engine local --database-url {url}",
        "igny8ctl check --list",
    ):
        err.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
