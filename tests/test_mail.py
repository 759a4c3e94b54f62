"""The service's own messages (confirm, welcome) as they are sent."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime

import pytest

from subscribers.mail import ServiceMail, confirmation_message, welcome_message
from subscribers.models import Newsletter, Source, Status, Subscriber
from tests.support.mail import service_mail

NEWSLETTER = Newsletter(
    name="Pain Free Living",
    site_url="https://painfreeliving.example.com",
    sender="Pain Free Living <newsletter@painfreeliving.example.com>",
    reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
    postal_address="1200 Harbor Street, Portland, ME 04101, USA",
)
NOW = dt.datetime.now(dt.UTC)
READER = Subscriber(7, "reader@example.com", "Sam Reader", Status.PENDING, Source.FORM, NOW, NOW)


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> ServiceMail:
    return service_mail(NEWSLETTER, tmp_path_factory.mktemp("newsletter"))


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def content(part: MIMEPart | None) -> str:
    """A part's text, with the LF line ends it was written with."""
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.mark.parametrize("kind", ["confirm", "welcome"])
def test_the_date_header_is_utc_as_plus_0000(mail: ServiceMail, kind: str):
    before = int(time.time())
    if kind == "confirm":
        raw = confirmation_message(mail.confirm(), READER, f"{NEWSLETTER.site_url}/confirm/t").raw
    else:
        raw = welcome_message(mail.welcome(), READER, f"{NEWSLETTER.site_url}/unsubscribe/t").raw
    after = time.time()
    found = re.search(rb"\r\nDate: ([^\r\n]*)\r\n", raw)
    assert found is not None
    value = found.group(1).decode("ascii")
    # RFC 5322: "+0000" is UTC; "-0000" says the zone is unknown, "GMT" is obsolete.
    assert value.endswith(" +0000"), value
    assert before <= parsedate_to_datetime(value).timestamp() <= after


def test_the_confirmation_carries_nothing_the_signup_typed(mail: ServiceMail):
    """Whoever typed the address may be a stranger: no name in the greeting or the To header."""
    stranger = Subscriber(
        7, "reader@example.com", "WINNER visit https://evil.example", Status.PENDING, Source.FORM,
        NOW, NOW,
    )
    sent = confirmation_message(mail.confirm(), stranger, f"{NEWSLETTER.site_url}/confirm/t")
    assert b"WINNER" not in sent.raw and b"evil" not in sent.raw
    message = parsed(sent.raw)
    assert message["To"].addresses[0].display_name == ""
    text, html = content(message.get_body(("plain",))), content(message.get_body(("html",)))
    assert text.startswith("Hello,\n") and ">Hello,</p>" in html
    welcome = parsed(
        welcome_message(mail.welcome(), READER, f"{NEWSLETTER.site_url}/unsubscribe/t").raw
    )
    assert content(welcome.get_body(("plain",))).startswith("Hi Sam,\n")
