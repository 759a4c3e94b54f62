"""`publish issue`, `publish due` and `publish status` through Typer's
CliRunner, and the README's quick start as real processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from subscribers.store import Store
from tests.support.newsletter import copy_newsletter

runner = CliRunner()
ISSUE = "issues/2026-12-01-calf-stretch.md"
REPO = Path(__file__).resolve().parent.parent


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


@pytest.fixture
def readers(settings) -> list[str]:
    addresses = [f"reader{i}@example.com" for i in range(8)]
    with Store.open(settings.database_url, settings.root) as store:
        for i, address in enumerate(addresses):
            store.add(address, name=f"Reader {i}")
    return addresses


def outbox(settings) -> list:
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(settings.outbox_dir.glob("*.eml"))]


def recipients(settings) -> Counter:
    return Counter(m["To"].addresses[0].addr_spec for m in outbox(settings))


def test_issue_sends_to_everyone_once_and_again_sends_nothing(settings, readers):
    result = run("issue", ISSUE)
    assert result.exit_code == 0, result.output
    assert "calf-stretch: sent 8, failed 0, skipped 0" in result.stdout
    assert recipients(settings) == Counter(readers)

    again = run("issue", "calf-stretch")
    assert again.exit_code == 0, again.output
    assert "nothing left to send" in again.stdout
    assert recipients(settings) == Counter(readers)


def test_status_shows_totals_and_json(settings, readers):
    run("issue", ISSUE)
    listing = run("status")
    assert listing.exit_code == 0
    assert "calf-stretch" in listing.stdout and "8/8 sent" in listing.stdout

    detail = run("status", "calf-stretch")
    assert "recipients: 8: 8 sent, 0 failed" in detail.stdout

    data = json.loads(run("status", ISSUE, "--json").stdout)
    assert data["issue"] == "calf-stretch" and data["status"] == "done"
    assert data["totals"] == {
        "total": 8, "sent": 8, "failed": 0, "skipped": 0, "pending": 0, "sending": 0,
    }
    assert data["failures"] == [] and data["seconds_left"] == 0.0
    everything = json.loads(run("status", "--json").stdout)
    assert [item["issue"] for item in everything] == ["calf-stretch"]


def test_status_lists_failures_with_reasons(ses, settings, readers):
    ses.reject("reader3@example.com", "Email address is not verified.")
    result = run("issue", ISSUE, "--transport", "ses")
    assert result.exit_code == 1, "a failed recipient is worth a non-zero exit"
    assert "failed 1" in result.stdout
    detail = run("status", "calf-stretch")
    assert "1 x SES MessageRejected: Email address is not verified." in detail.stdout
    assert "reader3@example.com" in detail.stdout
    data = json.loads(run("status", "calf-stretch", "--json").stdout)
    assert data["failures"][0]["examples"] == ["reader3@example.com"]


def test_status_of_an_issue_never_sent(settings):
    result = run("status", "calf-stretch")
    assert result.exit_code == 1
    assert "never sent" in result.stderr
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_test_to_sends_one_preview_and_touches_no_ledger(settings, readers):
    result = run("issue", ISSUE, "--test-to", "editor@example.com")
    assert result.exit_code == 0, result.output
    [message] = outbox(settings)
    assert message["To"].addresses[0].addr_spec == "editor@example.com"
    assert str(message["Subject"]).startswith("[PREVIEW] An easy stretch")
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_dry_run_builds_everything_and_sends_nothing(settings, readers):
    result = run("issue", ISSUE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: built 8 messages for calf-stretch" in result.stdout
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.iterdir())
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_an_issue_with_lint_errors_is_refused(settings, readers):
    path = settings.issues_dir / "2026-12-01-calf-stretch.md"
    path.write_text(path.read_text() + "\nSee [the forum]() for more.\n")
    result = run("issue", ISSUE)
    assert result.exit_code == 1
    assert "error: " in result.stderr and "lint error" in result.stderr
    assert "2026-12-01-calf-stretch.md:" in result.stderr  # the findings, located
    assert not settings.outbox_dir.exists()
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_an_interactive_send_asks_first(settings, readers, monkeypatch):
    monkeypatch.setattr("pipeline.cli.sending.is_tty", lambda: True)
    declined = run("issue", ISSUE, input="n\n")
    assert declined.exit_code == 1
    assert "to 8 subscribers through outbox?" in declined.stdout
    assert not settings.outbox_dir.exists()

    accepted = run("issue", ISSUE, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert len(outbox(settings)) == 8

    monkeypatch.setattr("pipeline.cli.sending.is_tty", lambda: True)
    assert "nothing left" in run("issue", ISSUE, "--yes").stdout


def _with_publish_at(text: str, moment: dt.datetime) -> str:
    head, rest = text.split("\n", 1)
    assert head == "---"
    return f"---\npublish_at: {moment.isoformat()}\n{rest}"


def test_a_scheduled_issue_waits_for_publish_due(settings, readers):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    path = settings.issues_dir / "2026-12-15-desk-wrist-routine.md"
    path.write_text(_with_publish_at(path.read_text(), later))

    result = run("issue", str(path))
    assert result.exit_code == 0, result.output
    assert "is scheduled for" in result.stdout and "publish due" in result.stdout
    assert not settings.outbox_dir.exists()

    due = run("due")
    assert due.exit_code == 0 and due.stdout == ""
    assert not settings.outbox_dir.exists()


def test_publish_due_sends_what_is_due_once(settings, readers):
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    path = settings.issues_dir / "2026-12-15-desk-wrist-routine.md"
    path.write_text(_with_publish_at(path.read_text(), earlier))

    first = run("due")
    assert first.exit_code == 0, first.output
    assert "due since" in first.stdout and "(new)" in first.stdout
    assert recipients(settings) == Counter(readers)
    second = run("due")
    assert second.exit_code == 0 and second.stdout == ""
    assert recipients(settings) == Counter(readers), "nothing sent twice"


def test_overlapping_due_runs_never_double_send(settings, newsletter):
    with Store.open(settings.database_url, settings.root) as store:
        addresses = [store.add(f"reader{i:03d}@example.com").email for i in range(120)]
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    path = settings.issues_dir / "2026-12-15-desk-wrist-routine.md"
    path.write_text(_with_publish_at(path.read_text(), earlier))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", "due",
               "--rate", "100"]
    runs = [
        subprocess.Popen(command, cwd=newsletter, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    assert recipients(settings) == Counter(addresses)


def test_every_sending_command_has_an_example():
    import typer.core
    import typer.main

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    for name in ("issue", "due", "status"):
        help_text = group.commands[name].help or ""
        assert "Example: publish " + name in help_text


def test_readme_quick_start_from_a_fresh_copy(tmp_path):
    """`publish subscribers import subscribers/sample.csv && publish issue
    issues/2026-12-01-calf-stretch.md`, non-interactively, twice."""
    root = copy_newsletter(tmp_path / "clone")
    (root / "subscribers").mkdir()
    shutil.copy(REPO / "subscribers" / "sample.csv", root / "subscribers" / "sample.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "AWS_"))}

    def publish(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from pipeline.cli import main; main()", *args],
            cwd=root, env=env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL, check=False,
        )

    imported = publish("subscribers", "import", "subscribers/sample.csv")
    assert imported.returncode == 0, imported.stderr
    first = publish("issue", "issues/2026-12-01-calf-stretch.md")
    assert first.returncode == 0, first.stderr
    sent = len(list((root / "outbox").glob("*.eml")))
    assert sent > 0 and f"sent {sent}, failed 0" in first.stdout
    assert (root / "public" / "issues" / "calf-stretch" / "index.html").is_file()

    second = publish("issue", "issues/2026-12-01-calf-stretch.md")
    assert second.returncode == 0, second.stderr
    assert "nothing left to send" in second.stdout
    assert len(list((root / "outbox").glob("*.eml"))) == sent


def test_issue_through_an_smtp_relay(settings, readers, smtp_server, monkeypatch):
    from tests.support.smtp import SMTP_PASSWORD, SMTP_USER

    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("NEWSLETTER_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_server.cafile))  # trust the test certificate
    result = run("issue", ISSUE, "--transport", "smtp")
    assert result.exit_code == 0, result.output
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(readers)
    assert {m.login for m in smtp_server.messages} == {SMTP_USER}
    data = json.loads(run("status", "calf-stretch", "--json").stdout)
    assert data["transport"] == "smtp" and data["totals"]["sent"] == 8
