"""Open and click tracking in the SES account: `publish setup ses` adds OPEN
and CLICK to the newsletter's event destination while tracking.enabled is
on (against moto behind the SES stand-in, read back through boto3), takes
them away when it is off, and `publish doctor` expects what the setting says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.golive.account import AccountState, DestinationState
from pipeline.golive.doctor_ses import check_account
from pipeline.golive.names import EVENT_TYPES, TRACKING_EVENT_TYPES, names_for
from pipeline.golive.setup_steps import plan
from tests.support.dns_server import setup_ses_args
from tests.test_doctor import QUEUE_URL, healthy, problems
from tests.test_setup_plan import complete

runner = CliRunner()
CONFIG_SET = "pain-free-living"
DESTINATION = "pain-free-living-events"
BASE_TYPES = ["bounce", "complaint", "delivery", "reject", "renderingFailure", "send"]
TRACKED_TYPES = sorted([*BASE_TYPES, "open", "click"])


def track(root: Path, enabled: bool) -> None:
    """Set tracking.enabled in the newsletter's own file, as the editor would."""
    path = root / "newsletter.toml"
    text = path.read_text()
    if "[tracking]" not in text:
        text += "\n[tracking]\nenabled = false\n"
    old = "enabled = true" if "enabled = true" in text else "enabled = false"
    path.write_text(text.replace(old, f"enabled = {'true' if enabled else 'false'}"))
    assert load_settings(root).tracking is enabled


# `publish setup ses` reads DMARC from a zone without records, never the machine's resolver.
pytestmark = pytest.mark.usefixtures("empty_dns")


def setup():  # type: ignore[no-untyped-def]
    result = runner.invoke(app, setup_ses_args())
    assert result.exit_code == 0, result.output
    return result


def published_types() -> list[str]:
    ses = boto3.client("ses", region_name="us-east-1")
    [destination] = ses.describe_configuration_set(
        ConfigurationSetName=CONFIG_SET, ConfigurationSetAttributeNames=["eventDestinations"]
    )["EventDestinations"]
    assert destination["Name"] == DESTINATION and destination["Enabled"] is True
    return sorted(destination["MatchingEventTypes"])


def test_with_tracking_setup_publishes_opens_and_clicks_once(newsletter, ses_standin) -> None:
    track(newsletter, True)
    first = setup()
    assert (f"created the event destination {DESTINATION} of {CONFIG_SET} (send, delivery, "
            "bounce, complaint, reject, rendering failure, open, click → ") in first.stdout
    assert published_types() == TRACKED_TYPES

    ses_standin.calls_seen.clear()
    again = setup()
    assert ses_standin.mutating_calls() == []
    assert "nothing to change" in again.stdout


def test_turning_tracking_on_later_updates_the_destination_and_off_takes_it_back(
    newsletter, ses_standin
) -> None:
    setup()
    assert published_types() == BASE_TYPES  # off by default: SES tracks nothing

    track(newsletter, True)
    on = setup()
    assert (f"updated the event destination {DESTINATION} of {CONFIG_SET} (with open, click)"
            in on.stdout)
    assert published_types() == TRACKED_TYPES
    ses_standin.calls_seen.clear()
    setup()
    assert ses_standin.mutating_calls() == []

    track(newsletter, False)
    off = setup()
    assert (f"updated the event destination {DESTINATION} of {CONFIG_SET} (without open, "
            "click: tracking.enabled is false)") in off.stdout
    assert published_types() == BASE_TYPES


def test_the_plan_keeps_other_types_but_never_opens_and_clicks_without_tracking(settings):
    others = DestinationState(DESTINATION, True, (*EVENT_TYPES, "DELIVERY_DELAY", "OPEN"),
                              complete().topic_arn)
    state = dataclasses.replace(complete(), destination=others)
    names = names_for(settings)
    [step] = plan(state, names, settings, webhook=False, receive=True)
    assert step.params["EventDestination"]["MatchingEventTypes"] == sorted(
        [*BASE_TYPES, "deliveryDelay"])

    tracking = dataclasses.replace(settings, tracking=True)
    [step] = plan(state, names, tracking, webhook=False, receive=True)
    assert step.params["EventDestination"]["MatchingEventTypes"] == sorted(
        [*BASE_TYPES, "deliveryDelay", "open", "click"])
    assert step.done.endswith("(with click)")


@pytest.fixture
def ready(settings):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, transport="ses", ses_configuration_set=CONFIG_SET,
                               events_queue_url=QUEUE_URL)


def _with_types(state: AccountState, types: tuple[str, ...]) -> AccountState:
    assert state.destination is not None
    return dataclasses.replace(
        state, destination=dataclasses.replace(state.destination, event_types=types))


def test_doctor_expects_opens_and_clicks_while_tracking_is_on(ready) -> None:
    names = names_for(ready)
    tracking = dataclasses.replace(ready, tracking=True)
    [missing] = problems(check_account(healthy(names), names, tracking))
    assert (missing.level, missing.subject) == ("error", "event destination")
    assert missing.message == f"{DESTINATION} does not publish OPEN, CLICK"
    assert "publish setup ses" in missing.fix

    tracked = _with_types(healthy(names), EVENT_TYPES + TRACKING_EVENT_TYPES)
    findings = check_account(tracked, names, tracking)
    assert problems(findings) == []
    assert (f"ok: event destination: {CONFIG_SET} publishes SEND, DELIVERY, BOUNCE, COMPLAINT, "
            "REJECT, RENDERING_FAILURE, OPEN, CLICK to the topic") in [f.line() for f in findings]


def test_doctor_warns_when_ses_tracks_readers_with_tracking_off(ready) -> None:
    names = names_for(ready)
    assert problems(check_account(healthy(names), names, ready)) == []
    tracked = _with_types(healthy(names), (*EVENT_TYPES, "CLICK"))
    [found] = problems(check_account(tracked, names, ready))
    assert (found.level, found.subject) == ("warning", "event destination")
    assert "publishes CLICK, so SES still tracks opens and clicks" in found.message
    assert "it removes them" in found.fix
