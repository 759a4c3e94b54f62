"""Test sends to the team: `--test-to` takes several addresses (repeated or
comma-separated), each checked before any is sent, and `--test` sends to
the addresses in sender.test_recipients."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
ISSUE = "issues/2026-12-01-calf-stretch.md"
NAME = "2026-12-01-calf-stretch.md"


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def previews(settings) -> dict[str, str]:
    """Each outbox message's recipient, with its subject."""
    parser = BytesParser(policy=policy.default)
    found = {}
    for path in sorted(settings.outbox_dir.glob("*.eml")) if settings.outbox_dir.exists() else []:
        message = parser.parsebytes(path.read_bytes())
        found[message["To"].addresses[0].addr_spec] = str(message["Subject"])
    return found


def with_test_recipients(settings, value: str) -> None:
    path = settings.root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    anchor = "[sender]\n"
    assert anchor in text
    path.write_text(text.replace(anchor, f"{anchor}test_recipients = {value}\n"), "utf-8")


def sent_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("sent a [PREVIEW]")]


def test_several_test_to_send_one_preview_each(settings):
    result = run("issue", ISSUE, "--test-to", "dana@example.com", "--test-to", "sam@example.com")

    assert result.exit_code == 0, result.output
    found = previews(settings)
    assert sorted(found) == ["dana@example.com", "sam@example.com"]
    assert all(subject.startswith("[PREVIEW] An easy stretch") for subject in found.values())
    lines = sent_lines(result)
    assert [line.split(" (")[0] for line in lines] == [
        f"sent a [PREVIEW] of {NAME} to dana@example.com",
        f"sent a [PREVIEW] of {NAME} to sam@example.com",
    ]
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_test_to_takes_comma_separated_addresses_each_once(settings):
    result = run(
        "issue",
        ISSUE,
        "--test-to",
        "dana@example.com, sam@example.com",
        "--test-to",
        "dana@example.com",
    )

    assert result.exit_code == 0, result.output
    assert sorted(previews(settings)) == ["dana@example.com", "sam@example.com"]
    assert len(sent_lines(result)) == 2


def test_a_bad_address_among_good_ones_sends_nothing(settings):
    result = run(
        "issue", ISSUE, "--test-to", "dana@example.com,not-an-address", "--test-to", "sam@example.com"
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --test-to: 'not-an-address' is not an email address")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stdout == ""
    assert previews(settings) == {}


def test_test_sends_to_the_configured_team(settings):
    with_test_recipients(settings, '["dana@example.com", "Sam@Example.com"]')

    result = run("issue", ISSUE, "--test")

    assert result.exit_code == 0, result.output
    assert sorted(previews(settings)) == ["Sam@example.com", "dana@example.com"]
    assert len(sent_lines(result)) == 2
    assert run("status").stdout.strip() == "no issue has been sent yet"


def test_test_recipients_from_the_environment_and_overridden_by_test_to(settings):
    env = {"NEWSLETTER_TEST_RECIPIENTS": "dana@example.com,sam@example.com"}
    assert run("issue", ISSUE, "--test", env=env).exit_code == 0
    assert sorted(previews(settings)) == ["dana@example.com", "sam@example.com"]

    for path in settings.outbox_dir.glob("*.eml"):
        path.unlink()
    result = run("issue", ISSUE, "--test", "--test-to", "lee@example.com", env=env)
    assert result.exit_code == 0, result.output
    assert sorted(previews(settings)) == ["lee@example.com"]


def test_test_without_configured_addresses_is_one_line_naming_the_setting(settings):
    result = run("issue", ISSUE, "--test")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --test: sender.test_recipients is empty")
    assert result.stderr.count("\n") == 1
    assert previews(settings) == {}


def test_a_bad_configured_address_is_one_line_naming_the_setting(settings):
    with_test_recipients(settings, '["dana@example.com", "Sam <sam@example.com>"]')

    result = run("issue", ISSUE, "--test")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: sender.test_recipients: 'Sam <sam@example.com>' is not an email address"
    )
    assert result.stderr.count("\n") == 1
    assert previews(settings) == {}
