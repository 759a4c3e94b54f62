"""Delivery probes: the messages ``publish doctor --live`` sends to SES's
mailbox simulator, by SES message id, and the feedback the events path
records for each when it arrives (``delivery_probes``). The simulator's
addresses are never subscribers, so their feedback changes no one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_probes",
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("expected", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("recorded_at", When, nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_delivery_probes"),
    )
    op.create_index("ix_delivery_probes_created_at", "delivery_probes", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_probes_created_at", table_name="delivery_probes")
    op.drop_table("delivery_probes")
