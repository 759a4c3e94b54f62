"""Provider feedback: `publish events sync`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.app import app, echo, plural, settings

if TYPE_CHECKING:
    from pipeline.config import Settings
    from subscribers.inbound import UnsubscribeMailbox
    from subscribers.sqs import SyncReport

events_app = typer.Typer(
    name="events",
    help="Bounces, complaints and deliveries reported by Amazon SES.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(events_app)


@events_app.command()
def sync(
    ctx: typer.Context,
    queue_url: Annotated[
        str | None,
        typer.Option(
            "--queue-url", metavar="URL", help="The SQS queue. Default: events.queue_url."
        ),
    ] = None,
    max_messages: Annotated[
        int | None,
        typer.Option("--max", metavar="N", min=1, help="Stop after N messages."),
    ] = None,
    wait: Annotated[
        int,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0,
            max=20,
            help="Wait up to SECONDS for a message before deciding the queue is empty.",
        ),
    ] = 1,
) -> None:
    """Apply SES bounces, complaints and deliveries from the SQS queue to the list.

    Permanent bounces and complaints take the address off the list at once;
    transient bounces do after events.transient_bounce_limit of them in 30
    days. Each message is deleted only after its effects are saved, and a
    message delivered twice changes nothing; unreadable ones stay on the
    queue for its dead-letter queue. Mail SES received for
    sender.unsubscribe_domain unsubscribes the readers whose addresses it
    was sent to. With tracking.enabled, opens and clicks are counted per
    issue, never per reader. A batch is kept hidden on the queue
    (its visibility extended) while it is worked on: give the queue a
    VisibilityTimeout of 60 s or more and a maxReceiveCount of 5 or more.
    Safe to run from cron every few minutes.

    Example: publish events sync --max 5000 --wait 5
    """
    from pipeline.errors import ConfigError
    from pipeline.signals import stop_on_signals
    from subscribers.events import Policy
    from subscribers.sqs import sync_queue
    from subscribers.store import Store

    config = settings(ctx, events_queue_url=queue_url)
    if not config.events_queue_url:
        raise ConfigError(
            "events.queue_url: not set (set it in newsletter.toml, as "
            "NEWSLETTER_EVENTS_QUEUE_URL, or give --queue-url)"
        )
    sqs = _sqs_client(config.events_queue_url)
    policy = Policy(transient_limit=config.transient_bounce_limit, tracking=config.tracking)
    with Store.open(config.database_url, config.root) as store, stop_on_signals() as stop:
        report = sync_queue(
            store,
            sqs,
            config.events_queue_url,
            policy,
            max_messages=max_messages,
            wait_seconds=wait,
            stopped=stop.is_set,
            mailbox=_mailbox(config),
        )
    echo(summary(report))


def _mailbox(config: Settings) -> UnsubscribeMailbox | None:
    """The unsubscribe addresses whose mail unsubscribes readers: None when
    there is no unsubscribe domain, so that no token secret is needed."""
    if not config.unsubscribe_domain:
        return None
    from pipeline.publish import token_secret
    from subscribers.inbound import UnsubscribeMailbox
    from subscribers.tokens import Signer, resolve_previous_secret

    signer = Signer(token_secret(config), resolve_previous_secret(config.token_secret_previous))
    return UnsubscribeMailbox(signer, config.unsubscribe_domain)


def _sqs_client(queue_url: str) -> Any:
    """An SQS client by boto3's own chain (profiles, AWS_ENDPOINT_URL...);
    the region, if none is configured, from the queue's URL."""
    import boto3
    from botocore.config import Config

    from pipeline.errors import ConfigError

    session = boto3.session.Session()
    region = session.region_name or _region_in(queue_url)
    if not region:
        raise ConfigError(
            f"events.queue_url: no AWS region for {queue_url} (set AWS_REGION or AWS_PROFILE)"
        )
    config = Config(retries={"mode": "standard"}, max_pool_connections=16)
    return session.client("sqs", region_name=region, config=config)


def _region_in(queue_url: str) -> str:
    """``us-east-1`` in https://sqs.us-east-1.amazonaws.com/... (or the legacy
    us-east-1.queue.amazonaws.com)."""
    from urllib.parse import urlsplit

    labels = (urlsplit(queue_url).hostname or "").split(".")
    if len(labels) >= 4 and labels[0] == "sqs":
        return labels[1]
    if len(labels) >= 4 and labels[1] == "queue":
        return labels[0]
    return ""


def summary(report: SyncReport) -> str:
    """One line: what a run found on the queue and what it did."""
    from subscribers.events import describe

    if not report.received:
        return f"0 messages in {report.seconds:.1f} s: the queue is empty"
    line = (
        f"{plural(report.received, 'message')} in {report.seconds:.1f} s: "
        f"{describe(report.applied, zeros=True)}"
    )
    extra = [
        f"{report.ignored} other events ignored" if report.ignored else "",
        f"{report.kept} unreadable left on the queue" if report.kept else "",
        f"{report.undeleted} could not be deleted" if report.undeleted else "",
    ]
    extra = [part for part in extra if part]
    return line + (f"; {', '.join(extra)}" if extra else "")
