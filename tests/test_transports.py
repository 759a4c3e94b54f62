"""The transports against real servers: SES through moto (behind the
fault-injecting proxy), SMTP through aiosmtpd, the outbox on disk."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.parser import BytesParser

import pytest

from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue
from pipeline.transports import open_transport
from pipeline.transports.base import (
    OutgoingMessage,
    QuotaExhausted,
    Rejected,
    SendingStopped,
    TemporaryFailure,
    Throttled,
)
from pipeline.transports.ses import SesTransport, classify
from pipeline.transports.smtp import SmtpTransport
from pipeline.transports.smtp import classify as smtp_classify
from subscribers.tokens import Signer
from tests.support.aws import free_port
from tests.support.faulty_proxy import moto_sent_messages
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER


@pytest.fixture
def messages(settings):
    rendered = render_issue(load_issue(settings.issues_dir / "2026-12-01-calf-stretch.md"), Context.load(settings))
    personalize = Personalizer(rendered, settings, Signer("x" * 32).unsubscribe)

    def make(address: str = "reader@example.com", name: str = "Reader") -> OutgoingMessage:
        return personalize(Recipient(1, address, name))

    return make


# ---------------------------------------------------------------------------
# SES
# ---------------------------------------------------------------------------


def test_ses_sends_raw_mail_that_moto_receives(ses, aws, settings, messages):
    message = messages("alex@example.com", "Zoë Ünal")
    transport = SesTransport.from_settings(settings)
    message_id = transport.send(message)

    stored = moto_sent_messages(aws.url)
    assert [m["id"] for m in stored] == [message_id]
    assert stored[0]["raw_data"].encode() == message.raw
    assert "alex@example.com" in stored[0]["destinations"][0]
    body = ses.bodies[-1]
    assert body["FromEmailAddress"] == "newsletter@painfreeliving.example.com"
    assert body["Destination"] == {"ToAddresses": ["alex@example.com"]}
    assert body["EmailTags"] == [{"Name": "issue", "Value": "calf-stretch"}]
    assert "ConfigurationSetName" not in body


def test_ses_names_the_configuration_set(ses, settings, messages):
    import dataclasses

    configured = dataclasses.replace(settings, ses_configuration_set="newsletter-events")
    SesTransport.from_settings(configured).send(messages())
    assert ses.bodies[-1]["ConfigurationSetName"] == "newsletter-events"


def test_ses_quota_from_get_account(ses, settings):
    ses.set_quota(max_rate=14, max_24h=50_000, sent_24h=1_200)
    quota = SesTransport.from_settings(settings).quota()
    assert (quota.max_rate, quota.max_24h, quota.sent_24h) == (14, 50_000, 1_200)
    assert quota.remaining_24h == 48_800
    assert ("GET", "/v2/email/account") in ses.requests


def test_ses_quota_falls_back_to_get_send_quota(aws, settings):
    """moto has no GetAccount: the v1 GetSendQuota answers instead."""
    quota = SesTransport.from_settings(settings).quota()
    assert (quota.max_rate, quota.max_24h, quota.sent_24h) == (1, 200, 0)


@pytest.mark.parametrize(
    ("status", "code", "message", "error"),
    [
        (429, "TooManyRequestsException", "Too many requests", Throttled),
        (400, "Throttling", "Maximum sending rate exceeded.", Throttled),
        (400, "Throttling", "Daily message quota exceeded.", QuotaExhausted),
        (400, "LimitExceededException", "Daily message quota exceeded.", QuotaExhausted),
        (400, "MessageRejected", "Email address is not verified.", Rejected),
        (400, "MailFromDomainNotVerifiedException", "not verified", Rejected),
        (400, "BadRequestException", "Missing final '@domain'", Rejected),
        (400, "AccountSuspendedException", "Your account is suspended", SendingStopped),
        (400, "SendingPausedException", "Sending is paused", SendingStopped),
        (404, "NotFoundException", "Configuration set does not exist", SendingStopped),
        (500, "InternalFailure", "We are sorry", TemporaryFailure),
        (503, "ServiceUnavailable", "Try again", TemporaryFailure),
    ],
)
def test_ses_errors_map_onto_the_tree(ses, settings, messages, status, code, message, error):
    ses.fail_with(status, code, message)
    transport = SesTransport.from_settings(settings)
    with pytest.raises(error) as raised:
        transport.send(messages())
    assert message in str(raised.value)


def test_ses_rejects_an_unverified_sender_from_moto_itself(aws, settings, messages):
    with pytest.raises(Rejected, match="authority to send"):
        SesTransport.from_settings(settings).send(messages())


def test_ses_unreachable_endpoint_is_temporary(aws, settings, messages, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryFailure):
        SesTransport.from_settings(settings).send(messages())


def test_ses_without_credentials_stops(aws, settings, messages, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(SendingStopped, match="credentials"):
        SesTransport.from_settings(settings).send(messages())


def test_ses_takes_region_credentials_and_endpoint_from_a_profile(ses, aws, settings, tmp_path):
    """Nothing in the environment but AWS_PROFILE: boto3's chain finds the
    region, the keys and the endpoint (in a child process, as the CLI runs)."""
    import os
    import subprocess
    import sys

    import boto3

    boto3.session.Session().client(
        "ses", endpoint_url=aws.url, region_name="eu-west-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).verify_email_identity(EmailAddress="newsletter@painfreeliving.example.com")
    (tmp_path / "config").write_text(
        f"[profile newsletter]\nregion = eu-west-1\nendpoint_url = {ses.url}\n"
    )
    (tmp_path / "credentials").write_text(
        "[newsletter]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_PROFILE="newsletter",
    )
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline.config import load_settings\n"
        "from pipeline.transports.base import OutgoingMessage\n"
        "from pipeline.transports.ses import SesTransport\n"
        "t = SesTransport.from_settings(load_settings(Path(sys.argv[1])))\n"
        "raw = b'From: newsletter@painfreeliving.example.com\\r\\nTo: r@example.com\\r\\n"
        "Subject: hi\\r\\n\\r\\nhello\\r\\n'\n"
        "print(t.send(OutgoingMessage('newsletter@painfreeliving.example.com', "
        "'r@example.com', raw)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(settings.root)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ses.accepted[0][2] == done.stdout.strip()
    assert ses.accepted[0][1] == "r@example.com"


def test_ses_is_chosen_by_name(ses, settings):
    with open_transport(settings, "ses") as transport:
        assert isinstance(transport, SesTransport)


@pytest.mark.parametrize(
    ("code", "message", "status", "error"),
    [
        ("Throttling", "Rate exceeded", 400, Throttled),
        ("Whatever", "Maximum sending rate exceeded.", 400, Throttled),
        ("", "", 429, Throttled),
        ("InvalidParameterValue", "Local address contains control or whitespace", 400, Rejected),
        ("SomethingNew", "", 418, Rejected),
        ("SomethingNew", "", None, TemporaryFailure),
        ("AccessDeniedException", "not authorized to perform ses:SendEmail", 403, SendingStopped),
    ],
)
def test_ses_classify(code, message, status, error):
    assert classify(code, message, status) is error


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------


@pytest.fixture
def smtp(smtp_server):
    transport = SmtpTransport(
        smtp_server.host,
        smtp_server.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        ssl_context=smtp_server.client_context(),
    )
    yield transport
    transport.close()


def test_smtp_sends_over_starttls_with_login(smtp, smtp_server, messages):
    message = messages("alex@example.com", "Alex")
    message_id = smtp.send(message)
    assert message_id.startswith("0100smtp")
    [received] = smtp_server.messages
    assert received.mail_from == message.sender
    assert received.rcpt_tos == ["alex@example.com"]
    assert received.login == SMTP_USER
    assert received.data.rstrip(b"\r\n") == message.raw.rstrip(b"\r\n")
    parsed = BytesParser(policy=policy.default).parsebytes(received.data)
    assert parsed["To"].addresses[0].addr_spec == "alex@example.com"


def test_smtp_password_comes_from_settings_and_never_shows(settings, monkeypatch):
    from pipeline.config import load_settings

    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "s3cret-value")
    monkeypatch.setenv("NEWSLETTER_SMTP_USERNAME", "someone")
    configured = load_settings(settings.root)
    transport = SmtpTransport.from_settings(configured)
    assert transport._password == "s3cret-value"
    assert "s3cret" not in repr(transport) and "s3cret" not in repr(configured)


def test_smtp_keeps_one_connection_per_thread(smtp, smtp_server, messages):
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(lambda i: smtp.send(messages(f"r{i}@example.com")), range(20)))
    assert len(set(ids)) == 20
    assert len(smtp_server.messages) == 20
    assert 1 <= len(smtp._connections) <= 4


def test_smtp_wrong_password_stops(smtp_server, messages):
    transport = SmtpTransport(
        smtp_server.host, smtp_server.port, username=SMTP_USER, password="wrong",
        ssl_context=smtp_server.client_context(),
    )
    with pytest.raises(SendingStopped, match="login"):
        transport.send(messages())


def test_smtp_untrusted_certificate_stops(smtp_server, messages):
    transport = SmtpTransport(smtp_server.host, smtp_server.port, username=SMTP_USER,
                              password=SMTP_PASSWORD)
    with pytest.raises(SendingStopped, match="TLS"):
        transport.send(messages())


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", Rejected),
        ("450 4.2.1 Mailbox busy", TemporaryFailure),
    ],
)
def test_smtp_recipient_refusals(smtp, smtp_server, messages, reply, error):
    smtp_server.refuse_recipient("gone@example.com", reply)
    with pytest.raises(error, match=reply.split()[0]):
        smtp.send(messages("gone@example.com"))
    smtp.send(messages("fine@example.com"))  # the connection is still good
    assert [m.rcpt_tos for m in smtp_server.messages] == [["fine@example.com"]]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("454 Throttling failure: Maximum sending rate exceeded", Throttled),
        ("454 Throttling failure: Daily message quota exceeded", QuotaExhausted),
        ("554 Message rejected: Email address is not verified", Rejected),
        ("451 Temporary local problem", TemporaryFailure),
    ],
)
def test_smtp_data_refusals(smtp, smtp_server, messages, reply, error):
    smtp_server.reply_to_data(reply)
    with pytest.raises(error):
        smtp.send(messages())
    smtp.send(messages())
    assert len(smtp_server.messages) == 1


def _smtp_server_without_starttls() -> tuple[int, threading.Event]:
    """A one-connection SMTP server on loopback whose EHLO offers no STARTTLS;
    the event is set when the client quits or closes the connection."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()

    def serve() -> None:
        with listener:
            listener.settimeout(10)
            conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.settimeout(10)
            conn.sendall(b"220 localhost ESMTP\r\n")
            for line in lines:
                command = line[:4].upper()
                if command in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-localhost\r\n250 8BITMIME\r\n")
                elif command == b"QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    break
                else:
                    conn.sendall(b"502 Not implemented\r\n")
            closed.set()  # QUIT, or the client closed the socket (end of lines)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], closed


def test_smtp_without_starttls_stops_and_closes_the_connection(messages):
    port, closed = _smtp_server_without_starttls()
    transport = SmtpTransport("127.0.0.1", port, timeout=5)
    with pytest.raises(SendingStopped, match="does not offer STARTTLS") as refused:
        transport.send(messages())
    # The refusal (still held here, with its traceback) must not keep the
    # connection open: the server sees the client go.
    assert closed.wait(5), "the connection was left open"
    assert refused.value is not None
    assert transport._connections == []


def test_smtp_unreachable_is_temporary(messages):
    transport = SmtpTransport("127.0.0.1", free_port(), timeout=5)
    with pytest.raises(TemporaryFailure, match="cannot connect"):
        transport.send(messages())


@pytest.mark.parametrize(
    ("code", "text", "stage", "error"),
    [
        (421, "Service not available", "sender", TemporaryFailure),
        (550, "Sender address rejected", "sender", SendingStopped),
        (535, "Authentication failed", "login", SendingStopped),
        (552, "Message size exceeds", "data", Rejected),
    ],
)
def test_smtp_classify(code, text, stage, error):
    assert smtp_classify(code, text, stage=stage) is error


# ---------------------------------------------------------------------------
# Outbox
# ---------------------------------------------------------------------------


def test_outbox_writes_one_file_per_message(settings, messages):
    transport = open_transport(settings, "outbox")
    threads = [
        threading.Thread(target=transport.send, args=(messages(f"r{i}@example.com"),))
        for i in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = sorted(settings.outbox_dir.glob("*.eml"))
    assert len(files) == 10
    recipients = {
        BytesParser(policy=policy.default).parsebytes(f.read_bytes())["To"].addresses[0].addr_spec
        for f in files
    }
    assert recipients == {f"r{i}@example.com" for i in range(10)}
    assert not list(settings.outbox_dir.glob(".*"))  # no temporary files left


def _message_id(message: OutgoingMessage) -> str:
    parsed = BytesParser(policy=policy.default).parsebytes(message.raw)
    return str(parsed["Message-ID"])


def test_the_outbox_knows_which_messages_it_wrote(settings, messages):
    transport = open_transport(settings, "outbox")
    written = messages("alex@example.com")
    name = transport.send(written)
    never = messages("sam@example.com")
    # A write that never finished leaves only a temporary file behind.
    (settings.outbox_dir / f".{name}.abc.tmp").write_bytes(never.raw)
    wanted = {_message_id(written): "alex@example.com", _message_id(never): "sam@example.com"}
    assert transport.records_all_accepted
    assert transport.accepted(wanted) == {_message_id(written): name}
    assert open_transport(settings, "outbox").accepted({"<nope@x>": "nobody@example.com"}) == {}


def test_smtp_notes_each_accepted_message_and_reads_them_back(smtp_server, messages, tmp_path):
    journal = tmp_path / "smtp-accepted.log"
    transport = SmtpTransport(
        smtp_server.host, smtp_server.port, username=SMTP_USER, password=SMTP_PASSWORD,
        ssl_context=smtp_server.client_context(), journal=journal,
    )
    accepted = messages("alex@example.com")
    refused = messages("bad@example.com")
    smtp_server.refuse_recipient("bad@example.com", "550 5.1.1 no such user")
    try:
        relay_id = transport.send(accepted)
        with pytest.raises(Rejected):
            transport.send(refused)
    finally:
        transport.close()
    [line] = journal.read_text().splitlines()
    assert line.split("\t") == [_message_id(accepted), relay_id, "alex@example.com"]
    again = SmtpTransport(smtp_server.host, smtp_server.port, journal=journal)
    wanted = {_message_id(accepted): "alex@example.com", _message_id(refused): "bad@example.com"}
    assert not again.records_all_accepted, "a kill between the relay's 250 and the note"
    assert again.accepted(wanted) == {_message_id(accepted): relay_id}
