"""account-not-null: user.account_id NOT NULL, with a valid foreign key, on a live database.

Revision ID: a3f19c5e7b20
Revises:
Create Date: 2025-12-10 09:00:00

Table and column names come from igny8ctl's Settings mapping (``Config.attributes``), not
from this file. The recipe and its safety rules are in
``igny8ctl.migrations.account_not_null``; ``igny8ctl migrate generate`` writes this revision
with the mapping and the SQL spelled out.
"""

from __future__ import annotations

from alembic import op

from igny8ctl.migrations import recipe

revision = "a3f19c5e7b20"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    recipe.upgrade(op.get_context(), "account-not-null")


def downgrade() -> None:
    recipe.downgrade(op.get_context(), "account-not-null")
