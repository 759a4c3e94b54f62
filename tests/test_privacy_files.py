"""Files and logs keep readers' data private: the subscriber database is
its owner's alone, and the access log carries neither tokens nor, unless a
setting asks for them, client addresses."""

from __future__ import annotations

import os
import signal
import stat

import httpx
import pytest

from subscribers.db import connect
from subscribers.store import Store
from subscribers.tokens import Signer
from tests.test_serve_processes import serving, wait_until


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_are_owner_only(tmp_path):
    previous = os.umask(0o022)
    try:
        engine = connect("sqlite:///subscribers.db", tmp_path)
        with Store(engine) as store:
            store.add("reader@example.com")
            files = sorted(tmp_path.glob("subscribers.db*"))
            assert {p.name for p in files} >= {"subscribers.db", "subscribers.db-wal"}
            for path in files:
                assert mode(path) == 0o600, (path.name, oct(mode(path)))
        engine.dispose()
    finally:
        os.umask(previous)


def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path):
    engine = connect("sqlite:///subscribers.db", tmp_path)
    engine.dispose()
    (tmp_path / "subscribers.db").chmod(0o640)
    connect("sqlite:///subscribers.db", tmp_path).dispose()
    assert mode(tmp_path / "subscribers.db") == 0o640


def token_for(root, secret: str) -> str:
    with Store.open("sqlite:///subscribers.db", root) as store:
        reader = store.add("reader@example.com")
    return Signer(secret).unsubscribe(reader.id)


SECRET = "access-log-secret-QmV4Ywq3ZpL9rT2u"


@pytest.mark.parametrize("log_ips", [False, True])
def test_the_access_log_has_no_tokens_and_addresses_only_when_asked(newsletter, log_ips):
    token = token_for(newsletter, SECRET)
    environment = {"NEWSLETTER_TOKEN_SECRET": SECRET}
    if log_ips:
        environment["NEWSLETTER_LOG_IPS"] = "true"
    with serving(newsletter, environment) as serve:
        assert httpx.get(f"{serve.url}/unsubscribe/{token}", timeout=10).status_code == 200
        assert httpx.get(f"{serve.url}/confirm/{token}x", timeout=10).status_code in (200, 400, 404)
        wait_until(lambda: serve.output().count("/unsubscribe/") >= 1, 10, serve.output)
        os.killpg(serve.pid, signal.SIGTERM)
        serve.process.wait(timeout=30)
    output = serve.output()
    access = [line for line in output.splitlines() if "HTTP/1.1" in line]
    assert any("/unsubscribe/" in line for line in access), output
    assert token not in output
    assert any("GET /unsubscribe/… HTTP/1.1" in line for line in access), access
    assert ("127.0.0.1:" in "\n".join(access)) is log_ips, access


def test_outbox_files_and_their_folder_are_owner_only(tmp_path):
    from pipeline.transports.base import OutgoingMessage
    from pipeline.transports.outbox import OutboxTransport

    previous = os.umask(0o022)
    try:
        outbox = OutboxTransport(tmp_path / "outbox")
        message = OutgoingMessage(
            "news@example.com", "reader@example.com", b"Subject: hi\r\n\r\nhello\r\n"
        )
        name = outbox.send(message)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "outbox") == 0o700
    assert mode(tmp_path / "outbox" / name) == 0o600
