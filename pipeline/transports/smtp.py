"""Any SMTP relay, Amazon SES's SMTP interface included (smtplib).

Each sending thread keeps its own connection, opened on first use with
STARTTLS (certificate and host name verified) and login when configured,
and reopened after a failure. The password comes from the environment
(``NEWSLETTER_SMTP_PASSWORD``) only.

A relay keeps no record the sender can ask, so the transport keeps one: each
message the relay accepts (250 to DATA) is appended to ``smtp-accepted.log``
at the newsletter's root, one line of Message-ID, relay id and recipient,
written to disk (fsync) before :meth:`SmtpTransport.send` returns. After a
crash, :meth:`SmtpTransport.accepted` reads it back, so a message the relay
took is recorded sent instead of being sent again.

Replies map onto the transport's tree (see :mod:`pipeline.transports.base`):

    454 "Throttling failure: Maximum sending rate exceeded"   Throttled
    454 "Throttling failure: Daily message quota exceeded"    QuotaExhausted
    421 and other 4xx                                         TemporaryFailure
    5xx to a recipient or the message                         Rejected
    5xx to the sender, failed login                           SendingStopped
    a dropped connection, a timeout                           TemporaryFailure
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.transports.base import (
    OutgoingMessage,
    QuotaExhausted,
    Rejected,
    SendingStopped,
    TemporaryFailure,
    Throttled,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
JOURNAL = "smtp-accepted.log"
"""The file, at the newsletter's root, of the messages the relay accepted."""


def classify(code: int, text: str, *, stage: str) -> type[TransportError]:
    """The transport error for an SMTP reply ``code`` at ``stage``
    (``sender``, ``recipient``, ``data`` or ``login``)."""
    lowered = text.lower()
    if "daily message quota" in lowered:
        return QuotaExhausted
    if "throttl" in lowered or "maximum sending rate" in lowered:
        return Throttled
    if stage == "login":
        return SendingStopped
    if 400 <= code < 500:
        return TemporaryFailure
    if stage == "sender" and 500 <= code < 600:
        return SendingStopped
    if 500 <= code < 600:
        return Rejected
    return TemporaryFailure


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


class SmtpTransport(Transport):
    """Delivers through an SMTP server, one connection per sending thread."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        journal: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self._context = ssl_context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[smtplib.SMTP] = []
        self.journal = journal
        self._journal_fd: int | None = None

    def __repr__(self) -> str:
        return f"SmtpTransport({self.host!r}, {self.port}, username={self.username!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTransport:
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            journal=settings.root / JOURNAL,
        )

    def _connect(self) -> smtplib.SMTP:
        where = f"SMTP {self.host}:{self.port}"
        try:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(f"{where}: cannot connect: {exc}") from None
        try:
            conn.ehlo()
            if self.starttls:
                if not conn.has_extn("starttls"):
                    raise SendingStopped(f"{where}: the server does not offer STARTTLS")
                conn.starttls(context=self._context or ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self._password)
        except TransportError:
            conn.close()
            raise
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise SendingStopped(
                f"{where}: login as {self.username!r} refused: {exc.smtp_code} "
                f"{_reply_text(exc.smtp_error)}"
            ) from None
        except ssl.SSLError as exc:
            conn.close()
            raise SendingStopped(f"{where}: TLS failed: {exc.reason or exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            conn.close()
            raise TemporaryFailure(f"{where}: {exc}") from None
        with self._lock:
            self._connections.append(conn)
        return conn

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def send(self, message: OutgoingMessage) -> str:
        conn = self._connection()
        try:
            relay_id = self._transaction(conn, message)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TemporaryFailure(f"SMTP {self.host}: disconnected: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise self._refused(conn, exc.smtp_code, exc.smtp_error, "data") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TemporaryFailure(f"SMTP {self.host}: {exc}") from None
        self._note_accepted(message, relay_id)
        return relay_id

    def _note_accepted(self, message: OutgoingMessage, relay_id: str) -> None:
        """Append the accepted message to the journal and fsync it. A journal
        that cannot be written is logged, never a reason to report the
        message unsent: the relay has it."""
        if self.journal is None:
            return
        match = _MESSAGE_ID.search(message.raw, 0, 8192)
        if match is None:
            return
        fields = (match.group(1).decode("ascii", "replace"), relay_id, message.recipient)
        line = "\t".join(" ".join(field.split()) for field in fields) + "\n"
        try:
            with self._lock:
                if self._journal_fd is None:
                    self._journal_fd = os.open(
                        self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
                    )
                fd = self._journal_fd
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        except OSError as exc:
            log.warning("%s: cannot note an accepted message: %s", self.journal, exc)

    def accepted(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The messages among ``wanted`` that the journal shows the relay
        accepted, with the relay's id."""
        found: dict[str, str] = {}
        if self.journal is None or not wanted:
            return found
        try:
            handle = open(self.journal, encoding="utf-8", errors="replace")  # noqa: SIM115
        except FileNotFoundError:
            return found
        with handle:
            for line in handle:
                message_id, _, rest = line.rstrip("\n").partition("\t")
                if message_id in wanted:
                    found[message_id] = rest.partition("\t")[0]
        return found

    def _transaction(self, conn: smtplib.SMTP, message: OutgoingMessage) -> str:
        code, reply = conn.mail(message.sender)
        if code != 250:
            raise self._refused(conn, code, reply, "sender")
        code, reply = conn.rcpt(message.recipient)
        if code not in (250, 251):
            raise self._refused(conn, code, reply, "recipient")
        code, reply = conn.data(message.raw)
        if code != 250:
            raise self._refused(conn, code, reply, "data")
        return _message_id(_reply_text(reply), message.raw)

    def _refused(
        self, conn: smtplib.SMTP, code: int, reply: bytes | str, stage: str
    ) -> TransportError:
        """The error for a refusal; the connection is reset for the next
        message, or dropped when the server is closing it (421)."""
        if code == 421:
            self._drop()
        else:
            self._reset(conn)
        text = _reply_text(reply)
        what = {"sender": "sender", "recipient": "recipient"}.get(stage, "message")
        return classify(code, text, stage=stage)(f"SMTP {what} refused: {code} {text}")

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            fd, self._journal_fd = self._journal_fd, None
        if fd is not None:
            os.close(fd)
        for conn in connections:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()


def _message_id(reply: str, raw: bytes) -> str:
    """The relay's id for the message when its reply names one (SES answers
    ``Ok <id>``), the message's own Message-ID otherwise."""
    words = reply.split()
    if len(words) >= 2 and words[0].lower() in ("ok", "ok:"):
        return words[-1]
    if "queued as" in reply.lower():
        return words[-1]
    match = _MESSAGE_ID.search(raw, 0, 8192)
    return match.group(1).decode("ascii") if match else reply
