"""Signups that scanners and strangers cannot abuse: each form signup in a
row of its own (``signups``: the nonce its link carries, the name and
consent it brings), the mailbox each address delivers to
(``subscribers.mailbox_key``), and rate-limit counters that every web
process shares (``rate_limits``).

The subscribers pending when this runs get a signup with an empty nonce and
their current name and consent, so the links already mailed to them (which
carry no nonce) still confirm them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
_GMAIL = ("gmail.com", "googlemail.com")


def _mailbox_key(email: str) -> str:
    """models.mailbox_key as of this revision (a migration never changes)."""
    local, _, domain = email.strip().rpartition("@")
    local, domain = local.casefold(), domain.casefold()
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL:
        domain = _GMAIL[0]
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("mailbox_key", sa.String(320), nullable=True))
    op.create_index("ix_subscribers_mailbox_key", "subscribers", ["mailbox_key"])
    op.create_table(
        "signups",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("consent_at", When, nullable=False),
        sa.Column("consent_ip", sa.String(64), nullable=True),
        sa.Column("consent_user_agent", sa.String(512), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("mailed_at", When, nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_signups_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signups"),
        sa.UniqueConstraint("subscriber_id", "nonce", name="uq_signups_subscriber_nonce"),
    )
    op.create_index("ix_signups_subscriber_id", "signups", ["subscriber_id"])
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_limits"),
    )
    op.create_index("ix_rate_limits_expires_at", "rate_limits", ["expires_at"])

    conn = op.get_bind()
    subscribers = sa.table(
        "subscribers",
        sa.column("id", Id),
        sa.column("email", sa.String),
        sa.column("mailbox_key", sa.String),
        sa.column("name", sa.String),
        sa.column("status", sa.String),
        sa.column("created_at", When),
        sa.column("consent_at", When),
        sa.column("consent_ip", sa.String),
        sa.column("consent_user_agent", sa.String),
        sa.column("consent_text", sa.Text),
        sa.column("confirmation_sent_at", When),
    )
    signups = sa.table(
        "signups",
        sa.column("subscriber_id", Id),
        sa.column("nonce", sa.String),
        sa.column("name", sa.String),
        sa.column("consent_at", When),
        sa.column("consent_ip", sa.String),
        sa.column("consent_user_agent", sa.String),
        sa.column("consent_text", sa.Text),
        sa.column("created_at", When),
        sa.column("mailed_at", When),
    )
    keys = sa.update(subscribers).where(subscribers.c.id == sa.bindparam("row_id"))
    batch: list[dict[str, object]] = []
    for row_id, email in conn.execute(sa.select(subscribers.c.id, subscribers.c.email)):
        batch.append({"row_id": row_id, "mailbox_key": _mailbox_key(email)})
        if len(batch) >= 1000:
            conn.execute(keys, batch)
            batch = []
    if batch:
        conn.execute(keys, batch)
    pending = sa.select(
        subscribers.c.id,
        sa.literal(""),
        subscribers.c.name,
        sa.func.coalesce(subscribers.c.consent_at, subscribers.c.created_at),
        subscribers.c.consent_ip,
        subscribers.c.consent_user_agent,
        subscribers.c.consent_text,
        sa.func.coalesce(subscribers.c.consent_at, subscribers.c.created_at),
        subscribers.c.confirmation_sent_at,
    ).where(subscribers.c.status == "pending")
    conn.execute(
        sa.insert(signups).from_select(
            [
                "subscriber_id",
                "nonce",
                "name",
                "consent_at",
                "consent_ip",
                "consent_user_agent",
                "consent_text",
                "created_at",
                "mailed_at",
            ],
            pending,
        )
    )


def downgrade() -> None:
    op.drop_index("ix_rate_limits_expires_at", table_name="rate_limits")
    op.drop_table("rate_limits")
    op.drop_index("ix_signups_subscriber_id", table_name="signups")
    op.drop_table("signups")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_index("ix_subscribers_mailbox_key")
        batch.drop_column("mailbox_key")
