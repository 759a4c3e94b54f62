"""A reader in a real browser (headless Chromium): subscribe with the form,
open the link in the email in the outbox and press its button to confirm,
then leave with the unsubscribe button."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from subscribers.models import Status
from tests.support.web import live_service

pytestmark = pytest.mark.browser


def link(message, kind: str) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(rf"http://127\.0\.0\.1:\d+/{kind}/\S+", body)
    assert match, body
    return match.group(0)


def test_subscribe_confirm_and_unsubscribe_in_a_browser(browser, tmp_path: Path):
    with live_service(tmp_path) as live:
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))

        page.goto(f"{live.url}/subscribe")
        page.get_by_label("Email address").fill("robin@example.com")
        page.get_by_label("First name").fill("Robin")
        button = page.get_by_role("button", name="Subscribe")
        # The stylesheet applies (its hash is in the content policy).
        assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(47, 93, 69)"
        button.click()
        page.get_by_role("heading", name="Almost done").wait_for()
        assert live.store.find("robin@example.com").status == Status.PENDING

        (confirmation,) = live.mails(1)
        assert confirmation["Subject"] == "Please confirm your subscription to Pain Free Living"
        page.goto(link(confirmation, "confirm"))
        page.get_by_role("heading", name="Confirm your subscription").wait_for()
        assert "r•••@example.com" in page.content()
        assert live.store.find("robin@example.com").status == Status.PENDING  # only looked
        page.get_by_role("button", name="Yes, subscribe me").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()
        assert live.store.find("robin@example.com").status == Status.ACTIVE

        welcome = live.mails(2)[1]
        page.goto(link(welcome, "unsubscribe"))
        assert "r•••@example.com" in page.content()
        assert live.store.find("robin@example.com").status == Status.ACTIVE  # only looked
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        assert page.get_by_label("Email address").input_value() == "robin@example.com"

        robin = live.store.find("robin@example.com")
        assert robin.status == Status.UNSUBSCRIBED
        assert robin.consent.user_agent and "Chrome" in robin.consent.user_agent
        assert [event.kind for event in live.store.history(robin.id)] == [
            "subscribed", "confirmation_sent", "confirmed", "welcome_sent", "unsubscribed",
        ]
        assert problems == []
        context.close()
