"""The web pages defend themselves: headers on every response, no Host echo,
oversized headers and deeply nested JSON refused with a 4xx. Against a real
uvicorn on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from subscribers.errors import NotFound
from tests.support.web import Live, live_service


@pytest.fixture
def live(tmp_path: Path):
    with live_service(tmp_path) as service:
        (service.public / "issues" / "calf").mkdir(parents=True)
        (service.public / "issues" / "calf" / "index.html").write_text("<h1>Calf</h1>")
        (service.public / "index.html").write_text("<h1>Archive</h1>")
        yield service


@pytest.fixture
def client(live: Live):
    with httpx.Client(base_url=live.url) as http:
        yield http


def token_paths(live: Live) -> list[str]:
    subscriber = live.store.add("reader@example.com")
    return [
        f"/confirm/{live.signer.confirm(subscriber.id)}",
        f"/unsubscribe/{live.signer.unsubscribe(subscriber.id)}",
    ]


def directives(policy: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in policy.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


def test_every_response_carries_the_security_headers(live, client):
    paths = ["/", "/subscribe", "/issues/calf/", "/missing", "/confirm/forged", *token_paths(live)]
    for path in paths:
        response = client.get(path)
        headers = response.headers
        policy = directives(headers.get("content-security-policy", ""))
        assert policy.get("script-src", policy.get("default-src")) == "'none'", path
        assert policy["frame-ancestors"] == "'none'", path
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("x-frame-options") == "DENY", path
        # Plain http on loopback: no HSTS, which only means something over https.
        assert "strict-transport-security" not in headers, path


def test_token_pages_send_no_referrer(live, client):
    for path in token_paths(live):
        response = client.get(path)
        assert response.headers["referrer-policy"] == "no-referrer", path
    site = client.get("/issues/calf/").headers["referrer-policy"]
    assert site == "strict-origin-when-cross-origin"


def test_hsts_when_served_over_https(live, client):
    """Behind a TLS-terminating proxy on the same host, uvicorn takes the
    scheme from X-Forwarded-Proto (loopback is trusted by default)."""
    response = client.get("/subscribe", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_a_directory_redirect_does_not_echo_the_host(live, client):
    response = client.get("/issues/calf", headers={"Host": "evil.example"})
    assert response.status_code in (301, 302, 307, 308)
    location = response.headers["location"]
    assert "evil.example" not in location
    assert location == "/issues/calf/"


def raw_request(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_request_headers_over_16_kb_are_refused(live):
    big = "x" * 17_000
    answer = raw_request(
        live.url,
        f"GET /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {big}\r\nConnection: close\r\n\r\n".encode(),
    )
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    small = raw_request(
        live.url, b"GET /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert small.startswith(b"HTTP/1.1 200")


def nested(depth: int) -> str:
    return '{"email": "reader@example.com", "x": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [10, 5000])
def test_deeply_nested_json_is_a_4xx_not_a_500(live, client, depth):
    response = client.post(
        "/subscribe", content=nested(depth), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "nested" in response.json()["error"]
    with pytest.raises(NotFound):
        live.store.find("reader@example.com")


def test_a_plain_json_signup_still_works(live, client):
    response = client.post(
        "/subscribe",
        content=json.dumps({"email": "reader@example.com", "name": "Sam"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (200, 202), response.text


@pytest.mark.parametrize("depth", [10, 5000])
def test_deeply_nested_json_to_the_ses_web_hook_is_a_4xx(live, client, depth):
    body = '{"Type": "Notification", "x": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/ses/events", content=body, headers={"Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500, response.text
