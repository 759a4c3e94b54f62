"""Suppression hashes that a dictionary of addresses cannot reverse: a random
salt made once per newsletter (``store_keys``), and every suppression hash
salted in place. A hash kept before was the SHA-256 of the lowercased
address; it becomes the HMAC-SHA256 of that hash under the salt, which is
what :func:`subscribers.models.email_hash` computes from the address.

There is no way back: the old hashes cannot be recovered from the salted
ones, so a downgrade refuses while there are suppressions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_suppressions = sa.table("suppressions", sa.column("email_hash", sa.String))


def upgrade() -> None:
    keys = op.create_table(
        "store_keys",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_keys"),
    )
    salt = secrets.token_hex(32)
    op.bulk_insert(
        keys, [{"name": "suppression", "value": salt, "created_at": dt.datetime.now(dt.UTC)}]
    )
    conn = op.get_bind()
    old = conn.execute(sa.select(_suppressions.c.email_hash)).scalars().all()
    for plain in old:
        salted = hmac.new(salt.encode("ascii"), plain.encode("ascii"), hashlib.sha256)
        conn.execute(
            sa.update(_suppressions)
            .where(_suppressions.c.email_hash == plain)
            .values(email_hash=salted.hexdigest())
        )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.select(sa.func.count()).select_from(_suppressions)).scalar_one():
        raise RuntimeError(
            "suppressions are salted since 0007 and cannot be unsalted: "
            "a downgrade would let erased and complained addresses be mailed again"
        )
    op.drop_table("store_keys")
