"""Each page as the service answers with it, filled with sample values.

The content policy hashes the styles of these (:class:`~subscribers.pages.Pages`),
`publish check` looks in them for what each page must show
(:mod:`subscribers.page_check`), and `publish preview --page` writes the
first of each page. A page that shows different things in different cases
(the signup form at first, and again with why a signup was refused) has a
sample of each. The values are built as the handlers' pages build them,
by the same forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from subscribers.models import mask_email

if TYPE_CHECKING:
    from subscribers.pages import Pages

SAMPLE_TOKEN = "sample-token-0123456789"  # noqa: S105 - no secret
"""The token of the sample pages' links: no link's, it confirms nothing."""
SAMPLE_EMAIL = "reader@example.com"
SAMPLE_NAME = "Robin"
SAMPLE_SOURCE = "sample page"
SAMPLE_PROBLEM = "Please check the email address: it has no @"
SAMPLE_BLOG = "https://blog.example.com/"
SAMPLE_MESSAGE = "There is nothing at this address."
SAMPLE_EXPIRED = "This confirmation link has expired."


@dataclass(frozen=True)
class Sample:
    """A page, in one of its cases, and the values it is filled with."""

    page: str
    case: str
    """In a few words, for a finding: "with the form again", say."""
    values: dict[str, Any] = field(default_factory=dict)


def samples(pages: Pages) -> list[Sample]:
    """Every page in every case it is answered in; each page's first is
    how readers see it most."""
    token = SAMPLE_TOKEN
    masked = mask_email(SAMPLE_EMAIL)
    refused = pages.form(
        email=SAMPLE_EMAIL, name=SAMPLE_NAME, error=SAMPLE_PROBLEM, source=SAMPLE_SOURCE
    )
    return [
        Sample("subscribe", "at first", {"signup_form": pages.form(), "error": ""}),
        Sample(
            "subscribe",
            "with a signup refused",
            {"signup_form": refused, "error": SAMPLE_PROBLEM},
        ),
        Sample("check-inbox", "after a signup", {"back_url": ""}),
        Sample("check-inbox", "after a signup on the blog", {"back_url": SAMPLE_BLOG}),
        Sample(
            "confirm",
            "as a link opens it",
            {"masked_email": masked, "action": f"/confirm/{token}", "token": token},
        ),
        Sample("confirmed", "after the button"),
        Sample(
            "unsubscribe",
            "as a link opens it",
            {"masked_email": masked, "action": f"/unsubscribe/{token}", "token": token},
        ),
        Sample(
            "unsubscribed",
            "after the button",
            {
                "reason_form": pages.reason_form(token),
                "signup_form": pages.form(email=SAMPLE_EMAIL),
            },
        ),
        Sample(
            "unsubscribed",
            "opened again",
            {"reason_form": "", "signup_form": pages.form(email=SAMPLE_EMAIL)},
        ),
        Sample("reason", "with the answer kept", {"kept": True, "reason_form": ""}),
        Sample(
            "reason",
            "with the form again",
            {
                "kept": False,
                "reason_form": pages.reason_form(token, comment="Sample", error=SAMPLE_PROBLEM),
            },
        ),
        Sample(
            "error",
            "for a page not found",
            {"status": 404, "problem": "not-found", "message": SAMPLE_MESSAGE, "signup_form": ""},
        ),
        Sample(
            "error",
            "for a link too old",
            {
                "status": 410,
                "problem": "expired-link",
                "message": SAMPLE_EXPIRED,
                "signup_form": pages.form(),
            },
        ),
    ]
