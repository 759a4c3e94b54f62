"""SendEmail on the lean client makes botocore's request and raises botocore's
errors: the same JSON body as botocore's serializer, the same SigV4 headers as
botocore's signer, the same TransportError (class and words) as the boto3
client for every failure; a kept-alive connection the server dropped is
replaced; a proxy keeps botocore's path."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.transports.base import OutgoingMessage, TemporaryFailure
from pipeline.transports.ses import SesTransport, _translate
from pipeline.transports.ses_http import SendEmailClient, request_body
from pipeline.transports.sigv4 import Signer
from tests.support.faulty_proxy import FaultyProxy

SENDER = "newsletter@painfreeliving.example.com"
RAW = b"From: " + SENDER.encode() + b"\r\nTo: r@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def standin(monkeypatch):
    proxy = FaultyProxy(upstream=None).start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": proxy.url,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        yield proxy
    finally:
        proxy.stop()


def clients():
    import boto3

    session = boto3.session.Session()
    client = session.client("sesv2")
    return session, client


@pytest.mark.parametrize(
    ("recipient", "tags", "configuration_set"),
    [
        ("r@example.com", (), ""),
        ("zoë@exämple.com", (("issue", "calf-stretch"), ("kind", "issue")), "newsletter-events"),
    ],
)
def test_the_body_is_botocores(recipient, tags, configuration_set):
    from botocore.serialize import create_serializer

    _session, client = clients_offline()
    params: dict[str, Any] = {
        "FromEmailAddress": SENDER,
        "Destination": {"ToAddresses": [recipient]},
        "Content": {"Raw": {"Data": RAW}},
    }
    if tags:
        params["EmailTags"] = [{"Name": k, "Value": v} for k, v in tags]
    if configuration_set:
        params["ConfigurationSetName"] = configuration_set
    operation = client.meta.service_model.operation_model("SendEmail")
    theirs = create_serializer("rest-json").serialize_to_request(params, operation)
    ours = request_body(SENDER, recipient, RAW, tags, configuration_set)
    assert json.loads(ours) == json.loads(theirs["body"])
    assert theirs["url_path"] == "/v2/email/outbound-emails"


def clients_offline():
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1"
    )
    return session, session.client("sesv2", endpoint_url="http://127.0.0.1:9")


PATH = "/v2/email/outbound-emails"


def botocore_signed(credentials, host, body, headers):
    """The headers botocore's SigV4 gives the SendEmail request, and the
    moment (UTC) it signed it at."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    theirs = AWSRequest(method="POST", url=f"https://{host}{PATH}", data=body,
                        headers=dict(headers))
    SigV4Auth(credentials, "ses", "eu-west-1").add_auth(theirs)
    moment = dt.datetime.strptime(theirs.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    return dict(theirs.headers), moment.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE+temporary/token=="])
@pytest.mark.parametrize("host", ["email.eu-west-1.amazonaws.com", "127.0.0.1:4566"])
def test_the_signature_is_botocores(token, host):
    from botocore.credentials import ReadOnlyCredentials

    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY", token)
    body = request_body(SENDER, "r@example.com", RAW * 200)
    headers = [
        ("Host", host),
        ("Content-Type", "application/json"),
        ("User-Agent", "painfree-publish  Boto3/1"),
    ]
    theirs, moment = botocore_signed(credentials, host, body, headers)
    ours = dict(Signer("eu-west-1", "ses").headers(credentials, PATH, body, headers, now=moment))
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        assert ours.get(name) == theirs.get(name), name


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (429, "TooManyRequestsException", "Maximum sending rate exceeded."),
        (400, "LimitExceededException", "Daily message quota exceeded."),
        (400, "MessageRejected", "Email address is not verified."),
        (400, "AccountSuspendedException", "Your account is suspended"),
        (403, "AccessDeniedException", "not authorized to perform ses:SendEmail"),
        (404, "NotFoundException", "Configuration set does not exist"),
        (500, "InternalFailure", "We are sorry"),
        (503, "ServiceUnavailable", "Try again"),
    ],
)
def test_every_failure_is_the_one_botocore_gives(standin, status, code, message):
    standin.fail_with(status, code, message)
    session, client = clients()
    lean = SendEmailClient.from_client(client, session, pool_size=2)
    assert lean is not None
    message_ = OutgoingMessage(SENDER, "r@example.com", RAW)
    errors = []
    for transport in (SesTransport(client, send_email=lean), SesTransport(client)):
        with pytest.raises(Exception) as raised:
            transport.send(message_)
        errors.append((type(raised.value), str(raised.value)))
    assert errors[0] == errors[1]
    assert message in errors[0][1]


def test_a_send_answers_the_message_id_and_keeps_its_connection(standin):
    session, client = clients()
    lean = SendEmailClient.from_client(client, session, pool_size=2)
    assert lean is not None
    transport = SesTransport(client, send_email=lean)
    ids = [transport.send(OutgoingMessage(SENDER, f"r{i}@example.com", RAW)) for i in range(3)]
    assert ids == [message_id for _, _, message_id in standin.accepted]
    assert [body["Destination"]["ToAddresses"] for body in standin.bodies] == [
        [f"r{i}@example.com"] for i in range(3)
    ]
    transport.close()


class _ClosingHandler(BaseHTTPRequestHandler):
    """Answers SendEmail as HTTP/1.1 keep-alive, then closes the connection
    anyway: a server that drops idle connections."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"MessageId": "0100abc"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


class _ClosingServer(ThreadingHTTPServer):
    """Counts the connections it closed, and says when it closed one."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ClosingHandler)
        self.closed = threading.Semaphore(0)
        self.connections = 0

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        super().shutdown_request(request)
        self.connections += 1
        self.closed.release()


def test_a_dropped_idle_connection_is_replaced_before_use():
    from botocore.credentials import Credentials

    server = _ClosingServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lean = SendEmailClient(
            f"http://127.0.0.1:{server.server_address[1]}",
            "eu-west-1",
            Credentials("a", "b"),
            pool_size=1,
        )
        first = lean.send_email(SENDER, "r1@example.com", RAW)
        assert server.closed.acquire(timeout=10), "the server dropped the connection"
        second = lean.send_email(SENDER, "r2@example.com", RAW)
        assert first == second == "0100abc"
        assert server.closed.acquire(timeout=10)
        assert server.connections == 2, "the second call came on a new connection"
        lean.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_keeps_botocores_path(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session, client = clients_offline()
    assert SendEmailClient.from_client(client, session, pool_size=1) is None
    monkeypatch.delenv("HTTP_PROXY")
    assert SendEmailClient.from_client(client, session, pool_size=1) is not None


class _Scripted:
    """A server that answers each request with the next of ``answers`` (raw
    bytes, or None: never answer), closing the connection after those
    marked to close; it counts the connections it accepted."""

    def __init__(self, answers: list[tuple[bytes | None, bool]]) -> None:
        import socket

        self.answers = list(answers)
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with sock:
                while self.answers:
                    if not _read_request(sock):
                        break
                    answer, close = self.answers.pop(0)
                    if answer is None:
                        self._stop.wait(30)
                        return
                    sock.sendall(answer)
                    if close:
                        break

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def _read_request(sock) -> bool:  # type: ignore[no-untyped-def]
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return True


def _lean(url: str, **options: Any) -> SendEmailClient:
    from botocore.credentials import Credentials

    return SendEmailClient(url, "eu-west-1", Credentials("a", "b"), pool_size=2, **options)


def test_answers_in_chunks_or_until_the_server_closes_are_read_whole():
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7\r\n{"Messa\r\n13;ext=1\r\ngeId": "0100chunk"}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    closing = b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 25\r\n\r\n{"MessageId": "0100shut"}'
    old = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"MessageId": "0100old"}'
    server = _Scripted([(chunked, False), (closing, True), (old, True), (chunked, False)])
    try:
        lean = _lean(server.url)
        ids = [lean.send_email(SENDER, f"r{i}@example.com", RAW) for i in range(4)]
        lean.close()
    finally:
        server.close()
    assert ids == ["0100chunk", "0100shut", "0100old", "0100chunk"]
    assert server.connections == 3, "kept alive after a chunked answer, not after a closing one"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"MessageId"', "ConnectionClosedError"),
        (b"SMTP/1.0 220 hello\r\n\r\n", "ConnectionClosedError"),
        (None, "ReadTimeoutError"),
    ],
)
def test_an_answer_cut_short_or_never_given_is_botocores_connection_error(answer, error):
    from botocore import exceptions

    server = _Scripted([(answer, True)])
    try:
        lean = _lean(server.url, read_timeout=0.5)
        with pytest.raises(exceptions.HTTPClientError) as raised:
            lean.send_email(SENDER, "r@example.com", RAW)
        lean.close()
    finally:
        server.close()
    assert type(raised.value).__name__ == error
    assert isinstance(_translate(raised.value), TemporaryFailure), "tried again, not failed"


def test_one_signer_signs_as_botocore_across_seconds_and_credentials():
    """The signer prepares all but the body's hash once a second: a new
    second or other credentials are signed anew, each as botocore signs."""
    from botocore.credentials import ReadOnlyCredentials

    signer = Signer("eu-west-1", "ses")
    host = "email.eu-west-1.amazonaws.com"
    headers = [("Host", host), ("Content-Type", "application/json")]
    keys = [("AKID1", "secret1", None), ("AKID1", "secret1", "token"), ("AKID2", "secret2", None)]
    stamps: list[str] = []
    for _ in range(2):
        deadline = time.monotonic() + 5
        while stamps and dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") == stamps[-1]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for key in keys:
            credentials = ReadOnlyCredentials(*key)
            body = request_body(SENDER, f"{key[0]}@example.com", RAW)
            theirs, moment = botocore_signed(credentials, host, body, headers)
            stamp = theirs["X-Amz-Date"]
            stamps.append(stamp)
            ours = dict(signer.headers(credentials, PATH, body, headers, now=moment))
            assert ours["Authorization"] == theirs["Authorization"], (stamp, key)
    assert len(set(stamps)) >= 2, "signed in two seconds at least"
