"""The site's pages as readers, feed readers, sharing cards and crawlers see
them: an issue page's head and body, its neighbours, the tag pages, the
sitemap and robots.txt, and a page cache that follows the web templates.

Built from the test newsletter plus the issues of tests/support/site_samples.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

import pipeline.site.plan as site_module
from pipeline.context import Context
from pipeline.site import build_site
from pipeline.webpage import tag_slug
from tests.support.newsletter import isolated
from tests.support.site_samples import (
    EMOJI_TITLE,
    GERMAN_TITLE,
    NOW,
    SENT,
    SOFT_HYPHEN,
    SampleSite,
    build_sample_site,
)

SITE = "https://painfreeliving.example.com"
NEWEST_FIRST = ("knees", "happy-feet", "shoulder-desk", "desk-wrist-routine", "calf-stretch")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleSite]:
    with isolated():
        yield build_sample_site(tmp_path_factory.mktemp("pages") / "newsletter")


class Page(HTMLParser):
    """A page's head (title, meta by name or property, links) and the
    elements of its body, as a reader's tools read them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, list[str]] = {}
        self.links: list[dict[str, str]] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.elements.append((tag, values))
        if tag == "meta" and (values.get("property") or values.get("name")):
            key = values.get("property") or values["name"]
            self.meta.setdefault(key, []).append(values.get("content", ""))
        elif tag == "link":
            self.links.append(values)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def one(self, key: str) -> str:
        (value,) = self.meta[key]
        return value

    def link(self, rel: str, **match: str) -> list[str]:
        return [
            link["href"]
            for link in self.links
            if rel in link.get("rel", "").split()
            and all(link.get(k) == v for k, v in match.items())
        ]

    def count(self, tag: str, **match: str) -> int:
        return sum(
            1
            for name, values in self.elements
            if name == tag and all(values.get(k) == v for k, v in match.items())
        )


def issue_page(site: SampleSite, slug: str) -> str:
    return site.page(f"issues/{slug}/index.html")


def test_every_issue_is_published_newest_first(site):
    assert site.slugs == NEWEST_FIRST


def test_an_issue_page_is_semantic_html_with_nothing_of_the_email(site):
    for slug in site.slugs:
        html = issue_page(site, slug)
        page = Page(html)
        assert html.startswith('<!doctype html>\n<html lang="en">'), slug
        for tag in ("main", "article", "header", "footer", "time"):
            assert page.count(tag) >= 1, (slug, tag)
        assert page.count("main") == 1 and page.count("h1") == 1, slug
        for email_only in (
            "xmlns:v",
            "mso-",
            "<!--[if",
            'role="presentation"',
            "cellpadding",
            'height="auto"',
            "<mj-",
            "View this issue in your browser",
            "pflslot",
        ):
            assert email_only not in html, (slug, email_only)
    german = issue_page(site, "shoulder-desk")
    assert '<time datetime="2027-01-05">January 5, 2027</time>' in german
    assert f"<h1>{GERMAN_TITLE}</h1>" in german  # umlauts and the soft hyphen kept
    # The body's headings sit right under the page's title, whatever they start at.
    assert "<h2>Warum der Nacken schmerzt</h2>" in german
    assert "<h3>Der Wochenplan</h3>" in german
    assert "<h2>What helps</h2>" in issue_page(site, "knees")


def test_the_head_of_an_issue_page(site):
    page = Page(issue_page(site, "shoulder-desk"))
    url = f"{SITE}/issues/shoulder-desk/"
    assert page.title == f"{GERMAN_TITLE}: Pain Free Living"
    assert page.link("canonical") == [url]
    assert page.one("description").startswith("Verspannte Schultern nach einem langen Tag?")
    assert page.one("og:description") == page.one("description")
    assert page.one("og:title") == GERMAN_TITLE and SOFT_HYPHEN in page.one("og:title")
    assert page.one("og:url") == url
    assert page.one("og:type") == "article"
    # The issue's first picture, by an absolute URL.
    assert page.one("og:image").startswith(f"{SITE}/media/images/calf-stretch.")
    assert f'<figure><img src="{page.one("og:image")}"' in issue_page(site, "shoulder-desk")
    assert (
        page.one("og:image:alt") == "Eine Frau am Schreibtisch, die Schultern nach hinten gerollt"
    )
    assert page.one("twitter:card") == "summary_large_image"
    assert page.one("twitter:image") == page.one("og:image")
    assert page.one("twitter:title") == GERMAN_TITLE
    assert page.link("alternate", type="application/rss+xml") == [f"{SITE}/feed.xml"]
    assert page.link("alternate", type="application/atom+xml") == [f"{SITE}/feed.atom"]
    assert page.link("icon", type="image/svg+xml") == [f"{SITE}/static/favicon.svg"]
    favicon = (site.public / "static" / "favicon.svg").read_text()
    assert favicon.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert page.meta["article:tag"] == ["Rücken", "Büro", "stretching"]


def test_an_issue_without_a_picture_shares_the_logo(site):
    page = Page(issue_page(site, "knees"))
    assert page.one("og:image") == f"{SITE}/static/logo.png"
    assert page.one("twitter:card") == "summary"
    assert page.one("description").startswith("Creaky knees on the stairs are common")


def test_the_picture_is_the_first_image_even_inside_a_paragraph(site):
    html = issue_page(site, "happy-feet")
    page = Page(html)
    assert page.one("og:image").startswith(f"{SITE}/media/images/feet.")
    assert (
        f'move <img src="{page.one("og:image")}" alt="a foot on a tennis ball"'
        ' width="544" height="363">'
    ) in html
    assert page.one("og:image:alt") == "a foot on a tennis ball"
    assert page.one("og:title") == EMOJI_TITLE


def test_previous_and_next_issue_and_the_three_latest(site):
    def more_issues(html: str) -> list[str]:
        section = html.split('<h2 id="more-issues">More issues</h2>', 1)[1].split("</section>")[0]
        return [
            href.split('"', 1)[0].removeprefix(f"{SITE}/issues/").rstrip("/")
            for href in section.split('<a href="')[1:]
            if href.startswith(f"{SITE}/issues/")
        ]

    for n, slug in enumerate(NEWEST_FIRST):
        html = issue_page(site, slug)
        page = Page(html)
        newer = NEWEST_FIRST[n - 1] if n else None
        older = NEWEST_FIRST[n + 1] if n + 1 < len(NEWEST_FIRST) else None
        assert page.link("next") == ([f"{SITE}/issues/{newer}/"] if newer else []), slug
        assert page.link("prev") == ([f"{SITE}/issues/{older}/"] if older else []), slug
        assert page.count("a", rel="next") == (1 if newer else 0), slug
        assert page.count("a", rel="prev") == (1 if older else 0), slug
        latest = [other for other in NEWEST_FIRST if other != slug][:3]
        assert more_issues(html) == latest, slug
    middle = issue_page(site, "happy-feet")
    assert "<span>Previous issue</span>Rücken" in middle
    assert "<span>Next issue</span>Knees that creak on the stairs</a>" in middle


def test_an_issue_page_has_the_signup_form(site):
    page = Page(issue_page(site, "calf-stretch"))
    assert page.count("form", method="post", action=f"{SITE}/subscribe") == 1
    assert page.count("input", name="email", type="email") == 1


def test_the_body_is_rendered_for_the_web(site):
    german = issue_page(site, "shoulder-desk")
    # A wide table scrolls in a region of its own that the keyboard reaches.
    assert '<div class="table-scroll" role="region" tabindex="0" aria-label="Table 1">\n<table>' in german
    assert '<th scope="col" style="text-align:center">Monday morning</th>' in german
    assert '<td style="text-align:right">10</td>' in german
    feet = issue_page(site, "happy-feet")
    picture = Page(feet).one("og:image")
    # The second image of the page loads as the reader scrolls to it.
    assert (
        f'<figure><img src="{picture}" alt="A bare foot rolling a tennis '
        'ball on a wooden floor" width="544" height="363" loading="lazy">'
        "<figcaption>Roll slowly, heel to toe 🎾"
        "</figcaption></figure>"
    ) in feet
    assert "<blockquote>\n<p>Stop if anything tingles or goes numb.</p>\n</blockquote>" in feet
    assert '<div class="ps">\n<p>P.S. Reply and tell us which move helped 💬.</p>' in feet
    assert "<pre><code>toe raises: 3 × 10\n</code></pre>" in feet
    knees = issue_page(site, "knees")
    assert f'<a href="{SITE}/issues/calf-stretch/">the calf stretch</a>' in knees
    assert "style=" not in knees.split("<article>", 1)[1].split("</article>", 1)[0]


def test_tag_pages_list_their_issues_newest_first(site):
    stretching = site.page("tags/stretching/index.html")
    titles = ["Knees that creak", "Happy feet", "Rücken", "An easy stretch for chronic calf pain"]
    positions = [stretching.index(title) for title in titles]
    assert positions == sorted(positions)
    assert "A five-minute wrist routine" not in stretching
    page = Page(stretching)
    assert page.link("canonical") == [f"{SITE}/tags/stretching/"]
    assert page.title == "stretching: Pain Free Living"
    # Every tag of an issue links to its page; one with no letters has one too.
    feet = issue_page(site, "happy-feet")
    emoji = tag_slug("🦶")
    assert emoji.startswith("tag-")
    assert f'<a href="{SITE}/tags/{emoji}/">🦶</a>' in feet
    assert "Happy feet" in site.page(f"tags/{emoji}/index.html")
    assert f'<a href="{SITE}/tags/rucken/">Rücken</a>' in issue_page(site, "shoulder-desk")
    archive = site.page("index.html")
    assert f'<a href="{SITE}/tags/desk-work/">desk work</a>' in archive


def test_the_sitemap_lists_every_page_and_robots_txt_points_at_it(site):
    root = ET.fromstring(site.page("sitemap.xml"))
    namespace = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    assert root.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    listed = {
        url.findtext("s:loc", namespaces=namespace): url.findtext("s:lastmod", namespaces=namespace)
        for url in root.findall("s:url", namespace)
    }
    pages = {
        path.parent.relative_to(site.public).as_posix() for path in site.public.rglob("index.html")
    }
    expected = {f"{SITE}/issues/{slug}/" for slug in site.slugs}
    expected |= {f"{SITE}/{path}/" for path in pages if path.startswith("tags/")}
    expected |= {f"{SITE}/", f"{SITE}/subscribe"}
    assert set(listed) == expected
    assert listed[f"{SITE}/issues/calf-stretch/"] == "2026-12-01"
    assert listed[f"{SITE}/"] == "2027-02-02"
    assert site.page("robots.txt") == (f"User-agent: *\nAllow: /\n\nSitemap: {SITE}/sitemap.xml\n")


def test_every_page_has_the_feeds_and_the_favicon_and_the_404_page_is_not_indexed(site):
    for path in ("index.html", "subscribe/index.html", "404.html", "tags/knees/index.html"):
        page = Page(site.page(path))
        assert page.link("alternate", type="application/rss+xml") == [f"{SITE}/feed.xml"], path
        assert page.link("icon", type="image/svg+xml") == [f"{SITE}/static/favicon.svg"], path
        assert page.one("og:title") and page.one("twitter:card") == "summary", path
    assert Page(site.page("404.html")).one("robots") == "noindex"
    assert not Page(site.page("404.html")).link("canonical")
    assert Page(site.page("subscribe/index.html")).link("canonical") == [f"{SITE}/subscribe"]


# -- the page cache ----------------------------------------------------------


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """The slugs of the issues the site renders, in order."""
    renders: list[str] = []
    real = site_module.render_issue

    def counting(issue: Any, *args: Any) -> Any:
        renders.append(issue.slug)
        return real(issue, *args)

    monkeypatch.setattr(site_module, "render_issue", counting)
    return renders


@pytest.mark.parametrize("template", ["issue.html.j2", "base.html.j2", "issue-list.html.j2"])
def test_editing_a_web_template_renders_every_page_again(settings, counted, template):
    build_site(Context.load(settings), SENT, NOW)
    counted.clear()
    path = settings.templates_dir / "web" / template
    path.write_text(path.read_text() + "\n")
    build_site(Context.load(settings), SENT, NOW)
    assert sorted(counted) == ["calf-stretch", "desk-wrist-routine"]


def test_the_email_template_no_longer_shapes_a_page(settings, counted):
    first = build_site(Context.load(settings), SENT, NOW)
    counted.clear()
    path = settings.templates_dir / "email.mjml.j2"
    path.write_text(path.read_text() + "\n")
    again = build_site(Context.load(settings), SENT, NOW)
    assert counted == [] and again.written == ()
    assert again.unchanged == len(first.written)


def test_a_new_issue_changes_the_pages_around_it(newsletter, settings, counted):
    build_site(Context.load(settings), SENT, NOW)
    wrist = settings.public_dir / "issues" / "desk-wrist-routine" / "index.html"
    assert 'rel="next"' not in wrist.read_text()
    counted.clear()
    (newsletter / "issues" / "2027-01-05-knees.md").write_text(
        "---\ntitle: Knees\ndate: 2027-01-05\npublish_at: 2027-01-05T07:00:00+00:00\n---\n"
        "A few words about knees.\n"
    )
    report = build_site(Context.load(settings), SENT, NOW + timedelta(days=1))
    # Each page now offers the new issue among the latest.
    assert sorted(counted) == ["calf-stretch", "desk-wrist-routine", "knees"]
    assert {"issues/knees/index.html", "issues/desk-wrist-routine/index.html"} <= set(
        report.written
    )
    assert f'<a rel="next" class="next" href="{SITE}/issues/knees/">' in wrist.read_text()
