"""The web service's own pages and their wording.

Every page is a Jinja template in ``templates/web``: ``base.html`` around
``message.html`` (a title, paragraphs, maybe a link back and a form),
``confirm.html`` and ``unsubscribe.html`` (one button each), with the signup
form itself in ``form.html`` and the one asking why a reader left in
``reason.html``. :class:`Pages` renders them with the
newsletter's name and one stylesheet inlined, and sends with each page the
headers that go with it: a content policy that allows that stylesheet by its
hash and nothing else, no referrer, no caching, no indexing::

    handler ──> Pages.subscribed() ──> message.html ──> HTMLResponse + headers
            └─> Pages.error(422, as_json=True) ──────> JSONResponse + headers

What a reader reads is worded here, and only here: the handlers say which
page, never what it says. The site builder puts the same signup form on the
archive pages (:func:`signup_form_html`), so Starlette is imported only
where a page is answered.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from subscribers.addresses import MAX_EMAIL
from subscribers.mail import TEMPLATES, templates
from subscribers.middleware import COMMON_HEADERS
from subscribers.models import MAX_LEAVING_COMMENT, LeavingReason, mask_email
from subscribers.text import MAX_NAME

if TYPE_CHECKING:
    from starlette.responses import Response

    from subscribers.errors import SubscriberError, TokenError
    from subscribers.webconfig import WebConfig


def signup_form_html(
    action_url: str,
    consent_text: str,
    *,
    email: str = "",
    name: str = "",
    error: str = "",
    source: str = "",
) -> str:
    """The signup form: email, optional first name, a honeypot and the consent
    wording, labelled for screen readers; with ``source``, the page it is on,
    in a hidden field. Everything in it is escaped."""
    return str(
        templates()
        .get_template("web/form.html")
        .render(
            action=action_url,
            consent_text=consent_text,
            email=email,
            name=name,
            error=error,
            source=source,
            max_email=MAX_EMAIL,
            max_name=MAX_NAME,
        )
    )


_TITLES = {
    400: "This link is not valid",
    404: "Page not found",
    405: "Not allowed here",
    410: "This link has expired",
    413: "Too much data",
    415: "Unsupported request",
    422: "Please check the form",
    429: "Too many requests",
    500: "Something went wrong",
}
_STALE_TITLE = "This link is out of date"
_UNSUBSCRIBED = "You are unsubscribed"
THANKS_PATH = "/subscribe/thanks"
"""Where a signup from another site's page is sent once taken."""
LEAVING = {
    LeavingReason.TOO_OFTEN: "Too often",
    LeavingReason.NOT_RELEVANT: "Not relevant to me",
    LeavingReason.NEVER_SIGNED_UP: "I never signed up",
    LeavingReason.OTHER: "Other",
}
"""The choices the page after the unsubscribe button offers, as worded there."""
_MESSAGES = {
    404: "There is nothing at this address.",
    405: "This page cannot be used that way.",
    413: "The request was larger than this service accepts.",
    415: "Send the form as a web form or as JSON.",
    422: "The request could not be understood.",
    429: "Too many signups came from your network. Please try again in a few minutes.",
    431: "The request's headers were larger than this service accepts.",
    500: "The service could not finish your request. Please try again in a little while.",
}
ACCEPTED = (
    "Thank you. If this address is not on the list yet, a message with a link "
    "to confirm is on its way: please check your inbox (and the spam folder) "
    "in a few minutes."
)


class Pages:
    """Renders the service's own pages with their headers.

    The first methods are the building blocks (a template, a message page,
    the form, an error); the rest are the pages the handlers answer with,
    by what happened."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.newsletter = config.newsletter
        self.css = (TEMPLATES / "web" / "page.css").read_text(encoding="utf-8")
        digest = base64.b64encode(hashlib.sha256(self.css.encode("utf-8")).digest()).decode()
        self.headers = {
            **COMMON_HEADERS,
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
        }

    # -- building blocks -----------------------------------------------------

    def render(self, template: str, status: int, title: str, **values: Any) -> Response:
        from starlette.responses import HTMLResponse

        html = (
            templates()
            .get_template(f"web/{template}")
            .render(
                newsletter=self.newsletter,
                css=Markup(self.css),  # noqa: S704 - our own stylesheet
                home_url=self.newsletter.url(""),
                title=title,
                **values,
            )
        )
        return HTMLResponse(html, status_code=status, headers=self.headers)

    def message(
        self,
        status: int,
        title: str,
        *paragraphs: str,
        form: str = "",
        alert: bool = False,
        back: tuple[str, str] | None = None,
    ) -> Response:
        """A title, ``paragraphs``, maybe a link ``back`` (its URL and words)
        and a ``form`` (markup whose text is escaped already)."""
        return self.render(
            "message.html",
            status,
            title,
            paragraphs=paragraphs,
            form=Markup(form),  # noqa: S704 - escaped by the templates that made it
            alert=alert,
            back={"url": back[0], "label": back[1]} if back else None,
        )

    def form(self, *, email: str = "", name: str = "", error: str = "", source: str = "") -> str:
        return signup_form_html(
            "/subscribe", self.config.consent, email=email, name=name, error=error, source=source
        )

    def error(self, status: int, message: str = "", *, as_json: bool = False) -> Response:
        """An error as a page, or as ``{"error": ...}`` for JSON clients;
        ``message`` or the status's own wording."""
        from starlette.responses import JSONResponse

        text = message or _MESSAGES.get(status, "The request could not be served.")
        if as_json:
            return JSONResponse({"error": text}, status_code=status, headers=self.headers)
        return self.message(status, _TITLES.get(status, "Error"), text, alert=True)

    # -- signing up ----------------------------------------------------------

    def signup(self, source: str = "") -> Response:
        """``GET /subscribe``: the form, and what it promises; ``source`` (from
        ``?ref=``) goes with the signup."""
        return self.message(
            200,
            f"Subscribe to {self.newsletter.name}",
            "One email twice a month, free. We send a confirmation link first, "
            "and every issue has a one-click unsubscribe link.",
            form=self.form(source=source),
        )

    def accepted(self, as_json: bool, *, elsewhere: bool = False) -> Response:
        """A signup taken, worded the same whether or not the address was
        known; a form posted from another site's page (``elsewhere``) is
        sent on to :meth:`signup_thanks` (303), so that reloading it posts
        nothing again."""
        from starlette.responses import JSONResponse, RedirectResponse

        if as_json:
            return JSONResponse({"status": "ok", "message": ACCEPTED}, headers=self.headers)
        if elsewhere:
            return RedirectResponse(THANKS_PATH, status_code=303, headers=self.headers)
        return self.message(200, "Almost done", ACCEPTED)

    def signup_thanks(self) -> Response:
        """``GET /subscribe/thanks``, where a signup posted from another
        site's page (the blog's) is sent: the same words, and the way back."""
        blog = self.config.blog_url
        return self.message(
            200, "Almost done", ACCEPTED, back=(blog, "Back to the blog") if blog else None
        )

    def signup_problem(
        self, error: SubscriberError, email: str, name: str, source: str = "", *, as_json: bool
    ) -> Response:
        """A signup the rules refused: the form again, filled in, with the reason."""
        problem = _for_readers(error)
        if as_json:
            return self.error(422, problem, as_json=True)
        return self.message(
            422,
            _TITLES[422],
            form=self.form(
                email=email[:MAX_EMAIL], name=name[:MAX_NAME], error=problem, source=source
            ),
        )

    def too_many_signups(self, retry_after: float, *, as_json: bool) -> Response:
        """429, with the seconds until the client's network may sign up again."""
        response = self.error(429, as_json=as_json)
        response.headers["Retry-After"] = str(max(1, int(retry_after)))
        return response

    # -- confirming ----------------------------------------------------------

    def confirm(self, token: str, email: str) -> Response:
        """The page a confirmation link opens: one button, which confirms."""
        return self.render(
            "confirm.html",
            200,
            "Confirm your subscription",
            masked_email=mask_email(email),
            action=f"/confirm/{token}",
        )

    def subscribed(self) -> Response:
        return self.message(
            200,
            "You are subscribed",
            f"Thank you for confirming. {self.newsletter.name} will arrive in your inbox "
            "with the next issue.",
        )

    def confirm_problem(self, error: TokenError) -> Response:
        """A confirmation link that confirms nothing: out of date or expired
        (410, with the form to sign up again), or not one of ours (400)."""
        from subscribers.confirm import StaleLink
        from subscribers.tokens import ExpiredToken

        if isinstance(error, StaleLink):
            return self.message(410, _STALE_TITLE, _sentence(error), form=self.form())
        if isinstance(error, ExpiredToken):
            return self.message(410, _TITLES[410], _sentence(error), form=self.form())
        return self.bad_link(error)

    # -- unsubscribing -------------------------------------------------------

    def unsubscribe(self, token: str, email: str) -> Response:
        """The page an unsubscribe link opens: one button, which unsubscribes."""
        return self.render(
            "unsubscribe.html",
            200,
            "Unsubscribe",
            masked_email=mask_email(email),
            action=f"/unsubscribe/{token}",
        )

    def unsubscribed(self, email: str, reason_token: str = "") -> Response:
        """Done, with the form (filled in) should they change their mind;
        with ``reason_token``, first the form that asks them why."""
        gone = f"You will get no more issues of {self.newsletter.name}."
        again = "Changed your mind? Subscribe again below; we will ask you to confirm."
        if not reason_token:
            return self.message(200, _UNSUBSCRIBED, f"{gone} {again}", form=self.form(email=email))
        forms = f"{self.reason_form(reason_token)}<p>{escape(again)}</p>\n{self.form(email=email)}"
        return self.message(200, _UNSUBSCRIBED, gone, form=forms)

    def reason_form(
        self, token: str, *, chosen: str = "", comment: str = "", error: str = ""
    ) -> str:
        """The optional form that asks why a reader left (escaped markup)."""
        return str(
            templates()
            .get_template("web/reason.html")
            .render(
                action=f"/unsubscribe/{token}/reason",
                choices=[(str(code), label) for code, label in LEAVING.items()],
                chosen=chosen,
                comment=comment[:MAX_LEAVING_COMMENT],
                error=error,
                max_comment=MAX_LEAVING_COMMENT,
            )
        )

    def reason_problem(
        self, token: str, error: SubscriberError, chosen: str, comment: str
    ) -> Response:
        """A reason that cannot be kept as sent: the form again, with why."""
        return self.message(
            422,
            _TITLES[422],
            form=self.reason_form(
                token, chosen=chosen, comment=comment, error=_for_readers(error)
            ),
        )

    def reason_kept(self) -> Response:
        return self.message(
            200,
            "Thank you",
            "Thank you for telling us. It helps us make a better newsletter for "
            "those who stay.",
        )

    def still_subscribed(self) -> Response:
        """409 for a reason sent for a reader who is not unsubscribed."""
        return self.message(
            409,
            "You are not unsubscribed",
            "This address is not unsubscribed, so there is no leaving to give a reason "
            "for. Use the unsubscribe link in any issue to leave.",
            alert=True,
        )

    def not_on_list(self) -> Response:
        return self.message(200, "You are not on the list", "This address gets no mail from us.")

    def bad_link(self, error: TokenError) -> Response:
        """400 for a link that was not made here."""
        return self.error(400, _sentence(error))


def _for_readers(error: SubscriberError) -> str:
    """``email: 'x' is not valid: reason`` as a reader should see it."""
    field, _, problem = str(error).partition(": ")
    problem = problem.split(" is not valid: ", 1)[-1]
    return f"Please check the {'email address' if field == 'email' else field}: {problem}"


def _sentence(error: Exception) -> str:
    """An error's one-line message as a sentence for the reader."""
    return str(error).capitalize() + "."
