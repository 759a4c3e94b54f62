"""The memory transport on its own, and as the send loop's transport: it
keeps what it accepts, hands out unique ids from many threads, lets its
hooks fail or slow a call, and knows afterwards what it accepted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from pipeline.publish import SendOptions, prepare_send
from pipeline.transports.base import (
    OutgoingMessage,
    Quota,
    QuotaExhausted,
    Rejected,
    SendingStopped,
    TemporaryFailure,
    Throttled,
)
from pipeline.transports.memory import MemoryTransport
from subscribers.store import Store

ISSUE = "2026-12-01-calf-stretch.md"


def message_id(recipient: str, number: int) -> str:
    return f"<{number}.{recipient.partition('@')[0]}@memory.test>"


def message(recipient: str = "reader@example.com", number: int = 1) -> OutgoingMessage:
    built = EmailMessage()
    built["From"] = "Pain Free Living <newsletter@example.com>"
    built["To"] = recipient
    built["Subject"] = "Calf stretch"
    built["Message-ID"] = message_id(recipient, number)
    built.set_content("Hello")
    return OutgoingMessage.from_email_message(built)


def test_every_accepted_message_is_kept_in_order_with_its_id():
    transport = MemoryTransport()
    sent = [message(f"r{i}@example.com", i) for i in range(5)]
    ids = [transport.send(m) for m in sent]

    assert transport.outbox == sent
    assert transport.ids == ids
    assert transport.count == 5
    assert all(i.startswith("memory-") for i in ids)


def test_ids_are_unique_across_sends_and_across_transports():
    first, second = MemoryTransport(), MemoryTransport()
    ids = [first.send(message(number=i)) for i in range(50)]
    ids += [second.send(message(number=i)) for i in range(50)]
    assert len(set(ids)) == 100, "a resumed run's new transport repeats no earlier id"


def test_concurrent_sends_lose_nothing_and_share_no_id():
    transport = MemoryTransport()
    addresses = [f"r{i:04d}@example.com" for i in range(2000)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda a: transport.send(message(a)), addresses))

    assert transport.count == 2000
    assert len(set(ids)) == 2000
    assert Counter(m.recipient for m in transport.outbox) == Counter(addresses)
    assert sorted(transport.ids) == sorted(ids)


@pytest.mark.parametrize(
    "error", [Throttled, QuotaExhausted, Rejected, TemporaryFailure, SendingStopped]
)
def test_what_the_hook_raises_reaches_the_caller_and_nothing_is_kept(error):
    def refuse(outgoing: OutgoingMessage) -> None:
        if outgoing.recipient == "bad@example.com":
            raise error(f"{outgoing.recipient} refused")

    transport = MemoryTransport(before_send=refuse)
    transport.send(message("good@example.com"))
    with pytest.raises(error, match=r"bad@example\.com refused"):
        transport.send(message("bad@example.com"))

    assert [m.recipient for m in transport.outbox] == ["good@example.com"]
    assert transport.count == 1


def test_the_delay_is_taken_by_each_call_and_calls_overlap():
    transport = MemoryTransport(delay=0.2)
    started = time.monotonic()
    threads = [threading.Thread(target=transport.send, args=(message(number=i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert transport.count == 4
    assert 0.2 <= elapsed < 0.75, "four calls in flight at once, not one after another"


def test_the_quota_is_unlimited_unless_given():
    assert MemoryTransport().quota() == Quota()
    limited = Quota(max_rate=14, max_24h=200, sent_24h=20)
    assert MemoryTransport(quota=limited).quota() is limited


def test_accepted_finds_by_message_id_what_it_accepted_and_nothing_else():
    transport = MemoryTransport(before_send=lambda m: _refuse_if(m, "bad@example.com"))
    kept = message("alex@example.com", 1)
    provider_id = transport.send(kept)
    with pytest.raises(Rejected):
        transport.send(message("bad@example.com", 2))
    wanted = {
        message_id("alex@example.com", 1): "alex@example.com",
        message_id("bad@example.com", 2): "bad@example.com",
        message_id("never@example.com", 3): "never@example.com",
    }

    assert transport.records_all_accepted
    assert transport.accepted(wanted) == {message_id("alex@example.com", 1): provider_id}
    assert transport.accepted({}) == {}


def _refuse_if(outgoing: OutgoingMessage, address: str) -> None:
    if outgoing.recipient == address:
        raise Rejected(f"{address} refused")


def test_without_records_it_keeps_messages_but_settles_nothing():
    transport = MemoryTransport(records=False)
    transport.send(message("alex@example.com", 1))

    assert not transport.records_all_accepted
    assert transport.accepted({message_id("alex@example.com", 1): "alex@example.com"}) == {}
    assert [m.recipient for m in transport.outbox] == ["alex@example.com"]


def test_without_keeping_it_only_counts():
    transport = MemoryTransport(keep=False)
    ids = [transport.send(message(number=i)) for i in range(10)]

    assert transport.count == 10 and len(set(ids)) == 10
    assert transport.outbox == [] and transport.ids == []
    assert not transport.records_all_accepted
    assert transport.accepted({message_id("reader@example.com", 1): "reader@example.com"}) == {}


def test_the_send_loop_records_what_the_memory_transport_accepted_and_refused(settings):
    addresses = [f"reader{i:04d}@example.com" for i in range(8)]
    with Store.open(settings.database_url, settings.root) as store:
        for address in addresses:
            store.add(address)
    transport = MemoryTransport(before_send=lambda m: _refuse_if(m, "reader0003@example.com"))
    options = SendOptions(transport=transport.name)
    with prepare_send(settings, settings.issues_dir / ISSUE, options) as prepared:
        result = prepared.run(transport=transport)

    assert result.outcome == "done"
    assert (result.sent, result.failed) == (7, 1)
    delivered = [a for a in addresses if a != "reader0003@example.com"]
    assert Counter(m.recipient for m in transport.outbox) == Counter(delivered)
    # Its record reads the Message-IDs of the personalized messages it took.
    parser = BytesParser(policy=policy.default)
    wanted = {str(parser.parsebytes(m.raw)["Message-ID"]): m.recipient for m in transport.outbox}
    assert transport.accepted(wanted) == dict(zip(wanted, transport.ids, strict=True))
