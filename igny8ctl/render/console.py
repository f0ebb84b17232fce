"""Rich consoles for the human renderers; Rich itself is imported only when one is made."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def capture(draw: Callable[[Console], None]) -> str:
    """What ``draw`` prints, as plain text (for ``--output FILE`` with a table)."""
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO(), force_terminal=False)
    draw(console)
    return console.export_text()
