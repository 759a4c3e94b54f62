"""With tracking.enabled, confirm and welcome mail is never tracked: it goes
with a configuration set of its own, `SET-service`, whose event destination
publishes the six event types to the newsletter's topic but never OPEN or
CLICK (SES would send the confirm link through its click redirect).

`publish setup ses` makes and mends that set against moto behind the SES
stand-in, read back through boto3; `publish serve`'s mailer sends with it
(the SendEmail requests that reach moto, through the fault-injecting proxy);
`publish doctor` checks it while tracking is on and says nothing of it
while tracking is off."""

from __future__ import annotations

import base64
import dataclasses
import re
from email import message_from_bytes, policy

import boto3
import pytest

from pipeline.cli import app
from pipeline.config import Settings
from pipeline.golive.account import AccountState, DestinationState
from pipeline.golive.doctor_ses import check_account
from pipeline.golive.names import EVENT_TYPES, names_for
from pipeline.publish import SendOptions, prepare_send
from subscribers.service import Origin
from subscribers.store import Store
from tests.support.dns_server import dns_zone  # noqa: F401  (fixture)
from tests.support.ses_account import SES_SPF, verified_standin  # noqa: F401  (fixture)
from tests.test_doctor import (  # noqa: F401  (fixtures)
    SECRET,
    account,
    healthy,
    problems,
    ready,
    runner,
)
from tests.test_engagement_setup import BASE_TYPES, TRACKED_TYPES, setup, track

# `publish setup ses` reads DMARC from a zone without records, never the machine's resolver.
pytestmark = pytest.mark.usefixtures("empty_dns")

CONFIG_SET = "pain-free-living"
SERVICE_SET = "pain-free-living-service"
SERVICE_DESTINATION = "pain-free-living-service-events"
TOPIC = "pain-free-living-ses-events"
ISSUE = "2026-12-01-calf-stretch.md"


def destination_of(configuration_set: str) -> dict:
    ses = boto3.client("ses", region_name="us-east-1")
    [destination] = ses.describe_configuration_set(
        ConfigurationSetName=configuration_set,
        ConfigurationSetAttributeNames=["eventDestinations"],
    )["EventDestinations"]
    return dict(destination)


# -- publish setup ses ---------------------------------------------------------


def test_with_tracking_setup_makes_both_sets_and_the_service_one_never_tracks(
    newsletter, ses_standin
) -> None:
    track(newsletter, True)
    first = setup()
    assert f"created the configuration set {CONFIG_SET}\n" in first.stdout
    assert f"created the configuration set {SERVICE_SET}\n" in first.stdout
    assert (
        f"created the event destination {SERVICE_DESTINATION} of {SERVICE_SET} (send, "
        f"delivery, bounce, complaint, reject, rendering failure → {TOPIC})"
    ) in first.stdout
    main, service = destination_of(CONFIG_SET), destination_of(SERVICE_SET)
    assert sorted(main["MatchingEventTypes"]) == TRACKED_TYPES
    assert service["Name"] == SERVICE_DESTINATION and service["Enabled"] is True
    assert sorted(service["MatchingEventTypes"]) == BASE_TYPES  # no open, no click
    # the same topic: bounces and complaints of a confirmation reach the list
    assert service["SNSDestination"] == main["SNSDestination"]
    assert service["SNSDestination"]["TopicARN"].endswith(f":{TOPIC}")

    ses_standin.calls_seen.clear()
    again = setup()
    assert ses_standin.mutating_calls() == []
    assert "nothing to change" in again.stdout


def test_a_service_destination_that_tracks_is_corrected(newsletter, ses_standin) -> None:
    track(newsletter, True)
    setup()
    tracking = {**destination_of(SERVICE_SET), "MatchingEventTypes": TRACKED_TYPES}
    boto3.client("ses", region_name="us-east-1").update_configuration_set_event_destination(
        ConfigurationSetName=SERVICE_SET, EventDestination=tracking
    )
    assert sorted(destination_of(SERVICE_SET)["MatchingEventTypes"]) == TRACKED_TYPES

    fixed = setup()
    assert (
        f"updated the event destination {SERVICE_DESTINATION} of {SERVICE_SET} (without open, "
        "click: confirm and welcome mail is never tracked)"
    ) in fixed.stdout
    assert sorted(destination_of(SERVICE_SET)["MatchingEventTypes"]) == BASE_TYPES
    assert sorted(destination_of(CONFIG_SET)["MatchingEventTypes"]) == TRACKED_TYPES


def test_without_tracking_the_service_set_is_made_too_so_turning_tracking_on_is_safe(
    newsletter, ses_standin
) -> None:
    """Service mail goes with the service set as soon as tracking.enabled is
    on, before setup is run again: the set must exist by then."""
    setup()
    assert sorted(destination_of(SERVICE_SET)["MatchingEventTypes"]) == BASE_TYPES
    track(newsletter, True)
    on = setup()
    assert f"of {CONFIG_SET} (with open, click)" in on.stdout
    assert SERVICE_SET not in on.stdout


# -- what the mail is sent with ------------------------------------------------


def _sent_with(bodies: list[dict]) -> list[str]:
    return [body.get("ConfigurationSetName", "") for body in bodies]


def _confirm_token(body: dict) -> str:
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",))  # type: ignore[attr-defined]
    assert text is not None
    found = re.search(r"/confirm/([A-Za-z0-9._-]+)", str(text.get_content()))
    assert found is not None
    return found.group(1)


def _service_mail_sent_with(config: Settings, ses) -> list[str]:  # type: ignore[no-untyped-def]
    """Confirm and welcome mail through `publish serve`'s mailer, as
    _run_mailer wires it: what each SendEmail named as its configuration set."""
    from pipeline.cli.serve import _mail, _web_config
    from pipeline.service_mail import service_mail

    web = _web_config(config, SECRET)
    transport, send_mail = _mail(config)
    before = len(ses.bodies)
    try:
        with Store.open(config.database_url, config.root) as store:
            service = web.subscriptions(
                store.engine, send_mail, service_mail(config, store.engine, web.site_url)
            )
            subscriber = service.subscribe(
                "reader@example.com", "Reader", consent_text=web.consent, origin=Origin()
            )
            assert subscriber is not None and service.send_due_confirmations() == 1
            service.confirm(_confirm_token(ses.bodies[-1]), Origin())
            assert service.send_welcome(subscriber)
    finally:
        transport.close()
    sent = ses.bodies[before:]
    assert len(sent) == 2 and all("EmailTags" not in body for body in sent)
    return _sent_with(sent)


def _issue_sent_with(config: Settings, ses) -> list[str]:  # type: ignore[no-untyped-def]
    with Store.open(config.database_url, config.root) as store:
        for i in range(3):
            store.add(f"issue{i}@example.com", name=f"Reader {i}")
    before = len(ses.bodies)
    issue = config.issues_dir / ISSUE
    with prepare_send(config, issue, SendOptions(transport="ses")) as prepared:
        result = prepared.run()
    sent = ses.bodies[before:]
    assert result.sent == len(sent) == 4  # the three and the reader who confirmed
    assert all(body["EmailTags"] == [{"Name": "issue", "Value": "calf-stretch"}] for body in sent)
    return _sent_with(sent)


@pytest.fixture
def on_ses(settings: Settings) -> Settings:
    return dataclasses.replace(settings, transport="ses", ses_configuration_set=CONFIG_SET)


@pytest.mark.parametrize("tracking", [True, False])
def test_service_mail_goes_with_the_service_set_while_tracking_and_issues_with_the_main(
    ses, on_ses, tracking
) -> None:
    config = dataclasses.replace(on_ses, tracking=tracking)
    service = SERVICE_SET if tracking else CONFIG_SET  # without tracking nothing needs it
    assert _service_mail_sent_with(config, ses) == [service, service]
    assert _issue_sent_with(config, ses) == [CONFIG_SET] * 4


# -- publish doctor ------------------------------------------------------------


def test_without_a_service_set_at_ses_service_mail_is_sent_tracked_and_said(
    ses, on_ses, caplog
) -> None:
    """A newsletter set up before there was a service set, tracking on: SES
    refuses the service set, and a confirmation is sent with the
    newsletter's set rather than not at all, with a warning naming the fix."""
    from pipeline.cli.serve import _mail
    from subscribers.mail_template import OutgoingMessage
    from tests.support.faulty_proxy import SENDER, Fault

    config = dataclasses.replace(on_ses, tracking=True)
    ses.faults.append(Fault(404, "NotFoundException",
                            f"Configuration set <{SERVICE_SET}> does not exist.",
                            lambda call, _recipient: call == 1))
    raw = b"From: " + SENDER.encode() + b"\r\nTo: r@example.com\r\nSubject: Confirm\r\n\r\nx\r\n"
    transport, send_mail = _mail(config)
    try:
        with caplog.at_level("WARNING", logger="pipeline.transports.ses"):
            first = send_mail(OutgoingMessage(SENDER, "r@example.com", raw))
            second = send_mail(OutgoingMessage(SENDER, "s@example.com", raw))
    finally:
        transport.close()
    assert first and second and first != second
    assert _sent_with(ses.bodies) == [SERVICE_SET, CONFIG_SET, CONFIG_SET]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"no configuration set {SERVICE_SET}" in warning
    assert "publish setup ses" in warning


def test_a_refusal_for_another_reason_is_not_sent_again_with_another_set(ses, on_ses) -> None:
    from pipeline.cli.serve import _mail
    from pipeline.transports.base import Rejected
    from subscribers.mail_template import OutgoingMessage
    from tests.support.faulty_proxy import SENDER

    config = dataclasses.replace(on_ses, tracking=True)
    ses.reject("r@example.com")
    raw = b"From: " + SENDER.encode() + b"\r\nTo: r@example.com\r\nSubject: Confirm\r\n\r\nx\r\n"
    transport, send_mail = _mail(config)
    try:
        with pytest.raises(Rejected):
            send_mail(OutgoingMessage(SENDER, "r@example.com", raw))
    finally:
        transport.close()
    assert _sent_with(ses.bodies) == [SERVICE_SET]


def _service(state: AccountState, **change) -> AccountState:  # type: ignore[no-untyped-def]
    assert state.service_destination is not None
    return dataclasses.replace(
        state, service_destination=dataclasses.replace(state.service_destination, **change)
    )


def test_doctor_checks_the_service_set_while_tracking_is_on(ready) -> None:  # noqa: F811
    names = names_for(ready)
    tracking = dataclasses.replace(ready, tracking=True)
    all_types = (*EVENT_TYPES, "OPEN", "CLICK")
    good = dataclasses.replace(
        healthy(names),
        destination=DestinationState(
            names.event_destination, True, all_types, healthy(names).topic_arn
        ),
    )
    findings = check_account(good, names, tracking)
    assert problems(findings) == []
    assert (
        f"ok: service event destination: {SERVICE_SET} publishes SEND, DELIVERY, BOUNCE, "
        "COMPLAINT, REJECT, RENDERING_FAILURE to the topic, no opens or clicks"
    ) in [f.line() for f in findings]

    missing = dataclasses.replace(good, service_configuration_set=False, service_destination=None)
    [found] = problems(check_account(missing, names, tracking))
    assert (found.level, found.subject) == ("error", "service configuration set")
    assert found.message.startswith(f"{SERVICE_SET} does not exist in us-east-1")
    assert found.fix == "run publish setup ses"

    [clicks] = problems(
        check_account(_service(good, event_types=(*EVENT_TYPES, "CLICK")), names, tracking)
    )
    assert (clicks.level, clicks.subject) == ("error", "service event destination")
    assert f"{SERVICE_DESTINATION} of {SERVICE_SET} publishes CLICK" in clicks.message
    assert clicks.fix.startswith("run publish setup ses")

    [no_bounces] = problems(
        check_account(
            _service(good, event_types=("SEND", "DELIVERY", "REJECT", "RENDERING_FAILURE")),
            names,
            tracking,
        )
    )
    assert no_bounces.message == f"{SERVICE_DESTINATION} does not publish BOUNCE, COMPLAINT"


def test_without_tracking_doctor_asks_nothing_of_the_service_set(ready) -> None:  # noqa: F811
    names = names_for(ready)
    missing = dataclasses.replace(
        healthy(names), service_configuration_set=False, service_destination=None
    )
    findings = check_account(missing, names, ready)
    assert problems(findings) == []
    assert not any("service" in f.subject or SERVICE_SET in f.line() for f in findings)


def _doctor(nameserver: str) -> list[str]:
    result = runner.invoke(app, ["doctor", "--nameserver", nameserver])
    assert "Traceback" not in result.output
    return result.output.splitlines()


def test_doctor_against_the_account_reports_the_missing_service_set_only_with_tracking(
    account,  # noqa: F811
    verified_standin,  # noqa: F811
    dns_zone,  # noqa: F811
    monkeypatch,
) -> None:
    nameserver = dns_zone(SES_SPF)
    off = _doctor(nameserver)
    assert not any(SERVICE_SET in line for line in off), off
    read = [call.operation for call in verified_standin.calls]
    assert read.count("GetConfigurationSet") == 1  # the newsletter's set, not the service one
    assert not any(SERVICE_SET in str(call.params) for call in verified_standin.calls)

    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    on = _doctor(nameserver)
    assert (
        f"error: service configuration set: {SERVICE_SET} does not exist in us-east-1: SES "
        "refuses the confirm and welcome mail sent with it while tracking.enabled is on "
        "(fix: run publish setup ses)"
    ) in on


def test_a_refused_read_of_the_service_set_is_one_line_and_not_a_missing_set(
    account,  # noqa: F811
    verified_standin,  # noqa: F811
    dns_zone,  # noqa: F811
    monkeypatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    verified_standin.fail(
        "GetConfigurationSet",
        "AccessDeniedException",
        "not authorized to perform: ses:GetConfigurationSet",
        status=403,
        times=100,
    )
    lines = _doctor(dns_zone(SES_SPF))
    [refused] = [line for line in lines if line.startswith("error: service configuration set")]
    assert f"reading the configuration set {SERVICE_SET}: AccessDeniedException" in refused
    assert "unknown: the service configuration set and its event destination" in refused
    assert "not allowed to call ses:GetConfigurationSet" in refused
    assert not any("does not exist" in line for line in lines), lines
    assert not any(line.startswith(("ok: service", "error: service event")) for line in lines)
