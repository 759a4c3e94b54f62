"""How a run of a send ends: the outcome recorded on the send, as a SendResult.

    SendLoop, run to its end ──finished()──▶ SendResult, and the send's status:

      outcome       when                                   status recorded
      done          nobody left to send                    done (a note of failures)
      paused        the daily quota is used up             paused, until it allows
      stopped       the provider refused, or too many      stopped, with the reason
                    failures
      interrupted   Ctrl-C, SIGTERM                        interrupted (unless other
                                                           live workers go on with it)
      shared        other processes are sending the rest   left as it is

:func:`paused_at_start` ends a run that found the quota used up before it
sent anything, :func:`nothing_left` one that found nobody left to send. A
database that failed mid-run ends it with a :class:`SendError` saying where
the results it would not take are kept for the next run
(:mod:`pipeline.recovery`).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.errors import SendError
from pipeline.sendplan import relative_path

if TYPE_CHECKING:
    from pipeline.send import SendLoop
    from pipeline.transports.base import QuotaExhausted
    from subscribers.ledger import Ledger, Resumed, SendRecord, Totals

RunOutcome = Literal["done", "paused", "stopped", "interrupted", "shared"]


@dataclass(frozen=True)
class SendResult:
    """How a run of a send ended."""

    send: SendRecord
    outcome: RunOutcome
    """done: nothing left; paused: daily quota; stopped: the provider refused
    to send or too many failures; interrupted: Ctrl-C; shared: other
    processes are sending the rest."""
    sent: int
    failed: int
    skipped: int
    totals: Totals
    resumed: Resumed | None
    reason: str = ""
    paused_until: dt.datetime | None = None
    seconds: float = 0.0
    window: int = 0
    """Recipients claimed at a time: the most a crash can leave undecided."""
    rate_limit: float | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def finished(
    ledger: Ledger,
    root: Path,
    send: SendRecord,
    resumed: Resumed | None,
    loop: SendLoop,
    *,
    started: float,
    rate: float | None,
) -> SendResult:
    """The end of a run whose send loop has returned: its outcome recorded on
    ``send`` (``started``: the run's :func:`time.monotonic`; ``rate``: its
    limit in messages per second). ``root`` is the newsletter's, where a
    database failure keeps its unwritten results."""
    if loop.db_failure is not None:
        raise SendError(_kept(ledger, root, send, loop))
    if loop.taken_back:
        resumed = loop.taken_back if resumed is None else resumed + loop.taken_back
    totals = ledger.totals(send.id)
    paused_until = None
    outcome: RunOutcome
    if loop.quota_error is not None:
        outcome = "paused"
        reason, paused_until = _pause(ledger, send, loop.quota_error)
    elif loop.stop_reason:
        outcome = "stopped"
        reason = loop.stop_reason
        ledger.set_status(send.id, "stopped", note=reason)
    elif loop.stop.is_set():
        outcome = "interrupted"
        reason = "interrupted; run publish issue again to resume"
        if not ledger.live_workers(send.id):  # others sending it go on: still sending
            ledger.set_status(send.id, "interrupted", note="")
    elif totals.left == 0:
        outcome = "done"
        reason = ""
        ledger.set_status(send.id, "done", note=_failure_note(totals))
    else:
        outcome = "shared"
        reason = f"{totals.left} recipients are being sent by another process"
    return SendResult(
        send=ledger.get(send.id),
        outcome=outcome,
        sent=loop.sent,
        failed=loop.failed,
        skipped=loop.skipped,
        totals=totals,
        resumed=resumed,
        reason=reason,
        paused_until=paused_until,
        seconds=time.monotonic() - started,
        window=loop.window,
        rate_limit=rate,
    )


def paused_at_start(
    ledger: Ledger,
    send: SendRecord,
    resumed: Resumed | None,
    *,
    window: int,
    rate: float | None,
) -> SendResult:
    """The end of a run that found the daily quota used up before sending:
    the send paused until the quota should allow it again."""
    reason, until = _pause(ledger, send, None)
    return SendResult(
        send=ledger.get(send.id),
        outcome="paused",
        sent=0,
        failed=0,
        skipped=0,
        totals=ledger.totals(send.id),
        resumed=resumed,
        reason=reason,
        paused_until=until,
        window=window,
        rate_limit=rate,
    )


def nothing_left(ledger: Ledger, send: SendRecord) -> SendResult:
    """The end of a run that found nobody left to send: done, or shared when
    other processes still hold recipients."""
    totals = ledger.totals(send.id)
    if send.status != "done" and totals.left == 0:
        ledger.set_status(send.id, "done", note=_failure_note(totals))
    return SendResult(
        send=ledger.get(send.id),
        outcome="done" if totals.left == 0 else "shared",
        sent=0,
        failed=0,
        skipped=0,
        totals=totals,
        resumed=None,
    )


def _kept(ledger: Ledger, root: Path, send: SendRecord, loop: SendLoop) -> str:
    """The database failed mid-send: keep the results it would not take
    in a recovery file for the next run; the one line that says so."""
    from pipeline import recovery

    error = loop.db_failure
    unwritten = loop.unwritten
    advice = "run publish issue again when it is fixed"
    if not unwritten:
        return f"{error}: sending stopped, every result is recorded; {advice}"
    path = recovery.keep(root, send.id, ledger.worker, unwritten)
    if path is None:
        return (
            f"{error}: sending stopped; {len(unwritten)} results could not be kept "
            f"anywhere, and the next run will count those recipients as undecided "
            f"(--on-ambiguous); {advice}"
        )
    return (
        f"{error}: sending stopped; {len(unwritten)} results are kept in "
        f"{relative_path(path, root)}, which the next run records first; {advice}"
    )


def _pause(
    ledger: Ledger, send: SendRecord, error: QuotaExhausted | None
) -> tuple[str, dt.datetime]:
    """Pause the send because the daily quota is used up (``error``: the
    provider said so mid-run; None: the quota read before the run).
    Returns the reason recorded and when the send may go on."""
    until = _resume_time(ledger, send, error)
    reason = "the daily sending quota is used up"
    if error is not None:
        reason = f"{reason} ({error})"
    ledger.set_status(send.id, "paused", note=reason, paused_until=until)
    return reason, until


def _resume_time(ledger: Ledger, send: SendRecord, error: QuotaExhausted | None) -> dt.datetime:
    """When the daily quota should allow sending again: the moment the
    first message this send sent in the last 24 hours ages out of the
    provider's rolling window, or 24 hours from now."""
    if error is not None and error.resume_at is not None:
        return error.resume_at
    now = dt.datetime.now(dt.UTC)
    first = ledger.first_sent_since(send.id, now - dt.timedelta(hours=24))
    if first is not None:
        return first + dt.timedelta(hours=24)
    return now + dt.timedelta(hours=24)


def _failure_note(totals: Totals) -> str:
    if not totals.failed:
        return ""
    return f"{totals.failed} failed; run publish issue again to retry them"
