"""Alembic environment of igny8ctl, beside Django's migrations and blind to Django's tables.

Its own version table (``igny8ctl_alembic_version``), one transaction per revision (the
revision commits step by step inside it), and an empty target metadata whose filter keeps
autogenerate from proposing to drop every table Django owns.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context

from igny8ctl.config import load_settings
from igny8ctl.db import create_engine, normalize_url
from igny8ctl.dialects import dialect_named, dialect_of
from igny8ctl.migrations import CONNECTION, SETTINGS, VERSION_TABLE

config = context.config
target_metadata = sa.MetaData()


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Compare only tables igny8ctl declares (none): Django owns the rest."""
    return type_ != "table" or name in target_metadata.tables


def _options() -> dict[str, Any]:
    return {
        "version_table": VERSION_TABLE,
        "transaction_per_migration": True,
        "target_metadata": target_metadata,
        "include_name": include_name,
    }


def run_offline() -> None:
    settings = config.attributes.get(SETTINGS)
    url = getattr(settings, "database_url", None) or config.get_main_option("sqlalchemy.url")
    backend = normalize_url(url).get_backend_name() if url else "postgresql"
    context.configure(dialect_name=dialect_named(backend).name, literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: sa.Connection) -> None:
    dialect_of(connection).prepare_migration(connection.connection.driver_connection)
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()


def main(mode: Literal["offline", "online"]) -> None:
    if mode == "offline":
        run_offline()
        return
    connection = config.attributes.get(CONNECTION)
    if connection is not None:
        run_online(connection)
        return
    settings = config.attributes.get(SETTINGS) or load_settings(
        database_url=config.get_main_option("sqlalchemy.url"))
    with create_engine(settings).connect() as connection:
        run_online(connection)


main("offline" if context.is_offline_mode() else "online")
