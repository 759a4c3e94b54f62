"""`publish worker`: a sender that stays up and serves every send that is due,
side by side with any number of others on any number of machines.

    refuse SQLite                  shared sending needs PostgreSQL
    until stopped (SIGTERM, Ctrl-C):
      due_issues(joining=True)     `publish due`'s selection (new scheduled
                                   issues, unfinished sends), and the sends
                                   other workers are sending that still have
                                   recipients to claim
      each, in turn: send_item     as `publish due` sends it: the ledger's
                                   claims share its recipients, the shared
                                   budget (pipeline.slots) the account's rate
      nothing due                  wait ``poll`` seconds, or until stopped

Workers share everything through the database and nothing else: claims and
their leases say who sends to whom (a worker that dies loses its claims to
the others, at once on its own host and once its lease has run out
elsewhere), and slots say who may call the provider when. None is told its
share of the rate.

Each send is begun under the issue's lock (:mod:`pipeline.schedule_lock`),
held only until its send is in the ledger, as `publish due` holds it:
`publish unschedule` cannot fall between the file read and the send
recorded, and workers on one host do not queue behind each other for the
whole send.

Stopped, a worker lets its calls in flight finish, records them, gives the
recipients it claimed but did not hand over back to pending, and returns;
the send stays "sending" while others go on with it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.publish import SendOptions
from pipeline.schedule import Due, DueResult, due_issues, send_item

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
"""How often an idle worker looks for a send that is due."""
REFUSAL = (
    "publish worker: shared sending needs PostgreSQL (database.url is SQLite): "
    "run publish due from cron instead"
)


@dataclass
class WorkerReport:
    """What a worker did until it stopped."""

    runs: int = 0
    sent: int = 0
    failed: int = 0


def check_database(settings: Settings) -> None:
    """:class:`ConfigError` unless the database is one several machines can
    share (PostgreSQL)."""
    from subscribers.db import database_url

    if database_url(settings.database_url, settings.root).get_backend_name() == "sqlite":
        raise ConfigError(REFUSAL)


def serve_sends(
    settings: Settings,
    options: SendOptions,
    stop: threading.Event,
    *,
    poll: float = POLL_SECONDS,
    on_start: Callable[[Due], None] | None = None,
    on_result: Callable[[DueResult], None] | None = None,
) -> WorkerReport:
    """Send whatever is due until ``stop`` is set; each send's result (or
    why it could not be sent) goes to ``on_result``, a problem only the
    first time it is found."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    check_database(settings)
    report = WorkerReport()
    reported: set[tuple[str, str]] = set()
    engine = connect(settings.database_url, settings.root)
    try:
        while not stop.is_set():
            ran = False
            for item in due_issues(settings, Ledger(engine), dt.datetime.now(dt.UTC), joining=True):
                if stop.is_set():
                    break
                result = send_item(settings, options, item, stop=stop, on_start=on_start)
                if result.result is not None:
                    # A run that found nothing to send does not call for another at once.
                    ran = ran or result.result.sent + result.result.failed > 0
                    report.runs += 1
                    report.sent += result.result.sent
                    report.failed += result.result.failed
                elif (item.slug, result.error or result.passed) in reported:
                    continue
                reported.add((item.slug, result.error or result.passed))
                if on_result is not None:
                    on_result(result)
            if not ran:
                stop.wait(poll)
    finally:
        engine.dispose()
    return report


__all__ = ["POLL_SECONDS", "REFUSAL", "WorkerReport", "check_database", "serve_sends"]
