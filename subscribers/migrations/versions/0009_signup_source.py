"""The page a reader signed up on, kept with the consent:
subscribers.consent_source and signups.consent_source ("blog sidebar",
"issue page", "signup page"). Subscribers from before have none.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("subscribers", "signups")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("consent_source", sa.String(60), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later), not batch mode:
    # batch mode drops and re-creates the table, and dropping ``subscribers``
    # with foreign keys on would delete every subscriber's history with it.
    for table in TABLES:
        op.drop_column(table, "consent_source")
