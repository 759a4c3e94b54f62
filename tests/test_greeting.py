"""The greeting is the editor's choice: `newsletter.greeting` (default
"Hi {first_name},", "" for none), an issue's own `greeting:`, one-line errors
for a format with any other field, and the `publish check` warning for an
issue that opens with a greeting of its own."""

from __future__ import annotations

import json
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, load_settings
from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.lint import check_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue, sample_values
from subscribers.store import Store
from subscribers.tokens import Signer

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden"
CALF = "issues/2026-12-01-calf-stretch.md"
SIGNER = Signer("a test secret that is long enough")
PARSER = BytesParser(policy=policy.default)
FRONT = "---\ntitle: Knees\ndate: 2026-11-20\npreheader: {pre}\n{extra}---\n"
PREHEADER = "Why knees ache on the stairs, and three small moves that help them."


def run(*args: str):
    return runner.invoke(app, list(args))


def write_greeting(root: Path, value: str) -> None:
    """``newsletter.greeting = value`` in the newsletter's file."""
    path = root / "newsletter.toml"
    text = path.read_text()
    path.write_text(text.replace("[newsletter]\n", f"[newsletter]\ngreeting = {json.dumps(value)}\n", 1))


def set_greeting(root: Path, value: str) -> Settings:
    """The settings with ``newsletter.greeting = value`` written in the file."""
    write_greeting(root, value)
    return load_settings(root)


def write_issue(root: Path, body: str, extra: str = "") -> Path:
    path = root / "issues" / "2026-11-20-knees.md"
    path.write_text(FRONT.format(pre=PREHEADER, extra=extra) + body, encoding="utf-8")
    return path


def render(settings: Settings, path: Path | str = CALF):
    return render_issue(load_issue(settings.root / path), Context.load(settings))


def bodies(raw: bytes) -> tuple[str, str]:
    """(html, text) of a message as sent, parsed back with the email package."""
    parsed = PARSER.parsebytes(raw)
    assert not parsed.defects
    html, text = parsed.get_body(("html",)), parsed.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def message(rendered, settings: Settings, name: str) -> tuple[str, str]:
    """(html, text) of the message a reader called ``name`` gets."""
    personalizer = Personalizer(rendered, settings, SIGNER.unsubscribe)
    return bodies(personalizer(Recipient(7, "reader@example.com", name)).raw)


def first_paragraph(html: str) -> str:
    """The text of the first paragraph after the title."""
    found = re.search(r"</h1>.*?<p>(.*?)</p>", html, re.S)
    assert found is not None
    return found.group(1)


def line_after_title(text: str) -> str:
    """The first line of the text part after the title's underline."""
    lines = text.splitlines()
    underline = next(i for i, line in enumerate(lines) if line and set(line) == {"="})
    return next(line for line in lines[underline + 1 :] if line)


# --- the setting ------------------------------------------------------------


def test_the_default_greeting_is_todays_output(newsletter):
    """Written out as the default, the setting leaves every byte as the golden files have it."""
    settings = set_greeting(newsletter, "Hi {first_name},")
    assert settings.greeting == Settings.greeting == "Hi {first_name},"
    for sample, slug in ((CALF, "calf-stretch"), ("issues/2026-12-15-desk-wrist-routine.md", "desk-wrist-routine")):
        html, text = render(settings, sample).fill(sample_values(settings))
        assert html == (GOLDEN / f"{slug}.html").read_text(encoding="utf-8")
        assert text == (GOLDEN / f"{slug}.txt").read_text(encoding="utf-8")


def test_a_custom_greeting_in_html_and_text_with_a_name_and_without(newsletter):
    settings = set_greeting(newsletter, "Hello {first_name} & welcome, {{friends}}!")
    rendered = render(settings)
    html, text = message(rendered, settings, "Zoë <b>Ünal</b>")
    assert first_paragraph(html) == "Hello Zoë &amp; welcome, {friends}!"  # the name's first word
    assert line_after_title(text) == "Hello Zoë & welcome, {friends}!"
    html, text = message(rendered, settings, "<i>Eve</i> Smith")
    assert first_paragraph(html) == "Hello &lt;i&gt;Eve&lt;/i&gt; &amp; welcome, {friends}!"
    assert line_after_title(text) == "Hello <i>Eve</i> & welcome, {friends}!"
    html, text = message(rendered, settings, "")
    assert first_paragraph(html) == "Hello friend &amp; welcome, {friends}!"
    assert line_after_title(text) == "Hello friend & welcome, {friends}!"


def test_a_greeting_without_the_name_has_no_name_slot(newsletter):
    settings = set_greeting(newsletter, "Hello, everyone.")
    rendered = render(settings)
    assert rendered.slot("first_name") not in rendered.html + rendered.text
    html, text = message(rendered, settings, "Sam")
    assert first_paragraph(html) == "Hello, everyone." and line_after_title(text) == "Hello, everyone."


def test_an_empty_greeting_leaves_out_the_line(newsletter):
    settings = set_greeting(newsletter, "")
    rendered = render(settings)
    assert rendered.slot("first_name") not in rendered.html + rendered.text
    html, text = message(rendered, settings, "Sam")
    assert first_paragraph(html).startswith("If your calves ache")
    assert "Sam" not in html + text
    assert "=\r\n\r\nIf your calves ache" in text  # no blank line left where it stood


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Hi {name},", "'Hi {name},' has the field {name}: the only field is {first_name}"),
        ("Hi {},", "'Hi {},' has the field {}: the only field is {first_name}"),
        ("Hi {first_name!r},", "'Hi {first_name!r},' has the field {first_name!r}: the only field is {first_name}"),
        ("Hi {first_name,", "'Hi {first_name,' is not a greeting: expected '}' before end of string"),
        ("Hi }", "'Hi }' is not a greeting: single '}' encountered in format string"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it(newsletter, value, reason):
    write_greeting(newsletter, value)
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: newsletter.greeting: {reason}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_the_environment_sets_and_unsets_the_greeting(newsletter, monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSLETTER_GREETING", "")
    result = run("preview", "calf-stretch", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Hi Alex," not in (tmp_path / "calf-stretch.txt").read_text()
    monkeypatch.setenv("NEWSLETTER_GREETING", "Hey {first_name} {oops}")
    result = run("preview", "calf-stretch", "-o", str(tmp_path / "again"))
    assert result.exit_code == 1
    assert result.stderr == (
        "error: newsletter.greeting: 'Hey {first_name} {oops}' has the field {oops}: "
        "the only field is {first_name}\n"
    )
    assert not (tmp_path / "again").exists()


# --- the front matter -------------------------------------------------------


def test_the_front_matter_overrides_the_setting_and_turns_it_off(newsletter, settings):
    path = write_issue(newsletter, "Typing all day is hard on the knees.\n", 'greeting: "Dear {first_name}:"\n')
    html, text = message(render(settings, path), settings, "Sam Jones")
    assert first_paragraph(html) == "Dear Sam:" and line_after_title(text) == "Dear Sam:"

    write_issue(newsletter, "Typing all day is hard on the knees.\n", 'greeting: ""\n')
    html, text = message(render(settings, path), settings, "Sam Jones")
    assert first_paragraph(html).startswith("Typing all day")
    assert line_after_title(text).startswith("Typing all day")

    write_issue(newsletter, "Typing all day is hard on the knees.\n", "greeting:\n")  # left empty: not set
    html, text = message(render(settings, path), settings, "Sam Jones")
    assert first_paragraph(html) == "Hi Sam," and line_after_title(text) == "Hi Sam,"


def test_the_front_matter_turns_on_what_the_setting_turned_off(newsletter):
    settings = set_greeting(newsletter, "")
    path = write_issue(newsletter, "Typing all day.\n", "greeting: Hello {first_name}!\n")
    html, text = message(render(settings, path), settings, "")
    assert first_paragraph(html) == "Hello friend!" and line_after_title(text) == "Hello friend!"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('greeting: "Hi {name},"\n', "greeting: 'Hi {name},' has the field {name}: the only field is {first_name}"),
        ('greeting: "Hi {first_name"\n', "greeting: 'Hi {first_name' is not a greeting: expected '}' before end of string"),
        ("greeting: 5\n", "greeting: expected text, got a number"),
    ],
)
def test_an_invalid_front_matter_greeting_is_one_line_at_its_line(newsletter, tmp_path, extra, message):
    path = write_issue(newsletter, "Typing all day.\n", extra)
    out = tmp_path / "out"
    result = run("preview", str(path), "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:5: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()
    check = run("check", str(path))
    assert check.exit_code == 1
    assert f"issues/2026-11-20-knees.md:5: error: {message}" in check.stdout


# --- publish check ----------------------------------------------------------

WARNING = (
    'issues/2026-11-20-knees.md:{line}: warning: the issue starts with its own greeting ("{words}") '
    'and the template adds "{greeting}": set greeting: "" in its front matter or drop the line'
)


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("Hi there. Today: knees.\n", 6, "Hi there."),
        ("\n\nHello, everyone!\n\nToday: knees.\n", 8, "Hello, everyone!"),
        ("**Hey Maria!** Today: knees.\n", 6, "Hey Maria!"),
        ("good morning friends,\nwe talk about knees.\n", 6, "good morning friends,"),
        ("Dear readers\nwe talk about knees.\n", 6, "Dear readers"),
        ("Greetings from Maine! Today: knees.\n", 6, "Greetings from Maine!"),
    ],
)
def test_check_warns_about_an_issue_that_greets_on_its_own(newsletter, body, line, words):
    write_issue(newsletter, body)
    result = run("check", "issues/2026-11-20-knees.md")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [WARNING.format(line=line, words=words, greeting="Hi {first_name},")]


def test_the_warning_quotes_the_greeting_in_use(newsletter):
    write_issue(newsletter, "Hi there.\n", 'greeting: "Hello {first_name}!"\n')
    result = run("check", "issues/2026-11-20-knees.md")
    assert result.stdout.splitlines() == [WARNING.format(line=7, words="Hi there.", greeting="Hello {first_name}!")]


@pytest.mark.parametrize(
    "body",
    [
        "Typing all day is hard on the knees.\n",
        "Hiking is good for the knees.\n",
        "Hello world programs print text; knees do not.\n",
        "Hi-fi speakers are heavy to lift.\n",
        "# Hello knees\n\nText.\n",
        "Our knees.\n\nHi there.\n",
    ],
)
def test_no_warning_for_an_ordinary_first_paragraph(newsletter, settings, body):
    path = write_issue(newsletter, body)
    assert check_issue(path, Context.load(settings)).findings == ()
    # The same issue opened by a greeting is warned about, at the greeting's line.
    write_issue(newsletter, "Hi there.\n\n" + body)
    findings = check_issue(path, Context.load(settings)).findings
    assert [str(f) for f in findings] == [
        WARNING.format(line=6, words="Hi there.", greeting="Hi {first_name},").replace(
            "issues/2026-11-20-knees.md", str(path)
        )
    ]


def test_no_warning_when_the_greeting_is_off(newsletter):
    path = write_issue(newsletter, "Hi there.\n", 'greeting: ""\n')
    settings = load_settings(newsletter)
    assert check_issue(path, Context.load(settings)).findings == ()
    write_issue(newsletter, "Hi there.\n")
    settings = set_greeting(newsletter, "")
    assert check_issue(path, Context.load(settings)).findings == ()


# --- publish issue, through the outbox -------------------------------------


def test_publish_issue_sends_the_chosen_greeting(newsletter):
    settings = set_greeting(newsletter, "Good morning, {first_name}!")
    with Store.open(settings.database_url, settings.root) as store:
        store.add("maria@example.com", name="Maria Lopez")
        store.add("anon@example.com")
    result = run("issue", CALF)
    assert result.exit_code == 0, result.output
    got = {}
    for path in sorted(settings.outbox_dir.glob("*.eml")):
        html, text = bodies(path.read_bytes())
        to = PARSER.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
        got[to] = (first_paragraph(html), line_after_title(text))
    assert got == {
        "maria@example.com": ("Good morning, Maria!", "Good morning, Maria!"),
        "anon@example.com": ("Good morning, friend!", "Good morning, friend!"),
    }
