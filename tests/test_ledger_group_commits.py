"""A group commit of the ledger (results, then hand stamps) on SQLite and
PostgreSQL: sent rows get their ids and times whoever holds them, only rows
still this worker's are handed, a row sent in the same commit is not
handed; on PostgreSQL the usual commit (sent rows and stamps, fifty of each)
is one statement, and a claim's check for leavers one more."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from subscribers.ledger import Ledger, Outcome
from subscribers.schema import send_recipients
from subscribers.store import Store

AT = dt.datetime(2026, 12, 1, 7, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def started(store, count: int) -> tuple[Ledger, Ledger, int]:
    for i in range(count):
        store.add(f"r{i:04d}@example.com", name=f"R {i}")
    mine = Ledger(store.engine, worker="here:1:mine")
    theirs = Ledger(store.engine, worker="there:2:theirs")
    send, _ = mine.start("calf", "issues/calf.md", "Subject", "ses")
    return mine, theirs, send.id


def rows(store) -> dict[int, Any]:
    with store.engine.connect() as conn:
        return {row.id: row for row in conn.execute(select(send_recipients))}


def sent(claimed) -> list[Outcome]:
    return [Outcome(r.row_id, "sent", message_id=f"0100-{r.row_id:04d}", at=AT) for r in claimed]


def test_a_commit_records_the_sent_rows_and_hands_only_rows_still_held(store):
    mine, theirs, send_id = started(store, 10)
    claimed, _ = mine.claim(send_id, 8)
    others, _ = theirs.claim(send_id, 2)
    done, going = claimed[:4], claimed[4:]

    handed = mine.write(sent(done), hand=[r.row_id for r in going] + [others[0].row_id])

    assert handed == {r.row_id for r in going}, "another worker's row is never handed"
    table = rows(store)
    for row in done:
        got = table[row.row_id]
        assert (got.status, got.message_id, got.error) == ("sent", f"0100-{row.row_id:04d}", None)
        assert got.sent_at.replace(tzinfo=dt.UTC) == AT
    for row in going:
        assert table[row.row_id].status == "sending" and table[row.row_id].handed_at is not None
    assert table[others[0].row_id].handed_at is None
    later = theirs.write(sent(others[:1]), hand=[others[1].row_id])
    assert later == {others[1].row_id}
    assert rows(store)[others[0].row_id].status == "sent"


@pytest.mark.parametrize("with_a_failure", [False, True])
def test_a_row_sent_in_the_same_commit_is_not_handed(store, with_a_failure):
    mine, _theirs, send_id = started(store, 4)
    claimed, _ = mine.claim(send_id, 4)
    outcomes = sent(claimed[:2])
    if with_a_failure:
        outcomes.append(Outcome(claimed[3].row_id, "failed", error="SES MessageRejected: no"))

    handed = mine.write(outcomes, hand=[claimed[0].row_id, claimed[2].row_id])

    assert handed == {claimed[2].row_id}, "results first: a sent row is no longer sending"
    table = rows(store)
    assert table[claimed[0].row_id].status == "sent"
    assert table[claimed[0].row_id].handed_at is None
    if with_a_failure:
        assert table[claimed[3].row_id].status == "failed"


@pytest.mark.postgres
def test_on_postgresql_a_commit_of_fifty_is_one_statement(postgres_url, tmp_path):
    with Store.open(postgres_url, tmp_path) as store:
        mine, _theirs, send_id = started(store, 120)
        statements: list[str] = []
        event.listen(
            store.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
        claimed, _ = mine.claim(send_id, 100)
        claiming = list(statements)
        statements.clear()
        handed = mine.write(sent(claimed[:50]), hand=[r.row_id for r in claimed[50:]])

        assert len(handed) == 50
        assert len(statements) == 1, statements
        assert len(claiming) == 2, "the claim and its check for leavers, whatever their number"
        assert {row.status for row in rows(store).values()} == {"sent", "sending", "pending"}
