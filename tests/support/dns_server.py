"""A real DNS server on loopback (dnslib), answering from zone-file text over
UDP and TCP on one free port, and a silent one that never answers.

    dns_zone(zone_text)         "127.0.0.1:PORT", served until the test ends
    dns_zone(text, servfail={"_dmarc.example.com"})   SERVFAIL for those names
    dns_zone(text, silent={"_dmarc.example.com"})     no reply at all for those
    silent_dns                  "127.0.0.1:PORT": a UDP socket that never replies

The zone answers as an authoritative server does: the records of the asked
type, a CNAME for any type at a name that has one, NOERROR with no answer
for a name that exists (or has names below it) without that type, NXDOMAIN
otherwise. UDP answers longer than 512 bytes come back truncated, so that a
client must retry over TCP, as with a real server.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterable, Iterator

import pytest
from dnslib import QTYPE, RCODE, RR, DNSError, DNSHeader, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

UDP_LIMIT = 512
"""Bytes of a UDP answer without EDNS (RFC 1035 4.2.1); longer ones are truncated."""


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(
        self, zone_text: str, servfail: Iterable[str] = (), silent: Iterable[str] = ()
    ) -> None:
        self.records: list[RR] = RR.fromZone(zone_text)
        self.servfail = {DNSLabel(name) for name in servfail}
        self.silent = {DNSLabel(name) for name in silent}
        self.queries: list[tuple[str, str]] = []

    def _exists(self, name: DNSLabel) -> bool:
        return any(rr.rname == name or rr.rname.matchSuffix(name) for rr in self.records)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        reply.header.aa = 1
        name, qtype = request.q.qname, request.q.qtype
        self.queries.append((QTYPE[qtype], str(name)))
        if name in self.silent:
            raise DNSError(f"silent for {name}")  # dnslib's handler then sends nothing
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        at_name = [rr for rr in self.records if rr.rname == name]
        cnames = [rr for rr in at_name if rr.rtype == QTYPE.CNAME]
        answers = cnames if cnames and qtype != QTYPE.CNAME else [
            rr for rr in at_name if rr.rtype == qtype or qtype == QTYPE.ANY
        ]
        for rr in answers:
            reply.add_answer(rr)
        if cnames and qtype != QTYPE.CNAME:  # follow one CNAME within the zone
            target = cnames[0].rdata.label
            for rr in self.records:
                if rr.rname == target and rr.rtype == qtype:
                    reply.add_answer(rr)
        if not answers and not self._exists(name):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class _TruncatingHandler(DNSHandler):  # type: ignore[misc]
    """Over UDP, an answer too long for 512 bytes becomes the header and the
    question with TC set, as a real server sends it (dnslib's own truncation
    drops the question, which clients reject as not answering theirs)."""

    def get_reply(self, data: bytes) -> bytes:
        reply = self.server.resolver.resolve(DNSRecord.parse(data), self)
        packed: bytes = reply.pack()
        if self.protocol == "udp" and len(packed) > UDP_LIMIT:
            header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap)
            header.tc = 1
            packed = DNSRecord(header, questions=list(reply.questions)).pack()
        return packed


class ZoneServer:
    """One resolver behind a UDP and a TCP server on the same loopback port."""

    def __init__(
        self, zone_text: str, servfail: Iterable[str] = (), silent: Iterable[str] = ()
    ) -> None:
        self.resolver = ZoneResolver(zone_text, servfail, silent)
        logger = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
        for _attempt in range(20):
            udp = DNSServer(self.resolver, address="127.0.0.1", port=0, logger=logger,
                            handler=_TruncatingHandler)
            self.port = int(udp.server.server_address[1])
            try:
                tcp = DNSServer(self.resolver, address="127.0.0.1", port=self.port, tcp=True,
                                logger=logger, handler=_TruncatingHandler)
            except OSError as exc:
                udp.server.server_close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            break
        else:
            raise RuntimeError("no free port for both UDP and TCP")
        self.servers = [udp, tcp]
        for server in self.servers:
            # A short poll, so that close() returns at once rather than in 0.5 s.
            thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()


@pytest.fixture
def dns_zone() -> Iterator[Callable[..., str]]:
    """Serve zone text on a fresh loopback port; return ``127.0.0.1:PORT``."""
    started: list[ZoneServer] = []

    def serve(zone_text: str, servfail: Iterable[str] = (), silent: Iterable[str] = ()) -> str:
        server = ZoneServer(zone_text, servfail, silent)
        started.append(server)
        return server.address

    yield serve
    for server in started:
        server.close()


@pytest.fixture
def silent_dns() -> Iterator[str]:
    """A UDP port that takes queries and never answers (nothing on TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


SETUP_DNS: dict[str, str] = {}
"""The name server `publish setup ses` asks for the domain's DMARC policy
in a test that is not about DNS (:func:`empty_dns`), never the machine's."""


@pytest.fixture
def empty_dns(dns_zone: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A zone without a record, for :func:`setup_ses_args`; its address."""
    address = dns_zone("")
    monkeypatch.setitem(SETUP_DNS, "nameserver", address)
    return address


def setup_ses_args(*args: str) -> list[str]:
    """`publish setup ses ARGS`, its DMARC policy read from :func:`empty_dns`."""
    return ["setup", "ses", "--nameserver", SETUP_DNS["nameserver"], *args]
