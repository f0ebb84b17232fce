"""The output layer: every (result kind, format) a command can ask for has a renderer."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import igny8ctl.cli
from igny8ctl.render import RENDERERS, SCHEMA_VERSION, OutputFormat, envelope, renderer


def cli_formats() -> list[tuple[str, str, OutputFormat]]:
    """(command module, kind, format) for every FORMATS table of the CLI."""
    pairs = []
    for info in pkgutil.iter_modules(igny8ctl.cli.__path__):
        module = importlib.import_module(f"igny8ctl.cli.{info.name}")
        for kind, formats in getattr(module, "FORMATS", {}).items():
            pairs += [(info.name, kind, output_format) for output_format in formats]
    return pairs


@pytest.mark.parametrize("module, kind, output_format", cli_formats())
def test_every_format_a_command_offers_has_a_renderer(module: str, kind: str,
                                                      output_format: OutputFormat) -> None:
    assert (kind, output_format) in RENDERERS, (module, kind, output_format)
    assert callable(renderer(kind, output_format))


def test_every_registered_renderer_is_offered_by_a_command() -> None:
    offered = {(kind, output_format) for _, kind, output_format in cli_formats()}
    assert set(RENDERERS) - offered <= {("error", OutputFormat.JSON)}


def test_the_envelope_frames_every_document() -> None:
    document = envelope("check.report", {"passed": True})
    assert list(document)[:3] == ["schema_version", "tool", "kind"]
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["tool"]["name"] == "igny8ctl"
    assert json.loads(json.dumps(document))["passed"] is True
