"""The web service's plumbing, below the handlers: security headers, body
limits and the last-resort error page (:class:`Guard`), the client's address
as the rate limits see it (:func:`client_ip`) and the built site's files
(:func:`site_files`).

Starlette is imported only where it is used, like the rest of the service.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_HEADERS = 16 * 1024
"""Bytes of request headers (names and values) beyond which a request is refused."""
HSTS = "max-age=31536000"
"""Strict-Transport-Security, sent on responses to requests that came over https."""

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def client_ip(host: str | None) -> str | None:
    """The client's IP address, written the one way (an IPv4-mapped IPv6
    address as IPv4), from the host the server reports; None when there is
    none or it is no IP address.

    The server (uvicorn, given ``web.trusted_proxies`` as its
    ``forwarded_allow_ips``) reports the peer, or, when the peer is a
    trusted proxy, the right-most address in ``X-Forwarded-For`` that is not
    a trusted proxy itself. The header is never read here again. Text that
    is no address can only have come from a trusted proxy's header; the peer
    it replaced is not known any more, so such requests count as one client
    (:data:`subscribers.limits.UNKNOWN`) and record no address."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def site_files(folder: Path) -> ASGIApp:
    from starlette.staticfiles import StaticFiles

    class SiteFiles(StaticFiles):
        """The built site. It may not exist yet when the service starts, and
        dot-files (.git, .env) are never served."""

        async def check_config(self) -> None:
            return None

        def lookup_path(self, path: str) -> tuple[str, Any]:
            if any(part.startswith(".") for part in path.split("/")):
                return "", None
            return super().lookup_path(path)

        async def get_response(self, path: str, scope: Scope) -> Response:
            from starlette.responses import RedirectResponse

            response = await super().get_response(path, scope)
            if isinstance(response, RedirectResponse):
                # Starlette redirects "dir" to "dir/" by an absolute URL built
                # from the request's Host header; the path alone is enough,
                # and does not send a reader to a host a stranger named.
                target = "/" + scope["path"].lstrip("/") + "/"
                response.headers["location"] = target.replace("//", "/")
            return response

    return SiteFiles(directory=folder, html=True, check_dir=False)


class Guard:
    """Limits request bodies, adds security headers to every response, and
    answers an unexpected error with a plain page.

    A body larger than ``max_body`` (or the path's own limit in
    ``body_limits``) raises a 413 where the handler reads it, so the error
    page is rendered like any other. The site's own pages get a
    content policy that allows their inline styles but no scripts at all.
    Request headers over :data:`MAX_HEADERS` are answered 431, and a response
    to a request that came over https carries HSTS.
    An error is logged with its traceback and answered by ``on_error``; the
    connection stays usable (Starlette's own handler would drop it).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        site_url: str,
        on_error: Callable[[Any, int], Response],
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        from urllib.parse import urlsplit

        self.app = app
        self.max_body = max_body
        self.body_limits = dict(body_limits or {})
        self.on_error = on_error
        parts = urlsplit(site_url)
        site_origin = f"{parts.scheme}://{parts.netloc}"
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in {
                **COMMON_HEADERS,
                "Content-Security-Policy": (
                    "default-src 'self'; img-src 'self' data: https:; "
                    "style-src 'self' 'unsafe-inline'; script-src 'none'; object-src 'none'; "
                    f"base-uri 'self'; form-action 'self' {site_origin}; frame-ancestors 'none'"
                ),
            }.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        if sum(len(name) + len(value) for name, value in scope.get("headers", [])) > MAX_HEADERS:
            await self.on_error(Request(scope), 431)(scope, receive, send)
            return
        headers = self.headers
        if scope.get("scheme") == "https":
            headers = [*headers, (b"strict-transport-security", HSTS.encode())]
        limit = self.body_limits.get(scope.get("path", ""), self.max_body)
        response = _WithHeaders(send, headers)
        try:
            await self.app(scope, _limited(receive, _content_length(scope), limit), response.send)
        except Exception:
            log.exception("error serving %s %s", scope.get("method"), scope.get("path"))
            if response.started:
                raise  # too late for an error page; the server drops the connection
            await self.on_error(Request(scope), 500)(scope, receive, send)


def _limited(receive: Receive, declared: int | None, limit: int) -> Receive:
    """``receive``, raising a 413 ``HTTPException`` once the body is declared
    or found to be over ``limit`` bytes."""
    from starlette.exceptions import HTTPException

    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        if declared is not None and declared > limit:
            raise HTTPException(413)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413)
        return message

    return limited_receive


class _WithHeaders:
    """``send``, adding ``headers`` the response does not set itself; whether
    the response has started."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self.headers = headers
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            present = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [
                (name, value) for name, value in self.headers if name not in present
            ]
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
