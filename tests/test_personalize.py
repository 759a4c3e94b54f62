"""Personalized messages, built from byte segments, parse back with the email
package to exactly the headers and bodies intended, whatever the names,
subjects and URLs."""

from __future__ import annotations

import dataclasses
import re
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.personalize import (
    PREVIEW_PREFIX,
    Personalizer,
    Recipient,
    UndeliverableAddress,
    build_template,
    greeting_name,
)
from pipeline.render import render_issue
from subscribers.headers import display_name
from subscribers.text import one_line as clean_text
from subscribers.tokens import Signer

SIGNER = Signer("a test secret that is long enough")
HEADERS = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]


@pytest.fixture
def rendered(settings):
    return render_issue(load_issue(settings.issues_dir / "2026-12-01-calf-stretch.md"), Context.load(settings))


@pytest.fixture
def personalizer(rendered, settings):
    return Personalizer(rendered, settings, SIGNER.unsubscribe, message_id_seed="calf.1")


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def bodies(message) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    return html, text


def expected_mailto(subscriber_id: int, domain: str) -> str:
    """The List-Unsubscribe mailto, by the stdlib: the link token's MAC in
    lowercase base32, the id in base36."""
    import base64

    mac = SIGNER.unsubscribe(subscriber_id).split(".")[1]
    raw = base64.urlsafe_b64decode(mac + "==")
    digits, number, id36 = "0123456789abcdefghijklmnopqrstuvwxyz", subscriber_id, ""
    while True:
        number, rest = divmod(number, 36)
        id36 = digits[rest] + id36
        if not number:
            break
    mac32 = base64.b32encode(raw).decode().rstrip("=").lower()
    return f"mailto:unsubscribe+{id36}-{mac32}@{domain}?subject=unsubscribe"


def check_message(raw: bytes, personalizer, rendered, settings, recipient, *, subject=None):
    """Every header and both bodies as intended; returns the parsed message."""
    message = parse(raw)
    assert [name for name, _ in message.items()] == HEADERS
    assert not message.defects
    url = f"{settings.site_url}/unsubscribe/{SIGNER.unsubscribe(recipient.subscriber_id)}"

    assert message["From"].addresses[0].display_name == settings.sender.name
    assert message["From"].addresses[0].addr_spec == settings.sender.email
    assert message["Reply-To"].addresses[0].addr_spec == settings.reply_to.email
    to = message["To"].addresses
    assert len(to) == 1
    assert to[0].addr_spec == recipient.email
    assert to[0].display_name == display_name(recipient.name, 74)
    assert str(message["Subject"]) == clean_text(subject or rendered.subject)
    assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert re.fullmatch(r"<[0-9a-f]{24}@painfreeliving\.example\.com>", str(message["Message-ID"]))
    assert str(message["List-Id"]) == (
        '"Pain Free Living" <pain-free-living.painfreeliving.example.com>'
    )
    unsubscribe = f"<{url}>"
    if settings.unsubscribe_domain:
        mailto = expected_mailto(recipient.subscriber_id, settings.unsubscribe_domain)
        unsubscribe += f", <{mailto}>"
    assert str(message["List-Unsubscribe"]) == unsubscribe
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert not part.defects
    first_name = greeting_name(recipient.name, settings.greeting_fallback)
    assert bodies(message) == rendered.fill({"first_name": first_name, "unsubscribe_url": url})

    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    _head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "a body line over 76"
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert raw.isascii()
    return message


def test_a_message_has_every_header_and_the_rendered_bodies(personalizer, rendered, settings):
    recipient = Recipient(7, "alex@example.com", "Alex Morgan")
    message = personalizer(recipient)
    assert message.sender == "newsletter@painfreeliving.example.com"
    assert message.recipient == "alex@example.com"
    assert message.tags == (("issue", "calf-stretch"),)
    parsed = check_message(message.raw, personalizer, rendered, settings, recipient)
    html, text = bodies(parsed)
    assert "Hi Alex," in text and "Hi Alex," in html
    unsubscribe = SIGNER.unsubscribe(7)
    assert f"/unsubscribe/{unsubscribe}" in text
    assert SIGNER.read_unsubscribe(unsubscribe) == 7
    head = message.raw.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"<https:" not in line)


def test_a_reader_without_a_name_is_greeted_with_the_fallback(personalizer, rendered, settings):
    recipient = Recipient(8, "noname@example.com")
    parsed = check_message(personalizer(recipient).raw, personalizer, rendered, settings, recipient)
    assert str(parsed["To"]) == "noname@example.com"
    assert "Hi friend," in bodies(parsed)[1]


HOSTILE_NAMES = [
    "Eve\r\nBcc: victim@example.net",
    "Eve\nSubject: you won",
    "Mallory\rX-Injected: 1",
    "Zoë Ünal-Łukasz",
    "李小龍",
    "Ana 🙂 Sousa",
    'A "quoted" \\ name',
    "Smith, John <john@example.org>",
    "=?utf-8?q?Not_really_encoded?=",
    "x" * 180,
    "Þórunn " * 28,
    "  spaced\t\tout  ",
    "<script>alert(1)</script> & friends",
    "\u2028line\u2029separators\x00\x7f",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_stay_inside_their_header(name, personalizer, rendered, settings):
    recipient = Recipient(9, "reader@example.com", name)
    raw = personalizer(recipient).raw
    parsed = check_message(raw, personalizer, rendered, settings, recipient)
    assert "Bcc" not in parsed and "X-Injected" not in parsed
    found = re.search(rb"\r\nTo: (.*?)\r\n(?! )", raw, re.S)
    assert found is not None
    to_header = found.group(1)
    assert to_header.count(b"=?utf-8?") <= 1  # one encoded-word: every reader agrees on it
    html, text = bodies(parsed)
    greeting = greeting_name(name, "friend")
    assert f"Hi {greeting}," in text
    assert "<script>" not in html


@pytest.mark.parametrize(
    "subject",
    [
        "Plain and short",
        "Your calves\r\nBcc: everyone@example.net",
        "Gönül’s stretch — part 2 ✨",
        "A subject that goes on and on " * 6,
        "=?utf-8?b?ZmFrZQ==?= not an encoded word",
        "Averyveryverylongwordwithoutanyspacesthatcannotbefoldedanywhereatallreally!!",
    ],
)
def test_subjects_are_encoded_and_folded(subject, rendered, settings):
    issue = dataclasses.replace(rendered, subject=subject)
    personalizer = Personalizer(issue, settings, SIGNER.unsubscribe)
    recipient = Recipient(3, "reader@example.com", "Reader")
    raw = personalizer(recipient).raw
    check_message(raw, personalizer, issue, settings, recipient, subject=subject)
    head = raw.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"<http" not in line)


def test_a_long_site_url_still_gives_exact_links(rendered, settings):
    long_site = "https://painfreeliving.example.com/" + "/".join(["newsletter-archive"] * 8)
    long_settings = dataclasses.replace(
        settings, site_url=long_site, unsubscribe_domain="list.painfreeliving.example.com"
    )
    personalizer = Personalizer(rendered, long_settings, SIGNER.unsubscribe)
    recipient = Recipient(123456789012, "reader@example.com", "Reader")
    raw = personalizer(recipient).raw
    check_message(raw, personalizer, rendered, long_settings, recipient)
    assert raw.count(b"\r\n <mailto:") == 1  # folded between the two URLs


def test_preview_subject_prefix(rendered, settings):
    personalizer = Personalizer(rendered, settings, SIGNER.unsubscribe, subject_prefix=PREVIEW_PREFIX)
    parsed = parse(personalizer(Recipient(1, "editor@example.com")).raw)
    assert str(parsed["Subject"]) == f"[PREVIEW] {rendered.subject}"


def test_message_ids_are_unique_and_stable_for_a_send(rendered, settings):
    seeded = Personalizer(rendered, settings, SIGNER.unsubscribe, message_id_seed="calf.1")
    again = Personalizer(rendered, settings, SIGNER.unsubscribe, message_id_seed="calf.1")
    other_send = Personalizer(rendered, settings, SIGNER.unsubscribe, message_id_seed="calf.2")
    random_ids = Personalizer(rendered, settings, SIGNER.unsubscribe)
    people = [Recipient(i, f"r{i}@example.com") for i in range(1, 200)]
    ids = {seeded.message_id(p) for p in people}
    assert len(ids) == len(people)
    assert [seeded.message_id(p) for p in people] == [again.message_id(p) for p in people]
    assert ids.isdisjoint(other_send.message_id(p) for p in people)
    assert random_ids.message_id(people[0]) != random_ids.message_id(people[0])


def test_the_boundary_cannot_occur_in_a_body(personalizer):
    raw = personalizer(Recipient(5, "r@example.com", "=_pfl_ =_ =")).raw
    found = re.search(rb'boundary="([^"]+)"', raw)
    assert found is not None
    boundary = found.group(1)
    assert boundary.startswith(b"=_")
    assert raw.count(boundary) == 4  # the header, two delimiters, the close


def test_addresses_that_cannot_be_mailed(personalizer):
    with pytest.raises(UndeliverableAddress):
        personalizer(Recipient(1, "jörg@example.com"))
    with pytest.raises(UndeliverableAddress):
        personalizer(Recipient(1, "two words@example.com"))
    with pytest.raises(UndeliverableAddress):
        personalizer(Recipient(1, "a@b.com\r\nBcc: x@y.com"))
    with pytest.raises(UndeliverableAddress):
        personalizer(Recipient(1, "a" * 250 + "@example.com"))  # over 254 characters
    idn = personalizer(Recipient(1, "reader@bücher.example"))
    assert idn.recipient == "reader@xn--bcher-kva.example"
    assert parse(idn.raw)["To"].addresses[0].addr_spec == "reader@xn--bcher-kva.example"


def test_a_reply_to_on_an_international_domain(rendered, settings):
    from dataclasses import replace

    from pipeline.config import Address

    settings = replace(settings, reply_to=Address("dana@bücher.example", "Dana"))
    message = Personalizer(rendered, settings, SIGNER.unsubscribe)(Recipient(1, "r@example.com"))
    parsed = parse(message.raw)
    assert parsed["Reply-To"].addresses[0].addr_spec == "dana@xn--bcher-kva.example"
    assert "dana@" not in str(parsed["List-Unsubscribe"])  # the editor's mailbox is never it


def test_the_template_is_built_once_with_slots(rendered, settings):
    template = build_template(rendered, settings)
    assert template.slots[:4] == ("to", "date", "message_id", "list_unsubscribe")
    assert set(template.slots[4:]) == {
        "text:first_name",
        "text:unsubscribe_url",
        "html:first_name",
        "html:unsubscribe_url",
    }
    assert len(template.segments) == len(template.slots) + 1
    joined = b"".join(template.segments)
    assert rendered.nonce.encode() not in joined  # no marker survives


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(max_size=120),
    subject=st.text(min_size=1, max_size=150).filter(lambda s: clean_text(s) != ""),
)
def test_any_name_and_subject_parse_back_exactly(name, subject, rendered, settings):
    issue = dataclasses.replace(rendered, subject=subject)
    personalizer = Personalizer(issue, settings, SIGNER.unsubscribe)
    recipient = Recipient(42, "reader@example.com", name)
    check_message(personalizer(recipient).raw, personalizer, issue, settings, recipient,
                  subject=subject)


def test_long_encoded_names_are_shortened_to_one_encoded_word():
    name = "Þórunn Guðmundsdóttir " * 6
    shown = display_name(name, 74)
    assert shown.endswith("…") and name.startswith(shown[:-1])
    assert display_name("Zoë Ünal", 74) == "Zoë Ünal"
    assert display_name("plain " * 40, 74) == ("plain " * 40).strip()  # quoted, never cut


def test_greeting_name():
    assert greeting_name("Mary Ann Smith", "friend") == "Mary"
    assert greeting_name("  \r\n ", "friend") == "friend"
    assert greeting_name("Eve\r\nBcc: x", "friend") == "Eve"


def test_reference_sample_matches_preview(rendered, settings, tmp_path: Path):
    """The fast path and the slow reference fill agree on the sample reader."""
    from pipeline.render import sample_values

    values = sample_values(settings)
    personalizer = Personalizer(rendered, settings, lambda _id: "preview")
    raw = personalizer(Recipient(0, "alex@example.com", values["first_name"])).raw
    assert bodies(parse(raw)) == rendered.fill(values)


def test_the_date_header_is_utc_as_plus_0000(newsletter, settings):
    """RFC 5322 4.3 makes "GMT" an obsolete zone: the Date says +0000."""
    import datetime as dt
    import time

    path = newsletter / "issues" / "2027-02-01-dated.md"
    path.write_text("---\ntitle: Dated\ndate: 2027-02-01\n---\nHello.\n", encoding="utf-8")
    rendered = render_issue(load_issue(path), Context.load(settings))
    before = int(time.time())
    raw = Personalizer(rendered, settings, SIGNER.unsubscribe)(Recipient(1, "r@example.com")).raw
    after = time.time()
    found = re.search(rb"\r\nDate: ([^\r\n]*)\r\n", raw)  # as sent, not as parsed
    assert found is not None
    value = found.group(1).decode("ascii")
    assert str(parse(raw)["Date"]) == value
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", value), value
    moment = parsedate_to_datetime(value)
    assert moment.utcoffset() == dt.timedelta(0)
    assert before <= moment.timestamp() <= after
