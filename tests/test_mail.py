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
