"""The reader-facing pages are the editor's templates, in the site's layout.

The service answers with templates/web/pages/NAME.html.j2 when the
newsletter has one and with the built-in page otherwise, each through the
site's layout (templates/web/base.html.j2); `publish check` finds a page
that drops what it must show, or does not render, at its file and line, and
`publish serve` will not start on one; `publish preview --page` writes each.
Every page, in every case the service answers with it, passes the Nu HTML
checker and axe-core, against the real app over loopback.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings
from pipeline.reader_pages import page_settings, settings_pages
from subscribers import db
from subscribers.page_loader import BUILT_IN, PAGES
from subscribers.page_samples import samples
from subscribers.store import Store
from subscribers.tokens import Signer
from subscribers.web import create_app
from tests.support.aws import free_port
from tests.support.web import config, serving

runner = CliRunner()
PAGES_DIR = Path("templates") / "web" / "pages"
SCREENS = {
    "1280 px, light": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
    "375 px, dark": {"viewport": {"width": 375, "height": 740}, "color_scheme": "dark"},
}


def own_page(root: Path, page: str, text: str) -> Path:
    """Write the editor's ``page`` into the newsletter at ``root``."""
    path = root / PAGES_DIR / f"{page}.html.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def built_in(page: str) -> str:
    return (BUILT_IN / "pages" / f"{page}.html.j2").read_text(encoding="utf-8")


@dataclasses.dataclass
class Served:
    url: str
    store: Store
    signer: Signer


@pytest.fixture
def serve_pages(tmp_path: Path):
    """Start the real app, as `publish serve` configures its pages for
    ``settings``, on a loopback port that is also its site's address."""

    def start(settings: Settings, **changes: Any) -> Any:
        port = free_port()
        site = dataclasses.replace(settings, site_url=f"http://127.0.0.1:{port}")
        web = config(
            site.site_url,
            name=site.name,
            postal_address=site.postal_address,
            blog_url=site.blog_url,
            **page_settings(site),
            **changes,
        )
        engine = db.connect(f"sqlite:///{tmp_path / 'pages.db'}", tmp_path)
        app_ = create_app(engine, web, lambda message: None, mailer=False)
        return engine, serving(app_, port), Served(site.site_url, Store(engine), Signer(web.secret))

    return start


def confirm_path(live: Served, client: httpx.Client, email: str) -> str:
    """The confirmation link's path of a signup for ``email``, made through the form."""
    assert client.post("/subscribe", data={"email": email}).status_code == 200
    subscriber = live.store.find(email)
    (waiting,) = live.store.signups(subscriber.id)
    return f"/confirm/{live.signer.confirm(subscriber.id, signup=waiting.nonce)}"


@pytest.fixture
def live(settings, serve_pages) -> Iterator[Served]:
    engine, server, served = serve_pages(settings)
    with server:
        yield served
    engine.dispose()


# -- the editor's pages and the built-in ones --------------------------------


def test_a_newsletter_without_pages_gets_the_built_in_ones_in_the_sites_layout(settings):
    assert not (settings.root / PAGES_DIR).exists()
    pages = settings_pages(settings)
    for sample in samples(pages):
        html = pages.html(sample.page, **sample.values)
        where = f"{sample.page} ({sample.case})"
        assert '<header class="masthead">' in html, where  # the site's header
        assert "Gentle self-treatment for repetitive strain" in html, where
        assert f'<a href="{settings.url("feed.xml")}">RSS feed</a>' in html, where  # its footer
        assert settings.postal_address in html, where
        assert '<meta name="robots" content="noindex">' in html, where
        assert html.count("<h1>") == 1, where
    assert pages.templates.chain("confirm")[0].path == BUILT_IN / "pages" / "confirm.html.j2"
    assert pages.templates.chain("confirm")[-1].path == settings.root / "templates/web/base.html.j2"


def test_the_editors_page_is_served_and_the_others_stay_built_in(settings, serve_pages):
    own_page(settings.root, "subscribe", built_in("subscribe").replace(
        "One email twice a month, free.", "Two letters a month, and never a bill."
    ))
    engine, server, live = serve_pages(settings)
    with server, httpx.Client(base_url=live.url) as client:
        signup = client.get("/subscribe")
        assert signup.status_code == 200
        assert "Two letters a month, and never a bill." in signup.text
        assert "One email twice a month" not in signup.text
        assert '<header class="masthead">' in signup.text
        thanks = client.post("/subscribe", data={"email": "pat@example.com"})
        assert thanks.status_code == 200 and "please check your inbox" in thanks.text
    engine.dispose()


def test_the_signup_page_says_what_tracking_counts_only_when_it_is_on(settings):
    sentence = "Opens and clicks are counted per issue, never per reader."
    for tracking in (False, True):
        pages = settings_pages(dataclasses.replace(settings, tracking=tracking))
        first = samples(pages)[0]
        assert first.page == "subscribe"
        assert (sentence in pages.html("subscribe", **first.values)) is tracking


def test_an_editors_page_that_fails_while_answering_falls_back_to_the_built_in_one(
    settings, serve_pages, caplog
):
    # Right for the sample address that publish check fills it with; broken for any other.
    own_page(settings.root, "confirm", built_in("confirm").replace(
        "<h1>Confirm your subscription</h1>",
        '<h1>Confirm{% if masked_email != "r•••@example.com" %}{{ no_such_value }}{% endif %}</h1>',
    ))
    assert run("check").exit_code == 0
    engine, server, live = serve_pages(settings)
    with caplog.at_level(logging.ERROR), server, httpx.Client(base_url=live.url) as client:
        page = client.get(confirm_path(live, client, "sam@example.com"))
    engine.dispose()
    assert page.status_code == 200 and "<h1>Confirm your subscription</h1>" in page.text
    assert 'action="/confirm/' in page.text
    logged = [r.getMessage() for r in caplog.records if "built-in confirm page" in r.getMessage()]
    assert logged and "confirm.html.j2:" in logged[0] and "/confirm/" not in logged[0]


# -- publish check and publish serve -------------------------------------------


def run(*args: str):
    return runner.invoke(app, list(args))


def test_check_passes_the_built_in_pages(newsletter):
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "pages/" not in result.stdout


@pytest.mark.parametrize(
    ("page", "edit", "found"),
    [
        (
            "confirm",
            lambda text: text.replace('action="{{ action }}"', 'action="/confirm/"'),
            "templates/web/pages/confirm.html.j2:1: error: the confirm page (as a link opens it) "
            "has no confirm button: a form posting to {{ action }} (/confirm/TOKEN)",
        ),
        (
            "unsubscribe",
            lambda text: text.replace('method="post" ', ""),
            "templates/web/pages/unsubscribe.html.j2:1: error: the unsubscribe page (as a link "
            "opens it) has no unsubscribe button: a form posting to {{ action }} "
            "(/unsubscribe/TOKEN)",
        ),
        (
            "subscribe",
            lambda text: text.replace("{{ signup_form }}", "<p>Write to us to subscribe.</p>"),
            "templates/web/pages/subscribe.html.j2:1: error: the subscribe page (at first) has "
            "no signup form ({{ signup_form }}, posting to /subscribe)",
        ),
        (
            "unsubscribed",
            lambda text: text.replace("{{ reason_form }}", ""),
            "templates/web/pages/unsubscribed.html.j2:1: error: the unsubscribed page (after the "
            "button) has no question why they left ({{ reason_form }})",
        ),
        (
            "confirmed",
            lambda text: text.replace("{% block main %}", "{% block main %}\n{% if %}"),
            "templates/web/pages/confirmed.html.j2:5: error: Expected an expression, "
            "got 'end of statement block'",
        ),
        (
            "check-inbox",
            lambda text: text.replace("<h1>Almost done</h1>", "<h1>{{ reader.name }}</h1>"),
            "templates/web/pages/check-inbox.html.j2:6: error: 'reader' is undefined",
        ),
        (
            "reason",
            lambda text: text.replace("<h1>Thank you</h1>", "<h1>{{ 1 // 0 }}</h1>"),
            "templates/web/pages/reason.html.j2:10: error: ZeroDivisionError: integer division "
            "or modulo by zero",
        ),
    ],
)
def test_check_finds_a_broken_page_at_its_file_and_line(newsletter, page, edit, found):
    own_page(newsletter, page, edit(built_in(page)))
    result = run("check")
    assert result.exit_code == 1
    assert found in result.stdout.splitlines(), result.stdout
    assert result.stderr.startswith("2 issues checked: 1 error, ")


def test_a_layout_without_the_postal_address_is_found_in_the_layout(newsletter):
    base = newsletter / "templates" / "web" / "base.html.j2"
    base.write_text(base.read_text().replace("<p>{{ newsletter.postal_address }}</p>", ""))
    result = run("check")
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if "postal address" in line]
    assert lines[0] == (
        "templates/web/base.html.j2:1: error: the subscribe page (at first) has no postal "
        "address ({{ newsletter.postal_address }})"
    )
    # A page of the editor's own that writes its whole HTML is its own culprit.
    own_page(newsletter, "confirmed", "<!doctype html><title>Done</title><p>Done.</p>\n")
    assert any(
        line.startswith("templates/web/pages/confirmed.html.j2:1: error: the confirmed page")
        and "postal address" in line
        for line in run("check").stdout.splitlines()
    )


def test_serve_will_not_start_on_a_broken_page(newsletter):
    own_page(newsletter, "confirm", built_in("confirm").replace("{{ action }}", "/confirm/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "serve",
         "--port", str(free_port())],
        cwd=newsletter, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert process.returncode == 1
    assert process.stdout == ""
    assert process.stderr.splitlines() == [
        "error: templates/web/pages/confirm.html.j2:1: the confirm page (as a link opens it) "
        "has no confirm button: a form posting to {{ action }} (/confirm/TOKEN); nothing is "
        "served: publish check lists every problem"
    ]
    assert not (newsletter / "preview").exists()  # not even the demo site was built


# -- publish preview --page ----------------------------------------------------


def test_preview_writes_each_page(newsletter):
    for page in PAGES:
        result = run("preview", "--page", page)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"preview/page-{page}.html\n"
        html = (newsletter / "preview" / f"page-{page}.html").read_text(encoding="utf-8")
        assert '<header class="masthead">' in html and "<h1>" in html, page
    confirm = (newsletter / "preview" / "page-confirm.html").read_text(encoding="utf-8")
    assert 'action="/confirm/sample-token-0123456789"' in confirm and "r•••@example.com" in confirm
    elsewhere = run("preview", "--page", "unsubscribe", "-o", str(newsletter / "out"))
    assert elsewhere.exit_code == 0 and (newsletter / "out" / "page-unsubscribe.html").is_file()


def test_preview_of_a_broken_or_unknown_page_writes_nothing(newsletter):
    own_page(newsletter, "confirm", built_in("confirm").replace("{{ action }}", "/confirm/"))
    broken = run("preview", "--page", "confirm")
    assert broken.exit_code == 1
    assert broken.stderr.startswith("error: templates/web/pages/confirm.html.j2:1: the confirm ")
    unknown = run("preview", "--page", "thanks")
    assert unknown.exit_code == 1
    assert unknown.stderr == (
        "error: --page: 'thanks' is not a page; choose one of subscribe, check-inbox, confirm, "
        "confirmed, unsubscribe, unsubscribed, reason, error\n"
    )
    assert run("preview").stderr.startswith("error: give an issue to preview, or --page NAME")
    assert not (newsletter / "preview").exists()


# -- every page, valid and accessible ------------------------------------------


def answered_pages(live: Served) -> dict[str, httpx.Response]:
    """Every page the service answers with, in each of its cases, as the
    real app answers a reader's requests."""
    reader = live.store.add("cat@example.com")
    leave = f"/unsubscribe/{live.signer.unsubscribe(reader.id)}"
    with httpx.Client(base_url=live.url) as client:
        confirm = confirm_path(live, client, "sam@example.com")
        pages = {
            "subscribe": client.get("/subscribe"),
            "subscribe-refused": client.post("/subscribe", data={"email": "no-at-sign"}),
            "check-inbox": client.post("/subscribe", data={"email": "pat@example.com"}),
            "check-inbox-blog": client.get("/subscribe/thanks"),
            "confirm": client.get(confirm),
            "confirmed": client.post(confirm),
            "unsubscribe": client.get(leave),
            "unsubscribed": client.post(leave),
            "reason-again": client.post(f"{leave}/reason", data={"reason": "bored"}),
            "reason": client.post(f"{leave}/reason", data={"reason": "other"}),
            "not-found": client.get("/no/such/page"),
            "bad-link": client.get("/confirm/forged"),
        }
    statuses = {name: response.status_code for name, response in pages.items()}
    assert statuses == {
        **dict.fromkeys(pages, 200), "subscribe-refused": 422, "reason-again": 422,
        "not-found": 404, "bad-link": 400,
    }
    return pages


def test_every_page_passes_the_nu_html_checker(live, tmp_path):
    from tests.test_site_validators import nu_errors

    files = []
    for name, response in answered_pages(live).items():
        assert '<header class="masthead">' in response.text, name
        files.append(tmp_path / f"{name}.html")
        files[-1].write_text(response.text, encoding="utf-8")
    errors = nu_errors(files)
    assert not errors, "\n".join(errors)


def replay(response: httpx.Response) -> Any:
    """A Playwright route handler that answers as ``response`` did."""

    def handler(route: Any) -> None:
        route.fulfill(
            status=response.status_code, headers=dict(response.headers), body=response.content
        )

    return handler


@pytest.mark.browser
def test_every_page_passes_axe_with_its_styles_allowed(live, browser):
    from axe_playwright_python.sync_playwright import Axe

    pages = answered_pages(live)
    axe = Axe()
    found: list[str] = []
    console: list[str] = []
    for screen, options in SCREENS.items():
        context = browser.new_context(**options)
        # Each answer as the app gave it, headers and all, at an address of its own.
        for name, response in pages.items():
            context.route(f"{live.url}/answered/{name}", replay(response))
        context.route(f"{live.url}/static/**", lambda route: route.fulfill(status=204))
        page = context.new_page()
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        try:
            for name in pages:
                page.goto(f"{live.url}/answered/{name}")
                masthead = page.locator(".masthead").evaluate(
                    "e => getComputedStyle(e).backgroundColor"
                )
                assert masthead == "rgb(47, 93, 69)", f"{name}: the site's style was refused"
                for violation in axe.run(page).response["violations"]:
                    targets = [node["target"] for node in violation["nodes"]]
                    found.append(f"{name} ({screen}): {violation['id']}: {violation['help']} "
                                 f"at {targets}")
        finally:
            context.close()
    # The error pages' own statuses are logged as such; anything else (a style refused) is not.
    status = "Failed to load resource: the server responded with a status of"
    found.extend(f"console: {text}" for text in console if not text.startswith(status))
    assert not found, "\n".join(found)
