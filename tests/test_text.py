"""One line of text comes out the same wherever it is shown: an issue's
title in the email's Subject, the web page's <title> and the terminal, and
a reader's name in the store, the To header and the terminal."""

from __future__ import annotations

import html
import re
from email import policy
from email.parser import BytesParser

import pytest

from pipeline.cli.app import printable
from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue
from subscribers.store import Store
from subscribers.text import NOT_IN_LINE, NOT_IN_TEXT, clean_name, clip, one_line
from subscribers.tokens import Signer

ISSUE = "issues/2026-12-01-calf-stretch.md"
SIGNER = Signer("a test secret that is long enough")

# NEL, the line separator, NUL and a tab: each a line break, nothing or a
# gap to one reader or another.
RAW = "Calf\x85stretch\u2028for\x00all\tages"
SHOWN = "Calf stretch for all ages"
# The same, as YAML escapes them in a double-quoted scalar.
YAML = r'"Calf\Nstretch\Lfor\0all\tages"'


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


@pytest.fixture
def rendered(newsletter, settings):
    path = newsletter / ISSUE
    text = path.read_text()
    text = re.sub(r"(?m)^title: .*$", lambda _: f"title: {YAML}", text, count=1)
    text = re.sub(r"(?m)^subject: .*\n", "", text, count=1)
    path.write_text(text)
    return render_issue(load_issue(path), Context.load(settings))


def test_a_subject_is_the_same_in_the_email_the_web_page_and_the_terminal(rendered, settings):
    assert one_line(RAW) == SHOWN
    assert rendered.issue.title == SHOWN
    message = Personalizer(rendered, settings, SIGNER.unsubscribe)(Recipient(1, "r@example.com"))
    assert str(parse(message.raw)["Subject"]) == SHOWN
    title = re.search(r"<title>(.*?)</title>", rendered.web_html, re.S)
    assert title is not None
    assert SHOWN in html.unescape(title.group(1))
    assert printable(rendered.issue.title) == SHOWN


def test_a_name_is_the_same_in_the_store_the_to_header_and_the_terminal(rendered, settings):
    assert clean_name(RAW) == SHOWN
    with Store.open(settings.database_url, settings.root) as store:
        stored = store.add("dana@example.com", name=clean_name(RAW))
    assert stored.name == SHOWN
    personalizer = Personalizer(rendered, settings, SIGNER.unsubscribe)
    message = personalizer(Recipient(stored.id, stored.email, RAW))
    assert parse(message.raw)["To"].addresses[0].display_name == SHOWN
    assert printable(stored.name) == SHOWN


def test_the_terminal_escapes_what_a_line_leaves_out_but_tab_and_newline():
    assert printable(RAW) == "Calf\\x85stretch\\u2028for\\x00all\tages"
    assert printable("a\nb\x1b[31m\x9b\ud800") == "a\nb\\x1b[31m\\x9b\\ud800"
    for code in range(0x10000):
        char = chr(code)
        blanked = bool(NOT_IN_LINE.fullmatch(char))
        assert blanked == (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or code in (0x2028, 0x2029)
            or 0xD800 <= code <= 0xDFFF
        )
        assert bool(NOT_IN_TEXT.fullmatch(char)) == (blanked and char not in "\t\n")
        assert (printable(char) != char) == (blanked and char not in "\t\n")


def test_clip_keeps_the_length_and_blanks_the_rest():
    assert clip("Mozilla/5.0\r\n\x85(X11)", 100) == "Mozilla/5.0   (X11)"
    assert clip("x" * 10, 4) == "xxxx"
    assert clip(None, 4) is None
