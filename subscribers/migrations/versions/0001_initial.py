"""Subscribers, their history, suppressions and the send ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("issue_path", sa.String(1000), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("transport", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("finished_at", When, nullable=True),
        sa.Column("paused_until", When, nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sends"),
        sa.UniqueConstraint("issue_slug", name="uq_sends_issue_slug"),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("confirmed_at", When, nullable=True),
        sa.Column("unsubscribed_at", When, nullable=True),
        sa.Column("consent_at", When, nullable=True),
        sa.Column("consent_ip", sa.String(64), nullable=True),
        sa.Column("consent_user_agent", sa.String(512), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("confirmed_ip", sa.String(64), nullable=True),
        sa.Column("confirmed_user_agent", sa.String(512), nullable=True),
        sa.Column("confirmation_sent_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"])
    op.create_table(
        "suppressions",
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name="pk_suppressions"),
    )
    op.create_table(
        "send_recipients",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("send_id", Id, nullable=False),
        sa.Column("subscriber_id", Id, nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("sent_at", When, nullable=True),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name="fk_send_recipients_send_id_sends",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_send_recipients_subscriber_id_subscribers",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_send_recipients"),
        sa.UniqueConstraint("send_id", "subscriber_id", name="uq_send_recipients_send_subscriber"),
    )
    op.create_index("ix_send_recipients_message_id", "send_recipients", ["message_id"])
    op.create_index("ix_send_recipients_send_status", "send_recipients", ["send_id", "status"])
    op.create_index("ix_send_recipients_subscriber_id", "send_recipients", ["subscriber_id"])
    op.create_table(
        "subscriber_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", When, nullable=False),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("send_id", Id, nullable=True),
        sa.Column("external_id", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name="fk_subscriber_events_send_id_sends",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_subscriber_events_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber_events"),
        sa.UniqueConstraint("external_id", name="uq_subscriber_events_external_id"),
    )
    op.create_index("ix_subscriber_events_kind_at", "subscriber_events", ["kind", "at"])
    op.create_index("ix_subscriber_events_send_id", "subscriber_events", ["send_id"])
    op.create_index("ix_subscriber_events_subscriber_id", "subscriber_events", ["subscriber_id"])


def downgrade() -> None:
    for table in ("subscriber_events", "send_recipients", "suppressions", "subscribers", "sends"):
        op.drop_table(table)
