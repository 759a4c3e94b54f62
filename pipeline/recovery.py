"""After a crash or a database outage: what a run could not record, and what
the transport's own records settle.

    keep(root, send_id, worker, outcomes)  results the database would not take,
                                           written to recovery/ for the next run
    apply(root, ledger, send_id)           those files written to the ledger and
                                           removed; every run does it first
    settler(personalizer, transport)       handed recipients without a result,
                                           looked up in the transport's records

A send that stops because the database cannot be written waits for the
messages in flight and keeps their results. Were they lost, the next run
would find those recipients handed without a result, undecided, and send
them again (or skip them). So they go to ``recovery/send-ID.WORKER.json``
under the newsletter's root (or, if that cannot be written, a folder of
the same name under the system's temporary folder), written atomically,
and the next run on this host writes them to the ledger before anything
else. A sent message is recorded sent whoever holds the row then; other
results only where the row is still the stopped worker's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.personalize import Personalizer, Recipient
from subscribers.addresses import ascii_address
from subscribers.errors import UndeliverableAddress
from subscribers.files import write_atomic

if TYPE_CHECKING:
    from pipeline.transports.base import Transport
    from subscribers.ledger import Claimed, Ledger, Outcome, Settle

log = logging.getLogger(__name__)

FOLDER = "recovery"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def folders(root: Path) -> list[Path]:
    """Where recovery files go, in order of preference."""
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:12]
    return [root / FOLDER, Path(tempfile.gettempdir()) / f"publish-{FOLDER}-{digest}"]


def keep(root: Path, send_id: int, worker: str, outcomes: Sequence[Outcome]) -> Path | None:
    """Write ``outcomes`` to a recovery file; its path, or None when no
    folder would take it."""
    data = {
        "send_id": send_id,
        "worker": worker,
        "outcomes": [
            {
                "row_id": o.row_id,
                "status": o.status,
                "message_id": o.message_id,
                "error": o.error,
                "at": o.at.isoformat(),
            }
            for o in outcomes
        ],
    }
    name = f"send-{send_id}.{_UNSAFE.sub('_', worker)}.json"
    for folder in folders(root):
        try:
            write_atomic(folder / name, json.dumps(data) + "\n", mode=0o600)
        except OSError as exc:
            log.warning("%s: cannot keep the results there: %s", folder, exc)
            continue
        return folder / name
    return None


def apply(root: Path, ledger: Ledger, send_id: int) -> int:
    """Write the results kept for ``send_id`` by earlier runs to the ledger,
    and remove their files; the number of results."""
    import datetime as dt

    from subscribers.ledger import Outcome

    applied = 0
    for folder in folders(root):
        for path in sorted(folder.glob(f"send-{send_id}.*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                outcomes = [
                    Outcome(
                        row_id=int(item["row_id"]),
                        status=item["status"],
                        message_id=item.get("message_id"),
                        error=item.get("error"),
                        at=dt.datetime.fromisoformat(item["at"]),
                    )
                    for item in data["outcomes"]
                ]
                worker = str(data["worker"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s: not a recovery file this version can read (%s)", path, exc)
                continue
            if int(data.get("send_id", -1)) != send_id:
                continue
            ledger.apply_recovered(send_id, worker, outcomes)
            path.unlink(missing_ok=True)
            applied += len(outcomes)
            log.warning("%s: %d results of a stopped run recorded", path, len(outcomes))
    return applied


def settler(personalizer: Personalizer, transport: Transport) -> Settle:
    """The ledger's ``settle``: the handed rows whose message the transport's
    records show it accepted (the outbox's files, the SMTP log), found by
    the Message-ID each recipient's message has in this send; and, from a
    transport whose records are complete (the outbox), those it never did."""

    def settle(rows: Sequence[Claimed]) -> dict[int, str | None]:
        wanted: dict[str, tuple[int, str]] = {}
        for row in rows:
            try:
                address = ascii_address(row.email)
            except UndeliverableAddress:
                continue
            recipient = Recipient(row.subscriber_id, row.email, row.name)
            wanted[personalizer.message_id(recipient)] = (row.row_id, address)
        if not wanted:
            return {}
        found = transport.accepted({mid: address for mid, (_, address) in wanted.items()})
        settled: dict[int, str | None] = {}
        for mid, (row_id, _) in wanted.items():
            if mid in found:
                settled[row_id] = found[mid]
            elif transport.records_all_accepted:
                settled[row_id] = None
        return settled

    return settle
