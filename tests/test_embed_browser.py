"""The blog's subscribe box and the reason for leaving, in a real browser
(headless Chromium).

A plain blog page, served from a server of its own on loopback (the blog's
origin, another port than the service's), has `publish embed`'s box pasted
into it under a stylesheet that restyles every input, label and button; a
reader subscribes through it, lands on the service's "check your inbox"
page, and confirms with the link from the outbox. Another reader leaves
with the unsubscribe button, says why, and `publish status --json` counts it.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.publish import token_secret
from subscribers.consent import consent_wording
from subscribers.models import Status
from subscribers.store import Store
from tests.support.web import live_service
from tests.test_unsubscribe_reasons import FIRST, send, unsubscribe_tokens

pytestmark = pytest.mark.browser

runner = CliRunner()

HOSTILE = """
body { font-family: "Comic Sans MS", cursive; color: rgb(200, 0, 0); background: rgb(20, 20, 20); }
p { margin: 40px; color: rgb(200, 0, 0); }
label { display: inline; text-transform: uppercase; letter-spacing: 4px; }
input { width: 30px; border: 5px dotted rgb(255, 0, 0); float: right; }
button { background: rgb(255, 0, 0); font-size: 40px; text-transform: uppercase; }
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def blog_server(folder: Path) -> Iterator[str]:
    """A plain static server for ``folder`` on 127.0.0.1; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def test_subscribe_through_the_box_pasted_into_a_blog_page(browser, newsletter, monkeypatch):
    folder = newsletter / "blog"
    (folder / "posts").mkdir(parents=True)
    with blog_server(folder) as blog, live_service(newsletter, blog_url=f"{blog}/posts") as live:
        monkeypatch.setenv("NEWSLETTER_SITE_URL", live.url)
        monkeypatch.setenv("NEWSLETTER_BLOG_URL", f"{blog}/posts")
        printed = runner.invoke(app, ["embed"])
        assert printed.exit_code == 0, printed.output
        (folder / "posts" / "hello.html").write_text(
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<link rel="icon" href="data:,">\n'
            f"<title>Hello</title>\n<style>{HOSTILE}</style>\n</head>\n<body>\n"
            f"<h1>Hello from the blog</h1>\n<p>A post.</p>\n{printed.stdout}\n</body>\n</html>\n",
            encoding="utf-8",
        )

        context = browser.new_context()
        page = context.new_page()
        problems = watch(page)
        page.goto(f"{blog}/posts/hello.html")
        email = page.get_by_label("Email address")
        button = page.get_by_role("button", name="Subscribe")
        # The box keeps its own look under the blog's stylesheet.
        assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(47, 93, 69)"
        assert button.evaluate("b => getComputedStyle(b).textTransform") == "none"
        assert email.evaluate("e => getComputedStyle(e).cssFloat") == "none"
        assert email.evaluate("e => e.getBoundingClientRect().width") > 200
        label = page.locator("label", has_text="Email address")
        assert label.evaluate("l => getComputedStyle(l).letterSpacing") == "normal"
        assert page.locator("input[name=website]").is_hidden()  # the honeypot

        email.fill("blogreader@example.com")
        page.get_by_label("First name").fill("Bea")
        button.click()
        page.get_by_role("heading", name="Almost done").wait_for()
        assert page.url == f"{live.url}/subscribe/thanks"
        back = page.get_by_role("link", name="Back to the blog")
        assert back.get_attribute("href") == f"{blog}/posts"
        assert live.store.find("blogreader@example.com").status == Status.PENDING

        (confirmation,) = live.mails(1)
        plain = confirmation.get_body(("plain",))
        assert plain is not None
        body = plain.get_content()
        match = re.search(rf"{re.escape(live.url)}/confirm/\S+", body)
        assert match, body
        page.goto(match.group(0))
        page.get_by_role("button", name="Yes, subscribe me").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()

        reader = live.store.find("blogreader@example.com")
        assert reader.status == Status.ACTIVE and reader.name == "Bea"
        assert reader.consent.source == "blog sidebar"
        assert reader.consent.text == consent_wording("Pain Free Living")
        assert problems == []
        context.close()


def test_unsubscribe_with_a_reason_and_see_it_counted(browser, settings):
    with Store.open(settings.database_url, settings.root) as store:
        store.add("leaver@example.com")
    send(FIRST)
    token = unsubscribe_tokens(settings.outbox_dir)["leaver@example.com"]
    with live_service(settings.root, settings.database_url, secret=token_secret(settings)) as live:
        context = browser.new_context()
        page = context.new_page()
        problems = watch(page)
        page.goto(f"{live.url}/unsubscribe/{token}")
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        assert live.store.find("leaver@example.com").status == Status.UNSUBSCRIBED

        page.get_by_label("Too often").check()
        page.get_by_label("Anything else?").fill("Lovely, but twice a month is a lot for me.")
        page.get_by_role("button", name="Send").click()
        page.get_by_role("heading", name="Thank you").wait_for()
        assert problems == []
        context.close()

    result = runner.invoke(app, ["status", FIRST, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unsubscribe_reasons"] == {
        "reasons": {"too_often": 1, "not_relevant": 0, "never_signed_up": 0, "other": 0},
        "comments": 1,
    }
