"""igny8ctl's Alembic environment: the database enforces what Django's models promise.

Two revisions: ``account-not-null`` (every user has an account) and ``tenant-keys`` (no row
links to another tenant's row). The environment lives beside Django's migrations, not inside
them: its own version table, and it never compares or alters Django's tables except through
its revisions. Alembic itself is imported only by the modules that run migrations, never by
``igny8ctl --help``.
"""

from __future__ import annotations

SCRIPT_LOCATION = "igny8ctl:migrations"
VERSION_TABLE = "igny8ctl_alembic_version"
ACCOUNT_NOT_NULL = "a3f19c5e7b20"
TENANT_KEYS = "c41d7e9a3b58"
#: Revision names (``--to``) and ids, in order.
REVISIONS = {"account-not-null": ACCOUNT_NOT_NULL, "tenant-keys": TENANT_KEYS}
HEAD = TENANT_KEYS

#: Keys of ``alembic.config.Config.attributes`` through which the runner, ``env.py`` and
#: the revisions share state (the connection key is the one Alembic's cookbook uses).
CONNECTION = "connection"
SETTINGS = "igny8ctl.settings"
MAX_STEPS = "igny8ctl.max_steps"
STEP_LOG = "igny8ctl.step_log"
