"""The signup web service running for real: uvicorn on a free loopback port
in a thread, over an SQLite store, mailing into an outbox folder through the
outbox transport, exactly as `publish serve` wires it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from subscribers import db
from subscribers.mail_template import OutgoingMessage
from subscribers.models import Limit
from subscribers.store import Store
from subscribers.tokens import Signer
from subscribers.web import WebConfig, create_app
from tests.support.aws import free_port

SECRET = "web-test-secret-0123456789abcdef"


def config(site_url: str, **changes: Any) -> WebConfig:
    base = WebConfig(
        name="Pain Free Living",
        site_url=site_url,
        sender="Pain Free Living <newsletter@painfreeliving.example.com>",
        reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
        postal_address="1200 Harbor Street, Portland, ME 04101, USA",
        secret=SECRET,
        per_ip=Limit(1000, 600),
    )
    return replace(base, **changes)


@dataclass
class Live:
    url: str
    store: Store
    outbox: Path
    public: Path
    signer: Signer
    app: Any

    def mails(self, count: int, timeout: float = 20) -> list[EmailMessage]:
        """The first ``count`` messages in the outbox, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(self.outbox.glob("*.eml")) if self.outbox.is_dir() else []
            if len(files) >= count:
                return [
                    message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
                    for path in files
                ]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(files)} messages in the outbox, expected {count}")
            time.sleep(0.01)


@contextmanager
def serving(
    app: Any, port: int | None = None, trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 until the block ends; its base
    URL. uvicorn believes ``X-Forwarded-For`` from ``trusted_proxies``, as
    `publish serve` has it do."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", server_header=False,
            proxy_headers=True, forwarded_allow_ips=list(trusted_proxies),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web service did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def live_service(root: Path, database_url: str | None = None, **changes: Any) -> Iterator[Live]:
    """The service over a fresh store in ``root`` (or at ``database_url``);
    ``changes`` tune its WebConfig.

    Its site URL is its own address, so links in its mail lead back to it.
    """
    from pipeline.transports.outbox import OutboxTransport
    from tests.support.mail import service_mail

    engine = db.connect(database_url or f"sqlite:///{root / 'subscribers.db'}", root)
    outbox = OutboxTransport(root / "outbox")
    public = root / "public"

    def send_mail(message: OutgoingMessage) -> None:
        outbox.send(message)

    port = free_port()
    settings = config(f"http://127.0.0.1:{port}", **changes)
    mail = service_mail(settings.newsletter, root)
    app = create_app(engine, settings, send_mail, static_dir=public, mail=mail)
    try:
        with serving(app, port, settings.trusted_proxies) as url:
            yield Live(url, Store(engine), root / "outbox", public, Signer(settings.secret), app)
    finally:
        engine.dispose()
