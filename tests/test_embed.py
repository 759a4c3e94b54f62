"""`publish embed`: the blog's subscribe box is one form that posts to the
site's /subscribe with the signup page's fields, honeypot and consent
wording, fetches nothing and runs nothing, escapes what it is given, and is
valid HTML on a page of its own."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.embed import embed_snippet, subscribe_box
from pipeline.errors import ConfigError
from subscribers.consent import consent_wording
from subscribers.page_loader import signup_form_html

runner = CliRunner()


class Parsed(HTMLParser):
    """The elements of a fragment, in order, with their attributes, and the
    labels' text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.inside: dict[int, list[str]] = {}
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self.inside[len(self.elements) - 1] = list(self.open)
        if tag not in ("input", "br", "img", "meta", "link"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    def ancestors(self, tag: str, **attrs: str) -> list[str]:
        for index, (name, found) in enumerate(self.elements):
            if name == tag and all(found.get(k) == v for k, v in attrs.items()):
                return self.inside[index]
        raise AssertionError(f"no {tag} {attrs}")


def test_the_box_posts_the_signup_pages_fields_to_the_site(settings):
    html = embed_snippet(settings, "blog sidebar")
    parsed = Parsed(html)
    (form,) = parsed.all("form")
    assert form["action"] == "https://painfreeliving.example.com/subscribe"
    assert form["method"] == "post" and form["accept-charset"] == "utf-8"
    inputs = {attrs["name"]: attrs for attrs in parsed.all("input")}
    assert set(inputs) == {"email", "name", "website", "source"}
    assert inputs["email"]["type"] == "email" and "required" in inputs["email"]
    assert inputs["source"] == {"type": "hidden", "name": "source", "value": "blog sidebar"}
    # The honeypot as the signup page has it: in a hidden block, out of the
    # tab order, never filled in by the browser.
    assert inputs["website"]["tabindex"] == "-1" and inputs["website"]["autocomplete"] == "off"
    (trap,) = [attrs for attrs in parsed.all("div") if "hidden" in attrs]
    assert "display: none" in (trap["style"] or "")
    assert parsed.ancestors("input", name="website")[-2:] == ["div", "label"]
    # Every field a person fills in is inside its label.
    for name in ("email", "name"):
        assert parsed.ancestors("input", name=name)[-1] == "label"
    # The same consent words the signup page shows and each signup records.
    page_form = signup_form_html("/subscribe", consent_wording(settings.name))
    wording = consent_wording(settings.name, settings.consent_text)
    assert wording in page_form and wording in "".join(parsed.text)
    assert [b.get("type") for b in parsed.all("button")] == ["submit"]


def test_the_box_runs_nothing_and_fetches_nothing(settings):
    html = embed_snippet(settings, "blog sidebar")
    lowered = html.lower()
    for never in ("<script", "<link", "<img", "<iframe", "<style", "@import", "url(", "javascript:",
                  " on"):  # no event handler attributes either
        assert never not in lowered, never
    urls = re.findall(r"(?:https?:)?//[^\s\"'<>]+", html)
    assert urls == ["https://painfreeliving.example.com/subscribe"]
    # Its styles are inline, and each element first sets back what a host
    # page's stylesheet may have set on it.
    styled = [attrs for _, attrs in Parsed(html).elements if attrs.get("style")]
    assert len(styled) >= 10
    for attrs in styled:
        style = attrs["style"] or ""
        assert (attrs.get("class") or "").startswith("newsletter-subscribe-"), attrs
        if "display: none" not in style:
            assert style.startswith("box-sizing: border-box; float: none;"), style
            assert "margin: 0;" in style and "font: inherit;" in style and "color: inherit;" in style
    assert "max-width: 28rem" in html and "system-ui" in html


def test_everything_the_box_is_given_is_escaped():
    html = subscribe_box(
        "https://site.example/subscribe?x=1&y=2",
        'Letters <script>alert(1)</script> & "Co"',
        "I agree <b>really</b>",
        '"><script>alert(2)</script>',
    )
    assert "<script" not in html and "<b>" not in html
    assert 'action="https://site.example/subscribe?x=1&amp;y=2"' in html
    assert "Letters &lt;script&gt;" in html and "I agree &lt;b&gt;really&lt;/b&gt;" in html
    source = [a for a in Parsed(html).all("input") if a.get("name") == "source"]
    assert source[0]["value"] == '"><script>alert(2)</script>'


def test_the_box_is_valid_html_on_a_page_of_its_own(settings, tmp_path: Path):
    from tests.test_site_validators import nu_errors

    page = tmp_path / "blog.html"
    page.write_text(
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>A blog post</title>\n</head>\n<body>\n<main>\n<h1>A blog post</h1>\n"
        f"<p>Some words.</p>\n{embed_snippet(settings, 'blog sidebar')}\n</main>\n</body>\n</html>\n",
        encoding="utf-8",
    )
    errors = nu_errors([page])
    assert not errors, "\n".join(errors)


def test_publish_embed_prints_the_box_with_its_source(newsletter):
    result = runner.invoke(app, ["embed", "--source", "  issue page  "])
    assert result.exit_code == 0, result.output
    inputs = {a["name"]: a for a in Parsed(result.stdout).all("input")}
    assert inputs["source"]["value"] == "issue page"
    default = runner.invoke(app, ["embed"])
    assert {a["name"]: a for a in Parsed(default.stdout).all("input")}["source"]["value"] == (
        "blog sidebar"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "error: --source: is empty; name the page the form is on"),
        ("x" * 61, "error: --source: longer than 60 characters"),
        ("blog\x1b[31m", "error: --source: has a control character; use printable text"),
    ],
)
def test_a_source_that_cannot_be_kept_is_one_line_of_error(newsletter, source, message):
    result = runner.invoke(app, ["embed", "--source", source])
    assert result.exit_code == 1
    assert result.stderr.strip() == message and result.stdout == ""


def test_without_a_blog_there_is_no_box(newsletter, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_BLOG_URL", "")
    result = runner.invoke(app, ["embed"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: newsletter.blog_url: not set;")
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_box_needs_the_blog_to_be_set(settings):
    import dataclasses

    with pytest.raises(ConfigError, match=r"newsletter\.blog_url"):
        embed_snippet(dataclasses.replace(settings, blog_url=""), "blog sidebar")
