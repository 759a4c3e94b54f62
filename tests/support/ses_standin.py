"""The SES calls moto's server lacks, and the faults it cannot make, in front
of moto over HTTP.

boto3 is pointed at the stand-in (``AWS_ENDPOINT_URL``) as it would be at
AWS. Every call is named by its operation, the way IAM and botocore name
it, and forwarded to moto unchanged, except:

    standin.account                 what SESv2 GetAccount answers (moto has no
                                    GetAccount): sandbox, 200 a day, 1 a second
    UpdateConfigurationSetEventDestination
                                    (SES v1; moto has none) replaces the
                                    destination in moto's SES backend
    standin.fail("CreateConfigurationSet", "AccessDenied", "...", status=403)
                                    the next call (``times`` calls) of that
                                    operation answers this error, in the
                                    protocol's own shape (XML for the query
                                    APIs, JSON for SESv2 and SQS)
    held = standin.hold("Subscribe")
                                    calls of that operation wait until
                                    ``held.release()`` and are then forwarded;
                                    ``held.arrived`` is set by the first
    standin.after("SendEmail", callback)
                                    ``callback(call)`` once moto has answered,
                                    before the answer goes back:
                                    SES's own event publishing, which moto
                                    lacks, is written by the tests this way
    standin.calls                   every call, in order: ``(service, operation)``
                                    and its parameters

Operations are named from botocore's own service models: SESv2's REST paths
by their method and URI template, the query APIs (SES, SNS) by ``Action``,
the JSON ones (SQS) by ``X-Amz-Target``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import pytest

from tests.support.faulty_proxy import FaultyProxy, Hold

MUTATING = re.compile(r"^(Create|Put|Set|Update|Delete|Subscribe|Unsubscribe|Verify|Add|Send)")
"""Operations that change an account (what a second setup run must not call)."""


@dataclass
class Call:
    service: str
    operation: str
    params: dict
    status: int = 0
    response: object = None
    """The parsed answer: JSON as a dict, anything else as bytes."""

    @property
    def mutating(self) -> bool:
        return bool(MUTATING.match(self.operation))


@dataclass
class _Failure:
    code: str
    message: str
    status: int
    times: int


def sandbox_account() -> dict:
    return {
        "SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0},
        "SendingEnabled": True,
        "ProductionAccessEnabled": False,
        "EnforcementStatus": "HEALTHY",
        "DedicatedIpAutoWarmupEnabled": False,
    }


@cache
def _sesv2_routes() -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """(method, path pattern, operation) for every SESv2 operation, longest
    literal prefix first so that ``/identities/{id}/mail-from`` wins over
    ``/identities/{id}``."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sesv2")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        template = http["requestUri"].split("?", 1)[0]
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        routes.append((http["method"], re.compile(f"^{pattern}$"), name, template))
    routes.sort(key=lambda route: -len(route[3].split("{", 1)[0]))
    return tuple((method, pattern, name) for method, pattern, name, _ in routes)


def _sesv2_operation(method: str, path: str) -> str:
    for route_method, pattern, name in _sesv2_routes():
        if route_method == method and pattern.match(path):
            return name
    return ""


def _signing_scope(authorization: str) -> tuple[str, str]:
    """(region, service) of a Signature V4 ``Authorization`` header."""
    found = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/", authorization)
    return (found.group(1), found.group(2)) if found else ("", "")


def _signing_service(authorization: str) -> str:
    return _signing_scope(authorization)[1]


@dataclass
class SesStandin(FaultyProxy):
    account: dict = field(default_factory=sandbox_account)
    calls_seen: list[Call] = field(default_factory=list)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    waits: dict[str, Hold] = field(default_factory=dict)
    callbacks: dict[str, list[Callable[[Call], None]]] = field(default_factory=dict)

    # -- configuring -------------------------------------------------------

    def fail(
        self, operation: str, code: str, message: str = "", *, status: int = 400, times: int = 1
    ) -> None:
        with self._lock:
            self.failures.setdefault(operation, []).append(
                _Failure(code, message or code, status, times)
            )

    def hold(self, operation: str) -> Hold:  # type: ignore[override]
        held = Hold(operation)
        with self._lock:
            self.waits[operation] = held
        return held

    def after(self, operation: str, callback: Callable[[Call], None]) -> None:
        with self._lock:
            self.callbacks.setdefault(operation, []).append(callback)

    @property
    def calls(self) -> list[Call]:  # type: ignore[override]
        with self._lock:
            return list(self.calls_seen)

    def mutating_calls(self) -> list[str]:
        return [call.operation for call in self.calls if call.mutating]

    def stop(self) -> None:
        for held in self.waits.values():
            held.release()
        super().stop()

    # -- serving -----------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        call = self._name(request, body)
        with self._lock:
            self.calls_seen.append(call)
            failure = self._take_failure(call.operation)
            held = self.waits.get(call.operation)
        if held is not None:
            with self._lock:
                held.count += 1
            held.arrived.set()
            held.released.wait(120)
        if failure is not None:
            call.status = failure.status
            self._error(request, call, failure)
            return
        if call.service == "sesv2" and call.operation == "GetAccount":
            call.status, call.response = 200, self.account
            self._json(request, 200, self.account)
            return
        if call.operation == "UpdateConfigurationSetEventDestination":
            region = _signing_scope(request.headers.get("Authorization", ""))[0]
            body = _as_create(call, body, region or "us-east-1")
        status, headers, answer = self._upstream(request, body)
        if call.operation == "UpdateConfigurationSetEventDestination":
            answer = answer.replace(b"CreateConfigurationSetEventDestination",
                                    b"UpdateConfigurationSetEventDestination")
        call.status = status
        try:
            call.response = json.loads(answer) if answer.lstrip().startswith(b"{") else answer
        except ValueError:
            call.response = answer
        if call.operation == "SendEmail" and status == 200 and isinstance(call.response, dict):
            recipients = call.params.get("Destination", {}).get("ToAddresses", [""])
            self._record(time.monotonic(), recipients[0], str(call.response.get("MessageId")))
        for callback in self.callbacks.get(call.operation, ()):
            callback(call)
        self._reply(request, status, headers, answer)

    def _take_failure(self, operation: str) -> _Failure | None:
        pending = self.failures.get(operation)
        if not pending:
            return None
        failure = pending[0]
        failure.times -= 1
        if failure.times <= 0:
            pending.pop(0)
        return failure

    def _name(self, request: BaseHTTPRequestHandler, body: bytes) -> Call:
        path = urlsplit(request.path).path
        target = request.headers.get("X-Amz-Target", "")
        if target:
            service, _, operation = target.partition(".")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = {}
            return Call("sqs" if "SQS" in service else service.lower(), operation, params)
        if path.startswith("/v2/email"):
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = {}
            return Call("sesv2", _sesv2_operation(request.command, path), params)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        service = _signing_service(request.headers.get("Authorization", ""))
        return Call(service, form.get("Action", ""), form)

    def _error(self, request: BaseHTTPRequestHandler, call: Call, failure: _Failure) -> None:
        if call.service in ("sesv2", "sqs"):
            self._json(
                request,
                failure.status,
                {"__type": failure.code, "message": failure.message},
                error_type=failure.code,
            )
            return
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{escape(failure.code)}</Code><Message>{escape(failure.message)}</Message>"
            f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        request.send_response(failure.status)
        request.send_header("Content-Type", "text/xml")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _as_create(call: Call, body: bytes, region: str) -> bytes:
    """An update of an event destination as moto can do it: its name
    forgotten by moto's SES backend (moto keeps one destination a
    configuration set), then created anew over the old one; the answer is
    renamed back to the update's."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][region]
    backend.event_destinations.pop(call.params.get("EventDestination.Name", ""), None)
    create = body.replace(b"Action=UpdateConfigurationSetEventDestination",
                          b"Action=CreateConfigurationSetEventDestination")
    assert len(create) == len(body)  # the request's Content-Length still holds
    return create


@pytest.fixture
def ses_standin(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    """A clean moto behind the stand-in, this process's boto3 (and the
    children it starts, through ``os.environ``) pointed at the stand-in."""
    standin = SesStandin(upstream=aws.url)
    standin.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", standin.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield standin
    finally:
        standin.stop()


__all__ = ["Call", "SesStandin", "sandbox_account", "ses_standin"]
