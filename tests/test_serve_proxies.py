"""`publish serve` behind a proxy, as processes: whose X-Forwarded-For it
believes (web.trusted_proxies, handed to uvicorn), and the client every
signup is counted for (10 signups per 10 minutes per client network)."""

from __future__ import annotations

import httpx

from subscribers.store import Store
from tests.test_serve_processes import serving


def statuses(url: str, forwarded: list[str], prefix: str) -> list[int]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post(
                "/subscribe", data={"email": f"{prefix}{n}@example.com"},
                headers={"X-Forwarded-For": value},
            ).status_code
            for n, value in enumerate(forwarded)
        ]


def test_behind_a_proxy_on_the_same_host_the_limit_holds(newsletter):
    with serving(newsletter) as serve:
        # A proxy that appends the reader's address: only the right-most
        # entry counts, whatever a reader puts before it.
        chain = [f"192.0.2.{n}, 198.51.100.20" for n in range(12)]
        assert statuses(serve.url, chain, "a") == [200] * 10 + [429] * 2
        # Text that is no address does not make a new client each time.
        junk = [f"spoofed-{n}" for n in range(12)]
        assert statuses(serve.url, junk, "b") == [200] * 10 + [429] * 2
        # Another reader behind the same proxy still gets through.
        assert statuses(serve.url, ["192.0.2.1, 198.51.100.21"], "c") == [200]
    with Store.open("sqlite:///subscribers.db", newsletter) as store:
        assert store.find("a0@example.com").consent.ip == "198.51.100.20"
        assert store.find("b0@example.com").consent.ip is None
        assert store.find("c0@example.com").consent.ip == "198.51.100.21"


def test_forwarded_for_is_believed_only_from_the_trusted_proxies(newsletter):
    with serving(newsletter, {"NEWSLETTER_TRUSTED_PROXIES": "192.0.2.1"}) as serve:
        forged = [f"203.0.113.{n}" for n in range(12)]
        assert statuses(serve.url, forged, "r") == [200] * 10 + [429] * 2
    with Store.open("sqlite:///subscribers.db", newsletter) as store:
        assert store.find("r0@example.com").consent.ip == "127.0.0.1"
