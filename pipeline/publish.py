"""Publishing an issue: from the editor's command to the send loop.

    prepare_send(settings, path, options)   check and render the issue, see
                                            where its send stands; writes nothing
      └─ PreparedSend.run(stop, progress)   open the transport and read its quota,
                                            snapshot the recipients (or resume a
                                            previous run), build the site, then
                                            run the send loop
    send_test(settings, path, address)      one [PREVIEW] message; no ledger
    dry_run(settings, path)                 every message built, none sent
    send_statuses(settings, issue)          where sends stand, as plain data

The send record is created before the site is built, so the issue counts as
published on its archive page from the first message on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.config import Settings
from pipeline.errors import SendError
from pipeline.issue import Finding
from pipeline.pacing import Budget, Pacer
from pipeline.personalize import PREVIEW_PREFIX, Personalizer, Recipient, UndeliverableAddress
from pipeline.render import RenderedIssue
from pipeline.send import (
    PROGRESS_SECONDS,
    Progress,
    ProgressCallback,
    SendLoop,
    claim_size,
    pool_size,
)
from pipeline.transports.base import (
    Quota,
    QuotaExhausted,
    SendingStopped,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from subscribers.ledger import Ledger, Resumed, SendRecord, SendStatus, Settle, Totals

log = logging.getLogger(__name__)

OnAmbiguous = Literal["resend", "skip"]
MAX_EXAMPLES = 20
RunOutcome = Literal["done", "paused", "stopped", "interrupted", "shared"]


@dataclass(frozen=True)
class SendOptions:
    """What the editor chose on the command line."""

    transport: str | None = None
    """Transport name; None for the settings'."""
    rate: float | None = None
    """Messages per second; None for the settings' (0 there: the provider's quota)."""
    on_ambiguous: OnAmbiguous = "resend"


@dataclass(frozen=True)
class SendPlan:
    """What ``publish issue`` is about to do, for the editor to confirm."""

    slug: str
    path: Path
    subject: str
    transport: str
    recipients: int
    """Messages this run would send: every active subscriber for a new send;
    the rows not yet sent or skipped when resuming."""
    existing: SendRecord | None
    totals: Totals | None
    scheduled_for: dt.datetime | None
    """``publish_at`` when it is still in the future and the issue was never sent."""
    digest: str = ""
    """sha256 of the issue file, recorded with a new send."""

    @property
    def resuming(self) -> bool:
        return self.existing is not None


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


class IssueNotReady(SendError):
    """The issue has lint errors; ``findings`` lists every one."""

    def __init__(self, path: Path, findings: tuple[Finding, ...]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.severity == "error"]
        plural = "s" if len(errors) != 1 else ""
        super().__init__(
            f"{path}: {len(errors)} lint error{plural}, nothing sent "
            f"(see publish check {path})"
        )


# ---------------------------------------------------------------------------
# Preparing: check, render, plan
# ---------------------------------------------------------------------------


def checked_issue(settings: Settings, path: Path) -> RenderedIssue:
    """The issue rendered, or :class:`IssueNotReady` if it has lint errors."""
    from pipeline.lint import check_issue

    result = check_issue(path, settings)
    if not result.ok or result.rendered is None:
        raise IssueNotReady(path, result.findings)
    return result.rendered


def token_secret(settings: Settings) -> str:
    """The secret that signs unsubscribe links (the settings', or the
    embedded demo's local one)."""
    from subscribers.tokens import resolve_secret

    return resolve_secret(
        settings.token_secret, settings.root / ".secret", settings.database_url, None
    )


def _personalizer(
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


def transport_name(settings: Settings, options: SendOptions) -> str:
    return options.transport or settings.transport


def sending_ledger(settings: Settings) -> Ledger:
    """The ledger a send runs on: the settings' lease, and database errors
    that may pass tried again for ``database.retry`` seconds (at most half
    the lease, so that a sender waiting on its database never outlives its
    claims)."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    retry = min(settings.database_retry, settings.send_lease / 2)
    engine = connect(
        settings.database_url, settings.root, busy_timeout=max(1.0, min(30.0, retry))
    )
    return Ledger(engine, lease=dt.timedelta(seconds=settings.send_lease), retry_seconds=retry)


def prepare_send(settings: Settings, path: Path, options: SendOptions) -> PreparedSend:
    """Check and render the issue and see where its send stands; nothing is
    written. Close the result (it holds the database) or use it in ``with``."""
    rendered = checked_issue(settings, path)
    relative = relative_path(path, settings.root)
    digest = file_digest(path)
    ledger = sending_ledger(settings)
    engine = ledger.engine
    try:
        existing = ledger.find(rendered.issue.slug)
        refusal = "" if existing is None else another_issues_slug(existing, relative, digest)
        if refusal:
            raise SendError(refusal)
        totals = ledger.totals(existing.id) if existing else None
        recipients = totals.unsent if totals else ledger.active_count()
        publish_at = rendered.issue.publish_at
        scheduled = (
            publish_at
            if existing is None and publish_at is not None and publish_at > _now()
            else None
        )
        plan = SendPlan(
            slug=rendered.issue.slug,
            path=relative,
            subject=rendered.subject,
            transport=transport_name(settings, options),
            recipients=recipients,
            existing=existing,
            totals=totals,
            scheduled_for=scheduled,
            digest=digest,
        )
    except BaseException:
        engine.dispose()
        raise
    return PreparedSend(settings, rendered, options, plan, engine, ledger)


def file_digest(path: Path) -> str:
    """sha256 of an issue file's bytes: which issue a send was made from."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise SendError(f"{path}: {exc.strerror}") from None


def another_issues_slug(send: SendRecord, path: Path, digest: str) -> str:
    """Why the file at ``path`` may not take up ``send``, or "" if it may.

    A send belongs to the file it was made from: the same path (edited
    since or not), or the same content moved to another name. Another file
    with the same slug is another issue, and must not resume that send."""
    if send.issue_path == str(path) or (send.issue_digest and send.issue_digest == digest):
        return ""
    return (
        f"{path}: its slug {send.issue_slug!r} belongs to the send made from "
        f"{send.issue_path} on {send.created_at:%Y-%m-%d}; give this issue its own slug "
        "(a slug: line in its front matter)"
    )


def relative_path(path: Path, root: Path) -> Path:
    """``path`` relative to the newsletter's root when it lies inside it."""
    try:
        return path.resolve().relative_to(root)
    except ValueError:
        return path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PreparedSend:
    """An issue checked and rendered, ready to send: :meth:`run` sends it."""

    def __init__(
        self,
        settings: Settings,
        rendered: RenderedIssue,
        options: SendOptions,
        plan: SendPlan,
        engine: Engine,
        ledger: Ledger,
    ) -> None:
        self.settings = settings
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
    ) -> SendResult:
        """Send the issue to every recipient not yet sent.

        Creates the send and its recipient snapshot if this is the first run
        (the issue then counts as published), otherwise decides what a
        previous run left undecided (``options.on_ambiguous``) and retries
        failed recipients; builds the site so that the view-in-browser link
        works from the first message; then runs the send loop.
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
            moment = _now()
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
            personalizer = _personalizer(
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
        totals = self.ledger.totals(send.id)
        if send.status != "done" and totals.left == 0:
            self.ledger.set_status(send.id, "done", note=_failure_note(totals))
        return SendResult(
            send=self.ledger.get(send.id),
            outcome="done" if totals.left == 0 else "shared",
            sent=0,
            failed=0,
            skipped=0,
            totals=totals,
            resumed=None,
        )

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
            build_site_from_ledger(self.settings, self.engine, sending=sending)

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
            reason, until = self._pause(send, None)
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

        ledger.set_status(send.id, "sending", note="")
        personalizer = self._personalizer_for(send)
        loop = SendLoop(
            ledger,
            send.id,
            personalizer,
            transport,
            pacer=Pacer(rate),
            budget=budget,
            workers=workers,
            window=window,
            stop=stop,
            on_progress=on_progress,
            take_back=lambda: self._take_back(send, transport),
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
        return self._finish(send, resumed, loop, started, rate)

    def _finish(
        self,
        send: SendRecord,
        resumed: Resumed | None,
        loop: SendLoop,
        started: float,
        rate: float | None,
    ) -> SendResult:
        ledger = self.ledger
        if loop.db_failure is not None:
            raise SendError(self._kept(send, loop))
        if loop.taken_back:
            resumed = loop.taken_back if resumed is None else resumed + loop.taken_back
        totals = ledger.totals(send.id)
        paused_until = None
        outcome: RunOutcome
        if loop.quota_error is not None:
            outcome = "paused"
            reason, paused_until = self._pause(send, loop.quota_error)
        elif loop.stop_reason:
            outcome = "stopped"
            reason = loop.stop_reason
            ledger.set_status(send.id, "stopped", note=reason)
        elif loop.stop.is_set():
            outcome = "interrupted"
            reason = "interrupted; run publish issue again to resume"
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

    def _kept(self, send: SendRecord, loop: SendLoop) -> str:
        """The database failed mid-send: keep the results it would not take
        in a recovery file for the next run; the one line that says so."""
        from pipeline import recovery

        error = loop.db_failure
        unwritten = loop.unwritten
        advice = "run publish issue again when it is fixed"
        if not unwritten:
            return f"{error}: sending stopped, every result is recorded; {advice}"
        path = recovery.keep(self.settings.root, send.id, self.ledger.worker, unwritten)
        if path is None:
            return (
                f"{error}: sending stopped; {len(unwritten)} results could not be kept "
                f"anywhere, and the next run will count those recipients as undecided "
                f"(--on-ambiguous); {advice}"
            )
        return (
            f"{error}: sending stopped; {len(unwritten)} results are kept in "
            f"{relative_path(path, self.settings.root)}, which the next run records first; {advice}"
        )

    def _pause(self, send: SendRecord, error: QuotaExhausted | None) -> tuple[str, dt.datetime]:
        """Pause the send because the daily quota is used up (``error``: the
        provider said so mid-run; None: the quota read before the run).
        Returns the reason recorded and when the send may go on."""
        until = self._resume_time(send, error)
        reason = "the daily sending quota is used up"
        if error is not None:
            reason = f"{reason} ({error})"
        self.ledger.set_status(send.id, "paused", note=reason, paused_until=until)
        return reason, until

    def _resume_time(self, send: SendRecord, error: QuotaExhausted | None) -> dt.datetime:
        """When the daily quota should allow sending again: the moment the
        first message this send sent in the last 24 hours ages out of the
        provider's rolling window, or 24 hours from now."""
        if error is not None and error.resume_at is not None:
            return error.resume_at
        now = _now()
        first = self.ledger.first_sent_since(send.id, now - dt.timedelta(hours=24))
        if first is not None:
            return first + dt.timedelta(hours=24)
        return now + dt.timedelta(hours=24)


def _failure_note(totals: Totals) -> str:
    if not totals.failed:
        return ""
    return f"{totals.failed} failed; run publish issue again to retry them"


# ---------------------------------------------------------------------------
# A preview to one address, and a dry run
# ---------------------------------------------------------------------------


def send_test(
    settings: Settings, path: Path, address: str, options: SendOptions | None = None
) -> str:
    """Send the issue to ``address`` alone, ``[PREVIEW]`` before its subject.

    The ledger is not touched: no send is created, no subscriber is involved,
    and the unsubscribe link is a harmless sample. Returns the provider's id.
    """
    from pipeline.transports import open_transport

    options = options or SendOptions()
    rendered = checked_issue(settings, path)
    personalizer = Personalizer(
        rendered, settings, lambda _subscriber: "preview", subject_prefix=PREVIEW_PREFIX
    )
    try:
        message = personalizer(Recipient(0, address.strip()))
    except UndeliverableAddress as exc:
        raise SendError(f"--test-to: {exc}") from None
    with open_transport(settings, transport_name(settings, options)) as transport:
        try:
            return transport.send(message)
        except TransportError as exc:
            raise SendError(f"--test-to {address}: not sent: {exc}") from None


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
        personalizer = _personalizer(settings, prepared.rendered)
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


def send_statuses(settings: Settings, issue: str | None = None) -> list[SendStatus]:
    """Where each send stands (newest first), or the send of ``issue`` (a
    slug, or an issue file whose slug is used). Plain data, ready for JSON."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    slug = None if issue is None else issue_slug(settings, issue)
    engine = connect(settings.database_url, settings.root)
    try:
        ledger = Ledger(engine)
        if slug is None:
            return [ledger.status(send.id) for send in ledger.sends()]
        send = ledger.find(slug)
        if send is None:
            raise SendError(f"{issue}: never sent (no send for the slug {slug!r})")
        return [ledger.status(send.id)]
    finally:
        engine.dispose()


def issue_slug(settings: Settings, name: str) -> str:
    """The slug ``name`` stands for: an issue file's slug, or ``name`` itself."""
    from pipeline.errors import IssueError
    from pipeline.issue import find_issue, load_issue

    try:
        return load_issue(find_issue(name, settings.issues_dir)).slug
    except IssueError:
        return name
