"""Leaving, gently: after the unsubscribe button, a reader may say why. The
reason is kept on their unsubscribe event, attributed to the issue that
last reached them, replaced by a second answer, refused without a valid
link or for a reader who has not left, never asked of the one-click post,
erased with the reader, and counted per issue by `publish status`.

Two issues go out through the outbox to the test newsletter's readers, and
the readers leave through the real service on loopback, with the links the
issues carry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.publish import token_secret
from subscribers.models import EventKind, Status
from subscribers.schema import sends
from subscribers.store import Store
from tests.support.web import Live, live_service

runner = CliRunner()
FIRST, SECOND = "calf-stretch", "desk-wrist-routine"
ISSUES = {
    FIRST: "issues/2026-12-01-calf-stretch.md",
    SECOND: "issues/2026-12-15-desk-wrist-routine.md",
}
READERS = ("ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com")


def send(issue: str) -> None:
    result = runner.invoke(app, ["issue", ISSUES[issue]])
    assert result.exit_code == 0, result.output


def status(*args: str):
    result = runner.invoke(app, ["status", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def reasons_in(issue: str) -> dict:
    return json.loads(status(issue, "--json"))["unsubscribe_reasons"]


def unsubscribe_tokens(outbox: Path) -> dict[str, str]:
    """Each recipient's unsubscribe token, from the issues' List-Unsubscribe."""
    parser = BytesParser(policy=policy.default)
    tokens = {}
    for path in sorted(outbox.glob("*.eml")):
        message = parser.parsebytes(path.read_bytes())
        match = re.search(r"/unsubscribe/([^>\s]+)>", str(message["List-Unsubscribe"]))
        if match:
            tokens[message["To"].addresses[0].addr_spec] = match.group(1)
    return tokens


def unsubscribed_event(live: Live, email: str):
    events = live.store.history(live.store.find(email).id)
    return [e for e in events if e.kind == EventKind.UNSUBSCRIBED][-1]


@pytest.fixture
def sent(settings):
    """Four readers; the first issue sent to all of them."""
    with Store.open(settings.database_url, settings.root) as store:
        for email in READERS:
            store.add(email)
    send(FIRST)
    return settings


@pytest.fixture
def live(sent) -> Iterator[Live]:
    with live_service(sent.root, sent.database_url, secret=token_secret(sent)) as service:
        yield service


@pytest.fixture
def client(live: Live):
    with httpx.Client(base_url=live.url, headers={"User-Agent": "TestBrowser/1.0"}) as http:
        yield http


def leave(client: httpx.Client, token: str) -> httpx.Response:
    """The unsubscribe button, as a person presses it."""
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    return done


def test_a_reason_is_kept_on_the_unsubscribe_event_of_the_issue_that_reached_them_last(
    sent, live, client
):
    tokens = unsubscribe_tokens(sent.outbox_dir)
    cat = leave(client, tokens["cat@example.com"])
    # The page after the button asks, and says it is optional.
    assert f'action="/unsubscribe/{tokens["cat@example.com"]}/reason"' in cat.text
    assert "(optional)" in cat.text and 'name="reason" value="not_relevant"' in cat.text
    said = client.post(
        f"/unsubscribe/{tokens['cat@example.com']}/reason",
        data={"reason": "not_relevant", "comment": "I  write\r\nback "},
    )
    assert said.status_code == 200 and "Thank you for telling us" in said.text

    send(SECOND)  # to ann, bob and dan: cat has left
    tokens = unsubscribe_tokens(sent.outbox_dir)
    leave(client, tokens["ann@example.com"])
    client.post(f"/unsubscribe/{tokens['ann@example.com']}/reason", data={"reason": "too_often"})

    cat_event = unsubscribed_event(live, "cat@example.com")
    ann_event = unsubscribed_event(live, "ann@example.com")
    assert cat_event.detail["reason"] == "not_relevant"
    assert cat_event.detail["comment"] == "I write back"  # one line
    assert cat_event.detail["via"] == "unsubscribe link"  # what the event said stays
    assert ann_event.detail["reason"] == "too_often" and "comment" not in ann_event.detail
    with live.store.engine.connect() as conn:
        send_ids = dict(conn.execute(select(sends.c.issue_slug, sends.c.id)).all())
    assert cat_event.send_id == send_ids[FIRST] and ann_event.send_id == send_ids[SECOND]

    assert reasons_in(FIRST) == {
        "reasons": {"too_often": 0, "not_relevant": 1, "never_signed_up": 0, "other": 0},
        "comments": 1,
    }
    assert reasons_in(SECOND)["reasons"]["too_often"] == 1 and reasons_in(SECOND)["comments"] == 0
    # The comment's words are in the issue's own status only, in no JSON.
    assert "I write back" not in status("--json") + status(FIRST, "--json") + status()
    assert "\u201cI write back\u201d" in status(FIRST)


def test_a_second_answer_replaces_the_first(sent, live, client):
    token = unsubscribe_tokens(sent.outbox_dir)["bob@example.com"]
    leave(client, token)
    client.post(f"/unsubscribe/{token}/reason", data={"reason": "too_often", "comment": "Weekly?"})
    client.post(f"/unsubscribe/{token}/reason", data={"reason": "other"})
    event = unsubscribed_event(live, "bob@example.com")
    assert event.detail["reason"] == "other" and "comment" not in event.detail
    assert reasons_in(FIRST) == {
        "reasons": {"too_often": 0, "not_relevant": 0, "never_signed_up": 0, "other": 1},
        "comments": 0,
    }
    # Words without a choice are "other".
    client.post(f"/unsubscribe/{token}/reason", data={"comment": "Moving on"})
    assert unsubscribed_event(live, "bob@example.com").detail["comment"] == "Moving on"
    assert reasons_in(FIRST)["comments"] == 1


def test_the_one_click_post_records_no_reason(sent, live):
    token = unsubscribe_tokens(sent.outbox_dir)["dan@example.com"]
    # RFC 8058: what a mailbox provider posts, one request and nothing else.
    response = httpx.post(
        f"{live.url}/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert live.store.find("dan@example.com").status == Status.UNSUBSCRIBED
    event = unsubscribed_event(live, "dan@example.com")
    assert "reason" not in event.detail and event.send_id is None
    assert reasons_in(FIRST)["reasons"] == dict.fromkeys(
        ("too_often", "not_relevant", "never_signed_up", "other"), 0
    )


def test_a_reason_needs_a_valid_link_of_a_reader_who_left(sent, live, client):
    tokens = unsubscribe_tokens(sent.outbox_dir)
    ann = live.store.find("ann@example.com")
    forged = f"{ann.id + 1}.{tokens['ann@example.com'].split('.')[1]}"
    refused = client.post(f"/unsubscribe/{forged}/reason", data={"reason": "too_often"})
    assert refused.status_code == 400
    # Ann has not left: there is nothing to give a reason for, and nothing changes.
    still = client.post(
        f"/unsubscribe/{tokens['ann@example.com']}/reason", data={"reason": "too_often"}
    )
    assert still.status_code == 409 and "not unsubscribed" in still.text
    assert live.store.find("ann@example.com").status == Status.ACTIVE
    assert [e.kind for e in live.store.history(ann.id)] == ["subscribed"]
    assert reasons_in(FIRST)["reasons"]["too_often"] == 0


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # What a browser sends when nothing is chosen or written.
        ({"comment": ""}, "Please check the reason: choose one, or write a few words"),
        ({"reason": "boring"}, "Please check the reason: &#39;boring&#39; is not one of the choices"),
        ({"reason": "other", "comment": "x" * 501}, "Please check the comment: longer than 500"),
    ],
)
def test_a_reason_that_cannot_be_kept_shows_the_form_again(sent, live, client, data, problem):
    token = unsubscribe_tokens(sent.outbox_dir)["cat@example.com"]
    leave(client, token)
    answer = client.post(f"/unsubscribe/{token}/reason", data=data)
    assert answer.status_code == 422 and problem in answer.text
    assert f'action="/unsubscribe/{token}/reason"' in answer.text
    assert "reason" not in unsubscribed_event(live, "cat@example.com").detail


def test_an_erased_reader_takes_their_reason_with_them(sent, live, client):
    token = unsubscribe_tokens(sent.outbox_dir)["cat@example.com"]
    leave(client, token)
    client.post(
        f"/unsubscribe/{token}/reason",
        data={"reason": "never_signed_up", "comment": "write to cat@example.com"},
    )
    assert reasons_in(FIRST)["reasons"]["never_signed_up"] == 1
    shown = status(FIRST)
    # The words are shown, but no address in them.
    assert "\u201cwrite to [address]\u201d" in shown and "cat@example.com" not in shown
    assert "left because: 1 never signed up (1 comment)" in status()

    result = runner.invoke(app, ["subscribers", "erase", "cat@example.com", "--yes"])
    assert result.exit_code == 0, result.output
    assert reasons_in(FIRST) == {
        "reasons": {"too_often": 0, "not_relevant": 0, "never_signed_up": 0, "other": 0},
        "comments": 0,
    }
    assert "left because" not in status() + status(FIRST)
    again = client.post(f"/unsubscribe/{token}/reason", data={"reason": "other"})
    assert again.status_code == 200 and "You are not on the list" in again.text


def test_a_reader_who_left_before_any_issue_is_counted_nowhere(sent, live, client):
    late = live.store.add("late@example.com")
    token = live.signer.unsubscribe(late.id)
    leave(client, token)
    assert client.post(f"/unsubscribe/{token}/reason", data={"reason": "other"}).status_code == 200
    event = unsubscribed_event(live, "late@example.com")
    assert event.detail["reason"] == "other" and event.send_id is None
    assert reasons_in(FIRST)["reasons"]["other"] == 0


def test_the_pages_that_ask_why_are_valid_html(sent, live, client, tmp_path):
    from tests.test_site_validators import nu_errors

    token = unsubscribe_tokens(sent.outbox_dir)["cat@example.com"]
    pages = {
        "asked.html": leave(client, token).text,
        "again.html": client.post(f"/unsubscribe/{token}/reason", data={"reason": "x"}).text,
        "thanks.html": client.post(f"/unsubscribe/{token}/reason", data={"reason": "other"}).text,
    }
    for name, html in pages.items():
        (tmp_path / name).write_text(html, encoding="utf-8")
    errors = nu_errors([tmp_path / name for name in pages])
    assert not errors, "\n".join(errors)
