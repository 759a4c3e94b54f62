"""Nothing left unsent while a command exits 0: `publish due` takes up every
unfinished send, says what it could not send, and a slug that belongs to
another issue's send is refused before anything is recorded."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from email import policy
from email.parser import BytesParser

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.publish import SendOptions, prepare_send
from pipeline.schedule import send_due
from subscribers.db import connect
from subscribers.ledger import Ledger
from subscribers.store import Store

runner = CliRunner()
CALF = "2026-12-01-calf-stretch.md"
DESK = "2026-12-15-desk-wrist-routine.md"


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def readers(settings) -> list[str]:
    addresses = [f"reader{i:02d}@example.com" for i in range(25)]
    with Store.open(settings.database_url, settings.root) as store:
        for address in addresses:
            store.add(address)
    return addresses


def sends(settings):
    engine = connect(settings.database_url, settings.root)
    try:
        return Ledger(engine).sends()
    finally:
        engine.dispose()


def outbox_recipients(settings) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(p.read_bytes())["To"].addresses[0].addr_spec
        for p in settings.outbox_dir.glob("*.eml")
    )


def with_front(path, line: str) -> None:
    head, rest = path.read_text(encoding="utf-8").split("\n", 1)
    assert head == "---"
    path.write_text(f"---\n{line}\n{rest}", encoding="utf-8")


# -- an unfinished send is taken up, scheduled or not -------------------------


def test_publish_due_resumes_a_paused_send_that_was_never_scheduled(ses, settings, readers):
    ses.set_quota(max_rate=200, max_24h=10)
    path = settings.issues_dir / CALF
    with prepare_send(settings, path, SendOptions(transport="ses")) as prepared:
        first = prepared.run()
    assert first.outcome == "paused" and first.sent == 10
    assert first.paused_until is not None
    ses.set_quota(max_rate=200, max_24h=1000)
    options = SendOptions(transport="ses")

    early = send_due(settings, options, now=first.paused_until - dt.timedelta(minutes=1))
    assert early == []
    status = run("status")
    assert "15 left: publish due resumes it from" in status.stdout, status.stdout

    results = send_due(settings, options, now=first.paused_until + dt.timedelta(seconds=1))

    assert [(r.due.slug, r.due.reason, r.error) for r in results] == [("calf-stretch", "quota", "")]
    assert results[0].result is not None and results[0].result.outcome == "done"
    assert sorted(ses.recipients()) == readers


def test_publish_due_resumes_a_send_whose_run_stopped(settings, readers):
    stop = threading.Event()
    sent = 0

    def progress(p) -> None:
        nonlocal sent
        sent = p.sent
        if p.sent >= 5:
            stop.set()

    with prepare_send(settings, settings.issues_dir / CALF, SendOptions(rate=50)) as prepared:
        first = prepared.run(stop=stop, on_progress=progress)
    assert first.totals.left > 0, "the run must stop with recipients left"
    listing = run("status")
    assert "left by a run that stopped: the next publish due resumes it" in listing.stdout

    result = run("due")

    assert result.exit_code == 0, result.output
    assert "calf-stretch: due since" in result.stdout and "(resume)" in result.stdout
    assert outbox_recipients(settings) == Counter(readers)
    assert run("due").stdout == ""


def test_an_unfinished_send_whose_file_is_gone_is_reported(settings, readers):
    stop = threading.Event()
    stop.set()
    path = settings.issues_dir / CALF
    with prepare_send(settings, path, SendOptions()) as prepared:
        prepared.run(stop=stop)
    path.unlink()

    result = run("due")

    assert result.exit_code == 1
    assert f"calf-stretch: not sent: its issue file issues/{CALF} is gone" in result.stderr


# -- what `publish due` cannot send, it says --------------------------------------


def test_a_due_issue_with_a_front_matter_error_is_not_sent_and_exits_1(settings, readers):
    path = settings.issues_dir / DESK
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with_front(path, f"publish_at: {earlier.isoformat()}\ncolour: blue")

    result = run("due")

    assert result.exit_code == 1, result.output
    assert "desk-wrist-routine: not sent:" in result.stderr
    assert f"issues/{DESK}:3:" in result.stderr and "colour" in result.stderr
    assert not settings.outbox_dir.exists()
    assert sends(settings) == []


def test_a_due_issue_whose_front_matter_is_no_yaml_is_not_sent_and_exits_1(settings, readers):
    path = settings.issues_dir / DESK
    with_front(path, "publish_at: 2026-11-01T07:00:00+00:00\ntitle: Neck pain: a fix")

    result = run("due")

    assert result.exit_code == 1
    assert "not sent:" in result.stderr and f"issues/{DESK}:3:" in result.stderr


def test_broken_drafts_and_later_issues_are_not_due(settings, readers):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with_front(settings.issues_dir / DESK, f"publish_at: {later.isoformat()}\ncolour: blue")
    with_front(settings.issues_dir / CALF, "title: Neck pain: a fix")

    result = run("due")

    assert result.exit_code == 0, result.output
    assert result.output == ""


# -- a slug belongs to one issue --------------------------------------------------


def test_check_reports_two_files_with_one_slug_naming_both(settings):
    other = settings.issues_dir / "2027-01-05-calf-stretch-again.md"
    other.write_text((settings.issues_dir / DESK).read_text(encoding="utf-8"), encoding="utf-8")
    with_front(other, "slug: calf-stretch")

    result = run("check")

    assert result.exit_code == 1
    assert (
        f"issues/{CALF}:1: error: the slug 'calf-stretch' is also the slug of "
        f"issues/{other.name}"
    ) in result.stdout
    assert f"issues/{other.name}:1: error: the slug 'calf-stretch' is also the slug of issues/{CALF}" in result.stdout
    one = run("check", str(other))
    assert one.exit_code == 1 and f"also the slug of issues/{CALF}" in one.stdout


def test_another_file_with_a_sent_slug_is_refused_before_anything_is_recorded(settings, readers):
    assert run("issue", CALF, "--yes").exit_code == 0
    (settings.issues_dir / CALF).unlink()
    other = settings.issues_dir / "2027-01-05-calf-stretch-again.md"
    other.write_text((settings.issues_dir / DESK).read_text(encoding="utf-8"), encoding="utf-8")
    with_front(other, "slug: calf-stretch")
    before = sends(settings)

    for command in (["issue", str(other), "--yes"], ["issue", str(other), "--dry-run"]):
        result = run(*command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.strip().splitlines() == [
            f"error: issues/{other.name}: its slug 'calf-stretch' belongs to the send made from "
            f"issues/{CALF} on {before[0].created_at:%Y-%m-%d}; give this issue its own slug "
            "(a slug: line in its front matter)"
        ], command

    with_front(other, f"publish_at: {(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()}")
    due = run("due")
    assert due.exit_code == 1 and "belongs to the send made from" in due.stderr
    assert sends(settings) == before
    assert outbox_recipients(settings) == Counter(readers)


def test_the_same_issue_renamed_or_edited_still_resumes(settings, readers):
    stop = threading.Event()
    stop.set()
    path = settings.issues_dir / CALF
    with prepare_send(settings, path, SendOptions()) as prepared:
        prepared.run(stop=stop)
    assert sends(settings)[0].issue_digest

    renamed = settings.issues_dir / "2026-12-02-calf-stretch.md"
    path.rename(renamed)
    result = run("issue", str(renamed), "--yes")
    assert result.exit_code == 0, result.output
    assert outbox_recipients(settings) == Counter(readers)

    renamed.rename(path)
    path.write_text(path.read_text(encoding="utf-8").replace("calf", "Calf", 1), encoding="utf-8")
    again = run("issue", CALF, "--yes")
    assert again.exit_code == 0 and "nothing left to send" in again.stdout


def test_a_site_that_cannot_be_built_leaves_no_send_behind(settings, readers):
    settings.public_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.public_dir.write_text("not a folder", encoding="utf-8")

    result = run("issue", CALF, "--yes")

    assert result.exit_code == 1
    assert sends(settings) == []
    assert not settings.outbox_dir.exists()
    settings.public_dir.unlink()
    assert run("issue", DESK, "--yes").exit_code == 0
    assert run("issue", CALF, "--yes").exit_code == 0
    assert outbox_recipients(settings) == Counter({address: 2 for address in readers})
