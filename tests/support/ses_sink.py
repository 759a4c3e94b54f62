"""A cheap SES stand-in in a process of its own, for benchmarks that must not
measure the stand-in instead of the sender.

    sink = SesSink(rate=2000, latency=0.02).start()   # python -m tests.support.ses_sink
    ... point the senders at sink.url (AWS_ENDPOINT_URL) ...
    sink.cpu_seconds()          the stand-in's CPU so far, from /proc
    sink.stop()                 the log: sink.arrivals, sink.recipients() (it
                                stops by itself when its parent dies)
    sink.max_in_window(1.0)     the busiest one-second window of arrivals

It is a real HTTP/1.1 server on loopback (asyncio, one raw Protocol per
connection, kept alive as SES keeps it) that answers what a sender calls:

    POST /v2/email/outbound-emails   SESv2 SendEmail: 200 with a fresh
                                     MessageId, ``latency`` seconds after the
                                     request arrived
    GET  /v2/email/account           SESv2 GetAccount: MaxSendRate ``rate``
    anything else                    404, in SES's JSON error shape

Every SendEmail's arrival (``time.monotonic()`` when its first bytes were
read; the clock is the machine's, so the parent compares it with its own)
and recipient are logged. It never refuses a call for its rate: the
senders' own pacing is what is measured. Unlike
:class:`tests.support.faulty_proxy.FaultyProxy` it injects no faults and
parses no JSON: the recipient is read from the body's ``ToAddresses``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's socket option for a receive timestamp in nanoseconds."""
ANCILLARY = socket.CMSG_SPACE(16)
READ = 262144
SEND_PATH = b"/v2/email/outbound-emails"
ACCOUNT_PATH = b"/v2/email/account"
_TO = b'"ToAddresses":["'


def _answer(status: str, body: bytes, *, error: str = "") -> bytes:
    """A whole HTTP/1.1 response with SES's headers (the request id and
    date are per process: nobody reads them)."""
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"x-amzn-RequestId: {secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Length: {len(body)}",
    ]
    if error:
        head.append(f"x-amzn-ErrorType: {error}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Sink:
    """What the server knows: the canned answers and the log of calls."""

    def __init__(self, rate: float, latency: float) -> None:
        self.latency = latency
        self.offset = time.time() - time.monotonic()
        """The wall clock (the kernel's timestamps) less the monotonic clock."""
        self.arrivals: list[float] = []
        self.recipients: list[bytes] = []
        self._prefix = f"0100{secrets.token_hex(8)}".encode()
        self._count = 0
        account = {
            "SendQuota": {"Max24HourSend": 1e9, "MaxSendRate": rate, "SentLast24Hours": 0.0},
            "SendingEnabled": True,
            "ProductionAccessEnabled": True,
            "EnforcementStatus": "HEALTHY",
            "DedicatedIpAutoWarmupEnabled": False,
        }
        self.account = _answer("200 OK", json.dumps(account).encode())
        self.missing = _answer(
            "404 Not Found",
            b'{"__type":"NotFoundException","message":"not handled by the sink"}',
            error="NotFoundException",
        )
        # Every message id is as long, so one Content-Length fits them all.
        sample = self._message_id(0)
        sent = _answer("200 OK", b'{"MessageId":"%s"}' % sample)
        self._sent_head, _, self._sent_tail = sent.partition(sample)

    def arrival(self, ancillary: list[tuple[int, int, bytes]]) -> float:
        """When the bytes just read arrived, on the monotonic clock: the
        kernel's timestamp of them (SO_TIMESTAMPNS), or now without one."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                return seconds + nanoseconds * 1e-9 - self.offset
        return time.monotonic()

    def sent(self, recipient: bytes, arrived: float) -> bytes:
        """Log one SendEmail; its answer."""
        self.arrivals.append(arrived)
        self.recipients.append(recipient)
        self._count += 1
        return self._sent_head + self._message_id(self._count) + self._sent_tail

    def _message_id(self, number: int) -> bytes:
        return b"%s%016x-000000" % (self._prefix, number)


class Connection:
    """One kept-alive connection: requests read whole, answered in order,
    each ``latency`` seconds after it arrived."""

    def __init__(self, sink: Sink, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.sink = sink
        self.loop = loop
        self.sock: socket.socket | None = sock
        self.buffer = bytearray()
        self.started = 0.0
        self.out = bytearray()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data, ancillary, _, _ = self.sock.recvmsg(READ, ANCILLARY)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self._close()
            return
        arrived = self.sink.arrival(ancillary)
        if not self.buffer:
            self.started = arrived
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = _content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._answer(head, body, self.started)
            self.started = arrived

    def _answer(self, head: bytes, body: bytes, arrived: float) -> None:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"POST" and path == SEND_PATH:
            start = body.find(_TO)
            recipient = b""
            if start >= 0:
                start += len(_TO)
                recipient = body[start : body.find(b'"', start)]
            answer = self.sink.sent(recipient, arrived)
            delay = arrived + self.sink.latency - time.monotonic()
            self.loop.call_later(max(0.0, delay), self._write, answer)
        elif method == b"GET" and path == ACCOUNT_PATH:
            self._write(self.sink.account)
        else:
            self._write(self.sink.missing)

    def _write(self, answer: bytes) -> None:
        if self.sock is None:
            return
        if self.out:  # still writing the answer before this one
            self.out += answer
            return
        try:
            sent = self.sock.send(answer)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close()
            return
        if sent < len(answer):
            self.out += answer[sent:]
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self._close()
            return
        del self.out[:sent]
        if not self.out:
            self.loop.remove_writer(self.sock.fileno())

    def _close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            self.loop.remove_writer(sock.fileno())
            sock.close()


def _content_length(head: bytes) -> int:
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    end = lower.find(b"\r\n", start)
    return int(lower[start : end if end >= 0 else None])


async def _serve(rate: float, latency: float, log: Path) -> None:
    loop = asyncio.get_running_loop()
    sink = Sink(rate, latency)
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    listener.setblocking(False)
    connections = []

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            connections.append(Connection(sink, loop, sock))

    loop.add_reader(listener.fileno(), accept)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)

    def parent_gone() -> None:  # stdin at its end: the parent closed it, or died
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stopped.set()

    loop.add_reader(0, parent_gone)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    await stopped.wait()
    loop.remove_reader(listener.fileno())
    listener.close()
    for connection in connections:
        connection._close()
    with log.open("wb") as out:
        for moment, recipient in zip(sink.arrivals, sink.recipients, strict=True):
            out.write(b"%r %s\n" % (moment, recipient))


@dataclass
class SesSink:
    """The sink in a process of its own, and what it logged once stopped."""

    rate: float = 2000.0
    latency: float = 0.02
    cpus: set[int] | None = None
    """The cores it may run on (None: any)."""
    url: str = ""
    arrivals: list[float] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)

    def start(self) -> SesSink:
        self._folder = tempfile.mkdtemp(prefix="ses-sink-")
        self._log = Path(self._folder) / "calls"
        root = Path(__file__).resolve().parents[2]
        command = [
            sys.executable,
            "-m",
            "tests.support.ses_sink",
            "--rate",
            str(self.rate),
            "--latency",
            str(self.latency),
            "--log",
            str(self._log),
        ]
        if self.cpus is not None:
            command = ["taskset", "-c", ",".join(map(str, sorted(self.cpus))), *command]
        self._process = subprocess.Popen(
            command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self._process.kill()
            raise RuntimeError(f"the SES sink did not start: {self.url!r}")
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    def cpu_seconds(self) -> float:
        """User and system CPU the sink has used so far."""
        with open(f"/proc/{self.pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> SesSink:
        """Stop the sink (it stops too should this process die: its stdin
        ends) and read its log."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(60)
        lines = self._log.read_text(encoding="utf-8").splitlines()
        self.arrivals = [float(line.partition(" ")[0]) for line in lines]
        self.logged = [line.partition(" ")[2] for line in lines]
        self._log.unlink()
        os.rmdir(self._folder)
        return self

    def recipients(self) -> list[str]:
        return list(self.logged)

    def max_in_window(self, seconds: float = 1.0) -> int:
        from tests.support.faulty_proxy import max_in_window

        return max_in_window(self.arrivals, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.rate, args.latency, args.log))


if __name__ == "__main__":
    main()
