"""Sending an issue: from the editor's command to the send loop.

    prepare_send(settings, path, options)   read the command's context, check and
      │                                     render the issue, see where its send
      │                                     stands (pipeline.sendplan); writes nothing
      └─ PreparedSend.run(stop, progress)   open the transport and read its quota,
           │                                build the site, snapshot the recipients
           │                                (or resume a previous run), then run
           │                                the send loop (pipeline.send)
           └─ SendResult                    how the run ended (pipeline.outcome)

The site is built, with the issue on it, before a new send is recorded: a site
that cannot be built leaves no send and nobody mailed, and the issue counts
as published on its archive page from the first message on. The build works
from the same context and uses the issue as checked and rendered, so the
issue is rendered once.

Trying an issue without sending it is :mod:`pipeline.preview`; where sends
stand, :mod:`pipeline.status`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.config import Settings
from pipeline.context import Context
from pipeline.errors import SendError
from pipeline.outcome import SendResult, finished, nothing_left, paused_at_start
from pipeline.pacing import Budget, Pacer
from pipeline.personalize import Personalizer
from pipeline.progress import ProgressCallback
from pipeline.render import RenderedIssue
from pipeline.send import SendLoop
from pipeline.sendplan import SendPlan, checked_issue, file_digest, plan_send, relative_path
from pipeline.sizing import claim_size, pool_size
from pipeline.transports.base import Quota, SendingStopped, Transport, TransportError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from subscribers.ledger import Ledger, Resumed, SendRecord, Settle

log = logging.getLogger(__name__)

OnAmbiguous = Literal["resend", "skip"]


@dataclass(frozen=True)
class SendOptions:
    """What the editor chose on the command line."""

    transport: str | None = None
    """Transport name; None for the settings'."""
    rate: float | None = None
    """Messages per second; None for the settings' (0 there: the provider's quota)."""
    on_ambiguous: OnAmbiguous = "resend"


def transport_name(settings: Settings, options: SendOptions) -> str:
    return options.transport or settings.transport


def token_secret(settings: Settings) -> str:
    """The secret that signs unsubscribe links (the settings', or the
    embedded demo's local one)."""
    from subscribers.tokens import resolve_secret

    return resolve_secret(
        settings.token_secret, settings.root / ".secret", settings.database_url, None
    )


def signed_personalizer(
    settings: Settings, rendered: RenderedIssue, *, message_id_seed: str = ""
) -> Personalizer:
    """The personalizer of the issue's real messages, unsubscribe links signed
    with :func:`token_secret` (``message_id_seed``: see :class:`Personalizer`)."""
    from subscribers.tokens import Signer

    return Personalizer(
        rendered,
        settings,
        Signer(token_secret(settings)).unsubscribe,
        message_id_seed=message_id_seed,
    )


def sending_ledger(settings: Settings) -> Ledger:
    """The ledger a send runs on: the settings' lease, and database errors
    that may pass tried again for ``database.retry`` seconds (at most half
    the lease, so that a sender waiting on its database never outlives its
    claims)."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    retry = min(settings.database_retry, settings.send_lease / 2)
    engine = connect(settings.database_url, settings.root, busy_timeout=max(1.0, min(30.0, retry)))
    return Ledger(engine, lease=dt.timedelta(seconds=settings.send_lease), retry_seconds=retry)


def prepare_send(settings: Settings, path: Path, options: SendOptions) -> PreparedSend:
    """Check and render the issue and see where its send stands; nothing is
    written. Close the result (it holds the database) or use it in ``with``."""
    context = Context.load(settings, [path])
    rendered = checked_issue(context, path)
    relative = relative_path(path, settings.root)
    digest = file_digest(path)
    ledger = sending_ledger(settings)
    engine = ledger.engine
    try:
        plan = plan_send(ledger, rendered, relative, digest, transport_name(settings, options))
    except BaseException:
        engine.dispose()
        raise
    return PreparedSend(context, rendered, options, plan, engine, ledger)


class PreparedSend:
    """An issue checked and rendered, ready to send: :meth:`run` sends it."""

    def __init__(
        self,
        context: Context,
        rendered: RenderedIssue,
        options: SendOptions,
        plan: SendPlan,
        engine: Engine,
        ledger: Ledger,
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.rendered = rendered
        self.options = options
        self.plan = plan
        self.engine = engine
        self.ledger = ledger
        self._personalizer_cache: tuple[int, Personalizer] | None = None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> PreparedSend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
        transport: Transport | None = None,
        on_recorded: Callable[[], None] | None = None,
    ) -> SendResult:
        """Send the issue to every recipient not yet sent.

        Creates the send and its recipient snapshot if this is the first run
        (the issue then counts as published), otherwise decides what a
        previous run left undecided (``options.on_ambiguous``) and retries
        failed recipients; builds the site so that the view-in-browser link
        works from the first message; then runs the send loop.
        ``on_recorded`` is called once the send is in the ledger (`publish
        due` and `publish worker` let go of the issue's lock there).
        """
        from pipeline.transports import open_transport

        plan = self.plan
        if plan.scheduled_for is not None:
            raise SendError(
                f"{plan.path}: scheduled for {plan.scheduled_for.isoformat()}; "
                "publish due sends it then"
            )
        ledger = self.ledger
        if plan.existing is None and plan.recipients == 0:
            raise SendError(
                f"{plan.slug}: there are no active subscribers to send to "
                "(add some with publish subscribers import FILE.csv)"
            )
        if plan.existing is not None and plan.recipients == 0:
            return self._nothing_left(plan.existing)
        # The transport and its quota first: a transport that cannot send
        # must not leave the issue published with nobody mailed.
        owned = transport is None
        transport = transport or open_transport(self.settings, plan.transport)
        try:
            quota = self._quota(transport)
            moment = dt.datetime.now(dt.UTC)
            if plan.existing is None:
                # The site first, with this issue on it, so that a site that
                # cannot be built leaves no send recorded and nobody mailed.
                self._build_site(sending={plan.slug: moment})
            send, created = ledger.start(
                plan.slug,
                str(plan.path),
                plan.subject,
                plan.transport,
                digest=plan.digest,
                created_at=moment,
            )
            if on_recorded is not None:
                on_recorded()
            resumed = None if created else self._resume(send, transport)
            if resumed and resumed.ambiguous:
                log.warning(
                    "%d recipients were left in flight by an interrupted run: %s",
                    resumed.ambiguous,
                    "sending them again"
                    if resumed.ambiguous_action == "resend"
                    else "skipping them",
                )
            if not created:
                self._build_site()
            return self._run(
                send, resumed, transport, quota, stop or threading.Event(), on_progress
            )
        finally:
            if owned:
                transport.close()

    def _personalizer_for(self, send: SendRecord) -> Personalizer:
        """The personalizer of this send's messages (built once)."""
        cached = self._personalizer_cache
        if cached is None or cached[0] != send.id:
            personalizer = signed_personalizer(
                self.settings, self.rendered, message_id_seed=f"{send.issue_slug}.{send.id}"
            )
            cached = self._personalizer_cache = (send.id, personalizer)
        return cached[1]

    def _settle(self, send: SendRecord, transport: Transport) -> Settle:
        """Results that stopped runs kept (recovery files) recorded first;
        then the transport's records, to settle what dead workers left."""
        from pipeline import recovery

        recovery.apply(self.settings.root, self.ledger, send.id)
        return recovery.settler(self._personalizer_for(send), transport)

    def _resume(self, send: SendRecord, transport: Transport) -> Resumed:
        """Before a run: what stopped runs left (:meth:`Ledger.resume`)."""
        settle = self._settle(send, transport)
        return self.ledger.resume(send.id, self.options.on_ambiguous, settle)

    def _take_back(self, send: SendRecord, transport: Transport) -> Resumed:
        """During a run, once all it claimed is decided: the same for workers
        that died meanwhile, and this worker's own strays."""
        settle = self._settle(send, transport)
        return self.ledger.take_back(send.id, self.options.on_ambiguous, settle, own=True)

    def _nothing_left(self, send: SendRecord) -> SendResult:
        self._build_site()
        return nothing_left(self.ledger, send)

    def _quota(self, transport: Transport) -> Quota:
        slug = self.plan.slug
        try:
            return transport.quota()
        except SendingStopped as exc:
            if self.plan.existing is not None:
                self.ledger.set_status(self.plan.existing.id, "stopped", note=str(exc))
            raise SendError(f"{slug}: not sent: {exc}") from None
        except TransportError as exc:
            raise SendError(f"{slug}: cannot read the sending quota: {exc}") from None

    def _build_site(self, sending: dict[str, dt.datetime] | None = None) -> None:
        from pipeline.site import build_site_from_ledger
        from subscribers.db import unavailable

        with unavailable(self.engine, writing=False):
            build_site_from_ledger(
                self.context, self.engine, sending=sending, rendered=[self.rendered]
            )

    def _run(
        self,
        send: SendRecord,
        resumed: Resumed | None,
        transport: Transport,
        quota: Quota,
        stop: threading.Event,
        on_progress: ProgressCallback | None,
    ) -> SendResult:
        ledger = self.ledger
        started = time.monotonic()
        requested = self.options.rate if self.options.rate is not None else self.settings.rate
        limits = [r for r in (requested, quota.max_rate) if r]
        rate = min(limits) if limits else None
        budget = Budget(quota.remaining_24h)
        workers = pool_size(self.settings.workers, rate)
        window = claim_size(rate, workers)

        if budget.remaining == 0:
            return paused_at_start(ledger, send, resumed, window=window, rate=rate)

        ledger.set_status(send.id, "sending", note="")
        personalizer = self._personalizer_for(send)
        # The provider's rate is the account's, shared with every other
        # sender of it through slots booked in the database.
        pacer = Pacer(rate, shared_rate=quota.max_rate)
        slots = None
        if pacer.shared_rate is not None:
            from pipeline.slots import SlotFeed
            from subscribers.ledger.slots import SendSlots

            book = SendSlots(ledger.engine, transport.account)
            slots = SlotFeed(pacer, book, retry_seconds=ledger.retry_seconds)
        loop = SendLoop(
            ledger,
            send.id,
            personalizer,
            transport,
            pacer=pacer,
            budget=budget,
            workers=workers,
            window=window,
            stop=stop,
            on_progress=on_progress,
            take_back=lambda: self._take_back(send, transport),
            slots=slots,
        )
        log.info(
            "sending %s through %s: %s/s, %d threads, %s left in today's quota",
            send.issue_slug,
            transport.name,
            f"{rate:g}" if rate else "unlimited",
            workers,
            "unlimited" if budget.remaining is None else budget.remaining,
        )
        loop.run()
        if slots is not None:
            log.info(
                "%d sending slots booked in %d bookings; %d let go unused (%d taken too "
                "late); %d ledger commits",
                slots.booked,
                slots.bookings,
                pacer.slots_lost,
                pacer.slots_late,
                loop.recorder.commits,
            )
        return finished(ledger, self.settings.root, send, resumed, loop, started=started, rate=rate)
