"""`publish subscribers ...`, `publish db upgrade` and `publish serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import app
from subscribers import db
from subscribers.health import health
from subscribers.models import Stats, Status
from subscribers.store import Store
from tests.support.aws import free_port

SAMPLE = Path(__file__).resolve().parent.parent / "subscribers" / "sample.csv"
runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def opened(root: Path) -> Store:
    return Store.open("sqlite:///subscribers.db", root)


def test_import_the_sample_list_then_list_and_stats(newsletter):
    result = run("subscribers", "import", str(SAMPLE))
    assert result.exit_code == 0, result.output
    assert "25 rows: 25 added, 0 updated, 0 unchanged, 0 reactivated" in result.stderr
    again = run("subscribers", "import", str(SAMPLE))
    assert again.exit_code == 0 and "25 unchanged" in again.stderr

    listed = run("subscribers", "list", "--status", "unsubscribed")
    assert listed.exit_code == 0
    assert "nina.petrova@example.com" in listed.stdout and "maria" not in listed.stdout
    assert "3 subscribers" in listed.stderr
    assert len(run("subscribers", "list", "--limit", "2").stdout.strip().splitlines()) == 3

    stats = run("subscribers", "stats")
    assert stats.exit_code == 0
    assert "active        21" in stats.stdout and "total         25" in stats.stdout
    assert (newsletter / "subscribers.db").exists()


def test_a_bad_row_is_reported_by_line_and_fails_the_import(newsletter):
    path = newsletter / "list.csv"
    path.write_text("email,name\nok@example.com,Ok\nnope,No\nfine@example.com,\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert f"{path}:3: email: 'nope' is not valid" in result.stderr
    assert "2 added" in result.stderr and "1 failed" in result.stderr
    with opened(newsletter) as store:
        assert store.count() == 2


def test_a_file_in_the_wrong_encoding_imports_nothing(newsletter):
    path = newsletter / "latin.csv"
    path.write_bytes("email,name\nok@example.com,Jos\xe9\n".encode("latin-1"))
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}:2: not UTF-8 text; save the file as UTF-8, or name its encoding "
        "with --encoding (cp1252 for most spreadsheets saved on Windows)"
    )
    with opened(newsletter) as store:
        assert store.count() == 0
    named = run("subscribers", "import", str(path), "--encoding", "latin-1")
    assert named.exit_code == 0, named.output
    with opened(newsletter) as store:
        assert store.find("ok@example.com").name == "Jos\xe9"


def test_import_says_what_it_ignores_once_and_reads_other_separators(newsletter):
    path = newsletter / "export.csv"
    rows = "".join(f"r{n}@example.com|Reader {n}|blue|a,b\n" for n in range(30))
    path.write_text("Email Address|Name|Favourite colour|Tags\n" + rows)
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f'{path}: ignored columns: "Favourite colour", "Tags"',
        f"{path}: 30 rows: 30 added, 0 updated, 0 unchanged, 0 reactivated",
    ]
    forced = run("subscribers", "import", str(path), "--delimiter", ",")
    assert forced.exit_code == 1
    assert forced.stderr.startswith(f"error: {path}:1: no email column")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('email,name\na@example.com,"Ann\nb@example.com,Bob\n', ":2: unclosed quote: "),
        ("email,name\na@example.com," + "x" * 1_000_000 + "\nb@example.com,Bob\n",
         ":2: field too long"),
        ("email,name\na@example.com,\"A\"nn\nb@example.com,Bob\n", ":2: bad quoting: "),
    ],
    ids=["unclosed-quote", "huge-field", "text-after-a-quote"],
)
def test_a_malformed_row_is_one_line_and_fails_the_import(newsletter, content, expected):
    path = newsletter / "list.csv"
    path.write_text(content)
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{path}{expected}"), lines
    assert lines[1] == f"{path}: 2 rows: 1 added, 0 updated, 0 unchanged, 0 reactivated, 1 failed"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    with opened(newsletter) as store:
        assert [s.email for s in store.iter()] == ["b@example.com"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--encoding", "klingon", "error: --encoding: 'klingon' is not an encoding Python knows"),
        ("--delimiter", ";;", "error: --delimiter: ';;' is not one character"),
    ],
)
def test_a_wrong_import_option_is_one_line(newsletter, option, value, message):
    result = run("subscribers", "import", str(SAMPLE), option, value)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(message) and "\n" not in result.stderr.strip()


def test_add_show_remove_erase(newsletter):
    added = run("subscribers", "add", "Sam@Example.com", "--name", "Sam Reader")
    assert added.exit_code == 0 and added.stdout.strip() == "added Sam@example.com (active)"
    again = run("subscribers", "add", "sam@example.com")
    assert again.exit_code == 1
    assert again.stderr.strip() == "error: sam@example.com: already on the list (active)"
    bad = run("subscribers", "add", "not-an-address")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: email: 'not-an-address'")

    removed = run("subscribers", "remove", "SAM@example.com")
    assert removed.exit_code == 0 and "is unsubscribed" in removed.stdout
    shown = run("subscribers", "show", "sam@example.com")
    assert shown.exit_code == 0
    for text in ("Sam Reader", "unsubscribed", "Added by the editor", "subscribed", "via=cli"):
        assert text in shown.stdout, text

    refused = run("subscribers", "erase", "sam@example.com")  # no --yes, no terminal
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    erased = run("subscribers", "erase", "sam@example.com", "--yes")
    assert erased.exit_code == 0 and erased.stdout.startswith("erased sam@example.com")
    missing = run("subscribers", "show", "sam@example.com")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: sam@example.com: no such subscriber"
    comeback = run("subscribers", "add", "sam@example.com")
    assert comeback.exit_code == 1 and "was erased" in comeback.stderr


def test_add_with_a_status(newsletter):
    result = run("subscribers", "add", "p@example.com", "--status", "pending")
    assert result.exit_code == 0 and "(pending)" in result.stdout
    wrong = run("subscribers", "add", "q@example.com", "--status", "sleeping")
    assert wrong.exit_code == 2


def test_export_to_a_file_and_to_standard_output(newsletter):
    run("subscribers", "import", str(SAMPLE))
    out = newsletter / "out.csv"
    result = run("subscribers", "export", "-o", str(out))
    assert result.exit_code == 0 and "exported 25 subscribers" in result.stderr
    assert out.read_text().startswith("email,name,status,source,created_at")
    piped = run("subscribers", "export", "--status", "unsubscribed")
    assert piped.exit_code == 0
    assert len(piped.stdout.strip().splitlines()) == 4


def test_db_upgrade_names_the_revision(newsletter):
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    revision = db.head_revision()
    assert result.stdout.strip() == f"sqlite:///{newsletter}/subscribers.db is at revision {revision}"


def test_health_warnings_near_the_providers_limits():
    healthy = Stats(by_status={}, sent=10_000, bounced=100, complained=5)
    assert health(healthy) == []
    risky = Stats(by_status={}, sent=10_000, bounced=450, complained=9)
    warnings = [message for _, message in health(risky)]
    assert len(warnings) == 2
    assert "bounce rate 4.50%" in warnings[0] and "complaint rate 0.09%" in warnings[1]
    assert health(Stats(by_status={})) == []  # nothing sent, no rates


@pytest.mark.parametrize(
    ("args", "environment", "why"),
    [
        (["--host", "0.0.0.0"], {}, "a public host (0.0.0.0)"),
        ([], {"NEWSLETTER_DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}, "a database other"),
    ],
)
def test_serve_refuses_to_start_without_a_secret(newsletter, monkeypatch, args, environment, why):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = run("serve", *args)
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith("error: NEWSLETTER_TOKEN_SECRET is not set") and why in message
    assert "\n" not in message
    assert not (newsletter / ".secret").exists()


def test_serve_runs_the_embedded_demo(newsletter):
    """The real command in its own process: it answers, and mails into outbox/."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "serve", "--port", str(port)],
        cwd=newsletter, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert page.status_code == 200 and "server" not in page.headers
        response = httpx.post(
            f"http://127.0.0.1:{port}/subscribe", data={"email": "demo@example.com"}, timeout=5
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 20
        while not list((newsletter / "outbox").glob("*.eml")):
            assert time.monotonic() < deadline, "no confirmation in the outbox"
            time.sleep(0.05)
        assert (newsletter / ".secret").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with opened(newsletter) as store:
        assert store.find("demo@example.com").status == Status.PENDING


def _commands(group, prefix):
    for name, command in sorted(group.commands.items()):
        if getattr(command, "commands", None):
            yield from _commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


@pytest.mark.parametrize(
    "name",
    ["publish subscribers add", "publish subscribers import", "publish subscribers export",
     "publish subscribers list", "publish subscribers show", "publish subscribers remove",
     "publish subscribers erase", "publish subscribers stats", "publish db upgrade",
     "publish serve"],
)
def test_every_command_has_a_help_line_and_an_example(name):
    commands = dict(_commands(typer.main.get_command(app), "publish"))
    help_text = commands[name].help or ""
    assert help_text.strip().splitlines()[0].endswith(".")
    examples = [line.strip() for line in help_text.splitlines() if "Example:" in line]
    assert len(examples) == 1 and examples[0].startswith(f"Example: {name}")


def test_show_says_when_the_mailer_gave_up_on_a_confirmation(newsletter):
    from sqlalchemy import update

    from subscribers.models import Newsletter
    from subscribers.schema import subscribers
    from subscribers.service import MAX_ATTEMPTS, Origin, Subscriptions
    from subscribers.tokens import Signer
    from tests.support.mail import service_mail

    def relay_down(message):
        raise OSError("451 relay down")

    with opened(newsletter) as store:
        newsletter_ = Newsletter(
            "N", "https://n.example.com", "a@n.example.com", "a@n.example.com", "Street 1"
        )
        service = Subscriptions(
            store, Signer("x" * 32), newsletter_, relay_down, mail=service_mail(newsletter_)
        )
        service.subscribe("late@example.com", "", consent_text="Yes", origin=Origin())
        for _ in range(MAX_ATTEMPTS):
            with store.engine.begin() as conn:  # each backoff over at once
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.confirmation_due_at.is_not(None))
                    .values(confirmation_due_at=subscribers.c.created_at)
                )
            assert service.send_due_confirmations() == 1
    shown = run("subscribers", "show", "late@example.com")
    assert shown.exit_code == 0
    assert "never: gave up" in shown.stdout
    assert f"after {MAX_ATTEMPTS} attempts (451 relay down)" in shown.stdout
    assert "confirmation_given_up" in shown.stdout and "confirmation_failed" in shown.stdout


HOSTILE_NAMES = ["[/]", "[link=https://evil.example]click[/link]", "[bold red]Admin[/]", "Sam [/b]"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_stored_text_is_printed_as_text_not_markup(newsletter, name):
    """A signup can name itself anything: the editor's terminal shows it as typed."""
    with Store.open("sqlite:///subscribers.db", newsletter) as store:
        store.add("sam@example.com", name=name)
    for command in (["subscribers", "list"], ["subscribers", "show", "sam@example.com"]):
        result = run(*command)
        assert result.exit_code == 0, (command, result.output)
        assert name in result.stdout, (command, result.stdout)


def test_control_characters_in_stored_text_never_reach_the_terminal(newsletter):
    import datetime as dt

    from subscribers.models import Consent

    with Store.open("sqlite:///subscribers.db", newsletter) as store:
        store.add(
            "sam@example.com",
            consent=Consent(at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), ip="192.0.2.1", user_agent="\x1b]8;;https://evil.example\x07x\x1b[31mred\x9b2J"),
        )
    result = run("subscribers", "show", "sam@example.com")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x9b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]8;;https://evil.example" in result.stdout
