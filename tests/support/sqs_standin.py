"""A small SQS stand-in over HTTP, for measuring `publish events sync`.

moto's SQS scans every message of a queue, converting timestamps, on each
call: with a few thousand messages queued a call takes hundreds of
milliseconds, so a benchmark against it measures moto. This stand-in
speaks the same wire protocol (AWS JSON 1.0, ``X-Amz-Target: AmazonSQS.*``)
for the calls the sync uses, with constant-time operations:

    SendMessage, SendMessageBatch, ReceiveMessage (visibility timeout,
    ApproximateReceiveCount), DeleteMessageBatch, ChangeMessageVisibilityBatch,
    GetQueueAttributes (VisibilityTimeout and the counts)

boto3 reaches it by endpoint URL, like moto. ``latency`` adds a delay to
every call, to stand in for the round trip to a real region. The tests
check that the sync behaves the same against it as against moto.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class _Message:
    message_id: str
    body: str
    receives: int = 0


@dataclass
class SqsStandIn:
    visibility_timeout: float = 30.0
    latency: float = 0.0
    url: str = ""
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._visible: deque[_Message] = deque()
        self._in_flight: dict[str, tuple[_Message, float]] = {}
        self._expiry: list[tuple[float, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def queue_url(self) -> str:
        return f"{self.url}/123456789012/ses-feedback"

    # -- the queue -------------------------------------------------------------

    def put(self, bodies: list[str]) -> None:
        """Queue messages without a round trip (to fill it quickly)."""
        with self._lock:
            self._visible.extend(_Message(str(uuid.uuid4()), body) for body in bodies)

    def counts(self) -> tuple[int, int]:
        """(visible, in flight)."""
        with self._lock:
            self._expire(time.monotonic())
            return len(self._visible), len(self._in_flight)

    def _expire(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, handle = heapq.heappop(self._expiry)
            entry = self._in_flight.get(handle)
            if entry is not None and entry[1] <= now:  # not extended since
                del self._in_flight[handle]
                self._visible.append(entry[0])

    def _receive(self, request: dict) -> dict:
        wanted = max(1, min(10, int(request.get("MaxNumberOfMessages", 1))))
        now = time.monotonic()
        timeout = float(request.get("VisibilityTimeout", self.visibility_timeout))
        out: list[dict] = []
        with self._lock:
            self._expire(now)
            while self._visible and len(out) < wanted:
                message = self._visible.popleft()
                message.receives += 1
                handle = uuid.uuid4().hex
                self._in_flight[handle] = (message, now + timeout)
                heapq.heappush(self._expiry, (now + timeout, handle))
                out.append({
                    "MessageId": message.message_id,
                    "ReceiptHandle": handle,
                    "MD5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
                    "Body": message.body,
                    "Attributes": {"ApproximateReceiveCount": str(message.receives)},
                })
        return {"Messages": out} if out else {}

    def _delete_batch(self, request: dict) -> dict:
        done, failed = [], []
        with self._lock:
            for entry in request.get("Entries", []):
                if self._in_flight.pop(entry["ReceiptHandle"], None) is None:
                    failed.append({"Id": entry["Id"], "SenderFault": True,
                                   "Code": "ReceiptHandleIsInvalid", "Message": "not in flight"})
                else:
                    done.append({"Id": entry["Id"]})
        return {"Successful": done, "Failed": failed}

    def _change_visibility_batch(self, request: dict) -> dict:
        now = time.monotonic()
        done, failed = [], []
        with self._lock:
            self._expire(now)
            for entry in request.get("Entries", []):
                found = self._in_flight.get(entry["ReceiptHandle"])
                if found is None:
                    failed.append({"Id": entry["Id"], "SenderFault": True,
                                   "Code": "MessageNotInflight", "Message": "not in flight"})
                    continue
                until = now + float(entry.get("VisibilityTimeout", 0))
                self._in_flight[entry["ReceiptHandle"]] = (found[0], until)
                heapq.heappush(self._expiry, (until, entry["ReceiptHandle"]))
                done.append({"Id": entry["Id"]})
        return {"Successful": done, "Failed": failed}

    def _send(self, entries: list[dict]) -> list[dict]:
        messages = [_Message(str(uuid.uuid4()), e["MessageBody"]) for e in entries]
        with self._lock:
            self._visible.extend(messages)
        return [
            {"Id": e.get("Id", "0"), "MessageId": m.message_id,
             "MD5OfMessageBody": hashlib.md5(m.body.encode()).hexdigest()}
            for e, m in zip(entries, messages, strict=True)
        ]

    def _handle(self, action: str, request: dict) -> tuple[int, dict]:
        if action == "ReceiveMessage":
            return 200, self._receive(request)
        if action == "DeleteMessageBatch":
            return 200, self._delete_batch(request)
        if action == "ChangeMessageVisibilityBatch":
            return 200, self._change_visibility_batch(request)
        if action == "SendMessage":
            sent = self._send([request])[0]
            return 200, {"MessageId": sent["MessageId"], "MD5OfMessageBody": sent["MD5OfMessageBody"]}
        if action == "SendMessageBatch":
            return 200, {"Successful": self._send(request.get("Entries", [])), "Failed": []}
        if action == "GetQueueAttributes":
            visible, in_flight = self.counts()
            return 200, {"Attributes": {"ApproximateNumberOfMessages": str(visible),
                                        "ApproximateNumberOfMessagesNotVisible": str(in_flight),
                                        "VisibilityTimeout": str(int(self.visibility_timeout))}}
        return 400, {"__type": "com.amazonaws.sqs#InvalidAction",
                     "message": f"{action} is not served by the stand-in"}

    # -- serving -----------------------------------------------------------------

    def start(self) -> SqsStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's
            # algorithm holds the body until the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                with standin._lock:
                    standin.calls[action] = standin.calls.get(action, 0) + 1
                if standin.latency:
                    time.sleep(standin.latency)
                status, answer = standin._handle(action, request)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="sqs-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
