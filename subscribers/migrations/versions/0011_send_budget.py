"""The sending budget every sender of one account shares (``send_budget``):
per account, the moment its next sending slot begins on one timeline, which
each sender books slots from in small chunks, so that any number of senders
on any number of machines stay within the account's rate together.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "send_budget",
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.Column("rate", sa.Double(), nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_send_budget"),
    )


def downgrade() -> None:
    op.drop_table("send_budget")
