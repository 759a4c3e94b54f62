"""The live loop of ``publish doctor --live``: mail to SES's mailbox
simulator, and its feedback seen coming back through the events path.

    run_live(settings, names, sesv2, sqs, store, timeout) ──> [Finding]
      1. forget the probes of runs a day old
      2. SESv2 SendEmail, with the configuration set, From = sender.from, to
         success@, bounce@ and complaint@simulator.amazonses.com; each
         message id kept as a probe (subscribers/probes.py)
      3. until each probe has its feedback or ``timeout`` passes:
         with events.queue_url, the sync `publish events sync` runs
         (subscribers.sqs.sync_queue), which records feedback about a probe
         on its row; with the webhook, `publish serve` does, and the probes
         are read again, less and less often
      4. one finding per probe: what the list would do with that feedback
         (:func:`consequence`), or which notification never came

The simulator's addresses are never subscribers: no subscriber changes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline.config import Settings
from pipeline.golive.clients import aws_error
from pipeline.golive.findings import Finding, error, ok
from pipeline.golive.names import Names
from subscribers import probes
from subscribers.events import Policy
from subscribers.notifications import Feedback
from subscribers.probes import Probe
from subscribers.store import Store, Transaction

SIMULATOR = (
    ("success@simulator.amazonses.com", "delivery"),
    ("bounce@simulator.amazonses.com", "bounce"),
    ("complaint@simulator.amazonses.com", "complaint"),
)
"""SES's mailbox simulator: each address, and the feedback it answers with."""
KEPT = dt.timedelta(days=1)
"""How long a probe's row is kept."""
LONGEST_POLL = 5
"""Seconds one receive waits on the queue (SQS long polling)."""
LONGEST_PAUSE = 2.0
"""Seconds between two reads of the probes, at most, waiting for the webhook."""
SUBJECT = "publish doctor: delivery probe"
BODY = (
    "This message was sent by publish doctor --live to Amazon SES's mailbox "
    "simulator, to check that deliveries, bounces and complaints come back "
    "to the newsletter.\n"
)


@dataclass(frozen=True)
class Loop:
    """How the loop waits: the clock and the pause, which tests may speed up."""

    clock: Callable[[], float] = time.monotonic
    pause: Callable[[float], None] = time.sleep


def run_live(
    settings: Settings,
    names: Names,
    sesv2: Any,
    sqs: Any | None,
    store: Store,
    *,
    timeout: float,
    loop: Loop | None = None,
) -> list[Finding]:
    """Send the probes, wait for their feedback, report. ``sqs`` reads
    events.queue_url; None waits for `publish serve` instead."""
    loop = loop or Loop()
    deadline = loop.clock() + timeout
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as tx:
        probes.delete_before(tx.conn, now - KEPT)
    findings, sent = _send(settings, names, sesv2, store, now)
    if not sent:
        return findings
    policy = Policy(transient_limit=settings.transient_bounce_limit)
    seen, problem = _wait(settings, sqs, store, policy, list(sent), deadline, loop)
    if problem is not None:
        findings.append(problem)
    for message_id, (address, expected) in sent.items():
        findings.append(_result(address, expected, seen.get(message_id), policy,
                                timeout, settings, sqs is not None))
    return findings


def _send(
    settings: Settings, names: Names, sesv2: Any, store: Store, now: dt.datetime
) -> tuple[list[Finding], dict[str, tuple[str, str]]]:
    """SendEmail to each simulator address; the failures, and message id →
    (address, expected kind) of the probes sent (recorded before any wait)."""
    findings: list[Finding] = []
    sent: dict[str, tuple[str, str]] = {}
    configuration_set = settings.ses_configuration_set or names.configuration_set
    for address, expected in SIMULATOR:
        try:
            response = sesv2.send_email(
                FromEmailAddress=str(settings.sender),
                Destination={"ToAddresses": [address]},
                Content={"Simple": {
                    "Subject": {"Data": SUBJECT, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": BODY, "Charset": "UTF-8"}},
                }},
                ConfigurationSetName=configuration_set,
            )
        except Exception as exc:
            problem = aws_error("SES did not take the probe", exc, sesv2.send_email)
            if problem is exc:
                raise
            findings.append(error(
                "live",
                f"{short(address)}: {problem}",
                "mend the SES identity and sending findings above, then run "
                "publish doctor --live again",
            ))
            continue
        message_id = str(response["MessageId"])
        sent[message_id] = (address, expected)
        # The events path may have started the row already, even this moment.
        store.retrying(partial(_add, Probe(message_id, address, expected, now)))
    return findings, sent


def _add(probe: Probe, tx: Transaction) -> None:
    probes.add(tx.conn, [probe])


def _wait(
    settings: Settings,
    sqs: Any | None,
    store: Store,
    policy: Policy,
    message_ids: list[str],
    deadline: float,
    loop: Loop,
) -> tuple[dict[str, Probe], Finding | None]:
    """Drive (the queue) or watch (the webhook) the events path until every
    probe has its feedback or the deadline passes."""
    from subscribers.errors import NewsletterError
    from subscribers.sqs import sync_queue

    pause = 0.05
    poll = 0  # seconds the next receive waits on the queue: none at first, then more
    while True:
        with store.reading() as tx:
            seen = probes.read(tx.conn, message_ids)
        remaining = deadline - loop.clock()
        if all(probe.answered for probe in seen.values()) or remaining <= 0:
            return seen, None
        wait = min(poll, int(remaining))
        if sqs is not None and (wait or not poll):
            try:
                sync_queue(
                    store,
                    sqs,
                    settings.events_queue_url,
                    policy,
                    wait_seconds=wait,
                    stopped=lambda: loop.clock() >= deadline,
                )
            except NewsletterError as exc:
                return seen, error(
                    "live",
                    f"events.queue_url: {exc}",
                    "check the queue exists and these credentials may receive from it",
                )
            poll = min(max(1, poll * 2), LONGEST_POLL)
            continue
        loop.pause(min(pause, remaining))
        pause = min(pause * 2, LONGEST_PAUSE)


def _result(
    address: str,
    expected: str,
    probe: Probe | None,
    policy: Policy,
    timeout: float,
    settings: Settings,
    queue: bool,
) -> Finding:
    feedback = probe.feedback() if probe is not None else None
    if probe is not None and probe.answered and feedback is not None:
        return ok("live", f"{short(address)}: {consequence(feedback, policy)}")
    what = f"no {expected} notification for {address} within {timeout:g} s"
    if feedback is not None:
        what += f" (only a {feedback.kind})"
    path = (
        f"the topic's subscription of {settings.events_queue_url} and the queue's policy"
        if queue
        else f"the topic's subscription of {settings.url('ses/events')}, and that publish "
        "serve is running there"
    )
    return error(
        "live",
        what,
        f"check the configuration set's event destination ({expected.upper()} published "
        f"to the topic), {path}; a longer --timeout if SES is slow today",
    )


def short(address: str) -> str:
    """``bounce@simulator`` for bounce@simulator.amazonses.com."""
    local, _, domain = address.partition("@")
    return f"{local}@{domain.split('.', 1)[0]}"


def consequence(feedback: Feedback, policy: Policy) -> str:
    """What the list does with ``feedback`` about a subscriber, in words:
    the rules of :mod:`subscribers.events`, for ``policy``."""
    if feedback.kind == "delivery":
        return "delivered: the reader's history would record the delivery, nothing else"
    if feedback.kind == "complaint":
        kind = feedback.detail.get("complaintFeedbackType", "")
        return (
            f"complaint{f' ({kind})' if kind else ''}: the reader would be marked "
            "complained and suppressed, never mailed again, even by a re-import"
        )
    subtype = feedback.detail.get("subtype", "")
    about = f" ({subtype})" if subtype else ""
    if feedback.bounce_type == "Permanent":
        return (f"permanent bounce{about}: the reader would be marked bounced and never "
                "mailed again")
    if feedback.bounce_type == "Transient":
        limit = policy.transient_limit
        return (
            f"transient bounce{about}: recorded; the {_ordinal(limit)} within "
            f"{policy.transient_window.days} days would mark the reader bounced"
        )
    return f"undetermined bounce{about}: recorded, the reader stays on the list"


def _ordinal(number: int) -> str:
    suffixes = {1: "st", 2: "nd", 3: "rd"}
    suffix = "th" if 10 <= number % 100 <= 20 else suffixes.get(number % 10, "th")
    return f"{number}{suffix}"
