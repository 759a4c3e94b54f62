"""The service's own messages (confirm, welcome) as they are sent."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import policy
from email.utils import parsedate_to_datetime

import pytest

from subscribers.mail import confirmation_message, welcome_message
from subscribers.models import Newsletter, Source, Status, Subscriber

NEWSLETTER = Newsletter(
    name="Pain Free Living",
    site_url="https://painfreeliving.example.com",
    sender="Pain Free Living <newsletter@painfreeliving.example.com>",
    reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
    postal_address="1200 Harbor Street, Portland, ME 04101, USA",
)
NOW = dt.datetime.now(dt.UTC)
READER = Subscriber(7, "reader@example.com", "Sam Reader", Status.PENDING, Source.FORM, NOW, NOW)


@pytest.mark.parametrize(
    "build",
    [
        lambda: confirmation_message(NEWSLETTER, READER, "https://painfreeliving.example.com/confirm/t"),
        lambda: welcome_message(NEWSLETTER, READER, "https://painfreeliving.example.com/unsubscribe/t"),
    ],
    ids=["confirm", "welcome"],
)
def test_the_date_header_is_utc_as_plus_0000(build):
    before = int(time.time())
    raw = build().as_bytes(policy=policy.SMTP)
    after = time.time()
    found = re.search(rb"\r\nDate: ([^\r\n]*)\r\n", raw)
    assert found is not None
    value = found.group(1).decode("ascii")
    # RFC 5322: "+0000" is UTC; "-0000" says the zone is unknown, "GMT" is obsolete.
    assert value.endswith(" +0000"), value
    assert before <= parsedate_to_datetime(value).timestamp() <= after


def test_the_confirmation_carries_nothing_the_signup_typed():
    """Whoever typed the address may be a stranger: no name in the greeting or the To header."""
    stranger = Subscriber(
        7, "reader@example.com", "WINNER visit https://evil.example", Status.PENDING, Source.FORM,
        NOW, NOW,
    )
    message = confirmation_message(NEWSLETTER, stranger, "https://painfreeliving.example.com/confirm/t")
    raw = message.as_bytes(policy=policy.SMTP)
    assert b"WINNER" not in raw and b"evil" not in raw
    assert message["To"].addresses[0].display_name == ""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().startswith("Hello,\n") and ">Hello,</p>" in html.get_content()
    welcome = welcome_message(NEWSLETTER, READER, "https://painfreeliving.example.com/unsubscribe/t")
    greeting = welcome.get_body(("plain",))
    assert greeting is not None and greeting.get_content().startswith("Hi Sam,\n")
