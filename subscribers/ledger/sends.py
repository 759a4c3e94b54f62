"""The ``sends`` table: starting a send with its recipient snapshot, finding
it again, and moving it between states.

    start(slug, ...) ──INSERT sends──▶ one row, status "sending"
                     └─INSERT ... SELECT the active subscribers──▶ one
                       send_recipients row each, "pending"
    set_status(send, "paused" | "interrupted" | "stopped" | "done")

The snapshot is taken in the same transaction as the send, so a send's
recipients are exactly the list at that moment; who leaves the list later
is skipped when their row is claimed (:mod:`subscribers.ledger.claims`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from subscribers import db
from subscribers.errors import StoreError
from subscribers.ledger.base import LedgerBase
from subscribers.ledger.records import SendRecord, SendState, send_record
from subscribers.models import utcnow
from subscribers.schema import send_recipients as sr
from subscribers.schema import sends, subscribers

if TYPE_CHECKING:
    from sqlalchemy import Row


class Sends(LedgerBase):
    """The sends: one row per issue sent to the list."""

    def find(self, slug: str) -> SendRecord | None:
        """The send of the issue with this slug, if it was ever started."""
        from sqlalchemy import select

        def read() -> Row[Any] | None:
            with self.engine.connect() as conn:
                return conn.execute(select(sends).where(sends.c.issue_slug == slug)).first()

        row = self._retrying(read, writing=False)
        return send_record(row) if row else None

    def get(self, send_id: int) -> SendRecord:
        from sqlalchemy import select

        def read() -> Row[Any] | None:
            with self.engine.connect() as conn:
                return conn.execute(select(sends).where(sends.c.id == send_id)).first()

        row = self._retrying(read, writing=False)
        if row is None:
            raise StoreError(f"send {send_id}: not found")
        return send_record(row)

    def sends(self) -> list[SendRecord]:
        """Every send, newest first."""
        from sqlalchemy import select

        def read() -> list[SendRecord]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(sends).order_by(sends.c.created_at.desc(), sends.c.id.desc())
                )
                return [send_record(row) for row in rows]

        return self._retrying(read, writing=False)

    def active_count(self) -> int:
        """Subscribers a send started now would go to."""
        from sqlalchemy import func, select

        def read() -> int:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count())
                        .select_from(subscribers)
                        .where(subscribers.c.status == "active")
                    ).scalar_one()
                )

        return self._retrying(read, writing=False)

    def start(
        self,
        slug: str,
        path: str,
        subject: str,
        transport: str,
        *,
        digest: str | None = None,
        created_at: dt.datetime | None = None,
    ) -> tuple[SendRecord, bool]:
        """The issue's send, created with its recipient snapshot if it has none.

        Returns ``(send, created)``. Two processes starting the same issue at
        once get the same send: the slug is unique, and the loser of the race
        reads the winner's row. ``digest`` identifies the file's content, so
        a later run can tell the same issue moved from another one that
        reuses its slug.
        """
        from sqlalchemy.exc import IntegrityError

        existing = self.find(slug)
        if existing is not None:
            return existing, False
        try:
            send_id = self._retrying(
                lambda: self._start(slug, path, subject, transport, digest, created_at)
            )
        except IntegrityError:
            existing = self.find(slug)
            if existing is None:
                raise
            return existing, False
        return self.get(int(send_id)), True

    def _start(
        self,
        slug: str,
        path: str,
        subject: str,
        transport: str,
        digest: str | None,
        created_at: dt.datetime | None,
    ) -> int:
        from sqlalchemy import insert, literal, select

        now = created_at or utcnow()
        with db.writing(self.engine) as conn:
            send_id = conn.execute(
                insert(sends)
                .values(
                    issue_slug=slug,
                    issue_path=path[:1000],
                    issue_digest=digest,
                    subject=subject[:998],
                    transport=transport,
                    status="sending",
                    created_at=now,
                    note="",
                )
                .returning(sends.c.id)
            ).scalar_one()
            snapshot = select(
                literal(send_id, sr.c.send_id.type),
                subscribers.c.id,
                subscribers.c.email,
                subscribers.c.name,
                literal("pending", sr.c.status.type),
                literal(0, sr.c.attempts.type),
                literal(now, sr.c.updated_at.type),
            ).where(subscribers.c.status == "active")
            conn.execute(
                insert(sr).from_select(
                    [
                        "send_id",
                        "subscriber_id",
                        "email",
                        "name",
                        "status",
                        "attempts",
                        "updated_at",
                    ],
                    snapshot,
                )
            )
        return int(send_id)

    def set_status(
        self,
        send_id: int,
        status: SendState,
        *,
        note: str | None = None,
        paused_until: dt.datetime | None = None,
    ) -> None:
        """Move the send to ``status``; ``done`` stamps ``finished_at``."""
        from sqlalchemy import update

        values: dict[str, Any] = {
            "status": status,
            "paused_until": paused_until if status == "paused" else None,
            "finished_at": utcnow() if status == "done" else None,
        }
        if note is not None:
            values["note"] = note

        def write() -> None:
            with db.writing(self.engine) as conn:
                conn.execute(update(sends).where(sends.c.id == send_id).values(**values))

        self._retrying(write)
