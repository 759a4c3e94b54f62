"""`publish setup ses` when AWS refuses, slows down, or the editor presses
Ctrl-C: one line, the exit status, and a next run that finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli.golive import INTERRUPTED
from tests.support.dns_server import setup_ses_args

runner = CliRunner()
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:pain-free-living-ses-events"


# `publish setup ses` reads DMARC from a zone without records, never the machine's resolver.
pytestmark = pytest.mark.usefixtures("empty_dns")


def setup(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, setup_ses_args(*args))


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_missing_credentials_is_one_line(newsletter, ses_standin, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    line = one_error_line(setup())
    assert line == ("error: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY)")
    assert ses_standin.calls == []


def test_a_region_without_ses_is_one_line(newsletter, ses_standin) -> None:
    line = one_error_line(setup("--region", "ap-east-1"))
    assert line.startswith("error: Amazon SES is not offered in the region 'ap-east-1'; it is in ")
    assert "eu-west-1" in line and "us-east-1" in line
    assert ses_standin.calls == []


def test_access_denied_names_the_iam_action_and_the_next_run_finishes(
    newsletter, ses_standin
) -> None:
    ses_standin.fail(
        "CreateConfigurationSet", "AccessDenied",
        "User: arn:aws:iam::123456789012:user/x is not authorized to perform: "
        "ses:CreateConfigurationSet", status=403,
    )
    result = setup()
    line = one_error_line(result)
    assert line == ('error: not allowed to call ses:CreateConfigurationSet: add it to the IAM '
                    'policy in the README ("Going live")')
    assert "created the SES identity" in result.stdout  # what was done before, said
    assert "created the SNS topic" not in result.stdout  # and nothing after it
    again = setup()
    assert again.exit_code == 0, again.output
    assert "created the configuration set pain-free-living" in again.stdout
    assert "created the SES identity" not in again.stdout


def test_a_refused_read_stops_setup_before_it_plans_or_changes_anything(
    newsletter, ses_standin
) -> None:
    config = (newsletter / "newsletter.toml").read_text()
    ses_standin.fail("GetTopicAttributes", "AuthorizationError", "User: x is not authorized",
                     status=403, times=100)
    ses_standin.fail("GetConfigurationSet", "AccessDeniedException", "User: x is not authorized",
                     status=403, times=100)
    line = one_error_line(setup())
    assert line == ('error: not allowed to call sns:GetTopicAttributes: add it to the IAM '
                    'policy in the README ("Going live")')
    assert ses_standin.mutating_calls() == []
    assert "GetConfigurationSet" not in [call.operation for call in ses_standin.calls]
    assert (newsletter / "newsletter.toml").read_text() == config


def test_another_refusal_says_what_was_being_done(newsletter, ses_standin) -> None:
    ses_standin.fail("CreateQueue", "InvalidAttributeValue", "Invalid value for the parameter")
    line = one_error_line(setup())
    assert line == ("error: creating the SQS dead-letter queue pain-free-living-ses-events-dlq: "
                    "InvalidAttributeValue: Invalid value for the parameter (CreateQueue)")


def test_throttling_is_retried_until_the_call_goes_through(newsletter, ses_standin) -> None:
    ses_standin.fail("CreateTopic", "Throttling", "Rate exceeded", status=400, times=2)
    ses_standin.fail("CreateEmailIdentity", "TooManyRequestsException", "Too many requests",
                     status=429, times=2)
    result = setup()
    assert result.exit_code == 0, result.output
    operations = [call.operation for call in ses_standin.calls]
    assert operations.count("CreateTopic") == 3
    assert operations.count("CreateEmailIdentity") == 3
    assert boto3.client("sns", region_name="us-east-1").get_topic_attributes(TopicArn=TOPIC_ARN)


def test_ctrl_c_mid_setup_loses_nothing_and_the_next_run_finishes(newsletter, ses_standin) -> None:
    held = ses_standin.hold("Subscribe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", *setup_ses_args()],
        cwd=newsletter, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert held.arrived.wait(60), "setup never reached Subscribe"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        held.release()
    assert process.returncode == 130, (stdout, stderr)
    assert stderr == INTERRUPTED + "\n"
    assert "created the SQS queue pain-free-living-ses-events" in stdout
    assert "newsletter.toml" not in stdout
    # The held Subscribe still reaches moto once released; wait for its answer.
    deadline = time.monotonic() + 30
    while not any(c.operation == "Subscribe" and c.status for c in ses_standin.calls):
        assert time.monotonic() < deadline, "the held Subscribe was never answered"
        time.sleep(0.05)
    result = setup()
    assert result.exit_code == 0, result.output
    assert "updated newsletter.toml: delivery.ses_configuration_set, events.queue_url" in (
        result.stdout)
    assert "created the SQS queue" not in result.stdout
    sns = boto3.client("sns", region_name="us-east-1")
    assert len(sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]) == 1
    assert "nothing to change" in setup().stdout
