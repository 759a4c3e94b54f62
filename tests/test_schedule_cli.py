"""Scheduled issues are visible and can be cancelled: `publish schedule`
lists them with their times and states, `publish unschedule` comments out
one's publish_at (nothing else in the file changes) unless its send began,
and `publish status` shows each one with the time it goes."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import PublishError
from pipeline.publish import SendOptions, prepare_send
from pipeline.schedule import send_due
from pipeline.unschedule import unschedule
from subscribers.db import connect
from subscribers.ledger import Ledger
from subscribers.store import Store

runner = CliRunner()
CALF = "2026-12-01-calf-stretch.md"
DESK = "2026-12-15-desk-wrist-routine.md"
LATER = "2027-01-05T07:00:00+01:00"
STAMP = rb"  # unscheduled \d{4}-\d\d-\d\d \d\d:\d\d UTC"


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def readers(settings) -> list[str]:
    addresses = [f"reader{i}@example.com" for i in range(6)]
    with Store.open(settings.database_url, settings.root) as store:
        for address in addresses:
            store.add(address)
    return addresses


def schedule(path, line: str) -> None:
    head, rest = path.read_text(encoding="utf-8").split("\n", 1)
    assert head == "---"
    path.write_text(f"---\n{line}\n{rest}", encoding="utf-8")


def sends(settings):
    engine = connect(settings.database_url, settings.root)
    try:
        return Ledger(engine).sends()
    finally:
        engine.dispose()


def outbox_count(settings) -> int:
    return len(list(settings.outbox_dir.glob("*.eml"))) if settings.outbox_dir.exists() else 0


def start_and_interrupt(settings, name: str) -> None:
    """A send that began and was interrupted before its first message."""
    stop = threading.Event()
    stop.set()
    with prepare_send(settings, settings.issues_dir / name, SendOptions()) as prepared:
        assert prepared.run(stop=stop).outcome == "interrupted"


# -- publish schedule ------------------------------------------------------------


def test_nothing_is_scheduled(settings):
    result = run("schedule")
    assert result.exit_code == 0, result.output
    assert result.stdout == "nothing is scheduled\n"
    assert json.loads(run("schedule", "--json").stdout) == []


def test_schedule_lists_each_issue_by_time_in_utc_and_as_written(settings):
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).replace(microsecond=0)
    schedule(settings.issues_dir / DESK, f"publish_at: {LATER}")
    schedule(settings.issues_dir / CALF, f"publish_at: {earlier.isoformat()}")

    result = run("schedule")

    assert result.exit_code == 0, result.output
    calf, desk = result.stdout.splitlines()
    assert calf.startswith("calf-stretch ") and calf.endswith(f"issues/{CALF}  due now")
    assert f"{earlier:%Y-%m-%d %H:%M} UTC ({earlier.isoformat()})" in calf
    assert desk.startswith("desk-wrist-routine ")
    assert f"2027-01-05 06:00 UTC ({LATER})  issues/{DESK}  waiting" in desk

    data = json.loads(run("schedule", "--json").stdout)
    assert [(item["issue"], item["state"]) for item in data] == [
        ("calf-stretch", "due now"),
        ("desk-wrist-routine", "waiting"),
    ]
    assert data[1] == {
        "issue": "desk-wrist-routine",
        "path": f"issues/{DESK}",
        "status": "scheduled",
        "publish_at": "2027-01-05T06:00:00+00:00",
        "publish_at_as_written": LATER,
        "state": "waiting",
        "reason": "",
    }


def test_schedule_says_why_publish_due_would_refuse(settings):
    desk = settings.issues_dir / DESK
    schedule(desk, f"publish_at: {LATER}")
    desk.write_text(desk.read_text(encoding="utf-8") + "\nSee [the forum]() for more.\n")
    schedule(settings.issues_dir / CALF, f"publish_at: {LATER}\ncolour: blue")

    data = {item["issue"]: item for item in json.loads(run("schedule", "--json").stdout)}

    assert data["desk-wrist-routine"]["state"] == "refused"
    assert data["desk-wrist-routine"]["reason"].startswith(f"issues/{DESK}:")
    assert "empty target" in data["desk-wrist-routine"]["reason"]
    assert data["calf-stretch"]["state"] == "refused"
    assert data["calf-stretch"]["reason"].startswith(f"issues/{CALF}:3: ")
    assert "colour" in data["calf-stretch"]["reason"]
    assert data["calf-stretch"]["publish_at"] == "2027-01-05T06:00:00+00:00"
    assert "  refused: issues/" in run("schedule").stdout


def test_a_started_send_is_sending_and_a_finished_one_is_gone(settings, readers):
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(settings.issues_dir / CALF, f"publish_at: {earlier.isoformat()}")
    start_and_interrupt(settings, CALF)

    [item] = json.loads(run("schedule", "--json").stdout)
    assert (item["issue"], item["state"], item["status"]) == (
        "calf-stretch",
        "sending",
        "interrupted",
    )

    assert run("due").exit_code == 0
    assert outbox_count(settings) == len(readers)
    assert run("schedule").stdout == "nothing is scheduled\n"


# -- publish unschedule ----------------------------------------------------------


def test_unschedule_comments_out_publish_at_and_keeps_every_other_byte(settings, readers):
    path = settings.issues_dir / DESK
    text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
    head, rest = text.split("\r\n", 1)
    original = f"\ufeff{head}\r\npublish_at: {LATER}   \r\n{rest}  ".encode()
    path.write_bytes(original)
    path.chmod(0o640)
    assert json.loads(run("schedule", "--json").stdout)[0]["state"] == "waiting"

    result = run("unschedule", "desk-wrist-routine")

    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith(f"unscheduled desk-wrist-routine: publish_at {LATER}")
    after = path.read_bytes()
    before_lines, after_lines = original.splitlines(True), after.splitlines(True)
    assert len(after_lines) == len(before_lines)
    assert [a for a, b in zip(after_lines, before_lines, strict=True) if a != b] == [
        after_lines[1]
    ]
    expected = rb"# publish_at: " + re.escape(LATER.encode()) + STAMP + rb"\r\n"
    assert re.fullmatch(expected, after_lines[1]), after_lines[1]
    assert path.stat().st_mode & 0o777 == 0o640
    assert run("schedule").stdout == "nothing is scheduled\n"

    # Taking the "# " away schedules it again.
    path.write_bytes(after.replace(b"# publish_at:", b"publish_at:", 1))
    assert json.loads(run("schedule", "--json").stdout)[0]["state"] == "waiting"
    assert run("check", str(path)).exit_code == 0


def test_an_unscheduled_due_issue_is_not_sent(settings, readers):
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(settings.issues_dir / CALF, f"publish_at: {earlier.isoformat()}")

    assert run("unschedule", CALF).exit_code == 0
    result = run("due")

    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert outbox_count(settings) == 0 and sends(settings) == []


def test_unschedule_refuses_a_send_that_began_or_finished(settings, readers):
    path = settings.issues_dir / CALF
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(path, f"publish_at: {earlier.isoformat()}")
    start_and_interrupt(settings, CALF)
    before = path.read_bytes()

    sending = run("unschedule", "calf-stretch")

    assert sending.exit_code == 1
    assert sending.stderr.startswith("error: calf-stretch: already sending since ")
    assert sending.stderr.count("\n") == 1
    assert "it cannot be unscheduled; `publish status calf-stretch` shows where it is" in (
        sending.stderr
    )
    assert path.read_bytes() == before

    assert run("due").exit_code == 0
    sent = run("unschedule", "calf-stretch")
    assert sent.exit_code == 1
    assert sent.stderr.startswith("error: calf-stretch: already sent on ")
    assert path.read_bytes() == before


def test_unschedule_refuses_an_issue_not_scheduled_or_unknown(settings):
    path = settings.issues_dir / CALF
    before = path.read_bytes()

    not_scheduled = run("unschedule", "calf-stretch")
    assert not_scheduled.exit_code == 1
    assert not_scheduled.stderr == (
        f"error: issues/{CALF}: not scheduled (its front matter has no publish_at)\n"
    )
    assert path.read_bytes() == before

    unknown = run("unschedule", "no-such-issue")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: no-such-issue: no such issue file\n"


def test_a_send_begun_while_unscheduling_is_said_and_the_file_put_back(settings, readers):
    path = settings.issues_dir / DESK
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(path, f"publish_at: {earlier.isoformat()}")
    before = path.read_bytes()
    stop = threading.Event()
    stop.set()

    def publish_due_wins() -> None:
        with prepare_send(settings, path, SendOptions()) as prepared:
            prepared.run(stop=stop)

    with pytest.raises(PublishError) as refused:
        unschedule(settings, DESK, after_write=publish_due_wins)

    assert "`publish due` began sending it at " in str(refused.value)
    assert "it was not unscheduled (the file is as it was)" in str(refused.value)
    assert path.read_bytes() == before


def test_an_issue_unscheduled_once_found_due_is_not_sent(settings, readers):
    path = settings.issues_dir / DESK
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(path, f"publish_at: {earlier.isoformat()}")

    def editor_unschedules(item) -> None:
        unschedule(settings, item.slug)

    [result] = send_due(settings, SendOptions(), on_start=editor_unschedules)

    assert result.result is None and not result.error
    assert "it was unscheduled" in result.passed
    assert outbox_count(settings) == 0 and sends(settings) == []


def test_unschedule_is_refused_while_publish_due_is_between_the_file_and_the_send(
    settings, readers, monkeypatch
):
    """`publish due` has read the file and not yet recorded the send: an
    unschedule that went ahead here would be told "unscheduled" while the
    send still began. It is refused instead, and the file is left alone."""
    from pipeline.publish import PreparedSend

    path = settings.issues_dir / DESK
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    schedule(path, f"publish_at: {earlier.isoformat()}")
    before = path.read_bytes()
    between, go = threading.Event(), threading.Event()
    build_site = PreparedSend._build_site

    def paused(self, *args, **kwargs):  # the last step before the ledger records the send
        between.set()
        assert go.wait(60)
        return build_site(self, *args, **kwargs)

    monkeypatch.setattr(PreparedSend, "_build_site", paused)
    results: list = []
    due = threading.Thread(target=lambda: results.extend(send_due(settings, SendOptions())))
    due.start()
    try:
        assert between.wait(60)
        with pytest.raises(PublishError) as refused:
            unschedule(settings, DESK)
    finally:
        go.set()
        due.join(60)

    assert "`publish due` is sending it right now: it cannot be unscheduled" in str(refused.value)
    assert path.read_bytes() == before
    [result] = results
    assert result.result is not None and result.result.sent == len(readers)


# -- publish status --------------------------------------------------------------


def test_status_shows_each_scheduled_issue_with_its_time(settings, readers):
    schedule(settings.issues_dir / DESK, f"publish_at: {LATER}")
    assert run("issue", CALF, "--yes").exit_code == 0

    listing = run("status")
    assert listing.exit_code == 0, listing.output
    scheduled, sent = listing.stdout.splitlines()
    assert scheduled.startswith("desk-wrist-routine ")
    assert f"scheduled to go 2027-01-05 06:00 UTC ({LATER}): waiting" in scheduled
    assert sent.startswith("calf-stretch ") and " done " in sent

    one = run("status", "desk-wrist-routine")
    assert one.exit_code == 0, one.output
    assert f"goes:      2027-01-05 06:00 UTC ({LATER})" in one.stdout
    assert "state:     waiting" in one.stdout

    data = json.loads(run("status", "--json").stdout)
    assert [(item["issue"], item["status"]) for item in data] == [
        ("desk-wrist-routine", "scheduled"),
        ("calf-stretch", "done"),
    ]
    assert data[0]["publish_at"] == "2027-01-05T06:00:00+00:00"
    assert json.loads(run("status", DESK, "--json").stdout)["state"] == "waiting"
