"""A small HTTP proxy in front of moto that makes SES misbehave on purpose.

boto3 is pointed at the proxy (``AWS_ENDPOINT_URL``) exactly as it would be
at AWS; the proxy forwards every request to the moto server behind it,
except the ones a test has chosen to fail:

    proxy.throttle_every(3)          every third SendEmail answers 429 TooManyRequests
    proxy.throttle_calls(2, 5)       the 2nd and 5th SendEmail answer 429
    proxy.throttle_randomly(0.1)     each SendEmail answers 429 with chance 0.1
    proxy.reject("bad@example.com")  SendEmail to that address answers MessageRejected
    proxy.set_quota(max_rate=50, max_24h=20, sent_24h=0)
                                     GetAccount answers this quota (moto has no
                                     GetAccount), and SendEmail past the daily
                                     quota answers "Daily message quota exceeded"
    proxy.enforce_rate = True        more than max_rate SendEmails in one second
                                     answer 429 "Maximum sending rate exceeded", as SES
    proxy.fail_with(status, code, message)
                                     every SendEmail answers this (suspended, 500...)
    proxy.latency = 0.05             every SendEmail takes 50 ms longer
    held = proxy.hold("AmazonSQS.DeleteMessageBatch")
                                     calls of that JSON-protocol action (its
                                     X-Amz-Target) wait unanswered until
                                     held.release(); held.arrived is set by the
                                     first, so a test can kill the caller there
    proxy.slow("AmazonSQS.DeleteMessageBatch", 5)
                                     calls of that action are forwarded 5 s late
    proxy.refuse("AmazonSQS.ChangeMessageVisibilityBatch", 403, "AccessDenied", "...")
                                     calls of that action answer this error

With ``upstream=None`` it is an SES stand-in on its own: SendEmail answers a
fresh MessageId without moto (the send benchmark uses this).

``proxy.accepted`` records each SendEmail that got a message id, as
``(time.monotonic(), recipient, message_id)``; ``proxy.attempts`` every
SendEmail received; ``proxy.calls(target)`` every call of a JSON-protocol
action, with its payload and when it arrived and was answered.
"""

from __future__ import annotations

import bisect
import http.client
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

SEND_PATH = "/v2/email/outbound-emails"
ACCOUNT_PATH = "/v2/email/account"


@dataclass
class Quota:
    max_rate: float = 1000.0
    max_24h: float = 1_000_000.0
    sent_24h: float = 0.0


@dataclass
class Fault:
    status: int
    code: str
    message: str
    when: Callable[[int, str], bool]
    """(SendEmail call number from 1, recipient) -> inject?"""


@dataclass
class Hold:
    """Calls of one action kept waiting (see :meth:`FaultyProxy.hold`)."""

    target: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    count: int = 0

    def release(self) -> None:
        self.released.set()


@dataclass
class Call:
    """One call of a JSON-protocol action (see :meth:`FaultyProxy.calls`)."""

    target: str
    payload: dict
    arrived: float
    """time.monotonic() when the request came in."""
    answered: float | None = None
    """When the answer went out (None: not yet, or never)."""


@dataclass
class FaultyProxy:
    upstream: str | None
    quota: Quota = field(default_factory=Quota)
    latency: float = 0.0
    enforce_rate: bool = False
    faults: list[Fault] = field(default_factory=list)
    accepted: list[tuple[float, str, str]] = field(default_factory=list)
    attempts: list[tuple[float, str]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    keep_bodies: bool = True
    holds: list[Hold] = field(default_factory=list)
    slowed: dict[str, float] = field(default_factory=dict)
    refused: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    actions: list[Call] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._recent: deque[float] = deque()
        self._server: ThreadingHTTPServer | None = None

    # -- configuring faults ------------------------------------------------

    def set_quota(self, max_rate: float, max_24h: float, sent_24h: float = 0) -> None:
        self.quota = Quota(max_rate, max_24h, sent_24h)

    def throttle_every(self, n: int, *, message: str = "Maximum sending rate exceeded.") -> None:
        self.faults.append(
            Fault(429, "TooManyRequestsException", message, lambda call, _r: call % n == 0)
        )

    def throttle_calls(self, *calls: int) -> None:
        """Answer 429 to these SendEmail calls (numbered from 1)."""
        chosen = set(calls)
        self.faults.append(
            Fault(429, "TooManyRequestsException", "Maximum sending rate exceeded.",
                  lambda call, _r: call in chosen)
        )

    def throttle_randomly(self, fraction: float, *, seed: int = 0) -> None:
        """Answer 429 to each SendEmail with chance ``fraction`` (seeded, so
        two runs throttle the same calls)."""
        chance = random.Random(seed)
        self.faults.append(
            Fault(429, "TooManyRequestsException", "Maximum sending rate exceeded.",
                  lambda _call, _r: chance.random() < fraction)
        )

    def reject(self, recipient: str, message: str = "Email address is not verified.") -> None:
        self.faults.append(
            Fault(400, "MessageRejected", message, lambda _c, r: r.lower() == recipient.lower())
        )

    def fail_with(
        self, status: int, code: str, message: str, *, after: int = 0
    ) -> None:
        self.faults.append(Fault(status, code, message, lambda call, _r: call > after))

    def hold(self, target: str) -> Hold:
        """Keep calls whose X-Amz-Target is ``target`` waiting until released;
        a held call that is released is then dropped unanswered."""
        held = Hold(target)
        self.holds.append(held)
        return held

    def slow(self, target: str, seconds: float) -> None:
        """Forward calls whose X-Amz-Target is ``target`` ``seconds`` late."""
        self.slowed[target] = seconds

    def refuse(self, target: str, status: int, code: str, message: str) -> None:
        """Answer calls whose X-Amz-Target is ``target`` with this error."""
        self.refused[target] = (status, code, message)

    def calls(self, target: str) -> list[Call]:
        """The calls of one JSON-protocol action so far, in order of arrival."""
        with self._lock:
            return [call for call in self.actions if call.target == target]

    def clear(self) -> None:
        self.faults.clear()
        self.slowed.clear()
        self.refused.clear()
        for held in self.holds:
            held.release()
        self.holds.clear()

    def recipients(self) -> list[str]:
        return [recipient for _, recipient, _ in self.accepted]

    def max_in_window(self, seconds: float = 1.0) -> int:
        """The most SendEmails accepted within any ``seconds`` window."""
        return max_in_window([t for t, _, _ in self.accepted], seconds)

    # -- serving -----------------------------------------------------------

    def start(self) -> FaultyProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line and headers go out in one write, the body in
            # another: with Nagle on, the body waits for the client's delayed
            # ACK of the first (40 ms on Linux) on every kept-alive call.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        # The constructor already listened with the default backlog of 5:
        # a sender opening its pool at once would wait 1 s for SYN retries.
        server.socket.listen(server.request_queue_size)
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="faulty-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        for held in self.holds:
            held.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        with self._lock:
            self.requests.append((request.command, path))
        target = request.headers.get("X-Amz-Target", "")
        if target:
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = {}
            call = Call(target, payload, time.monotonic())
            with self._lock:
                self.actions.append(call)
            if self._handle_action(request, body, target):
                call.answered = time.monotonic()
            return
        if request.command == "GET" and path == ACCOUNT_PATH:
            self._json(request, 200, self._account())
            return
        if request.command == "POST" and path == SEND_PATH:
            self._send_email(request, body)
            return
        self._forward(request, body)

    def _handle_action(self, request: BaseHTTPRequestHandler, body: bytes, target: str) -> bool:
        """Answer a JSON-protocol call; False when it was dropped unanswered."""
        held = next((h for h in self.holds if h.target == target), None)
        if held is not None:
            with self._lock:
                held.count += 1
            held.arrived.set()
            held.released.wait(120)
            request.close_connection = True  # dropped: the caller never hears back
            return False
        if target in self.refused:
            status, code, message = self.refused[target]
            self._json(request, status, {"__type": code, "message": message}, error_type=code)
            return True
        if target in self.slowed:
            time.sleep(self.slowed[target])
        self._forward(request, body)
        return True

    def _account(self) -> dict:
        with self._lock:
            sent = self.quota.sent_24h + len(self.accepted)
        return {
            "SendQuota": {
                "Max24HourSend": self.quota.max_24h,
                "MaxSendRate": self.quota.max_rate,
                "SentLast24Hours": sent,
            },
            "SendingEnabled": True,
            "ProductionAccessEnabled": True,
            "EnforcementStatus": "HEALTHY",
            "DedicatedIpAutoWarmupEnabled": False,
        }

    def _send_email(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        now = time.monotonic()
        try:
            payload = json.loads(body)
            recipient = payload["Destination"]["ToAddresses"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            payload, recipient = {}, ""
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            self._calls += 1
            call = self._calls
            self.attempts.append((now, recipient))
            if self.keep_bodies:
                self.bodies.append(payload)
            fault = next((f for f in self.faults if f.when(call, recipient)), None)
            if fault is None and len(self.accepted) + self.quota.sent_24h >= self.quota.max_24h:
                fault = Fault(400, "LimitExceededException", "Daily message quota exceeded.",
                              lambda _c, _r: True)
            if fault is None and self.enforce_rate:
                # Calls reach this point in the order their latency ends, not
                # the order they arrived: kept sorted, the second before this
                # call's arrival is counted exactly.
                while self._recent and now - self._recent[0] >= 2.0:
                    self._recent.popleft()
                recent = self._recent
                within = bisect.bisect_right(recent, now) - bisect.bisect_right(recent, now - 1.0)
                if within >= self.quota.max_rate:
                    fault = Fault(429, "TooManyRequestsException",
                                  "Maximum sending rate exceeded.", lambda _c, _r: True)
                else:
                    bisect.insort(self._recent, now)
        if fault is not None:
            self._json(
                request,
                fault.status,
                {"__type": fault.code, "message": fault.message},
                error_type=fault.code,
            )
            return
        if self.upstream is None:
            message_id = f"0100{uuid.uuid4().hex}-000000"
            self._record(now, recipient, message_id)
            self._json(request, 200, {"MessageId": message_id})
            return
        status, headers, answer = self._upstream(request, body)
        if status == 200:
            try:
                message_id = json.loads(answer)["MessageId"]
            except (ValueError, KeyError):
                message_id = ""
            self._record(now, recipient, message_id)
        self._reply(request, status, headers, answer)

    def _record(self, now: float, recipient: str, message_id: str) -> None:
        with self._lock:
            self.accepted.append((now, recipient, message_id))

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.upstream is None:
            self._json(request, 404, {"message": f"not handled by the stand-in: {request.path}"})
            return
        status, headers, answer = self._upstream(request, body)
        self._reply(request, status, headers, answer)

    def _upstream(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.upstream is not None
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                          timeout=30)
        try:
            headers = {
                k: v for k, v in request.headers.items()
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding")
            }
            conn.request(request.command, request.path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            return response.status, response.getheaders(), answer
        finally:
            conn.close()

    def _reply(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        request.send_response(status)
        for key, value in headers:
            if key.lower() not in ("connection", "content-length", "transfer-encoding",
                                   "server", "date"):
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _json(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        payload: dict,
        *,
        error_type: str | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            request.send_header("x-amzn-ErrorType", error_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def max_in_window(moments: list[float], seconds: float = 1.0) -> int:
    """The most of ``moments`` that fall within any window of ``seconds``."""
    times = sorted(moments)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

SENDER = "newsletter@painfreeliving.example.com"


@pytest.fixture
def ses(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyProxy]:
    """moto's SES behind a FaultyProxy, this process's boto3 pointed at the
    proxy, and the newsletter's sender verified in moto."""
    client = aws.client("ses")
    client.verify_email_identity(EmailAddress=SENDER)
    proxy = FaultyProxy(upstream=aws.url).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.stop()


def moto_sent_messages(server_url: str) -> list[dict]:
    """The raw messages moto's SES accepted, read back over HTTP."""
    import urllib.request

    with urllib.request.urlopen(f"{server_url}/moto-api/data.json", timeout=30) as response:
        data = json.load(response)
    return list(data.get("ses", {}).get("RawMessage", []))
