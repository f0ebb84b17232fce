"""igny8ctl's Alembic environment: make ``user.account_id`` NOT NULL on a live database.

It lives beside Django's migrations, not inside them: its own version table, and it never
compares or alters Django's tables except through the one revision it ships. Alembic itself
is imported only by the modules that run migrations, never by ``igny8ctl --help``.
"""

from __future__ import annotations

SCRIPT_LOCATION = "igny8ctl:migrations"
VERSION_TABLE = "igny8ctl_alembic_version"
REVISION = "a3f19c5e7b20"

#: Keys of ``alembic.config.Config.attributes`` through which the runner, ``env.py`` and
#: the revision share state (the connection key is the one Alembic's cookbook uses).
CONNECTION = "connection"
SETTINGS = "igny8ctl.settings"
MAX_STEPS = "igny8ctl.max_steps"
STEP_LOG = "igny8ctl.step_log"
