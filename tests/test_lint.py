"""`publish check`: one case per lint rule, through check_issue()."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.context import Context
from pipeline.lint import GMAIL_CLIP_BYTES, check_issue
from pipeline.render import sample_values

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
    return [(f.line, f.severity, f.message) for f in check_issue(path, Context.load(settings)).findings]


def only(path, settings, severity: str) -> list[tuple[int, str]]:
    return [(line, msg) for line, sev, msg in findings(path, settings) if sev == severity]


def test_sample_issues_are_clean(newsletter, settings):
    for path in sorted((newsletter / "issues").glob("*.md")):
        result = check_issue(path, Context.load(settings))
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
    rendered = check_issue(path, Context.load(settings)).rendered
    assert rendered is not None
    assert 'href="https://painfreeliving.example.com/issues/calf-stretch/"' in rendered.html
    assert 'src="https://painfreeliving.example.com/media/images/calf-stretch.png"' in rendered.html


def test_subject_too_long_is_a_warning(newsletter, settings):
    header = HEADER.replace("title: Shoulder pain", "title: " + "Shoulder pain " * 7)
    warnings = only(issue(newsletter, "A note.\n", header), settings, "warning")
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
    warnings = only(issue(newsletter, "A note.\n", header), settings, "warning")
    assert any(ln == line and message in m for ln, m in warnings), warnings


def test_front_matter_errors_are_findings(newsletter, settings):
    header = "---\ntitle: Shoulder pain\ndate: someday\ncolour: blue\n---\n"
    errors = only(issue(newsletter, "A note.\n", header), settings, "error")
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
    errors = [f for f in check_issue(issue(newsletter, "A note.\n"), Context.load(settings)).findings if f.severity == "error"]
    assert [(f.path, f.line) for f in errors] == [(template, 1)]
    assert message in errors[0].message


def test_broken_template_is_located(newsletter, settings):
    template = newsletter / "templates" / "email.mjml.j2"
    lines = template.read_text().split("\n")
    lines[12] += " {% if %}"
    template.write_text("\n".join(lines))
    result = check_issue(issue(newsletter, "A note.\n"), Context.load(settings))
    assert [(f.line, f.severity) for f in result.findings] == [(13, "error")]
    assert str(result.findings[0]).startswith(f"{template}:13: error: ")


def test_broken_mjml_is_reported(newsletter, settings):
    template = newsletter / "templates" / "email.mjml.j2"
    template.write_text(template.read_text().replace("</mjml>", ""))
    result = check_issue(issue(newsletter, "A note.\n"), Context.load(settings))
    assert len(result.errors) == 1
    assert "MJML" in result.errors[0].message


def html_part_as_sent(raw: bytes) -> bytes:
    """The text/html part's body bytes between its headers and the next delimiter."""
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    for part in raw.split(b"\r\n--" + boundary.group(1)):
        head, _, body = part.partition(b"\r\n\r\n")
        if b"Content-Type: text/html" in head:
            return body
    raise AssertionError("no text/html part")


def test_gmail_clip_size_is_the_html_part_as_sent(newsletter, settings):
    from pipeline.personalize import Personalizer, Recipient

    # Accented text grows in quoted-printable: é is two bytes, and six on the wire.
    body = "".join(
        f"Étirez doucement le mollet gauche, puis le droit — répétez {n} fois à l’été. " * 5 + "\n\n"
        for n in range(150)
    )
    result = check_issue(issue(newsletter, body), Context.load(settings))
    assert result.rendered is not None
    decoded, _ = result.rendered.fill(sample_values(settings))
    assert len(decoded.encode("utf-8")) < GMAIL_CLIP_BYTES  # what was measured before
    raw = Personalizer(result.rendered, settings, lambda _id: "t" * 40)(
        Recipient(1, "reader@example.com", "Alex Reader")
    ).raw
    sent = len(html_part_as_sent(raw))
    assert sent > GMAIL_CLIP_BYTES
    errors = [f.message for f in result.errors]
    assert len(errors) == 1 and "Gmail clips messages over 102 KB" in errors[0], errors
    reported = float(re.search(r"([\d.]+) KB", errors[0]).group(1))  # type: ignore[union-attr]
    assert abs(reported - sent / 1024) < 0.2, (reported, sent / 1024)


def test_body_findings_are_reported_when_the_front_matter_is_broken(newsletter, settings):
    header = "---\ntitle: Neck pain: a fix\ndate: 2026-11-15\ncolour: blue\n---\n"
    body = "Ask on [the forum]().\n\n![](images/calf-stretch.png)\n\n![A knee](images/knee.png)\n"
    errors = only(issue(newsletter, body, header), settings, "error")
    lines = [line for line, _ in errors]
    assert 2 in lines  # the front matter's own error
    assert (6, "link [the forum] has an empty target") in errors
    assert any(ln == 8 and "has no alt text" in m for ln, m in errors), errors
    assert any(ln == 10 and "'images/knee.png' not found" in m for ln, m in errors), errors


def test_body_findings_are_reported_when_a_key_is_invalid(newsletter, settings):
    header = "---\ntitle: Shoulder pain\ndate: someday\ncolour: blue\n---\n"
    errors = only(issue(newsletter, "See [this](#).\n", header), settings, "error")
    assert (3, "date: 'someday' is not an ISO date like 2026-12-01") in errors
    assert (4, "unknown key 'colour'") in errors
    assert any(ln == 6 and "points at '#'" in m for ln, m in errors), errors


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        ('<div class="note">\nStretch gently.\n</div>\n', [6]),
        ("Hold it for <b>30 seconds</b>, then let go.\n", [6]),
        ("First line,\nthen <span\nstyle='color:red'>red</span> text.\n", [7, 8]),
        ("Intro.\n\n<!-- remember to add the photo -->\n", [8]),
        ("A<br>line\n\nand <img src=x.png> too.\n", [6, 8]),
    ],
)
def test_raw_html_is_a_warning_at_its_line(newsletter, settings, body, lines):
    warnings = [(ln, m) for ln, m in only(issue(newsletter, body), settings, "warning")]
    html = [(ln, m) for ln, m in warnings if "HTML" in m]
    assert [ln for ln, _ in html] == lines, warnings
    assert all("shown as text" in m for _, m in html)


def test_what_only_looks_like_html_is_not_flagged(newsletter, settings):
    body = (
        "Mail <dana@example.com> or see <https://example.com/page>.\n\n"
        "Write `<b>` for bold, if 3 < 4 and 5 > 2.\n\n"
        "```\n<div>code</div>\n```\n\n"
        "    <p>indented code</p>\n"
    )
    path = issue(newsletter, body)
    assert only(path, settings, "warning") == []
    assert only(path, settings, "error") == []


def test_an_issue_file_without_its_date_is_a_warning(newsletter, settings):
    path = issue(newsletter, "A note.\n", name="shoulder.md")
    assert only(path, settings, "warning") == [
        (1, "the file name should start with the issue's date: 2026-11-15-shoulder.md")
    ]
    assert only(path, settings, "error") == []
    header = "---\ntitle: Shoulder pain\ndate: someday\n---\n"
    undated = issue(newsletter, "A note.\n", header, name="notes.md")
    assert (1, "the file name should start with the issue's date: YYYY-MM-DD-notes.md") in only(
        undated, settings, "warning"
    )
    dated = issue(newsletter, "A note.\n", name="2026-11-15-shoulder.md")
    assert only(dated, settings, "warning") == []


def template_with(newsletter: Path, old: str, new: str, count: int = 1) -> tuple[Path, list[int]]:
    """The email template with ``old`` replaced ``count`` times; the lines changed."""
    template = newsletter / "templates" / "email.mjml.j2"
    lines = template.read_text().split("\n")
    changed: list[int] = []
    for index, line in enumerate(lines):
        if old in line and len(changed) < count:
            lines[index] = line.replace(old, new, 1)
            changed.append(index + 1)
    assert len(changed) == count
    template.write_text("\n".join(lines))
    return template, changed


def test_an_unknown_mjml_element_is_an_error_at_its_template_line(newsletter, settings):
    template, (line,) = template_with(newsletter, "<mj-column>", "<mj-colum>")
    result = check_issue(issue(newsletter, "A note.\n"), Context.load(settings))
    assert [(f.path, f.line, f.severity) for f in result.findings] == [(template, line, "error")]
    assert result.findings[0].message.startswith("unknown MJML element <mj-colum>")
    assert "<mj-column>" in result.findings[0].message  # the suggestion
    assert not result.ok


def test_every_unknown_mjml_element_is_reported_even_with_a_broken_issue(newsletter, settings):
    template, lines = template_with(newsletter, "<mj-text", "<mj-txt", count=2)
    _, closing = template_with(newsletter, "</mj-section>", "</mj-sektion>")
    header = "---\ntitle: [unclosed\ndate: 2026-11-15\n---\n"
    result = check_issue(issue(newsletter, "A note.\n", header), Context.load(settings))
    found = [(f.line, f.message.split(" (")[0]) for f in result.findings if f.path == template]
    assert found == [
        (lines[0], "unknown MJML element <mj-txt>"),
        (lines[1], "unknown MJML element <mj-txt>"),
        (closing[0], "unknown MJML element </mj-sektion>"),
    ]


def test_mjml_elements_in_comments_are_not_checked(newsletter, settings):
    template = newsletter / "templates" / "email.mjml.j2"
    text = template.read_text()
    text = text.replace("<mj-head>", "<mj-head>\n{# <mj-colum> is a typo #}\n<!-- <mj-foo> -->", 1)
    template.write_text(text)
    assert check_issue(issue(newsletter, "A note.\n"), Context.load(settings)).findings == ()


def test_every_element_mrml_knows_passes(newsletter, settings):
    from pipeline.mjml_elements import KNOWN_ELEMENTS, unknown_elements

    source = "\n".join(f"<{name} />" for name in sorted(KNOWN_ELEMENTS))
    assert unknown_elements(source) == []
    assert {"mjml", "mj-body", "mj-column", "mj-section", "mj-text", "mj-attributes"} <= KNOWN_ELEMENTS


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("images/calf%00stretch.png", "NUL"),
        ("images/" + "a" * 300 + ".png", "too long"),
    ],
)
def test_an_impossible_file_name_is_one_error(newsletter, settings, target, problem):
    path = issue(newsletter, f"Look:\n\n![A stretch]({target})\n\nand [this]({target}).\n")
    errors = only(path, settings, "error")
    assert [ln for ln, _ in errors] == [8, 10], errors
    assert all(problem in m and "\n" not in m for _, m in errors)
