"""`publish serve` as processes: the real command, its confirmation mailer
in a process of its own, real signals, a real SMTP server.

A mailer killed with confirmations in hand loses none of them (their lease
runs out and the next mailer sends them), and however the service is
stopped (SIGTERM, Ctrl-C, SIGKILL of the server alone) no process of it is
left behind. Processes are found in /proc (Linux)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from subscribers.mail_template import OutgoingMessage
from subscribers.models import EventKind, Newsletter, Status
from subscribers.schema import subscriber_events, subscribers
from subscribers.service import Origin, Subscriptions
from subscribers.store import Store
from subscribers.tokens import Signer
from tests.support.aws import free_port
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

MAILER_THREADS = 4
"""ConfirmationMailer's default: messages a mailer has in flight at once."""
BATCH = 50
"""ConfirmationMailer's default batch: what one mailer claims at a time."""


# -- processes, from /proc ---------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int] | None:
    """``(parent pid, state, start time)`` of a process, None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root``: pid to start time (so a reused pid is
    not mistaken for it)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = (stat[0], stat[2])
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def running(pid: int, started: int) -> bool:
    """The process still runs (an exited one waiting to be reaped does not)."""
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] not in ("Z", "X")


def is_mailer(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what()}")
        time.sleep(0.02)


# -- publish serve -------------------------------------------------------------


@dataclass
class Serving:
    process: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return "".join(self.lines)

    def mailers(self) -> dict[int, int]:
        return {pid: started for pid, started in descendants(self.pid).items() if is_mailer(pid)}


@contextmanager
def serving(root: Path, environment: dict[str, str] | None = None) -> Iterator[Serving]:
    """The real `publish serve` on a free loopback port, in a session of its
    own (so that a signal can go to its process group, as a terminal's
    Ctrl-C does), answering; killed with its processes if the test leaves
    it running."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(environment or {})
    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "serve", "--port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    serve = Serving(process, f"http://127.0.0.1:{port}")
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: serve.lines.extend(iter(_lines(process))))
    reader.start()
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, serve.output()
            try:
                httpx.get(f"{serve.url}/subscribe", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        wait_until(lambda: bool(serve.mailers()), 30, lambda: "no mailer process")
        seen.update(descendants(serve.pid))
        yield serve
    finally:
        seen.update(descendants(serve.pid) if process.poll() is None else {})
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for pid, started in seen.items():
            if running(pid, started):
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=30)


def _lines(process: subprocess.Popen[bytes]) -> Iterator[str]:
    assert process.stdout is not None
    for line in process.stdout:
        yield line.decode("utf-8", "replace")


def smtp_settings(server: SmtpServer) -> dict[str, str]:
    """Settings for mail through the test's SMTP server, its certificate trusted."""
    return {
        "NEWSLETTER_TRANSPORT": "smtp",
        "NEWSLETTER_SMTP_HOST": server.host,
        "NEWSLETTER_SMTP_PORT": str(server.port),
        "NEWSLETTER_SMTP_USERNAME": SMTP_USER,
        "NEWSLETTER_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(server.cafile),
    }


def queue_signups(root: Path, count: int) -> list[str]:
    """``count`` form signups, their confirmations queued as the form queues
    them; their addresses."""
    newsletter = Newsletter(
        name="Pain Free Living",
        site_url="https://painfreeliving.example.com",
        sender="Pain Free Living <newsletter@painfreeliving.example.com>",
        reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
        postal_address="1200 Harbor Street, Portland, ME 04101, USA",
    )

    def no_mail(message: OutgoingMessage) -> None:
        raise AssertionError("signing up mails nothing itself")

    addresses = [f"reader{n:04d}@example.com" for n in range(count)]
    with Store.open("sqlite:///subscribers.db", root) as store:
        service = Subscriptions(store, Signer("x" * 32), newsletter, no_mail)
        for address in addresses:
            queued = service.subscribe(address, "", consent_text="Yes", origin=Origin())
            assert queued is not None
    return addresses


def still_queued(root: Path) -> int:
    """Pending subscribers whose confirmation is still due (or claimed)."""
    with Store.open("sqlite:///subscribers.db", root) as store, store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(subscribers)
                .where(subscribers.c.status == str(Status.PENDING))
                .where(subscribers.c.confirmation_due_at.is_not(None))
            ).scalar_one()
        )


def recipients(server: SmtpServer) -> Counter[str]:
    return Counter(rcpt for message in list(server.messages) for rcpt in message.rcpt_tos)


# -- a mailer killed mid-batch -----------------------------------------------------


SIGNUPS = 200


def test_a_mailer_killed_mid_batch_loses_no_confirmation(newsletter, smtp_server):
    """The mailer claims a batch of 50 and is SIGKILLed with 4 messages in
    flight (the SMTP server has them but has not answered). The supervisor
    starts a new mailer, which sends the rest of the queue at once and the
    dead one's batch when its 2-second lease runs out: every reader gets
    their confirmation. The 4 in flight reach their readers twice; nobody
    else does."""
    addresses = queue_signups(newsletter, SIGNUPS)
    smtp_server.hold()
    settings = smtp_settings(smtp_server) | {
        "NEWSLETTER_CONFIRMATION_LEASE": "2",
        "NEWSLETTER_CONFIRMATIONS_PER_DOMAIN": str(10 * SIGNUPS),  # all at one domain
    }
    with serving(newsletter, settings) as serve:
        wait_until(
            lambda: smtp_server.held >= MAILER_THREADS, 30,
            lambda: f"{smtp_server.held} messages in flight\n{serve.output()}",
        )
        in_flight = set(recipients(smtp_server))
        assert len(in_flight) == MAILER_THREADS  # the others wait their turn
        ((mailer, started),) = serve.mailers().items()
        os.kill(mailer, signal.SIGKILL)
        wait_until(lambda: not running(mailer, started), 5, lambda: "the mailer survived SIGKILL")
        smtp_server.release()

        def missing() -> list[str]:
            got = recipients(smtp_server)
            return [address for address in addresses if not got[address]]

        wait_until(
            lambda: not missing(), 30,
            lambda: f"{len(missing())} of {SIGNUPS} signups got no confirmation\n{serve.output()}",
        )
        wait_until(
            lambda: still_queued(newsletter) == 0, 30,
            lambda: f"{still_queued(newsletter)} confirmations still queued",
        )
        assert "starting it again" in serve.output()
    got = recipients(smtp_server)
    assert set(got) == set(addresses)
    twice = {address for address, count in got.items() if count > 1}
    assert twice == in_flight and max(got.values()) == 2, got
    # Each reader's history records the one confirmation that was recorded as sent.
    with Store.open("sqlite:///subscribers.db", newsletter) as store, store.engine.connect() as c:
        sent = Counter(
            c.execute(
                select(subscriber_events.c.subscriber_id).where(
                    subscriber_events.c.kind == str(EventKind.CONFIRMATION_SENT)
                )
            ).scalars()
        )
    assert len(sent) == SIGNUPS and set(sent.values()) == {1}
    # The links work: each message is a confirmation for its reader.
    message = message_from_bytes(smtp_server.messages[-1].data, policy=policy.default)
    assert message["Subject"] == "Please confirm your subscription to Pain Free Living"


# -- stopping publish serve ------------------------------------------------------


def _signup_goes_out(serve: Serving, root: Path) -> None:
    response = httpx.post(f"{serve.url}/subscribe", data={"email": "one@example.com"}, timeout=5)
    assert response.status_code == 200
    wait_until(
        lambda: any((root / "outbox").glob("*.eml")), 20,
        lambda: f"no confirmation in the outbox\n{serve.output()}",
    )


@pytest.mark.parametrize(
    ("how", "signum", "to_group"),
    [
        ("sigterm", signal.SIGTERM, False),  # docker stop, kill PID
        ("sigterm-to-all", signal.SIGTERM, True),  # systemd's default KillMode
        ("ctrl-c", signal.SIGINT, True),  # a terminal signals the foreground group
        ("sigint", signal.SIGINT, False),
        ("sigkill-of-the-server", signal.SIGKILL, False),
    ],
)
def test_serve_leaves_no_process_behind(newsletter, how, signum, to_group):
    with serving(newsletter) as serve:
        _signup_goes_out(serve, newsletter)
        children = descendants(serve.pid)
        assert any(is_mailer(pid) for pid in children)
        (os.killpg if to_group else os.kill)(serve.pid, signum)
        code = serve.process.wait(timeout=30)

        def survivors() -> list[int]:
            return [pid for pid, started in children.items() if running(pid, started)]

        wait_until(
            lambda: not survivors(), 5,
            lambda: f"still running after {how}: {survivors()}\n{serve.output()}",
        )
    if signum != signal.SIGKILL:
        assert code == 0, serve.output()
        assert "Traceback" not in serve.output()
        assert "starting it again" not in serve.output()  # nor any word of it
        assert serve.output().rstrip().endswith("Pain Free Living: stopped")


def test_a_mailer_that_dies_while_serve_stops_is_not_started_again(newsletter):
    """SIGTERM while a request is being answered: uvicorn waits for it, the
    mailer dies meanwhile, and the supervisor leaves it dead."""
    with serving(newsletter) as serve:
        _signup_goes_out(serve, newsletter)
        children = descendants(serve.pid)
        (mailer,) = serve.mailers()
        body = b"email=two%40example.com"
        with socket.create_connection(("127.0.0.1", int(serve.url.rpartition(":")[2]))) as conn:
            conn.sendall(
                b"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            assert conn.recv(100).startswith(b"HTTP/1.1 100 Continue")  # it waits for the body
            os.kill(serve.pid, signal.SIGTERM)
            wait_until(
                lambda: "Waiting for connections to close" in serve.output(), 10,
                serve.output,
            )
            os.kill(mailer, signal.SIGKILL)
            wait_until(
                lambda: "starting it again" in serve.output(), 10,
                lambda: f"the supervisor did not see the mailer die\n{serve.output()}",
            )
            assert "not starting it again" in serve.output(), serve.output()
            conn.sendall(body)
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
        assert serve.process.wait(timeout=30) == 0, serve.output()
        wait_until(
            lambda: not any(running(pid, s) for pid, s in children.items()), 5,
            lambda: f"still running: {children}",
        )
