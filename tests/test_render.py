"""Rendering: golden files for the sample issues, escaping, slots, the text part.

The golden files in tests/golden/ are what a sample reader gets for each
sample issue. After a deliberate change to templates or rendering, rewrite
them with ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render.py`` and
review the diff before committing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.render import SLOT_NAMES, render_issue, sample_values

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = sorted((Path(__file__).parent / "fixtures" / "newsletter" / "issues").glob("*.md"))


def render(newsletter: Path, settings, text: str, name: str = "2026-11-15-test.md"):
    path = newsletter / "issues" / name
    path.write_text(text, encoding="utf-8")
    return render_issue(load_issue(path), Context.load(settings))


@pytest.mark.parametrize("sample", [p.name for p in SAMPLES])
def test_sample_issue_matches_golden(newsletter, settings, sample):
    rendered = render_issue(load_issue(newsletter / "issues" / sample), Context.load(settings))
    html, text = rendered.fill(sample_values(settings))
    outputs = {
        f"{rendered.issue.slug}.html": html,
        f"{rendered.issue.slug}.txt": text,
        f"{rendered.issue.slug}.web.html": rendered.web_html,
    }
    for name, actual in outputs.items():
        golden = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(actual, encoding="utf-8")
        assert golden.read_text(encoding="utf-8") == actual, f"{name} differs from golden"


def test_email_structure(newsletter, settings):
    rendered = render_issue(load_issue(newsletter / "issues" / SAMPLES[0].name), Context.load(settings))
    html = rendered.html
    assert html.startswith("<!doctype html><html lang=\"en\"")
    assert 'name="viewport"' in html and 'name="color-scheme" content="light dark"' in html
    assert "prefers-color-scheme: dark" in html
    preheader = re.search(r'<div style="display:none;[^"]*">([^<]*)</div>', html)
    assert preheader and preheader.group(1).startswith("Why tight calves keep aching")
    images = re.findall(r"<img [^>]*>", html)
    assert images and all(re.search(r'alt="[^"]+"', img) for img in images)
    assert "fonts.googleapis.com" not in html  # no remote fonts
    # An email never carries a relative URL.
    for url in re.findall(r'(?:href|src)="([^"]*)"', html):
        assert url.startswith(("https://", "mailto:", rendered.slot("unsubscribe_url"))), url
    # Caption from the image title.
    assert "<em>The wall stretch: back heel down" in html


def test_slots_are_left_for_each_recipient(newsletter, settings):
    rendered = render_issue(load_issue(newsletter / "issues" / SAMPLES[0].name), Context.load(settings))
    unsubscribe, first_name = (rendered.slot(n) for n in SLOT_NAMES)
    assert f'href="{unsubscribe}"' in rendered.html
    assert f"Unsubscribe: {unsubscribe}" in rendered.text
    assert f"Hi {first_name}," in rendered.html and f"Hi {first_name}," in rendered.text
    assert unsubscribe not in rendered.web_html and first_name not in rendered.web_html
    assert "Unsubscribe" not in rendered.web_html and "Subscribe</a>" in rendered.web_html
    html, text = rendered.fill({"unsubscribe_url": "https://x.example/u?a=1&b=2", "first_name": "Zoë <3"})
    assert 'href="https://x.example/u?a=1&amp;b=2"' in html and "Hi Zoë &lt;3," in html
    assert "Unsubscribe: https://x.example/u?a=1&b=2" in text and "Hi Zoë <3," in text
    assert "pflslot" not in html + text


def test_slot_markers_cannot_be_forged_by_the_issue(newsletter, settings):
    first = render(newsletter, settings, "---\ntitle: A\ndate: 2026-11-15\n---\nHello\n")
    marker = first.slot("unsubscribe_url")
    second = render(newsletter, settings, f"---\ntitle: A\ndate: 2026-11-15\n---\nHello {marker}\n")
    assert second.nonce != first.nonce
    html, text = second.fill(sample_values(settings))
    assert marker in html and marker in text  # printed as the text it is, not filled


def test_hostile_text_is_escaped_not_executed(newsletter, settings):
    rendered = render(
        newsletter,
        settings,
        '---\ntitle: "<script>alert(1)</script> {{ 7*7 }} </mj-text>"\ndate: 2026-11-15\n'
        'preheader: "</mj-preview><mj-raw><script>x</script></mj-raw>"\n---\n'
        "Body <script>alert(2)</script> {{ 7*7 }} {% if true %}yes{% endif %}\n"
        "</mj-text></mj-column><mj-raw><b>raw</b></mj-raw>\n\n"
        "[click](javascript:alert(3)) ![x](javascript:alert(4))\n",
    )
    for html in (rendered.html, rendered.web_html):
        assert "<script" not in html
        assert not re.search(r'(href|src)="javascript:', html)
        assert "<b>raw</b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} &lt;/mj-text&gt;" in html
        assert "{% if true %}yes{% endif %}" in html
        assert "49" not in html
    assert "<script>alert(2)</script> {{ 7*7 }}" in rendered.text


def test_text_part_is_written_from_markdown(newsletter, settings):
    rendered = render(
        newsletter,
        settings,
        "---\ntitle: Wrists\ndate: 2026-11-15\n---\n"
        "Intro with [the forum](https://forum.example.com) and [the blog](https://blog.example.com)"
        " and [the forum again](https://forum.example.com).\n\n"
        "## Why it hurts\n\n- one\n- two\n  continued\n\n3. three\n4. four\n\n"
        "> quoted\n\n![A wrist stretch](https://cdn.example.com/w.jpg \"Hold for 20 s\")\n\n"
        "---\n\nWarmly,\nDana\n\nP.S. Tell a friend.\n",
    )
    text = rendered.text
    assert "Why it hurts\n------------" in text
    assert "- one\n- two continued" in text
    assert "3. three\n4. four" in text
    assert "> quoted" in text
    assert "[Image: A wrist stretch]\nHold for 20 s" in text
    assert "the forum [1] and the blog [2] and the forum again [1]." in text
    assert "[1] https://forum.example.com\n[2] https://blog.example.com" in text
    assert "Warmly,\nDana\n\nP.S. Tell a friend." in text
    assert "<" not in text.replace("<3", "")
    assert max(len(line) for line in text.splitlines() if "http" not in line) <= 72


def test_sign_off_and_postscript_are_set_apart(newsletter, settings):
    rendered = render(
        newsletter,
        settings,
        "---\ntitle: A\ndate: 2026-11-15\n---\nArticle.\n\n---\n\nBest,\nDana\n\nP.S. Share it.\n",
    )
    html = rendered.html
    assert "Best,<br />\nDana" in html
    assert html.index("Best,") < html.index("P.S. Share it.")
    assert 'class="ps' in html or "ps-outlook" in html or "#fbf6e3" in html


def test_relative_image_without_file_is_refused(newsletter, settings):
    from pipeline.errors import IssueError

    with pytest.raises(IssueError, match=r"2026-11-15-test.md:6: image 'nope.png' not found"):
        render(newsletter, settings, "---\ntitle: A\ndate: 2026-11-15\n---\n\n![x](nope.png)\n")


def test_broken_template_is_a_template_error(newsletter, settings):
    from pipeline.errors import TemplateError

    (newsletter / "templates" / "email.txt.j2").write_text("{{ nope.nothing }}")
    with pytest.raises(TemplateError, match=r"email.txt.j2: 'nope' is undefined"):
        render(newsletter, settings, "---\ntitle: A\ndate: 2026-11-15\n---\nx\n")


def test_control_characters_are_dropped_not_fatal(newsletter, settings):
    rendered = render(newsletter, settings, "---\ntitle: \"Bell\\a here\"\ndate: 2026-11-15\n---\nBody\x07 text\x1b.\n")
    assert "Bell here" in rendered.html and "Body text." in rendered.text
