"""The benchmarks' SES stand-in (tests/support/ses_sink.py): a real HTTP/1.1
server in a process of its own that boto3 and the lean client talk to as to
SES, answering after its latency; it logs each SendEmail's arrival as the
kernel saw it, and stops by itself when the process that started it dies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.transports.ses_http import SendEmailClient
from tests.support.ses_sink import SesSink

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sink():
    started = SesSink(rate=1234, latency=0.05).start()
    try:
        yield started
    finally:
        if started._process.poll() is None:
            started.stop()


def clients(url: str):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1"
    )
    return session, session.client("sesv2", endpoint_url=url)


def test_it_answers_getaccount_and_sendemail_as_ses_does(sink):
    session, client = clients(sink.url)
    assert client.get_account()["SendQuota"]["MaxSendRate"] == 1234
    lean = SendEmailClient.from_client(client, session, pool_size=2)
    assert lean is not None
    moments, ids = [], []
    for i in range(3):
        before = time.monotonic()
        ids.append(lean.send_email("n@example.com", f"r{i}@example.com", b"raw"))
        moments.append((before, time.monotonic()))
    lean.close()
    sink.stop()

    assert len(set(ids)) == 3 and all(i.startswith("0100") for i in ids)
    assert sink.recipients() == [f"r{i}@example.com" for i in range(3)]
    for (before, after), arrived in zip(moments, sink.arrivals, strict=True):
        assert before <= arrived + 0.001 and arrived + 0.05 <= after + 0.001, (
            "logged on arrival, answered after the latency"
        )
    assert sink.max_in_window(1.0) == 3


def test_it_stops_when_the_process_that_started_it_dies():
    script = (
        "import sys; sys.path.insert(0, '.'); from tests.support.ses_sink import SesSink; "
        "print(SesSink().start().pid, flush=True); import os; os._exit(0)"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the sink outlived its parent"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"
