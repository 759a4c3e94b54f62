"""The pure parts of `publish setup ses`: the plan from an account's state,
the policies it writes and reads back, and keys set in newsletter.toml."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.golive.account import (
    AccountState,
    DestinationState,
    IdentityState,
    MailFromState,
    QueueState,
    ReceiptState,
    SubscriptionState,
    v1_event_type,
    v2_event_type,
)
from pipeline.golive.names import EVENT_TYPES, names_for
from pipeline.golive.policies import queue_allows_only, queue_policy, topic_allows_ses, topic_policy
from pipeline.golive.setup_steps import plan
from pipeline.golive.tomlfile import set_key, set_keys

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:pain-free-living-ses-events"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:pain-free-living-ses-events"
DLQ = f"{QUEUE}-dlq"


def complete() -> AccountState:
    """An account `publish setup ses --receive` has set up whole."""
    return AccountState(
        region="us-east-1",
        account_id=ACCOUNT,
        identity=IdentityState(True, "SUCCESS", ("a", "b", "c")),
        mail_from=MailFromState("bounce.painfreeliving.example.com", "Success"),
        configuration_set=True,
        destination=DestinationState("pain-free-living-events", True, EVENT_TYPES, TOPIC),
        topic_arn=TOPIC,
        topic_allows_ses=True,
        subscriptions=(SubscriptionState("sqs", QUEUE, f"{TOPIC}:1"),),
        queue=QueueState("https://sqs/q", QUEUE, True, DLQ, 5),
        dead_letter_queue_arn=DLQ,
        receipt=ReceiptState("pain-free-living", "pain-free-living-unsubscribe",
                             ("list.painfreeliving.example.com",), TOPIC, True),
        active_rule_set="pain-free-living",
        quota=None,
        service_configuration_set=True,
        service_destination=DestinationState("pain-free-living-service-events", True,
                                             EVENT_TYPES, TOPIC),
    )


def steps(state, settings, **flags):  # type: ignore[no-untyped-def]
    flags = {"webhook": False, "receive": True, **flags}
    return plan(state, names_for(settings), settings, **flags)


def test_a_complete_account_needs_nothing(settings) -> None:
    assert steps(complete(), settings) == []


def test_a_destination_missing_types_is_updated_with_all_six(settings) -> None:
    state = replace(complete(), destination=DestinationState(
        "pain-free-living-events", False, ("BOUNCE", "COMPLAINT", "DELIVERY_DELAY"), TOPIC))
    [step] = steps(state, settings)
    assert (step.verb, step.operation) == ("update", "update_configuration_set_event_destination")
    destination = step.params["EventDestination"]
    assert destination["Enabled"] is True
    # the six, and what it published already (delivery delays) kept; opens and
    # clicks are not (tests/test_engagement_setup.py)
    assert destination["MatchingEventTypes"] == sorted(
        ["bounce", "complaint", "delivery", "deliveryDelay", "reject", "renderingFailure",
         "send"])
    assert "enabled, with send, delivery, reject, rendering failure" in step.done


def test_someone_elses_destination_is_left_alone(settings) -> None:
    other = DestinationState("firehose-feed", True, ("SEND",), "arn:aws:sns:us-east-1:1:other")
    [step] = steps(replace(complete(), destination=other), settings)
    assert step.operation == "create_configuration_set_event_destination"
    assert step.params["EventDestination"]["Name"] == "pain-free-living-events"


def test_a_queue_without_redrive_or_the_right_policy_is_fixed(settings) -> None:
    state = replace(complete(), queue=QueueState("https://sqs/q", QUEUE, False, "", 0))
    fixes = steps(state, settings)
    assert [s.operation for s in fixes] == ["set_queue_attributes", "set_queue_attributes"]
    assert json.loads(fixes[1].params["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": DLQ, "maxReceiveCount": 5}


def test_an_empty_account_gets_every_step_with_derived_arns(settings) -> None:
    empty = AccountState("eu-west-1", ACCOUNT, None, None, False, None, "", False, (), None, "",
                         None, "", None)
    found = steps(empty, settings)
    assert [s.operation for s in found] == [
        "create_email_identity", "set_identity_mail_from_domain", "create_configuration_set",
        "create_configuration_set", "create_topic", "create_configuration_set_event_destination",
        "create_configuration_set_event_destination", "create_queue", "create_queue",
        "subscribe", "create_receipt_rule_set", "create_receipt_rule",
        "set_active_receipt_rule_set"]
    assert found[3].params == {"ConfigurationSetName": "pain-free-living-service"}
    topic = f"arn:aws:sns:eu-west-1:{ACCOUNT}:pain-free-living-ses-events"
    assert found[9].params["TopicArn"] == topic
    assert found[11].params["Rule"]["Actions"] == [
        {"SNSAction": {"TopicArn": topic, "Encoding": "UTF-8"}}]
    webhook = steps(empty, settings, webhook=True, receive=False)
    assert webhook[-1].params["Protocol"] == "https"
    assert webhook[-1].params["Endpoint"] == "https://painfreeliving.example.com/ses/events"


def test_the_rule_goes_into_someone_elses_active_rule_set(settings) -> None:
    state = replace(complete(), receipt=None, active_rule_set="support-desk")
    [step] = steps(state, settings)
    assert step.operation == "create_receipt_rule"
    assert step.params["RuleSetName"] == "support-desk"


def test_an_inactive_own_rule_set_is_activated_once_its_rule_is_in(settings) -> None:
    state = replace(complete(), receipt=None, active_rule_set="", rule_set_exists=True)
    assert [s.operation for s in steps(state, settings)] == [
        "create_receipt_rule", "set_active_receipt_rule_set"]


def test_event_types_translate_between_ses_v1_and_v2() -> None:
    assert [v1_event_type(t) for t in EVENT_TYPES] == [
        "send", "delivery", "bounce", "complaint", "reject", "renderingFailure"]
    assert all(v2_event_type(v1_event_type(t)) == t for t in EVENT_TYPES)


def test_policies_are_read_back_as_written() -> None:
    assert topic_allows_ses(topic_policy("", TOPIC, ACCOUNT), ACCOUNT)
    assert not topic_allows_ses(topic_policy("", TOPIC, ACCOUNT), "999999999999")
    assert queue_allows_only(queue_policy(QUEUE, TOPIC), TOPIC)
    assert not queue_allows_only(queue_policy(QUEUE, TOPIC), TOPIC + "-other")
    too_open = json.loads(queue_policy(QUEUE, TOPIC))
    too_open["Statement"].append({"Effect": "Allow", "Principal": "*", "Action": "sqs:*"})
    assert not queue_allows_only(json.dumps(too_open), TOPIC)
    assert not queue_allows_only("not json", TOPIC)
    kept = {"Version": "2008-10-17", "Statement": [{"Sid": "owner", "Effect": "Allow"}]}
    merged = json.loads(topic_policy(json.dumps(kept), TOPIC, ACCOUNT))
    assert [s["Sid"] for s in merged["Statement"]] == ["owner", "AllowSESPublishFromThisAccount"]


# -- newsletter.toml ----------------------------------------------------------


def test_a_value_is_replaced_in_its_line_and_its_comment_kept_in_its_column() -> None:
    text = '[events]\nqueue_url = ""                   # NEWSLETTER_EVENTS_QUEUE_URL\nx = 1\n'
    out = set_key(text, "events", "queue_url", "https://q")
    assert out == ('[events]\nqueue_url = "https://q"          # NEWSLETTER_EVENTS_QUEUE_URL\n'
                   "x = 1\n")
    longer = set_key(text, "events", "queue_url", "h" * 40)
    assert longer.splitlines()[1] == f'queue_url = "{"h" * 40}" # NEWSLETTER_EVENTS_QUEUE_URL'


def test_a_missing_key_ends_its_table_and_a_missing_table_ends_the_file() -> None:
    text = ('[sender]\nfrom = "a@b.example"\nsns = [\n  "[not a table]",  # c\n]\n\n'
            "# about web\n[web]\nport = 1\n")
    out = set_key(text, "sender", "unsubscribe_domain", "list.b.example")
    assert out.startswith('[sender]\nfrom = "a@b.example"\nsns = [\n  "[not a table]",  # c\n]\n'
                          'unsubscribe_domain = "list.b.example"\n\n# about web\n[web]\n')
    out = set_key(out, "events", "sns_topic_arns", ["arn:1", 'q"uote\\'])
    assert out.endswith('port = 1\n\n[events]\nsns_topic_arns = ["arn:1", "q\\"uote\\\\"]\n')
    parsed = tomllib.loads(out)
    assert parsed["events"]["sns_topic_arns"] == ["arn:1", 'q"uote\\']
    assert parsed["sender"]["sns"] == ["[not a table]"]


def test_set_keys_writes_only_what_changed_and_keeps_the_file_readable(newsletter: Path) -> None:
    path = newsletter / "newsletter.toml"
    before = path.read_text()
    assert set_keys(path, {"delivery.ses_configuration_set": ""}) == []  # already so
    assert path.read_text() == before
    written = set_keys(path, {"delivery.ses_configuration_set": "pfl",
                              "events.queue_url": "https://sqs.example/1/q"})
    assert written == ["delivery.ses_configuration_set", "events.queue_url"]
    assert load_settings(newsletter).events_queue_url == "https://sqs.example/1/q"
    assert path.read_text().count("#") == before.count("#")


def test_a_write_the_settings_refuse_never_lands(newsletter: Path) -> None:
    path = newsletter / "newsletter.toml"
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"delivery\.transport") as caught:
        set_keys(path, {"delivery.transport": "carrier-pigeon"})
    assert "newsletter.toml left as it was" in str(caught.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in newsletter.iterdir() if p.name.startswith(".newsletter")) == []
