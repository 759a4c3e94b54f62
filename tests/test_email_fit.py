"""Every email and issue page fits a phone: wide tables scroll in their own box.

Issues with 2- to 6-column tables, a 60-letter word, a German compound and a
long URL are rendered twice, as the email a sample reader gets and as the
issue page ``publish site`` writes, and opened in headless Chromium at 320,
375 and 600 px, light and dark. The page must never scroll sideways, every
paragraph must stay inside the screen, each data table must sit in a
scrolling box no wider than its column, and screen readers must see a table
with column headers (layout tables alone are ``role="presentation"``).

The site is served to the browser from public/ at its own URL, so the page
loads its stylesheets and images however its template links them.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.config import load_settings
from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.render import render_issue, sample_values
from pipeline.site import build_site
from tests.support.newsletter import copy_newsletter, isolated

pytestmark = pytest.mark.browser

COLUMNS = (2, 3, 4, 5, 6)
WIDTHS = (320, 375, 600)
SCHEMES = ("light", "dark")
KINDS = ("email", "web")

LONG_WORD = "Abcdefghij" + "klmnopqrst" * 5  # 60 letters
COMPOUND = "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz"
LONG_URL = (
    "https://painfreeliving.example.com/blog/2026/12/an-easy-stretch-for-chronic-calf-pain"
    "-that-you-can-do-while-the-kettle-boils?utm_source=newsletter&utm_medium=email"
)
HEADERS = ("Exercise", "Repetitions", "Hold (seconds)", "Rest between sets", "Equipment", "Notes")
CELLS = (
    "Wall stretch, both knees",
    "Ten slow ones",
    "Thirty",
    "One minute",
    "A wall or a door frame",
    "Keep the heel on the floor the whole time",
)
NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)


def slug(columns: int) -> str:
    return f"table-{columns}"


def issue_text(columns: int) -> str:
    header = "| " + " | ".join(HEADERS[:columns]) + " |"
    rule = "|" + "---|" * columns
    rows = ["| " + " | ".join(CELLS[:columns]) + " |"] * 3
    table = "\n".join([header, rule, *rows])
    return f"""---
title: A table with {columns} columns
date: 2026-11-{columns + 10:02d}
---
Before the table comes a paragraph of ordinary length, long enough to wrap
on a phone, so that a table that pushes the page wider shows up here.

{table}

A word of sixty letters, {LONG_WORD}, must break rather than push the page.

## Das {COMPOUND}

The {COMPOUND} is a German law, and its name breaks as well.

Read more at <{LONG_URL}>, or at [the long link itself]({LONG_URL}).

---

Stay well,
Dana
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The email HTML of each test issue, and its issue page in public/."""
    root = copy_newsletter(tmp_path_factory.mktemp("fit") / "newsletter")
    for columns in COLUMNS:
        name = f"2026-11-{columns + 10:02d}-{slug(columns)}.md"
        (root / "issues" / name).write_text(issue_text(columns), encoding="utf-8")
    with isolated(root):
        settings = load_settings(root)
        context = Context.load(settings)
        emails: dict[str, str] = {}
        web_urls: dict[str, str] = {}
        for columns in COLUMNS:
            path = next((root / "issues").glob(f"*-{slug(columns)}.md"))
            rendered = render_issue(load_issue(path), context)
            emails[slug(columns)] = rendered.fill(sample_values(settings))[0]
            web_urls[slug(columns)] = rendered.web_url
        build_site(context, {slug(c): NOW for c in COLUMNS}, NOW)
        yield {
            "emails": emails,
            "web_urls": web_urls,
            "public": settings.public_dir,
            "site_url": settings.site_url,
        }


def serve_site(page: Any, public: Path, site_url: str) -> None:
    """Answer requests for the site from public/; refuse every other host."""
    site = urlsplit(site_url)

    def handle(route: Any) -> None:
        url = urlsplit(route.request.url)
        if (url.scheme, url.netloc) != (site.scheme, site.netloc):
            route.abort()
            return
        path = public / url.path.lstrip("/")
        if url.path.endswith("/"):
            path = path / "index.html"
        if not path.is_file():
            route.fulfill(status=404, body="")
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        route.fulfill(status=200, body=path.read_bytes(), content_type=kind)

    page.route("**/*", handle)


MEASURE = """() => {
  const viewport = window.innerWidth;
  const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const tables = [...document.querySelectorAll('table')]
      .filter(t => t.tHead !== null)
      .map(table => {
        let box = table.parentElement;
        while (box && !scrolls(box)) box = box.parentElement;
        const column = (box || table).parentElement;
        const rect = (el) => el.getBoundingClientRect();
        return {
          scrollBox: box !== null,
          boxWidth: box ? rect(box).width : rect(table).width,
          boxRight: box ? rect(box).right : rect(table).right,
          columnWidth: rect(column).width,
          tableWidth: rect(table).width,
          role: table.getAttribute('role'),
          thead: table.querySelector('thead') !== null,
          columnHeaders: table.querySelectorAll('thead th[scope="col"]').length,
        };
      });
  const text = [...document.querySelectorAll('p, li, h1, h2, h3')]
      .map(el => ({text: el.textContent.trim().slice(0, 50),
                   right: el.getBoundingClientRect().right,
                   overflow: el.scrollWidth - el.clientWidth}))
      .filter(t => t.right > viewport + 0.5 || t.overflow > 0.5);
  return {viewport, scrollWidth: document.documentElement.scrollWidth, tables, text};
}"""


def measure(
    browser: Any, pages: dict[str, Any], kind: str, name: str, width: int, scheme: str
) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        if kind == "email":
            page.route("**/*", lambda route: route.abort())
            page.set_content(pages["emails"][name])
        else:
            serve_site(page, pages["public"], pages["site_url"])
            page.goto(pages["web_urls"][name])
        layout = page.evaluate(MEASURE)
        layout["ariaTables"] = page.get_by_role("table").count()
        layout["ariaColumnHeaders"] = page.get_by_role("columnheader").count()
        return layout
    finally:
        page.close()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("columns", COLUMNS)
def test_issue_fits_the_screen_and_its_table_scrolls_in_its_own_box(
    browser, pages, columns, kind, width, scheme
):
    layout = measure(browser, pages, kind, slug(columns), width, scheme)
    assert layout["viewport"] == width
    assert layout["scrollWidth"] <= width, f"page scrolls sideways: {layout['scrollWidth']}px"
    assert layout["text"] == [], "text runs off the screen or out of its box"
    [table] = layout["tables"]
    assert table["scrollBox"], "the table has no scrolling box"
    assert table["boxWidth"] <= table["columnWidth"] + 0.5, table
    assert table["boxRight"] <= width + 0.5, table


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("columns", COLUMNS)
def test_data_tables_keep_table_semantics(browser, pages, columns, kind):
    layout = measure(browser, pages, kind, slug(columns), 375, "light")
    [table] = layout["tables"]
    assert table["role"] not in ("presentation", "none"), table
    assert table["thead"] and table["columnHeaders"] == columns, table
    # What a screen reader is told: one table, with its column headers.
    assert layout["ariaTables"] == 1
    assert layout["ariaColumnHeaders"] == columns
