"""SES notifications in both shapes, bare and SNS-wrapped, and hostile ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscribers.notifications import MalformedNotification, parse

SAMPLES = Path(__file__).parent / "data" / "ses"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def wrapped(body: dict, topic: str = "arn:aws:sns:us-east-1:123456789012:ses-feedback") -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5b5c6e2a-0000-0000-0000-000000000001",
            "TopicArn": topic,
            "Message": json.dumps(body),
            "Timestamp": "2026-12-01T07:00:04.000Z",
            "SignatureVersion": "1",
            "Signature": "x",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        }
    )


@pytest.mark.parametrize("shape", ["", "event-"])
@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize(
    ("name", "kind", "bounce_type"),
    [
        ("bounce-permanent", "bounce", "Permanent"),
        ("bounce-transient", "bounce", "Transient"),
        ("bounce-undetermined", "bounce", "Undetermined"),
        ("complaint", "complaint", ""),
        ("delivery", "delivery", ""),
    ],
)
def test_each_type_in_each_shape(shape, wrap, name, kind, bounce_type):
    body = sample(shape + name)
    parsed = parse(wrapped(body) if wrap else json.dumps(body))
    assert parsed.ignored == ""
    assert parsed.topic_arn == ("arn:aws:sns:us-east-1:123456789012:ses-feedback" if wrap else "")
    (feedback,) = parsed.feedback
    assert feedback.kind == kind
    assert feedback.bounce_type == bounce_type
    assert feedback.recipient == "ana@example.com"
    assert feedback.message_id == "0100018c1d2e3f40-aaaa-bbbb-cccc-000000000001-000000"
    assert feedback.at.tzinfo is not None and feedback.at.year == 2026
    assert "ana@example.com" in feedback.event_id


def test_every_recipient_of_a_notification():
    parsed = parse(json.dumps(sample("bounce-permanent-three-recipients")))
    assert [f.recipient for f in parsed.feedback] == ["ana@example.com", "ben@example.com", "cleo@example.com"]
    assert len({f.event_id for f in parsed.feedback}) == 3
    assert parsed.feedback[0].detail == {"subtype": "General", "action": "failed", "status": "5.1.1"}


def test_the_same_notification_has_the_same_event_ids():
    first = parse(json.dumps(sample("complaint")))
    again = parse(wrapped(sample("complaint")).encode())
    assert [f.event_id for f in first.feedback] == [f.event_id for f in again.feedback]
    assert first.feedback[0].at == datetime(2026, 12, 1, 8, 12, tzinfo=UTC)


def test_other_event_types_are_ignored_not_errors():
    parsed = parse(json.dumps(sample("event-open")))
    assert parsed.feedback == () and parsed.ignored == "Open"
    confirmation = json.dumps({"Type": "SubscriptionConfirmation", "Message": "hi"})
    assert parse(confirmation).ignored == "SNS SubscriptionConfirmation"


def mutate(name: str, change) -> str:
    body = sample(name)
    change(body)
    return json.dumps(body)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        b"\xff\xfe",
        json.dumps({"hello": "world"}),
        mutate("bounce-permanent", lambda b: b.pop("mail")),
        mutate("bounce-permanent", lambda b: b["mail"].update(messageId=12)),
        mutate("bounce-permanent", lambda b: b["bounce"].update(bouncedRecipients=[])),
        mutate("bounce-permanent", lambda b: b["bounce"].update(bouncedRecipients="ana@example.com")),
        mutate("bounce-permanent", lambda b: b["bounce"]["bouncedRecipients"][0].update(emailAddress=None)),
        mutate("bounce-permanent", lambda b: b["bounce"]["bouncedRecipients"][0].update(emailAddress="no at sign")),
        mutate("bounce-permanent", lambda b: b["bounce"].update(timestamp="yesterday")),
        mutate("complaint", lambda b: b["complaint"].update(feedbackId=["x"])),
        mutate("delivery", lambda b: b["delivery"].update(recipients=[{"a": 1}])),
        mutate(
            "bounce-permanent",
            lambda b: b["bounce"].update(bouncedRecipients=[{"emailAddress": f"u{i}@example.com"} for i in range(101)]),
        ),
        "x" * (256 * 1024 + 1),
        json.dumps({"Type": "Notification", "Message": "not json either"}),
        "[" * 100000,
    ],
)
def test_unreadable_notifications_raise_one_error(body):
    with pytest.raises(MalformedNotification):
        parse(body)


def test_unknown_bounce_type_is_treated_as_undetermined():
    body = mutate("bounce-permanent", lambda b: b["bounce"].update(bounceType="Weird"))
    assert parse(body).feedback[0].bounce_type == "Undetermined"
