"""Queue confirmation messages in the database: subscribers.confirmation_due_at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "subscribers", sa.Column("confirmation_due_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_subscribers_confirmation_due_at", "subscribers", ["confirmation_due_at"])


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_index("ix_subscribers_confirmation_due_at")
        batch.drop_column("confirmation_due_at")
