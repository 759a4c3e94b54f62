"""`publish subscribers erase`: after it, nothing under the newsletter's root
holds the address or the name: not the database (its free pages and WAL
included), not the outbox, not the recovery files, not an export the tool
wrote. Only a suppression hash is left, salted per newsletter."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.transports.base import OutgoingMessage
from pipeline.transports.outbox import OutboxTransport
from subscribers.models import email_key

runner = CliRunner()

ADDRESS = "Zebulon.Quist@Example.com"
NAME = "Zebulon Quist"
NEEDLES = (b"zebulon.quist@example.com", b"zebulon quist", b"zebulon.quist")


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def traces(root: Path) -> list[str]:
    """Files under ``root`` whose bytes hold the address or the name, in any case."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes().lower()
            if any(needle in data for needle in NEEDLES):
                found.append(str(path.relative_to(root)))
    return found


def test_erase_leaves_no_trace_anywhere_under_the_root(newsletter):
    run("subscribers", "add", "first@example.com")
    # Another process with the database open (publish serve, say) keeps the
    # write-ahead log from being removed when each command ends.
    holder = sqlite3.connect(newsletter / "subscribers.db")
    holder.execute("SELECT count(*) FROM subscribers").fetchall()
    run("subscribers", "add", ADDRESS, "--name", NAME)
    run("subscribers", "add", "stays@example.com", "--name", "Stays Here")
    run("issue", "issues/2026-12-01-calf-stretch.md", "--yes")
    (newsletter / "exports").mkdir()
    run("subscribers", "export", "-o", "exports/everyone.csv")
    run("subscribers", "export", "-o", "backup.csv")
    # A recovery file of a send whose results the database would not take.
    recovery = newsletter / "recovery" / "send-1.host-1.json"
    recovery.parent.mkdir()
    recovery.write_text(
        json.dumps(
            {
                "send_id": 1,
                "worker": "host-1",
                "outcomes": [
                    {
                        "row_id": 1,
                        "status": "sent",
                        "message_id": "20261201T000000-000000001-000001-zebulon.quist@example.com.eml",
                        "error": None,
                        "at": "2026-12-01T00:00:00+00:00",
                    }
                ],
            }
        )
    )
    assert traces(newsletter)  # the address was there to erase

    assert (newsletter / "subscribers.db-wal").stat().st_size > 0

    result = run("subscribers", "erase", ADDRESS.lower(), "--yes")

    assert traces(newsletter) == []
    holder.close()
    assert "1 outbox file" in result.output and "2 exports" in result.output
    # Everyone else is untouched: their mail, their export rows.
    assert "stays@example.com" in (newsletter / "backup.csv").read_text()
    outbox = list((newsletter / "outbox").glob("*.eml"))
    assert len(outbox) == 2 and all(b"zebulon" not in p.read_bytes().lower() for p in outbox)
    assert json.loads(recovery.read_text())["outcomes"][0]["status"] == "sent"
    # And the address stays suppressed: it cannot be added back by accident.
    again = runner.invoke(app, ["subscribers", "add", ADDRESS])
    assert again.exit_code == 1 and "erased" in again.output


def test_the_suppression_hash_is_salted_per_newsletter(tmp_path, monkeypatch):
    from tests.support.newsletter import copy_newsletter

    hashes = []
    for name in ("one", "two"):
        root = copy_newsletter(tmp_path / name)
        monkeypatch.chdir(root)
        run("subscribers", "add", ADDRESS)
        run("subscribers", "erase", ADDRESS, "--yes")
        with sqlite3.connect(root / "subscribers.db") as conn:
            [(value,)] = conn.execute("SELECT email_hash FROM suppressions").fetchall()
        hashes.append(value)
    plain = hashlib.sha256(email_key(ADDRESS).encode()).hexdigest()
    assert plain not in hashes  # a dictionary of addresses does not reverse them
    assert hashes[0] != hashes[1]


def test_outbox_file_names_carry_no_address(tmp_path):
    raw = (
        b"From: news@example.com\r\nTo: zebulon.quist@example.com\r\n"
        b"Message-ID: <abc123@example.com>\r\nSubject: Hi\r\n\r\nHello\r\n"
    )
    sent = OutgoingMessage("news@example.com", "zebulon.quist@example.com", raw)
    transport = OutboxTransport(tmp_path)
    name = transport.send(sent)
    assert "zebulon" not in name and "@" not in name
    message_id = "<abc123@example.com>"
    assert transport.accepted({message_id: "zebulon.quist@example.com"}) == {message_id: name}
    assert transport.accepted({"<other@x>": "zebulon.quist@example.com"}) == {}



def test_an_erase_that_cannot_empty_the_log_says_so_and_finishes_when_run_again(newsletter):
    run("subscribers", "add", ADDRESS, "--name", NAME)
    reader = sqlite3.connect(newsletter / "subscribers.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM subscribers").fetchall()  # holds a snapshot

    held = runner.invoke(app, ["subscribers", "erase", ADDRESS, "--yes"])

    assert held.exit_code == 1
    assert "write-ahead log still holds the erased rows" in held.output
    assert "erased zebulon.quist@example.com" in held.output.lower()
    reader.execute("COMMIT")
    reader.close()
    again = run("subscribers", "erase", ADDRESS, "--yes")
    assert "was not on the list" in again.output
    assert traces(newsletter) == []


def test_emptying_the_log_leaves_the_engine_s_own_busy_wait(tmp_path):
    """The checkpoint waits less than usual for readers; the pooled
    connection then keeps the wait its engine was made with."""
    from subscribers import db

    engine = db.connect("sqlite:///subscribers.db", tmp_path, busy_timeout=0.25)
    try:
        assert db.forget_deleted(engine) is True
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 250
    finally:
        engine.dispose()
