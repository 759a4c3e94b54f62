"""Confirmations claimed with a lease: who holds each one, and how many tries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "subscribers", sa.Column("confirmation_claimed_by", sa.String(100), nullable=True)
    )
    op.add_column(
        "subscribers",
        sa.Column("confirmation_attempts", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("confirmation_attempts")
        batch.drop_column("confirmation_claimed_by")
