"""The ``suppressions`` table: addresses that must never be mailed again
without a new subscription the reader confirms (erased, complained).

    address ──email_hash(address, salt)──▶ suppressions.email_hash, reason
                        ▲
                        └── store_keys "suppression": one random salt per
                            newsletter, so that a dictionary of addresses
                            cannot reverse the hashes

Only the salted hash is kept: an erased reader's address is nowhere in the
database, yet a later import of it is still refused. An import hashes every
row's address; :func:`email_hasher` makes those hashes with the key set up
once.

Primitives of a :class:`~subscribers.store.transaction.Transaction`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from subscribers.models import SuppressionReason, email_hash, email_key, utcnow
from subscribers.schema import store_keys, suppressions

if TYPE_CHECKING:
    from sqlalchemy import Connection

_SALT = select(store_keys.c.value).where(store_keys.c.name == "suppression")
_ANY = select(suppressions.c.email_hash).limit(1)


class SuppressionRows:
    """Checking, adding and lifting suppressions on one connection."""

    conn: Connection
    _salt_value: str | None = None
    """The salt, once read: it never changes."""

    def _salt(self) -> str:
        """The newsletter's suppression salt, made on first use where a
        database has none (migration 0007 makes it)."""
        if self._salt_value is None:
            value = self.conn.execute(_SALT).scalar()
            if value is None:
                value = secrets.token_hex(32)
                self.conn.execute(
                    insert(store_keys).values(name="suppression", value=value, created_at=utcnow())
                )
            self._salt_value = str(value)
        return self._salt_value

    def suppressed(self, emails: Sequence[str]) -> dict[str, str]:
        """The suppressed ones among ``emails``, each with its reason."""
        if not emails:
            return {}
        if len(emails) > 1 and self.conn.execute(_ANY).first() is None:
            return {}  # none at all: an import's batch need not hash its addresses
        hashed = email_hasher(self._salt())
        by_hash = {hashed(email): email for email in emails}
        query = select(suppressions.c.email_hash, suppressions.c.reason).where(
            suppressions.c.email_hash.in_(sorted(by_hash))
        )
        return {by_hash[row.email_hash]: row.reason for row in self.conn.execute(query)}

    def suppression(self, email: str) -> str | None:
        """Why ``email`` must not be mailed (erased, complained), or None."""
        return self.suppressed([email]).get(email)

    def suppress(self, email: str, reason: SuppressionReason) -> None:
        """Never mail ``email`` again without a new confirmed subscription.
        An existing suppression keeps its first reason."""
        if self.suppression(email) is None:
            self.conn.execute(
                insert(suppressions).values(
                    email_hash=email_hash(email, self._salt()),
                    reason=str(reason),
                    created_at=utcnow(),
                )
            )

    def lift_suppression(self, email: str) -> bool:
        """Forget a suppression: the reader has confirmed a new subscription."""
        result = self.conn.execute(
            delete(suppressions).where(suppressions.c.email_hash == email_hash(email, self._salt()))
        )
        return bool(result.rowcount)


def email_hasher(salt: str) -> Callable[[str], str]:
    """:func:`~subscribers.models.email_hash` under ``salt``, for a batch of
    addresses (an import's): the keyed HMAC is set up once and copied for
    each, which halves the cost of a hash."""
    keyed = hmac.new(salt.encode("ascii"), digestmod=hashlib.sha256)
    sha256 = hashlib.sha256

    def hashed(email: str) -> str:
        mac = keyed.copy()
        mac.update(sha256(email_key(email).encode("utf-8")).hexdigest().encode("ascii"))
        return mac.hexdigest()

    return hashed
