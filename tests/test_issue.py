"""Issue files: front matter validated key by key, each problem at its line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.errors import IssueError
from pipeline.issue import default_slug, find_issue, load_issue, read_issue

GOOD = """---
title: Neck pain at the desk
date: 2026-11-15
subject: "Neck pain: a two-minute fix"
preheader: A gentle chin tuck that undoes an afternoon of leaning toward the screen.
slug: neck
author: Dana
tags: [neck, desk work]
publish_at: 2026-11-15T07:00:00+01:00
---
Body line one.
"""


def write(tmp_path: Path, text: str, name: str = "2026-11-15-neck-pain.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_is_read(tmp_path):
    issue = load_issue(write(tmp_path, GOOD))
    assert issue.title == "Neck pain at the desk"
    assert issue.date == dt.date(2026, 11, 15)
    assert issue.subject == "Neck pain: a two-minute fix"
    assert issue.slug == "neck"
    assert issue.tags == ("neck", "desk work")
    assert issue.publish_at == dt.datetime(
        2026, 11, 15, 7, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert issue.body == "Body line one.\n"
    assert issue.body_line == 11


def test_defaults_subject_from_title_and_slug_from_file_name(tmp_path):
    issue = load_issue(write(tmp_path, "---\ntitle: Hello\ndate: 2026-11-15\n---\nx\n"))
    assert issue.subject == "Hello"
    assert issue.slug == "neck-pain"
    assert issue.publish_at is None
    assert default_slug(Path("2026-01-02-Héllo Wörld!.md")) == "hello-world"


def test_empty_optional_keys_mean_unset(tmp_path):
    issue = load_issue(
        write(tmp_path, "---\ntitle: Hello\ndate: 2026-11-15\npublish_at:\nslug:\n---\nx\n")
    )
    assert issue.publish_at is None
    assert issue.slug == "neck-pain"


@pytest.mark.parametrize(
    ("front", "line", "message"),
    [
        ("title: x\n", 2, "missing required key 'date'"),
        ("date: 2026-11-15\n", 2, "missing required key 'title'"),
        ("title: x\ndate: 2026-11-15\nsubjet: y\n", 4, "unknown key 'subjet' (did you mean 'subject'?)"),
        ("title: x\ndate: 2026-13-45\n", 3, "date: '2026-13-45' is not an ISO date"),
        ("title: x\ndate: 2026-11-15T10:00:00\n", 3, "date: expected a date like 2026-12-01"),
        ("title: [a, b]\ndate: 2026-11-15\n", 2, "title: expected text, got a list"),
        ("title: 2026\ndate: 2026-11-15\n", 2, "title: expected text, got a number"),
        ("title: x\ndate: 2026-11-15\ntags: {a: 1}\n", 4, "tags: expected a list"),
        ("title: x\ndate: 2026-11-15\npublish_at: 2026-11-15T07:00:00\n", 4, "publish_at: needs a time zone"),
        ("title: x\ndate: 2026-11-15\npublish_at: tomorrow\n", 4, "publish_at: 'tomorrow' is not an ISO date-time"),
        ("title: x\ndate: 2026-11-15\nslug: Not OK\n", 4, "slug: 'Not OK' must be lowercase"),
        ("title: x\ntitle: y\ndate: 2026-11-15\n", 3, "duplicate key 'title' (first on line 2)"),
        ("title: x\ndate: 2026-11-15\n  bad: indent\n", 4, "front matter:"),
        ("- a list\n", 2, "front matter must be 'key: value' lines"),
    ],
)
def test_front_matter_errors_name_the_line(tmp_path, front, line, message):
    path = write(tmp_path, f"---\n{front}---\nbody\n")
    issue, findings = read_issue(path)
    assert issue is None
    assert any(f.line == line and message in f.message for f in findings), findings
    with pytest.raises(IssueError) as info:
        load_issue(path)
    assert str(info.value).startswith(f"{path}:")


def test_missing_or_unclosed_front_matter(tmp_path):
    with pytest.raises(IssueError, match=r":1: missing front matter"):
        load_issue(write(tmp_path, "title: x\n"))
    with pytest.raises(IssueError, match=r":1: front matter is not closed"):
        load_issue(write(tmp_path, "---\ntitle: x\n"))


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(IssueError, match="cannot read"):
        load_issue(tmp_path / "missing.md")
    path = tmp_path / "latin1.md"
    path.write_bytes(b"---\ntitle: caf\xe9\ndate: 2026-11-15\n---\n")
    with pytest.raises(IssueError, match=r"latin1.md:2: not valid UTF-8"):
        load_issue(path)


def test_crlf_files_read_like_lf(tmp_path):
    path = write(tmp_path, GOOD.replace("\n", "\r\n"))
    assert load_issue(path).body == "Body line one.\n"


def test_find_issue_by_path_name_or_slug(tmp_path):
    path = write(tmp_path, GOOD)
    assert find_issue(str(path), tmp_path) == path
    assert find_issue("2026-11-15-neck-pain.md", tmp_path) == path
    assert find_issue("neck-pain", tmp_path) == path
    with pytest.raises(IssueError, match="no such issue"):
        find_issue("elbow", tmp_path)


YAML_JARGON = ("<block", "scalar", "token", "mapping values", "expected", "stream", "while ")


@pytest.mark.parametrize(
    ("front", "line", "message"),
    [
        (
            "title: Neck pain: a fix\ndate: 2026-11-15\n",
            2,
            'this line is not a "key: value" pair (a value with a colon in it needs quotes)',
        ),
        ("title: Neck\n  date: 2026-11-15\n", 3, "indented"),
        ("title: Neck\ndate: 2026-11-15\n  subject: x\n", 4, "indented"),
        ("tags:\n  - neck\n - desk\ntitle: x\ndate: 2026-11-15\n", 4, "indentation"),
        ("title: Neck\ndate: 2026-11-15\n- stray item\n", 4, "indentation"),
        ("title: Neck\n\tdate: 2026-11-15\n", 3, "tab character"),
        ("tags:\n\t- neck\ntitle: Neck\ndate: 2026-11-15\n", 3, "tab character"),
        ('title: "Neck pain\ndate: 2026-11-15\nslug: neck\n', 2, 'the quote (") that opens this value is never closed'),
        ("title: x\nsubject: 'Neck pain\n", 3, "the quote (') that opens this value is never closed"),
        ("title: 'It's here'\ndate: 2026-11-15\n", 2, "text after the closing quote"),
        ('title: "A "quoted" word"\ndate: 2026-11-15\n', 2, "text after the closing quote"),
        ("title: x\njust some words\ndate: 2026-11-15\n", 3, 'this line is not a "key: value" pair'),
        ("title: x\ndate: 2026-11-15\nno colon here", 4, 'this line is not a "key: value" pair'),
        ("title: @home\ndate: 2026-11-15\n", 2, "a value starting with @ needs quotes"),
        ("title: `code`\ndate: 2026-11-15\n", 2, "a value starting with ` needs quotes"),
        ("title: *star\ndate: 2026-11-15\n", 2, "a value starting with * needs quotes"),
        ("title: x\ntags: [neck, desk\ndate: 2026-11-15\n", 3, "the list that opens with [ on this line"),
        ("title: |x\ndate: 2026-11-15\n", 2, "a value starting with | needs quotes"),
        ("title: [Video] a calf stretch\ndate: 2026-11-15\n", 2, "starting with [ that is not a list needs quotes"),
        ("title: {Video} a calf stretch\ndate: 2026-11-15\n", 2, "a value starting with { needs quotes"),
        ("title: x\ndate: 2026-11-15\nslug: !<odd\n", 4, "front matter: "),
    ],
)
def test_yaml_syntax_errors_in_the_editors_words(tmp_path, front, line, message):
    path = write(tmp_path, f"---\n{front}\n---\nbody\n")
    issue, findings = read_issue(path)
    assert issue is None
    assert len(findings) == 1, findings
    finding = findings[0]
    assert (finding.line, finding.severity) == (line, "error"), finding
    assert finding.message.startswith("front matter: ")
    assert message in finding.message, finding.message
    assert not any(word in finding.message for word in YAML_JARGON), finding.message
    assert "\n" not in finding.message


def test_a_nul_byte_in_an_issue_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "2026-11-15-nul.md"
    path.write_bytes(b"---\ntitle: x\ndate: 2026-11-15\n---\nLine.\n\n![A stretch](images/calf\x00.png)\n")
    issue, findings = read_issue(path)
    assert issue is None
    assert [(f.line, f.severity) for f in findings] == [(7, "error")]
    assert "NUL" in findings[0].message
