"""Amazon SES through the v2 API: SendEmail with raw content.

The boto3 client is made the ordinary way, so the region, credentials and
endpoint come from boto3's own chain: environment, shared config and
profiles, instance roles, ``AWS_ENDPOINT_URL``. botocore's own retries are
off: the send loop retries, through its pacer, so that no retry ever
exceeds the sending rate.

SendEmail, the call made once per recipient, goes through
:class:`~pipeline.transports.ses_http.SendEmailClient` on the endpoint,
region and credentials that client resolved: the same request, signed as
botocore's SigV4 signs it and answered in botocore's exceptions, at under a
tenth of botocore's CPU per call (the ceiling of a sender under the GIL). GetAccount
and GetSendQuota, called once per run, stay with boto3, as does SendEmail
where a proxy applies.

Errors map onto the transport's tree (see :mod:`pipeline.transports.base`),
worded by :func:`subscribers.aws.aws_problem` (``SES Throttling: Maximum
sending rate exceeded. (SendEmail)``):

    429, TooManyRequests, Throttling, "Maximum sending rate exceeded"  Throttled
    "Daily message quota exceeded", LimitExceeded                      QuotaExhausted
    MessageRejected, MailFromDomainNotVerified, a bad address          Rejected
    AccountSuspended, SendingPaused, no credentials, access denied     SendingStopped
    network errors, timeouts, 5xx                                      TemporaryFailure
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pipeline.transports.base import (
    OutgoingMessage,
    Quota,
    QuotaExhausted,
    Rejected,
    SendingStopped,
    TemporaryFailure,
    Throttled,
    Transport,
    TransportError,
)
from pipeline.transports.ses_http import SendEmailClient
from subscribers.aws import aws_problem, error_response
from subscribers.errors import first_line

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

SERVICE_SUFFIX = "-service"
"""What the name of the configuration set of confirm and welcome mail adds
to the newsletter's (made by ``publish setup ses``, :mod:`pipeline.golive.names`)."""
_NO_SUCH_SET = {"NotFoundException", "ConfigurationSetDoesNotExist",
                "ConfigurationSetDoesNotExistException"}


def configuration_set_for(settings: Settings, *, service: bool = False) -> str:
    """The configuration set SES sends a message with: an issue's is
    ``delivery.ses_configuration_set``; confirm and welcome mail
    (``service``) goes with its own set while ``tracking.enabled`` is on,
    whose destination publishes no opens or clicks, so SES never tracks
    it. Empty: no configuration set."""
    configured = settings.ses_configuration_set
    if service and settings.tracking and configured:
        return configured + SERVICE_SUFFIX
    return configured

_THROTTLED = {
    "TooManyRequestsException",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "SlowDown",
}
_STOPPED = {
    "AccountSuspendedException",
    "SendingPausedException",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "NotFoundException",
    "ConfigurationSetDoesNotExist",
    "ConfigurationSetDoesNotExistException",
}
_REJECTED = {
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "MailFromDomainNotVerified",
    "BadRequestException",
    "InvalidParameterValue",
    "ValidationError",
}


def classify(code: str, message: str, http_status: int | None) -> type[TransportError]:
    """The transport error for an SES error code, message and HTTP status."""
    text = message.lower()
    if "daily message quota" in text or code == "LimitExceededException":
        return QuotaExhausted
    if code in _THROTTLED or http_status == 429 or "maximum sending rate" in text:
        return Throttled
    if code in _STOPPED or "account is suspended" in text or "sending paused" in text:
        return SendingStopped
    if code in _REJECTED:
        return Rejected
    if http_status is not None and http_status >= 500:
        return TemporaryFailure
    if code.endswith(("InternalFailure", "ServiceUnavailable", "InternalError")):
        return TemporaryFailure
    if http_status is not None and 400 <= http_status < 500:
        return Rejected
    return TemporaryFailure


class SesTransport(Transport):
    """Sends through Amazon SES (v2 SendEmail, raw content)."""

    name = "ses"

    def __init__(
        self,
        client: Any,
        *,
        configuration_set: str = "",
        unmade_fallback: str = "",
        fallback_client: Any = None,
        send_email: SendEmailClient | None = None,
    ) -> None:
        self._client = client
        self._configuration_set = configuration_set
        self._unmade_fallback = unmade_fallback
        """The set to send with instead once SES says ``configuration_set``
        does not exist: confirm mail tracked rather than not sent at all."""
        self._fallback = fallback_client
        self._send_email = send_email
        """The lean SendEmail; None: the boto3 client's ``send_email``."""

    @property
    def account(self) -> str:
        region = getattr(getattr(self._client, "meta", None), "region_name", None)
        return f"ses:{region}" if region else "ses"

    @classmethod
    def from_settings(cls, settings: Settings, *, service: bool = False) -> SesTransport:
        """Sending with :func:`configuration_set_for` the settings; for
        ``service`` mail, with the newsletter's set where SES has no service
        set yet (a newsletter set up before there was one)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(64, settings.workers * 2),
            connect_timeout=10,
            read_timeout=30,
            user_agent_extra="painfree-publish",
        )
        session = boto3.session.Session()
        try:
            client = session.client("sesv2", config=config)
            legacy = session.client("ses", config=config)
            lean = SendEmailClient.from_client(
                client, session, pool_size=config.max_pool_connections
            )
        except Exception as exc:  # botocore raises NoRegionError and friends
            from pipeline.errors import ConfigError

            problem = aws_problem(exc) or first_line(exc)
            raise ConfigError(f"delivery.transport = ses: {problem}") from None
        chosen = configuration_set_for(settings, service=service)
        unmade = settings.ses_configuration_set if chosen != settings.ses_configuration_set else ""
        return cls(client, configuration_set=chosen, unmade_fallback=unmade,
                   fallback_client=legacy, send_email=lean)

    def send(self, message: OutgoingMessage) -> str:
        chosen = self._configuration_set
        try:
            return self._send(message, chosen)
        except Exception as exc:
            if not (self._unmade_fallback and _no_such_set(exc)):
                raise _translate(exc) from None
        if self._configuration_set == chosen:
            log.warning(
                "SES has no configuration set %s: sending with %s instead, which tracks "
                "opens and clicks; run publish setup ses, then restart", chosen,
                self._unmade_fallback,
            )
            self._configuration_set = self._unmade_fallback
        try:
            return self._send(message, self._configuration_set)
        except Exception as exc:
            raise _translate(exc) from None

    def _send(self, message: OutgoingMessage, configuration_set: str) -> str:
        """SendEmail once; botocore's exception as it is."""
        if self._send_email is not None:
            return self._send_email.send_email(
                message.sender, message.recipient, message.raw, message.tags, configuration_set
            )
        request: dict[str, Any] = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [message.recipient]},
            "Content": {"Raw": {"Data": message.raw}},
        }
        if message.tags:
            request["EmailTags"] = [{"Name": k, "Value": v} for k, v in message.tags]
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        response = self._client.send_email(**request)
        return str(response["MessageId"])

    def quota(self) -> Quota:
        """MaxSendRate, Max24HourSend and SentLast24Hours, from GetAccount
        (v2) or, where that is unavailable, GetSendQuota (v1)."""
        try:
            account = self._client.get_account()
        except Exception as exc:
            error = _translate(exc)
            if self._fallback is None:
                raise error from None
            log.debug("GetAccount failed (%s); asking GetSendQuota", error)
            try:
                legacy = self._fallback.get_send_quota()
            except Exception:
                raise error from None
            return Quota(
                max_rate=float(legacy["MaxSendRate"]),
                max_24h=float(legacy["Max24HourSend"]),
                sent_24h=float(legacy["SentLast24Hours"]),
            )
        if account.get("SendingEnabled") is False:
            raise SendingStopped("SES: sending is disabled for this account (SendingEnabled false)")
        limits = account.get("SendQuota", {})
        extra = {}
        if "EnforcementStatus" in account:
            extra["enforcement"] = str(account["EnforcementStatus"])
        if "ProductionAccessEnabled" in account:
            extra["production"] = str(account["ProductionAccessEnabled"]).lower()
        return Quota(
            max_rate=float(limits.get("MaxSendRate", 0)) or None,
            max_24h=float(limits["Max24HourSend"]) if "Max24HourSend" in limits else None,
            sent_24h=float(limits.get("SentLast24Hours", 0)),
            extra=extra,
        )

    def close(self) -> None:
        if self._send_email is not None:
            self._send_email.close()
        for client in (self._client, self._fallback):
            close = getattr(client, "close", None)
            if close is not None:
                close()


def _no_such_set(exc: Exception) -> bool:
    """Whether SES refused a message because its configuration set does not
    exist: SESv2's NotFoundException (a raw SendEmail names nothing else that
    could be missing), or SES v1's own code."""
    answer = error_response(exc)
    return answer is not None and answer.code in _NO_SUCH_SET


def _translate(exc: Exception) -> TransportError:
    """A botocore exception as one of the transport errors."""
    from botocore import exceptions as bex

    problem = aws_problem(exc)
    answer = error_response(exc)
    if answer is not None:
        kind = classify(answer.code, answer.message or answer.code, answer.status)
        return kind(f"SES {problem}" if answer.code else f"SES: {problem}")
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError | bex.NoRegionError):
        return SendingStopped(f"SES: {problem}")
    if isinstance(exc, bex.ParamValidationError):
        return Rejected(f"SES: {problem}")
    if problem is not None:
        return TemporaryFailure(f"SES: {problem}")
    if isinstance(exc, OSError):
        return TemporaryFailure(f"SES: {first_line(exc)}")
    return TemporaryFailure(f"SES: {type(exc).__name__}: {first_line(exc)}")
