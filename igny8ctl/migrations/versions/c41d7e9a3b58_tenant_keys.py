"""tenant-keys: composite (id, account_id) keys that keep every link inside one tenant.

Revision ID: c41d7e9a3b58
Revises: a3f19c5e7b20
Create Date: 2026-01-15 09:00:00

The links come from the live foreign-key graph and igny8ctl's Settings mapping, not from
this file. The recipe and its safety rules are in ``igny8ctl.migrations.tenant_keys``.
"""

from __future__ import annotations

from alembic import op

from igny8ctl.migrations import recipe

revision = "c41d7e9a3b58"
down_revision = "a3f19c5e7b20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    recipe.upgrade(op.get_context(), "tenant-keys")


def downgrade() -> None:
    recipe.downgrade(op.get_context(), "tenant-keys")
