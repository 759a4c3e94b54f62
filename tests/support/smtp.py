"""A real SMTP server on loopback (aiosmtpd) with STARTTLS and login.

    smtp_server   a fresh server per test: STARTTLS with a self-signed
                  certificate for 127.0.0.1 and localhost (``cafile`` to trust
                  it), LOGIN/PLAIN auth for ``SMTP_USER``/``SMTP_PASSWORD``
                  only after STARTTLS, and every accepted message recorded

A test can make it refuse: ``refuse_recipient(address, "550 5.1.1 ...")``
answers RCPT with that reply; ``reply_to_data("454 Throttling failure: ...")``
queues a reply for the next DATA commands instead of accepting them.
``hold()`` makes it keep each message it receives (recorded at once, as a
server that has queued it would) without answering until ``release()``;
``held`` counts the messages held so far, so that a test can act while they
are in flight.
"""

from __future__ import annotations

import itertools
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.aws import free_port

SMTP_USER = "newsletter"
SMTP_PASSWORD = "correct horse battery staple"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None


@dataclass
class SmtpServer:
    host: str
    port: int
    cafile: Path
    messages: list[Received] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    data_replies: deque[str] = field(default_factory=deque)
    connections: int = 0
    held: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._gate: threading.Event | None = None

    def hold(self) -> None:
        """Answer no DATA until :meth:`release` (the messages are recorded)."""
        with self._lock:
            self._gate = threading.Event()

    def release(self) -> None:
        with self._lock:
            gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def refuse_recipient(self, address: str, reply: str) -> None:
        self.refusals[address.lower()] = reply

    def reply_to_data(self, *replies: str) -> None:
        self.data_replies.extend(replies)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    # -- aiosmtpd handler hooks ---------------------------------------------

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            if self.data_replies:
                return self.data_replies.popleft()
            number = next(self._ids)
            login = session.auth_data.login.decode() if session.auth_data else None
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login)
            )
            gate = self._gate
            if gate is not None:
                self.held += 1
        if gate is not None:
            import asyncio

            await asyncio.to_thread(gate.wait)
        return f"250 Ok 0100smtp{number:08d}-000000"


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.certs import self_signed

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(
        key,
        "localhost",
        [
            (
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                False,
            ),
            (x509.BasicConstraints(ca=True, path_length=None), True),
        ],
    )
    cert_path = folder / "smtp-cert.pem"
    key_path = folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    folder = tmp_path_factory.mktemp("smtp")
    cert, key = _certificate(folder)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(cert), str(key))

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            auth_data is not None
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    port = free_port()
    server = SmtpServer("127.0.0.1", port, cert)
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        ready_timeout=10,
    )
    controller.start()
    try:
        yield server
    finally:
        server.release()  # no handler is left waiting: stopping waits for them
        controller.stop()
