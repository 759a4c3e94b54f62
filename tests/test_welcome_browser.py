"""The welcome's links, opened in a real browser (headless Chromium): a
reader signs up with the real `publish serve` (the local demo, which builds
the site for its own address), confirms from the outbox, and every link in
the welcome it mails leads somewhere: the three latest issues to their
pages on the built site, the archive, the unsubscribe page, the reply
address as a mailto."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from subscribers.store import Store
from tests.test_serve_demo import outbox_message, publish_serve, text_of

pytestmark = pytest.mark.browser
runner = CliRunner()

LATEST = {  # the three latest, newest first, as the welcome must list them
    "desk-wrist-routine": "A five-minute wrist routine for desk workers",
    "calf-stretch": "An easy stretch for chronic calf pain",
    "back": "Your lower back at the desk",
}


def write_issue(root: Path, name: str, title: str, day: str) -> None:
    (root / "issues" / name).write_text(
        f"---\ntitle: {title}\ndate: {day}\npublish_at: {day}T07:00:00+00:00\n"
        f"preheader: What {title.lower()} asks of you, and three small ways to help.\n"
        f"---\nA paragraph about {title.lower()}.\n",
        encoding="utf-8",
    )


@pytest.fixture
def published(newsletter: Path) -> Path:
    """Two issues sent to a reader through the outbox, two more published
    by their publish_at: four on the site."""
    write_issue(newsletter, "2026-11-03-neck.md", "A gentle neck release", "2026-11-03")
    write_issue(newsletter, "2026-11-17-back.md", "Your lower back at the desk", "2026-11-17")
    settings = load_settings(newsletter)
    with Store.open(settings.database_url, settings.root) as store:
        store.add("reader@example.com", name="Sam Reader")
    for issue in ("issues/2026-12-01-calf-stretch.md", "issues/2026-12-15-desk-wrist-routine.md"):
        result = runner.invoke(app, ["issue", issue, "--yes"])
        assert result.exit_code == 0, result.output
    return newsletter


def test_every_link_in_the_welcome_leads_somewhere(browser, published: Path):
    outbox = published / "outbox"
    with publish_serve(published) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/subscribe", data={"email": "new@example.com", "name": "Neu"})
        confirmation = outbox_message(outbox, "Please confirm")
        link = re.search(rf"{re.escape(url)}(/confirm/\S+)", text_of(confirmation))
        assert link, text_of(confirmation)
        assert client.post(link.group(1)).status_code == 200
        welcome = outbox_message(outbox, "Welcome to")
        html = welcome.get_body(("html",))
        assert html is not None
        page_file = published / "welcome.html"
        page_file.write_text(str(html.get_content()), encoding="utf-8")

        page = browser.new_page()
        try:
            page.goto(page_file.as_uri())
            links = page.eval_on_selector_all(
                "a[href]", "links => links.map(a => [a.getAttribute('href'), a.innerText])"
            )
            hrefs = [href for href, _ in links]
            site = [href for href in hrefs if href.startswith(f"{url}/")]
            others = [href for href in hrefs if href not in site]
            assert others == ["mailto:dana@painfreeliving.example.com"] + [
                href for href in others if href.startswith("https://forum.")
            ], others

            issues = [href for href in site if "/issues/" in href]
            assert issues == [f"{url}/issues/{slug}/" for slug in LATEST]
            texts = dict(links)
            for (slug, title), href in zip(LATEST.items(), issues, strict=True):
                assert texts[href] == title
                assert (published / "preview" / "site" / "issues" / slug / "index.html").is_file()
            assert f"{url}/" in site  # the archive
            (unsubscribe,) = [href for href in site if "/unsubscribe/" in href]

            for href in site:
                answer = page.goto(href)
                assert answer is not None and answer.status == 200, href
                if href in issues:
                    assert page.locator("h1").first.inner_text() == texts[href]
            assert page.goto(unsubscribe) is not None
            assert page.get_by_role("button", name="Unsubscribe").count() == 1
        finally:
            page.close()
