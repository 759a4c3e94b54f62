"""Opens and clicks, counted per issue and never per subscriber
(``tracking.enabled``): engagement_issues (each issue's key for its unique
counts, dropped after 30 days), engagement_counts (per issue and kind, a
total and HyperLogLog registers), engagement_links (per issue and link) and
engagement_seen (keyed hashes of the events counted, kept 30 days).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "engagement_issues",
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("salt", sa.String(64), nullable=True),
        sa.Column("salt_until", When, nullable=False),
        sa.PrimaryKeyConstraint("issue_slug", name="pk_engagement_issues"),
    )
    op.create_table(
        "engagement_counts",
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("registers", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("issue_slug", "kind", name="pk_engagement_counts"),
    )
    op.create_table(
        "engagement_links",
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("link_key", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("registers", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("issue_slug", "link_key", name="pk_engagement_links"),
    )
    op.create_table(
        "engagement_seen",
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("event_key", name="pk_engagement_seen"),
    )
    op.create_index("ix_engagement_seen_expires_at", "engagement_seen", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_engagement_seen_expires_at", table_name="engagement_seen")
    for table in ("engagement_seen", "engagement_links", "engagement_counts", "engagement_issues"):
        op.drop_table(table)
