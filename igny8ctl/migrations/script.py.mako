"""${message}

Revision ID: ${up_revision}
Revises:${(" " + comma(down_revision)) if down_revision else ""}
Create Date: ${create_date}
% if context.get("notes"):

${notes}
% endif
"""

from __future__ import annotations

from alembic import op
% if not context.get("preamble"):
import sqlalchemy as sa
% endif
% if imports:

${imports}
% endif
% if context.get("preamble"):

${preamble}
% endif

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
