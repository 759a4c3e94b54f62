"""The signup web service, over HTTP against a real uvicorn on loopback."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from subscribers.models import Limit, Status
from subscribers.page_loader import signup_form_html
from tests.support.web import Live, live_service

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options",
                    "referrer-policy")


@pytest.fixture
def live(tmp_path: Path):
    with live_service(tmp_path) as service:
        yield service


@pytest.fixture
def client(live: Live):
    with httpx.Client(base_url=live.url, headers={"User-Agent": "TestBrowser/1.0"}) as http:
        yield http


def confirm_path(message) -> str:
    """The path of the confirmation link in a message."""
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"http://127\.0\.0\.1:\d+(/confirm/\S+)", body)
    assert match, body
    return match.group(1)


def assert_plain_page(response: httpx.Response) -> None:
    for header in SECURITY_HEADERS:
        assert header in response.headers, header
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers
    lowered = response.text.lower()
    for leak in ("traceback", "starlette", "fastapi", "uvicorn", "sqlalchemy", "sqlite"):
        assert leak not in lowered, leak


def test_the_signup_page_is_an_accessible_form(client):
    response = client.get("/subscribe")
    assert response.status_code == 200
    assert_plain_page(response)
    html = response.text
    assert '<label for="signup-email">' in html and 'id="signup-email"' in html
    assert 'type="email"' in html and 'autocomplete="email"' in html and "required" in html
    assert '<label for="signup-name">' in html
    assert re.search(r'<div hidden>\s*<label for="signup-website">', html)  # the honeypot
    assert "I can unsubscribe at any time" in html  # the consent wording
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_site_builder_gets_the_same_form():
    html = signup_form_html("https://site.example/subscribe", "I agree <b>really</b>")
    assert 'action="https://site.example/subscribe"' in html
    assert "I agree &lt;b&gt;really&lt;/b&gt;" in html


def test_signup_then_confirm_then_welcome(live, client):
    response = client.post("/subscribe", data={"email": "Sam@Example.com", "name": "Sam"})
    assert response.status_code == 200 and "check your inbox" in response.text
    assert_plain_page(response)
    sam = live.store.find("sam@example.com")
    assert sam.status == Status.PENDING
    assert (sam.consent.ip, sam.consent.user_agent) == ("127.0.0.1", "TestBrowser/1.0")
    assert "I can unsubscribe at any time" in sam.consent.text

    (confirmation,) = live.mails(1)
    assert confirmation["To"].addresses[0].addr_spec == "Sam@example.com"
    assert client.head(confirm_path(confirmation)).status_code == 200
    page = client.get(confirm_path(confirmation))
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert live.store.find("sam@example.com").status == Status.PENDING
    done = client.post(confirm_path(confirmation))
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert done.headers["cache-control"] == "no-store"
    assert live.store.find("sam@example.com").status == Status.ACTIVE

    welcome = live.mails(2)[1]
    assert welcome["Subject"] == "Welcome to Pain Free Living"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Following the link again is harmless, and sends no second welcome.
    assert "You are subscribed" in client.get(confirm_path(confirmation)).text
    assert client.post(confirm_path(confirmation)).status_code == 200
    client.post("/subscribe", data={"email": "marker@example.com"})
    assert [m["To"].addresses[0].addr_spec for m in live.mails(3)][2] == "marker@example.com"


def test_the_answer_never_tells_whether_an_address_is_known(live, client):
    live.store.add("known@example.com")
    known = client.post("/subscribe", data={"email": "known@example.com"})
    unknown = client.post("/subscribe", data={"email": "unknown@example.com"})
    assert (known.status_code, known.text) == (unknown.status_code, unknown.text)
    as_json = client.post("/subscribe", json={"email": "known@example.com"})
    as_json_new = client.post("/subscribe", json={"email": "new@example.com"})
    assert as_json.json() == as_json_new.json() and as_json.json()["status"] == "ok"
    # Only the unknown addresses were mailed; the active one was left alone.
    recipients = [m["To"].addresses[0].addr_spec for m in live.mails(2)]
    assert sorted(recipients) == ["new@example.com", "unknown@example.com"]


def test_json_signups_and_their_mistakes(live, client):
    assert client.post("/subscribe", json={"email": "j@example.com", "name": None}).status_code == 200
    assert live.store.find("j@example.com").status == Status.PENDING
    for body, status in [
        (b"{not json", 422),
        (b"[1, 2]", 422),
        (b'{"email": 5}', 422),
        (b'{"email": "bad"}', 422),
        (b'{"email": "x@example.com", "name": "\\ud800"}', 422),
    ]:
        response = client.post(
            "/subscribe", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, body
        assert "error" in response.json()
    response = client.post("/subscribe", content=b"email=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert live.store.count() == 1


def test_a_malformed_address_gets_the_form_back_with_the_error(live, client):
    response = client.post("/subscribe", data={"email": "<script>@nowhere", "name": "Sam"})
    assert response.status_code == 422
    assert_plain_page(response)
    assert 'role="alert"' in response.text and 'aria-invalid="true"' in response.text
    assert "<script>" not in response.text and "&lt;script&gt;@nowhere" in response.text
    assert live.store.count() == 0


def test_oversized_fields_and_bodies_are_refused(live, client):
    response = client.post("/subscribe", data={"email": "a@example.com", "name": "x" * 201})
    assert response.status_code == 422 and "longer than 200" in response.text
    response = client.post("/subscribe", data={"email": "a" * 300 + "@example.com"})
    assert response.status_code == 422
    response = client.post("/subscribe", data={"email": "b@example.com", "name": "y" * 20_000})
    assert response.status_code == 413
    assert_plain_page(response)
    assert live.store.count() == 0


def test_the_honeypot_is_answered_like_a_person_and_does_nothing(live, client):
    response = client.post(
        "/subscribe", data={"email": "bot@example.com", "website": "http://spam.example"}
    )
    assert response.status_code == 200 and "check your inbox" in response.text
    assert live.store.count() == 0


def test_signups_from_one_address_are_rate_limited(tmp_path):
    with live_service(tmp_path, per_ip=Limit(3, 600)) as live, httpx.Client(
        base_url=live.url
    ) as client:
        statuses = [
            client.post("/subscribe", data={"email": f"r{n}@example.com"}).status_code
            for n in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
        refused = client.post("/subscribe", data={"email": "r9@example.com"})
        assert int(refused.headers["retry-after"]) > 0
        assert_plain_page(refused)
        assert live.store.count() == 3


def test_one_address_gets_few_confirmation_mails_however_often_it_is_entered(tmp_path):
    with live_service(tmp_path, per_address=Limit(2, 3600)) as live, httpx.Client(
        base_url=live.url
    ) as client:
        # Each of the first two signups waits for its message, so the mailer
        # cannot fold them into one; the next three must send nothing.
        for sent in (1, 2):
            assert client.post("/subscribe", data={"email": "victim@example.com"}).status_code == 200
            live.mails(sent)
        for _ in range(3):
            assert client.post("/subscribe", data={"email": "victim@example.com"}).status_code == 200
        client.post("/subscribe", data={"email": "marker@example.com"})
        recipients = [m["To"].addresses[0].addr_spec for m in live.mails(3)]
        assert recipients == ["victim@example.com", "victim@example.com", "marker@example.com"]


def test_forged_and_expired_confirmation_links_change_nothing(live, client):
    client.post("/subscribe", data={"email": "sam@example.com"})
    path = confirm_path(live.mails(1)[0])
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = client.get(forged)
    assert response.status_code == 400 and "not valid" in response.text
    assert_plain_page(response)
    sam = live.store.find("sam@example.com")
    old = live.signer.confirm(sam.id, dt.datetime.now(dt.UTC) - dt.timedelta(days=8))
    response = client.get(f"/confirm/{old}")
    assert response.status_code == 410 and "expired" in response.text
    assert 'name="email"' in response.text  # offers to subscribe again
    assert live.store.find("sam@example.com").status == Status.PENDING


def test_unsubscribe_page_changes_nothing_and_its_button_unsubscribes(live, client):
    reader = live.store.add("reader@example.com")
    token = live.signer.unsubscribe(reader.id)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "r•••@example.com" in page.text
    assert len(re.findall(r"<button", page.text)) == 1
    assert f'action="/unsubscribe/{token}"' in page.text
    assert client.head(f"/unsubscribe/{token}").status_code == 200
    assert live.store.get(reader.id).status == Status.ACTIVE  # scanners follow links

    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert 'value="reader@example.com"' in done.text  # offers to resubscribe
    assert live.store.get(reader.id).status == Status.UNSUBSCRIBED
    assert client.post(f"/unsubscribe/{token}").status_code == 200  # idempotent
    again = client.get(f"/unsubscribe/{token}")
    assert "You are unsubscribed" in again.text and 'action="/subscribe"' in again.text
    assert [e.kind for e in live.store.history(reader.id)].count("unsubscribed") == 1


def test_one_click_unsubscribe_as_mail_providers_send_it(live):
    """RFC 8058: a bare POST with that body, no cookies, no CSRF token, no Referer."""
    reader = live.store.add("reader@example.com")
    token = live.signer.unsubscribe(reader.id)
    response = httpx.post(
        f"{live.url}/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert live.store.get(reader.id).status == Status.UNSUBSCRIBED


def test_a_forged_unsubscribe_link_is_refused(live, client):
    reader = live.store.add("reader@example.com")
    token = live.signer.unsubscribe(reader.id)
    other = f"{reader.id + 1}.{token.split('.')[1]}"
    for response in (client.get(f"/unsubscribe/{other}"), client.post(f"/unsubscribe/{other}")):
        assert response.status_code == 400
        assert_plain_page(response)
    assert live.store.get(reader.id).status == Status.ACTIVE


def test_the_unsubscribe_link_of_an_erased_reader_still_answers(live, client):
    reader = live.store.add("reader@example.com")
    token = live.signer.unsubscribe(reader.id)
    live.store.erase("reader@example.com")
    assert client.get(f"/unsubscribe/{token}").status_code == 200
    assert client.post(f"/unsubscribe/{token}").status_code == 200


def test_the_built_site_is_served_beside_the_service(live, client):
    (live.public / "issues" / "calf").mkdir(parents=True)
    (live.public / "index.html").write_text("<h1>Archive</h1>")
    (live.public / "issues" / "calf" / "index.html").write_text("<h1>Calf</h1>")
    (live.public / "feed.xml").write_text("<rss></rss>")
    (live.public / "subscribe").mkdir()
    (live.public / "subscribe" / "index.html").write_text("static form")
    (live.public / ".env").write_text("SECRET=1")

    home = client.get("/")
    assert home.status_code == 200 and "Archive" in home.text
    assert "'unsafe-inline'" in home.headers["content-security-policy"]  # the site's styles
    assert "script-src 'none'" in home.headers["content-security-policy"]
    assert client.get("/issues/calf/").text == "<h1>Calf</h1>"
    assert client.get("/issues/calf", follow_redirects=True).text == "<h1>Calf</h1>"
    assert client.get("/feed.xml").text == "<rss></rss>"
    assert "static form" not in client.get("/subscribe").text  # the service answers first
    for path in ("/.env", "/%2e%2e/subscribers.db", "/../subscribers.db", "/missing.html"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert_plain_page(response)


def test_without_a_site_the_home_page_leads_to_the_form(client):
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/subscribe"
    missing = client.get("/issues/nope/")
    assert missing.status_code == 404 and "Page not found" in missing.text
    assert_plain_page(missing)


def test_wrong_methods_get_a_plain_page(client):
    response = client.delete("/subscribe")
    assert response.status_code == 405
    assert_plain_page(response)


def test_a_failure_inside_is_a_plain_500_without_internals(live, client):
    with live.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE subscriber_events"))
    response = client.post("/subscribe", data={"email": "sam@example.com"})
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert_plain_page(response)
    assert "subscriber_events" not in response.text
    response = client.post("/subscribe", json={"email": "sam@example.com"})
    assert response.status_code == 500 and set(response.json()) == {"error"}
