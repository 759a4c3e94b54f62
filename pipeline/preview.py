"""Trying an issue without sending it: a preview to one address, and a dry run.

    send_test(settings, path, addresses) a [PREVIEW] message to each address
                                         through the transport, every address
                                         checked first; no ledger, no subscriber
    dry_run(settings, path)              every message the next real run would
                                         send, built and measured, none sent
                                         → DryRunResult

Both check the issue as a send does (:func:`pipeline.sendplan.checked_issue`):
an issue with lint errors is neither previewed nor dry-run. The dry run
builds each message with the send's own personalizer
(:func:`pipeline.publish.signed_personalizer`), so an address a real run
could not write into a message is found here first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.context import Context
from pipeline.errors import SendError
from pipeline.personalize import PREVIEW_PREFIX, Personalizer, Recipient
from pipeline.progress import PROGRESS_SECONDS, Progress, ProgressCallback
from pipeline.publish import SendOptions, prepare_send, signed_personalizer, transport_name
from pipeline.sendplan import checked_issue
from pipeline.transports.base import TransportError
from subscribers.addresses import normalize_address
from subscribers.errors import InvalidDomain, InvalidEmail, UndeliverableAddress

MAX_EXAMPLES = 20
"""Undeliverable addresses a dry run names; it counts the rest."""


@dataclass(frozen=True)
class DryRunResult:
    """What a dry run built."""

    slug: str
    messages: int
    bytes: int
    seconds: float
    failed: int = 0
    """Recipients whose address cannot be written into a message."""
    undeliverable: tuple[str, ...] = ()
    """The first few of those, with the reason."""


def send_test(
    settings: Settings,
    path: Path,
    addresses: Sequence[str],
    options: SendOptions | None = None,
    *,
    source: str = "--test-to",
    on_sent: Callable[[str, str], None] | None = None,
) -> list[tuple[str, str]]:
    """Send the issue to each of ``addresses`` alone, ``[PREVIEW]`` before
    its subject, through one transport; returns (address, provider's id)
    for each, and tells ``on_sent`` of each as it goes.

    Every address is checked, and its message built, before any is sent:
    one that cannot be mailed is a :class:`SendError` naming it and
    ``source`` (the flag or setting it came from), and nothing is sent.
    The ledger is not touched: no send is created, no subscriber is
    involved, and the unsubscribe link is a harmless sample.
    """
    from pipeline.transports import open_transport

    options = options or SendOptions()
    wanted = _addresses(addresses, source)
    if not wanted:
        raise SendError(f"{source}: no address to send the preview to")
    rendered = checked_issue(Context.load(settings, [path]), path)
    personalizer = Personalizer(
        rendered, settings, lambda _subscriber: "preview", subject_prefix=PREVIEW_PREFIX
    )
    messages = []
    for address in wanted:
        try:
            messages.append((address, personalizer(Recipient(0, address))))
        except UndeliverableAddress as exc:
            raise SendError(f"{source}: {exc}; nothing sent") from None
    sent: list[tuple[str, str]] = []
    with open_transport(settings, transport_name(settings, options)) as transport:
        for address, message in messages:
            try:
                message_id = transport.send(message)
            except TransportError as exc:
                done = f" (sent to {', '.join(a for a, _ in sent)} before)" if sent else ""
                raise SendError(f"{source} {address}: not sent: {exc}{done}") from None
            sent.append((address, message_id))
            if on_sent is not None:
                on_sent(address, message_id)
    return sent


def _addresses(given: Sequence[str], source: str) -> list[str]:
    """Each address of ``given`` (each item may hold several, comma-separated)
    as the subscriber store writes it, once; :class:`SendError` naming the
    first that is none."""
    found: list[str] = []
    for item in given:
        for text in item.split(","):
            if not text.strip():
                continue
            try:
                address = normalize_address(text)
            except InvalidDomain as exc:
                raise SendError(f"{source}: {exc}; nothing sent") from None
            except InvalidEmail as exc:
                raise SendError(
                    f"{source}: {text.strip()!r} is not an email address ({exc}); nothing sent"
                ) from None
            if address.lower() not in (known.lower() for known in found):
                found.append(address)
    return found


def dry_run(
    settings: Settings,
    path: Path,
    *,
    on_progress: ProgressCallback | None = None,
) -> DryRunResult:
    """Build every message the next real run would send, and send none.

    Reads the subscribers (or the send's unsent rows when resuming) in
    batches, so memory stays flat however long the list.
    """
    messages = size = failed = 0
    undeliverable: list[str] = []
    with prepare_send(settings, path, SendOptions()) as prepared:
        plan = prepared.plan
        personalizer = signed_personalizer(settings, prepared.rendered)
        started = time.monotonic()
        last = 0.0
        for row in prepared.ledger.iter_unsent(plan.existing.id if plan.existing else None):
            try:
                message = personalizer(Recipient(row.subscriber_id, row.email, row.name))
            except UndeliverableAddress as exc:
                failed += 1
                if len(undeliverable) < MAX_EXAMPLES:
                    undeliverable.append(str(exc))
                continue
            messages += 1
            size += len(message.raw)
            if on_progress is not None and time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                elapsed = last - started
                rate = messages / elapsed if elapsed else 0.0
                on_progress(Progress(plan.recipients, messages, failed, 0, rate, None))
    return DryRunResult(
        slug=plan.slug,
        messages=messages,
        bytes=size,
        seconds=time.monotonic() - started,
        failed=failed,
        undeliverable=tuple(undeliverable),
    )
