"""The confirm and welcome emails come from templates/ (or the built-in
ones), are checked like the issue template, previewed, built once and
filled per reader; the welcome lists the latest issues."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, load_settings
from pipeline.mailtexts import DEFAULT_TEMPLATES, load_mail_templates
from pipeline.service_mail import ServiceMailSource
from subscribers.mail import confirmation_message, welcome_message
from subscribers.models import Source, Status, Subscriber
from subscribers.tokens import Signer
from subscribers.unsubscribe_address import mailto, read

runner = CliRunner()
NOW = dt.datetime(2027, 1, 20, 12, 0, tzinfo=dt.UTC)
SIGNER = Signer("mail-template-test-secret-0123456789")
DOMAIN = "list.painfreeliving.example.com"


def reader(subscriber_id: int, email: str, name: str) -> Subscriber:
    return Subscriber(subscriber_id, email, name, Status.ACTIVE, Source.FORM, NOW, NOW)


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a message, with the LF line ends they were written with."""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return (
        str(text.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


def welcome_for(source: ServiceMailSource, subscriber: Subscriber) -> EmailMessage:
    token = SIGNER.unsubscribe(subscriber.id)
    sent = welcome_message(
        source.welcome(),
        subscriber,
        source.settings.url(f"unsubscribe/{token}"),
        mailto(token, source.settings.unsubscribe_domain),
    )
    assert sent.recipient == subscriber.email and sent.sender == source.settings.sender.email
    return parsed(sent.raw)


def write_issue(root: Path, name: str, title: str, day: str, extra: str = "") -> None:
    (root / "issues" / name).write_text(
        f"---\ntitle: {title}\ndate: {day}\npreheader: The gist of {title.lower()}, "
        f"in one line for the inbox.\n{extra}---\nA paragraph about {title.lower()}.\n",
        encoding="utf-8",
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


# ---------------------------------------------------------------------------
# Which templates
# ---------------------------------------------------------------------------


def test_a_newsletter_without_them_gets_the_built_in_ones(newsletter: Path):
    for name in ("confirm.mjml.j2", "confirm.txt.j2", "welcome.mjml.j2", "welcome.txt.j2"):
        (newsletter / "templates" / name).unlink()
    settings = load_settings(newsletter)
    templates = load_mail_templates(settings)
    assert templates.file("welcome.mjml.j2") == DEFAULT_TEMPLATES / "welcome.mjml.j2"
    welcome = welcome_for(ServiceMailSource(settings), reader(1, "sam@example.com", "Sam"))
    text, html = parts(welcome)
    assert "Each new issue comes to this address as soon as it is out." in text
    assert "I am Dana" not in text and "I am Dana" not in html

    result = runner.invoke(app, ["preview", "--mail", "welcome"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "preview/welcome.html\npreview/welcome.txt\n"
    assert "Each new issue comes" in (newsletter / "preview" / "welcome.txt").read_text()


def test_the_editors_own_templates_are_used_and_the_missing_ones_built_in(newsletter: Path):
    settings = load_settings(newsletter)
    text, html = parts(welcome_for(ServiceMailSource(settings), reader(1, "sam@example.com", "Sam")))
    assert "I am Dana, a physical therapist" in text and "I am Dana, a physical therapist" in html
    # Only the text part of her own: the MJML comes from the built-in one.
    (newsletter / "templates" / "welcome.mjml.j2").unlink()
    edit(newsletter / "templates" / "welcome.txt.j2", "I am Dana", "Hello from Dana")
    text, html = parts(welcome_for(ServiceMailSource(settings), reader(1, "sam@example.com", "Sam")))
    assert "Hello from Dana, a physical therapist" in text
    assert "Each new issue comes to this address" in html and "Dana" not in html


# ---------------------------------------------------------------------------
# publish check, publish serve, publish preview on a broken template
# ---------------------------------------------------------------------------

BROKEN = {
    "no confirm link in the MJML": (
        "confirm.mjml.j2",
        'href="{{ slots.confirm_url }}"',
        'href="https://painfreeliving.example.com/"',
        None,
        "error: no confirm link ({{ slots.confirm_url }} as a link's href)",
    ),
    "no confirm link in the text": (
        "confirm.txt.j2",
        "{{ slots.confirm_url }}",
        "(the link)",
        None,
        "error: no confirm link ({{ slots.confirm_url }})",
    ),
    "no unsubscribe link": (
        "welcome.txt.j2",
        "open this link: {{ slots.unsubscribe_url }}",
        "reply to this email",
        None,
        "error: no unsubscribe link ({{ slots.unsubscribe_url }})",
    ),
    "no postal address": (
        "welcome.mjml.j2",
        ">{{ newsletter.postal_address }}<",
        "><",
        None,
        "error: no postal address ({{ newsletter.postal_address }}); "
        "CAN-SPAM requires one in every message",
    ),
    "a syntax error": (
        "welcome.mjml.j2",
        "{% if latest %}",
        "{% if %}",
        "{% if %}",
        "error: Expected an expression, got 'end of statement block'",
    ),
    "an undefined value": (
        "welcome.txt.j2",
        "{{ issue.title }}",
        "{{ issue.titel }}",
        "{{ issue.titel }}",
        "error: 'dict object' has no attribute 'titel'",
    ),
    "an unknown MJML element": (
        "confirm.mjml.j2",
        "<mj-column>",
        "<mj-colum>",
        "<mj-colum>",
        "error: unknown MJML element <mj-colum>",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_publish_check_names_the_file_and_line_of_a_broken_template(newsletter: Path, case: str):
    name, old, new, located, message = BROKEN[case]
    path = newsletter / "templates" / name
    edit(path, old, new)
    line = line_of(path, located) if located else 1
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1, result.output
    found = [f for f in result.stdout.splitlines() if f.startswith(f"templates/{name}:")]
    assert len(found) == 1, result.stdout
    assert found[0].startswith(f"templates/{name}:{line}: {message}"), found[0]


def test_a_clean_newsletter_checks_clean(newsletter: Path):
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert "confirm" not in result.stdout and "welcome" not in result.stdout


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What `publish serve` would serve, caught instead: nothing is bound."""
    import pipeline.cli.serve

    caught: list[object] = []
    monkeypatch.setattr(pipeline.cli.serve, "run_service", lambda *args: caught.append(args))
    return caught


def test_publish_serve_does_not_start_on_a_broken_template(newsletter: Path, served):
    path = newsletter / "templates" / "welcome.txt.j2"
    edit(path, "{{ slots.unsubscribe_url }}", "(no link)")
    result = runner.invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: templates/welcome.txt.j2:1: no unsubscribe link ({{ slots.unsubscribe_url }})\n"
    )
    assert served == [] and not (newsletter / "preview").exists()  # not even the demo site
    edit(path, "(no link)", "{{ slots.unsubscribe_url }}")
    assert runner.invoke(app, ["serve", "--port", "8123"]).exit_code == 0 and len(served) == 1


def test_publish_preview_mail_writes_nothing_from_a_broken_template(newsletter: Path):
    path = newsletter / "templates" / "confirm.mjml.j2"
    edit(path, "<mj-head>", "<mj-head>{{ nothing_here }}")
    result = runner.invoke(app, ["preview", "--mail", "confirm"])
    assert result.exit_code == 1
    line = line_of(path, "nothing_here")
    assert result.stderr == (
        f"error: templates/confirm.mjml.j2:{line}: 'nothing_here' is undefined\n"
    )
    assert not (newsletter / "preview").exists()
    result = runner.invoke(app, ["preview", "--mail", "goodbye"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --mail: 'goodbye' is not one of the emails; choose confirm or welcome\n"
    )


def test_a_template_broken_while_serving_keeps_the_last_good_email(newsletter: Path, caplog):
    settings = load_settings(newsletter)
    source = ServiceMailSource(settings)
    before = source.welcome()
    assert source.welcome() is before  # nothing changed: not built again
    path = newsletter / "templates" / "welcome.mjml.j2"
    edit(path, 'href="{{ slots.unsubscribe_url }}"', 'href="https://painfreeliving.example.com/"')
    with caplog.at_level(logging.ERROR, logger="pipeline.service_mail"):
        assert source.welcome() is before
    assert "the welcome email was not rebuilt; the last one is kept" in caplog.text
    assert "no unsubscribe link" in caplog.text
    edit(path, 'href="https://painfreeliving.example.com/"', 'href="{{ slots.unsubscribe_url }}"')
    edit(path, "Take care,", "Be well,")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    _, html = parts(welcome_for(source, reader(1, "sam@example.com", "Sam")))
    assert "Be well," in html


# ---------------------------------------------------------------------------
# Filled for each reader
# ---------------------------------------------------------------------------


@pytest.fixture
def unsubscribe_domain(newsletter: Path) -> Settings:
    from pipeline.config import with_overrides

    return with_overrides(load_settings(newsletter), unsubscribe_domain=DOMAIN)


def test_each_reader_gets_their_own_welcome_that_the_email_package_reads(unsubscribe_domain):
    source = ServiceMailSource(unsubscribe_domain)
    first = reader(7, "juergen@example.com", 'Jürgen <b>&"Müller"')
    second = reader(8, "ann@example.com", "")
    one, two = welcome_for(source, first), welcome_for(source, second)

    assert str(one["From"]) == "Pain Free Living <newsletter@painfreeliving.example.com>"
    assert str(one["Reply-To"]) == "Dana Whitfield <dana@painfreeliving.example.com>"
    assert one["Subject"] == "Welcome to Pain Free Living"
    assert one["To"].addresses[0].display_name == 'Jürgen <b>&"Müller"'
    assert one["To"].addresses[0].addr_spec == "juergen@example.com"
    assert str(two["To"]) == "ann@example.com"
    assert one["Message-ID"] != two["Message-ID"]
    assert one["Message-ID"].endswith("@painfreeliving.example.com>")
    assert one.get_content_type() == "multipart/alternative"

    token = SIGNER.unsubscribe(7)
    link = f"https://painfreeliving.example.com/unsubscribe/{token}"
    listed = re.findall(r"<([^>]+)>", str(one["List-Unsubscribe"]))
    assert listed == [link, mailto(token, DOMAIN)]
    address = listed[1].removeprefix("mailto:").removesuffix("?subject=unsubscribe")
    assert read(SIGNER, address, DOMAIN) == 7
    assert one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    text, html = parts(one)
    assert text.startswith("Hi Jürgen,\n") and f"open this link: {link}\n" in text
    assert "<p>Hi Jürgen,</p>" in html and f'href="{link}"' in html
    text, html = parts(two)
    assert text.startswith("Hi friend,\n")  # newsletter.greeting_fallback
    assert f"/unsubscribe/{SIGNER.unsubscribe(8)}" in text and token not in text + html


def test_the_confirmation_is_filled_with_its_link_and_no_name(unsubscribe_domain):
    source = ServiceMailSource(unsubscribe_domain)
    url = "https://painfreeliving.example.com/confirm/" + SIGNER.confirm(9, NOW, signup="n")
    sent = confirmation_message(source.confirm(), reader(9, "new@example.com", "Eve Typed"), url)
    message = parsed(sent.raw)
    assert message["Subject"] == "Please confirm your subscription to Pain Free Living"
    assert str(message["To"]) == "new@example.com" and b"Eve" not in sent.raw
    assert message["List-Unsubscribe"] is None  # not on the list yet
    text, html = parts(message)
    assert f"\n{url}\n" in text and f'href="{url}"' in html
    head, _, body = sent.raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"\n" not in sent.raw.replace(b"\r\n", b"")


# ---------------------------------------------------------------------------
# The welcome welcomes: the latest issues, the archive, the reply address
# ---------------------------------------------------------------------------


@pytest.fixture
def published(newsletter: Path) -> Path:
    """Four published issues besides the fixture's two drafts, a scheduled
    one still to come, and a draft."""
    write_issue(newsletter, "2026-11-03-neck.md", "A gentle neck release", "2026-11-03",
                "publish_at: 2026-11-03T07:00:00+00:00\n")
    write_issue(newsletter, "2026-11-17-back.md", "Your lower back at the desk", "2026-11-17",
                "publish_at: 2026-11-17T07:00:00+00:00\n")
    write_issue(newsletter, "2027-02-02-hips.md", "Hips that sit all day", "2027-02-02",
                "publish_at: 2027-01-20T13:00:00+00:00\n")
    write_issue(newsletter, "2027-03-02-draft.md", "Not ready yet", "2027-03-02")
    return newsletter


def test_the_welcome_lists_the_three_latest_issues_the_archive_and_the_reply_address(published):
    settings = load_settings(published)
    sent = {"calf-stretch": dt.datetime(2026, 12, 1, 7, tzinfo=dt.UTC)}
    source = ServiceMailSource(settings, lambda: sent, now=lambda: NOW)
    text, html = parts(welcome_for(source, reader(1, "sam@example.com", "Sam")))
    latest = [
        ("An easy stretch for chronic calf pain", "calf-stretch",
         "Why tight calves keep aching, and a gentle wall stretch you can do while the kettle boils."),
        ("Your lower back at the desk", "back",
         "The gist of your lower back at the desk, in one line for the inbox."),
        ("A gentle neck release", "neck",
         "The gist of a gentle neck release, in one line for the inbox."),
    ]
    where = []
    for title, slug, preheader in latest:
        url = f"https://painfreeliving.example.com/issues/{slug}/"
        assert f"\n{title}\n{preheader}\n{url}\n" in text
        link = f'<a href="{url}"><strong>{title}</strong></a><br />{preheader}</p>'
        assert link in html
        where.append(text.index(title))
    assert where == sorted(where)  # newest first
    for left_out in ("A five-minute wrist routine", "Hips that sit all day", "Not ready yet"):
        assert left_out not in text and left_out not in html
    assert "Every past issue is in the archive: https://painfreeliving.example.com/\n" in text
    assert 'href="https://painfreeliving.example.com/">the archive</a>' in html
    assert "write to dana@painfreeliving.example.com:" in text
    assert 'href="mailto:dana@painfreeliving.example.com"' in html


def test_the_welcome_follows_new_sends_and_publish_at_and_is_built_only_then(published):
    settings = load_settings(published)
    sent = {"calf-stretch": dt.datetime(2026, 12, 1, 7, tzinfo=dt.UTC)}
    clock = [NOW]
    source = ServiceMailSource(settings, lambda: dict(sent), now=lambda: clock[0])
    first = source.welcome()
    assert source.welcome() is first and source.confirm() is source.confirm()

    sent["desk-wrist-routine"] = dt.datetime(2026, 12, 15, 7, tzinfo=dt.UTC)  # a send
    second = source.welcome()
    assert second is not first and source.welcome() is second
    text, _ = parts(welcome_for(source, reader(1, "sam@example.com", "Sam")))
    assert "A five-minute wrist routine for desk workers" in text
    assert "A gentle neck release" not in text  # the fourth newest now

    clock[0] = NOW + dt.timedelta(hours=2)  # the hips issue's publish_at has passed
    text, _ = parts(welcome_for(source, reader(1, "sam@example.com", "Sam")))
    assert text.index("Hips that sit all day") < text.index("A five-minute wrist routine")
    assert "Your lower back at the desk" not in text


@pytest.mark.parametrize("length", range(70, 82))
def test_a_slot_value_of_any_length_keeps_every_line_within_76_columns(length: int):
    """b2a_qp writes lines of up to 76 columns, and 77 when one ends in an
    encoded space; a slot value is followed by a soft line break, so its
    last line must leave room for it (a 76-character link was one over)."""
    import binascii

    from subscribers.mail_template import qp_value

    for value in ("u" * length, "ü" * (length // 3), "a" * (length - 2) + " \nb"):
        encoded = qp_value(value)
        assert encoded.endswith(b"=\r\n")
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n")), encoded
        assert binascii.a2b_qp(encoded.replace(b"\r\n", b"\n")) == value.encode()
