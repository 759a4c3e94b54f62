"""Fuzzing the web service over HTTP: whatever arrives, never a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscribers.models import Status
from tests.support.web import Live, live_service

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_service(tmp_path_factory.mktemp("fuzz")) as service:
        service.store.add("known@example.com")
        yield service


@pytest.fixture(scope="module")
def api_schema(live: Live):
    return schemathesis.openapi.from_dict(live.app.openapi())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@FUZZ
def test_the_documented_endpoints_never_fail(case, live: Live):
    response = case.call(base_url=live.url, timeout=10)
    assert response.status_code < 500, (case.path, case.body, response.text[:200])


@given(
    path=st.sampled_from(["/confirm/", "/unsubscribe/", "/subscribe/", "/"]),
    tail=st.text(max_size=120),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
         "text/plain", ""]
    ),
    body=st.binary(max_size=600),
)
@FUZZ
def test_arbitrary_requests_never_fail(live: Live, path, tail, method, content_type, body):
    with httpx.Client(base_url=live.url, timeout=10) as client:
        response = client.request(
            method, path + quote(tail, safe="/;=.~"), content=body,
            headers={"content-type": content_type} if content_type else {},
        )
    assert response.status_code < 500, response.text[:200]


def test_fuzzing_left_the_known_subscriber_alone(live: Live):
    assert live.store.find("known@example.com").status == Status.ACTIVE
