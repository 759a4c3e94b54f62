"""Where signups come from, over HTTP against the real service on loopback:
the page a signup was made on (the ``source`` field or ``?ref=``) is kept
with its consent, exported and imported back; a post from the blog is taken
and sent on to the site's "check your inbox" page; a post from any other
site, or with the honeypot filled in, gets that same answer and does
nothing: no row, no mail."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from subscribers import db
from subscribers.csvio import export_csv, import_csv
from subscribers.models import Status
from subscribers.provenance import Poster, origin_of, poster, signup_source
from subscribers.schema import signups, subscriber_events
from subscribers.schema import subscribers as subscribers_table
from tests.support.web import Live, live_service

BLOG = "http://blog.painfree.test:8080/posts"
BLOG_ORIGIN = "http://blog.painfree.test:8080"
STRANGER = "https://stranger.example"


@pytest.fixture
def live(tmp_path: Path):
    with live_service(tmp_path, blog_url=BLOG) as service:
        yield service


@pytest.fixture
def client(live: Live):
    with httpx.Client(base_url=live.url, headers={"User-Agent": "TestBrowser/1.0"}) as http:
        yield http


def confirm_path(message) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"http://127\.0\.0\.1:\d+(/confirm/\S+)", body)
    assert match, body
    return match.group(1)


def signup_sources(live: Live, email: str) -> list[str | None]:
    return [s.consent.source for s in live.store.signups(live.store.find(email).id)]


# -- the page a signup came from ---------------------------------------------------


def test_the_source_field_goes_with_the_consent_and_stays_once_confirmed(live, client):
    posted = client.post(
        "/subscribe",
        data={"email": "field@example.com", "source": "  issue page "},
        headers={"Origin": live.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert posted.status_code == 200 and "Almost done" in posted.text
    assert signup_sources(live, "field@example.com") == ["issue page"]
    live.mails(1)
    client.post("/subscribe", data={"email": "field@example.com", "source": "blog sidebar"})
    assert signup_sources(live, "field@example.com") == ["issue page", "blog sidebar"]

    # Each signup keeps its own; the one whose link is confirmed is the reader's.
    _first, second = live.mails(2)
    assert client.post(confirm_path(second)).status_code == 200
    reader = live.store.find("field@example.com")
    assert reader.status == Status.ACTIVE and reader.consent.source == "blog sidebar"


def test_ref_in_the_query_names_the_source_when_the_form_does_not(live, client):
    page = client.get("/subscribe", params={"ref": "forum signature"})
    assert '<input type="hidden" name="source" value="forum signature">' in page.text
    assert 'name="source"' not in client.get("/subscribe").text

    client.post("/subscribe?ref=podcast%20notes", data={"email": "ref@example.com"})
    client.post(
        "/subscribe?ref=podcast", data={"email": "both@example.com", "source": "issue page"}
    )
    client.post("/subscribe", data={"email": "plain@example.com"})
    client.post("/subscribe", json={"email": "json@example.com", "source": "app"})
    assert signup_sources(live, "ref@example.com") == ["podcast notes"]
    assert signup_sources(live, "both@example.com") == ["issue page"]  # the form's wins
    assert signup_sources(live, "plain@example.com") == ["signup page"]
    assert signup_sources(live, "json@example.com") == ["app"]


def test_a_source_is_kept_as_one_short_line(live, client):
    client.post(
        "/subscribe", data={"email": "long@example.com", "source": "side\nbar\x1b[31m " + "x" * 80}
    )
    (kept,) = signup_sources(live, "long@example.com")
    assert kept is not None and len(kept) == 60
    assert kept.startswith("side bar [31m xx") and "\x1b" not in kept and "\n" not in kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, "signup page"), ("", "signup page"), (" \t ", "signup page"), (" blog ", "blog"),
     ("a\u2028b", "a b"), ("é" * 70, "é" * 60)],
)
def test_signup_source_cleans_what_it_is_given(text, expected):
    assert signup_source(text) == expected


# -- who posted it ------------------------------------------------------------------


OWN = ("https://painfreeliving.example.com", "http://127.0.0.1:8000")


@pytest.mark.parametrize(
    ("origin", "fetch_site", "expected"),
    [
        (None, None, Poster.OWN),  # curl, a script: no browser's cross-site post
        ("null", None, Poster.OWN),  # a page that sends no referrer, ours among them
        ("null", "same-origin", Poster.OWN),
        ("https://PainFreeLiving.example.com:443", None, Poster.OWN),
        ("http://127.0.0.1:8000", "same-site", Poster.OWN),
        ("http://blog.painfree.test:8080", "cross-site", Poster.BLOG),
        ("http://blog.painfree.test", "cross-site", Poster.FOREIGN),  # another port
        ("https://blog.painfree.test:8080", "cross-site", Poster.FOREIGN),  # another scheme
        ("https://stranger.example", "cross-site", Poster.FOREIGN),
        ("https://stranger.example", None, Poster.FOREIGN),
        ("null", "cross-site", Poster.FOREIGN),
        (None, "cross-site", Poster.FOREIGN),
        (None, "same-site", Poster.FOREIGN),
        ("not a url", None, Poster.FOREIGN),
    ],
)
def test_who_posted_is_read_from_the_browsers_headers(origin, fetch_site, expected):
    assert poster(origin, fetch_site, own=OWN, blog=origin_of(BLOG)) is expected


def test_a_post_from_the_blog_is_taken_and_sent_to_check_your_inbox(live, client):
    posted = client.post(
        "/subscribe",
        data={"email": "blog@example.com", "name": "Bea", "website": "", "source": "blog sidebar"},
        headers={"Origin": BLOG_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/subscribe/thanks"
    assert posted.headers["cache-control"] == "no-store"
    assert signup_sources(live, "blog@example.com") == ["blog sidebar"]
    (message,) = live.mails(1)
    assert message["To"].addresses[0].addr_spec == "blog@example.com"

    thanks = client.get(posted.headers["location"])
    assert thanks.status_code == 200 and "Almost done" in thanks.text
    assert "check your inbox" in thanks.text
    assert f'<a href="{BLOG}">Back to the blog</a>' in thanks.text


def test_a_blog_post_without_a_source_is_the_blog_sidebars(live, client):
    client.post("/subscribe", data={"email": "bare@example.com"}, headers={"Origin": BLOG_ORIGIN})
    assert signup_sources(live, "bare@example.com") == ["blog sidebar"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": STRANGER, "Sec-Fetch-Site": "cross-site"},
        {"Origin": STRANGER},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
    ids=["origin", "origin-only", "null-origin", "fetch-site-only"],
)
def test_a_post_from_another_site_gets_the_same_answer_and_does_nothing(live, client, headers):
    victim = {"email": "victim@example.com", "source": "blog sidebar"}
    foreign = client.post("/subscribe", data=victim, headers=headers)
    trapped = client.post(
        "/subscribe",
        data={"email": "robot@example.com", "website": "http://spam.example"},
        headers={"Origin": BLOG_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    )
    blog = client.post(
        "/subscribe", data={"email": "reader@example.com"}, headers={"Origin": BLOG_ORIGIN}
    )
    for answer in (foreign, trapped):
        assert (answer.status_code, answer.headers["location"], answer.content) == (
            blog.status_code, blog.headers["location"], blog.content,
        )
    # The blog's signup is mailed; the others made no row, so no mail: once the
    # one message is in the outbox, the mailer has nothing else to send.
    (message,) = live.mails(1)
    assert message["To"].addresses[0].addr_spec == "reader@example.com"
    assert [s.email for s in live.store.list()] == ["reader@example.com"]


def test_json_from_another_site_is_answered_like_any_signup_and_does_nothing(live, client):
    answer = client.post(
        "/subscribe", json={"email": "victim@example.com"}, headers={"Origin": STRANGER}
    )
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert live.store.count() == 0


def test_a_mistake_in_a_blog_signup_shows_the_form_again_with_its_source(live, client):
    answer = client.post(
        "/subscribe",
        data={"email": "not-an-address", "source": "blog footer"},
        headers={"Origin": BLOG_ORIGIN},
    )
    assert answer.status_code == 422
    assert '<input type="hidden" name="source" value="blog footer">' in answer.text


def test_without_a_blog_every_other_site_is_a_stranger(tmp_path):
    with live_service(tmp_path) as live, httpx.Client(base_url=live.url) as client:
        client.post("/subscribe", data={"email": "a@example.com"}, headers={"Origin": BLOG_ORIGIN})
        own = client.post("/subscribe", data={"email": "b@example.com"}, headers={"Origin": live.url})
        assert own.status_code == 200
        assert [s.email for s in live.store.list()] == ["b@example.com"]


# -- the record: export, import, migration ------------------------------------------


def test_the_source_is_exported_and_imported_back(live, client, tmp_path):
    import io

    client.post("/subscribe", data={"email": "x@example.com", "source": "issue page"})
    (message,) = live.mails(1)
    client.post(confirm_path(message))
    out = io.StringIO()
    export_csv(live.store, out)
    header, row = out.getvalue().splitlines()
    assert header.split(",")[-1] == "consent_source" and row.endswith(",issue page")

    engine = db.connect(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    try:
        from subscribers.store import Store

        other = Store(engine)
        path = tmp_path / "export.csv"
        path.write_text(out.getvalue(), encoding="utf-8")
        assert import_csv(other, path).ok
        assert other.find("x@example.com").consent.source == "issue page"
    finally:
        engine.dispose()


def test_an_import_keeps_its_own_source(live, tmp_path):
    path = tmp_path / "mailchimp.csv"
    path.write_text("Email Address,First Name\nm@example.com,Mo\n", encoding="utf-8")
    assert import_csv(live.store, path).ok
    reader = live.store.find("m@example.com")
    assert str(reader.source) == "import" and reader.consent.source is None
    assert reader.consent.text == "Imported from mailchimp.csv"


def test_the_source_migration_adds_the_columns_and_takes_them_away(database_url, tmp_path):
    from tests.test_store import migrate_to

    engine = db.connect(database_url, tmp_path, migrate=False)
    at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    try:
        migrate_to(engine, "0008")
        with engine.begin() as conn:
            reader = conn.execute(
                insert(subscribers_table).values(
                    email="old@example.com", email_key="old@example.com", status="active",
                    source="form", created_at=at, updated_at=at, consent_text="Yes",
                ).returning(subscribers_table.c.id)
            ).scalar_one()
            conn.execute(
                insert(subscriber_events).values(
                    subscriber_id=reader, kind="subscribed", at=at, detail="{}"
                )
            )
        migrate_to(engine, "0009")
        with engine.connect() as conn:
            old = conn.execute(
                select(subscribers_table.c.email, subscribers_table.c.consent_source)
            ).one()
            assert tuple(old) == ("old@example.com", None)
            assert conn.execute(select(signups.c.consent_source)).all() == []
        migrate_to(engine, "0008", down=True)
        with engine.connect() as conn:
            kept = conn.execute(select(subscribers_table.c.email)).scalars().all()
            history = conn.execute(select(subscriber_events.c.kind)).scalars().all()
        # The subscribers table is altered in place: its history stays (a
        # table copied and dropped would take it along, by its foreign key).
        assert kept == ["old@example.com"] and history == ["subscribed"]
    finally:
        engine.dispose()


def test_the_editor_sees_where_a_reader_signed_up(newsletter):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.config import load_settings
    from subscribers.models import Consent
    from subscribers.store import Store

    settings = load_settings(newsletter)
    with Store.open(settings.database_url, settings.root) as store:
        store.add("shown@example.com", consent=Consent(text="Yes", source="blog sidebar"))
    result = CliRunner().invoke(app, ["subscribers", "show", "shown@example.com"])
    assert result.exit_code == 0, result.output
    assert re.search(r"signed up on\s+blog sidebar", result.stdout)


def test_the_thanks_page_and_a_form_with_its_source_are_valid_html(client, tmp_path):
    from tests.test_site_validators import nu_errors

    pages = {
        "thanks.html": client.get("/subscribe/thanks").text,
        "ref.html": client.get("/subscribe", params={"ref": 'a "quoted" <ref>'}).text,
    }
    for name, html in pages.items():
        (tmp_path / name).write_text(html, encoding="utf-8")
    errors = nu_errors([tmp_path / name for name in pages])
    assert not errors, "\n".join(errors)
    assert 'value="a &#34;quoted&#34; &lt;ref&gt;"' in pages["ref.html"]
