"""`publish check`: one case per lint rule, through check_issue()."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.lint import check_issue

HEADER = """---
title: Shoulder pain
date: 2026-11-15
preheader: A gentle doorway stretch for shoulders that ache after a day at the desk.
---
"""


def issue(root: Path, body: str, header: str = HEADER, name: str = "2026-11-15-shoulder.md") -> Path:
    path = root / "issues" / name
    path.write_text(header + body, encoding="utf-8")
    return path


def findings(path: Path, settings) -> list[tuple[int, str, str]]:
    return [(f.line, f.severity, f.message) for f in check_issue(path, settings).findings]


def only(path, settings, severity: str) -> list[tuple[int, str]]:
    return [(line, msg) for line, sev, msg in findings(path, settings) if sev == severity]


def test_sample_issues_are_clean(newsletter, settings):
    for path in sorted((newsletter / "issues").glob("*.md")):
        result = check_issue(path, settings)
        assert result.findings == (), result.findings
        assert result.ok and result.rendered is not None


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("Ask on [the forum]().\n", 6, "link [the forum] has an empty target"),
        ("See [this](#).\n", 6, "link [this] points at '#'"),
        ("See [below](#how).\n", 6, "anchors do not work in email"),
        ("Read\n[the old issue](2020-01-01-gone.md).\n", 7, "'2020-01-01-gone.md' resolves to no file"),
        ("Visit [our site](www.example.com).\n", 6, "has no scheme; write https://www.example.com"),
        ("Visit [our site](example.com/page).\n", 6, "has no scheme"),
        ("Ask on [the forum] today.\n", 6, "link [the forum] has no target"),
        ("Look:\n\n![](images/calf-stretch.png)\n", 8, "has no alt text"),
        ("![A stretch](images/nope.png)\n", 6, "image 'images/nope.png' not found"),
    ],
)
def test_link_and_image_errors(newsletter, settings, body, line, message):
    errors = only(issue(newsletter, body), settings, "error")
    assert any(ln == line and message in m for ln, m in errors), errors


def test_good_links_pass(newsletter, settings):
    body = (
        "See [last issue](2026-12-01-calf-stretch.md), [mail us](mailto:dana@example.com),\n"
        "[the forum](https://forum.example.com/) and [a footnote][1].\n\n"
        "[1]: https://example.com/note\n\n"
        "Checkboxes like [x] and [sic] are text.\n\n"
        "![A stretch](calf-stretch.png)\n"
    )
    path = issue(newsletter, body)
    assert only(path, settings, "error") == []
    rendered = check_issue(path, settings).rendered
    assert rendered is not None
    assert 'href="https://painfreeliving.example.com/issues/calf-stretch/"' in rendered.html
    assert 'src="https://painfreeliving.example.com/media/images/calf-stretch.png"' in rendered.html


def test_subject_too_long_is_a_warning(newsletter, settings):
    header = HEADER.replace("title: Shoulder pain", "title: " + "Shoulder pain " * 7)
    warnings = only(issue(newsletter, "Hi.\n", header), settings, "warning")
    assert warnings == [(2, "subject is 97 characters; inboxes cut it after about 78")]


@pytest.mark.parametrize(
    ("preheader_line", "line", "message"),
    [
        ("", 2, "no preheader"),
        ("preheader: Too short.\n", 4, "preheader is 10 characters; aim for 40 to 130"),
        ("preheader: " + "x" * 131 + "\n", 4, "preheader is 131 characters"),
    ],
)
def test_preheader_warnings(newsletter, settings, preheader_line, line, message):
    header = f"---\ntitle: Shoulder pain\ndate: 2026-11-15\n{preheader_line}---\n"
    warnings = only(issue(newsletter, "Hi.\n", header), settings, "warning")
    assert any(ln == line and message in m for ln, m in warnings), warnings


def test_front_matter_errors_are_findings(newsletter, settings):
    header = "---\ntitle: Shoulder pain\ndate: someday\ncolour: blue\n---\n"
    errors = only(issue(newsletter, "Hi.\n", header), settings, "error")
    assert (3, "date: 'someday' is not an ISO date like 2026-12-01") in errors
    assert (4, "unknown key 'colour'") in errors


def test_email_over_gmail_clip_size_is_an_error(newsletter, settings):
    body = "".join(f"Paragraph {n} about stretching your calves gently. " * 6 + "\n\n" for n in range(400))
    errors = only(issue(newsletter, body), settings, "error")
    assert len(errors) == 1 and "Gmail clips messages over 102 KB" in errors[0][1]


@pytest.mark.parametrize(
    ("needle", "message"),
    [
        ('<a href="{{ slots.unsubscribe_url }}">Unsubscribe</a> · ', "no unsubscribe link"),
        ('<a href="{{ urls.web }}">View in browser</a>', "no view-in-browser link"),
        ("{{ newsletter.postal_address }}</mj-text>", "no postal address"),
    ],
)
def test_template_without_required_footer_parts(newsletter, settings, needle, message):
    template = newsletter / "templates" / "email.mjml.j2"
    text = template.read_text()
    assert needle in text
    replacement = "</mj-text>" if needle.endswith("</mj-text>") else ""
    text = text.replace(needle, replacement)
    if "urls.web" in needle:
        text = text.replace('<a href="{{ urls.web }}">View this issue in your browser</a>', "")
    template.write_text(text)
    errors = [f for f in check_issue(issue(newsletter, "Hi.\n"), settings).findings if f.severity == "error"]
    assert [(f.path, f.line) for f in errors] == [(template, 1)]
    assert message in errors[0].message


def test_broken_template_is_located(newsletter, settings):
    template = newsletter / "templates" / "email.mjml.j2"
    lines = template.read_text().split("\n")
    lines[12] += " {% if %}"
    template.write_text("\n".join(lines))
    result = check_issue(issue(newsletter, "Hi.\n"), settings)
    assert [(f.line, f.severity) for f in result.findings] == [(13, "error")]
    assert str(result.findings[0]).startswith(f"{template}:13: error: ")


def test_broken_mjml_is_reported(newsletter, settings):
    template = newsletter / "templates" / "email.mjml.j2"
    template.write_text(template.read_text().replace("</mjml>", ""))
    result = check_issue(issue(newsletter, "Hi.\n"), settings)
    assert len(result.errors) == 1
    assert "MJML" in result.errors[0].message
