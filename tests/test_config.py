"""Configuration: the shipped example parses, precedence holds, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from igny8ctl import api
from igny8ctl.config import load_settings
from igny8ctl.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "igny8ctl.example.toml"


def test_example_config_loads_every_profile() -> None:
    env = {"STAGING_DATABASE_URL": "postgres://s/db", "PROD_DATABASE_URL": "postgres://p/db"}
    base = load_settings(config_path=EXAMPLE, env=env)
    assert base.database_url is None and base.lock_timeout_ms == 2000
    for profile in ("staging", "production"):
        settings = load_settings(config_path=EXAMPLE, profile=profile, env=env)
        assert settings.database_url and settings.url_source == f"profile {profile}"
        for fix, action in settings.repair_policy.items():
            api.repair_params(fix, action)
    production = load_settings(config_path=EXAMPLE, profile="production", env=env)
    assert (production.lock_timeout_ms, production.lock_retries) == (1000, 8)


def test_flag_beats_everything(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('database_url = "sqlite:///file.db"\n')
    settings = load_settings("sqlite:///flag.db", config, env={"DATABASE_URL": "x://y"})
    assert (settings.database_url, settings.url_source) == ("sqlite:///flag.db",
                                                            "--database-url")


@pytest.mark.parametrize("text, message", [
    ("nonsense = 1\n", "unknown key nonsense"),
    ("[tables]\nwidgets = \"w\"\n", "unknown table tables.widgets"),
    ("lock_timeout_ms = -1\n", "lock_timeout_ms must be between 0 and 2147483647"),
    ("database_url_env = \"NOT_SET_ANYWHERE\"\n", "NOT_SET_ANYWHERE, which is not set"),
    ("[tables\n", "is not valid TOML"),
])
def test_configuration_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config_path=config, env={})


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_path=tmp_path / "nope.toml", env={})


def test_environment_beats_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('database_url_env = "IGNY8_PRIMARY_URL"\n')
    settings = load_settings(config_path=config, env={"IGNY8_DATABASE_URL": "sqlite:///e.db"})
    assert (settings.database_url, settings.url_source) == ("sqlite:///e.db",
                                                            "IGNY8_DATABASE_URL")
    with pytest.raises(ConfigError, match="IGNY8_PRIMARY_URL, which is not set"):
        load_settings(config_path=config, env={})


def test_profiles_must_be_tables(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[profiles]\nproduction = "x"\n')
    with pytest.raises(ConfigError, match=r"profiles\.production must be a table"):
        load_settings(config_path=config, profile="production", env={})
