"""AWS Signature Version 4 for one kind of request: a POST with a body, no
query string, to a fixed path, as SendEmail is.

    Signer(region, service).headers(credentials, host, path, body, headers)
      -> the request's headers with X-Amz-Date, X-Amz-Security-Token (for
         temporary credentials) and Authorization added

It computes what botocore's ``SigV4Auth.add_auth`` computes for such a
request, header for header (a test signs the same request with both and
compares), in about a third of its time: the canonical request is written
directly instead of through botocore's request objects, and the signing key
(four HMACs) is derived once a day per secret instead of once a call. Every
header given is signed except those botocore leaves unsigned (User-Agent and
the hop-by-hop ones); Content-Length is added by the caller afterwards, as
botocore adds it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Sequence
from typing import Any

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = frozenset(
    {
        "baggage", "connection", "expect", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "traceparent", "tracestate", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    }
)
"""Headers botocore never signs (its SIGNED_HEADERS_BLACKLIST)."""


class Signer:
    """Signs requests for one region and service."""

    def __init__(self, region: str, service: str) -> None:
        self.region = region
        self.service = service
        self._keys: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def headers(
        self,
        credentials: Any,
        path: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        now: dt.datetime | None = None,
    ) -> list[tuple[str, str]]:
        """``headers`` (Host among them) with the signature's headers added,
        for ``credentials`` (frozen: ``access_key``, ``secret_key``,
        ``token``) at ``now`` (default: the clock)."""
        moment = now or dt.datetime.now(dt.UTC)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = [*headers, ("X-Amz-Date", stamp)]
        if credentials.token:
            signed.append(("X-Amz-Security-Token", credentials.token))
        canonical = sorted(
            (name.lower(), " ".join(value.split()))
            for name, value in signed
            if name.lower() not in UNSIGNED
        )
        names = ";".join(name for name, _ in canonical)
        request = "\n".join(
            (
                "POST",
                path,
                "",
                "".join(f"{name}:{value}\n" for name, value in canonical),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            (ALGORITHM, stamp, scope, hashlib.sha256(request.encode("utf-8")).hexdigest())
        )
        key = self._key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        authorization = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return [*signed, ("Authorization", authorization)]

    def _key(self, secret: str, day: str) -> bytes:
        """The signing key of ``secret`` for ``day`` (kept while it is today)."""
        with self._lock:
            key = self._keys.get((secret, day))
        if key is None:
            key = ("AWS4" + secret).encode("utf-8")
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
            with self._lock:
                self._keys = {(secret, day): key}
        return key


__all__ = ["Signer"]
