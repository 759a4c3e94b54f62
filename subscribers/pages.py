"""The web service's own pages: which one answers what, filled with what.

Every page is a template (:mod:`subscribers.page_loader`): the editor's
``templates/web/pages/NAME.html.j2`` when the newsletter has one, else the
built-in one, in the site's layout. :class:`Pages` picks the page for what
happened and fills it with the facts (a masked address, the button's form,
why a signup was refused); the templates word them. With each page go the
headers that belong with it: a content policy that allows the pages' own
``<style>`` elements by their hashes and nothing else, no referrer, no
caching, no indexing::

    handler ──> Pages.subscribed() ──> pages/confirmed.html.j2 ──> HTMLResponse + headers
            └─> Pages.error(422, as_json=True) ──────────────> JSONResponse + headers

The sentences of the JSON answers (and of the errors, which the error page
may show) are here. An editor's page that fails while it answers (a value
`publish check` did not try) is answered by the built-in page instead, and
logged. The site builder puts the same signup form on the archive pages
(:func:`~subscribers.page_loader.signup_form_html`, which needs none of
this module), so Starlette is imported only where a page is
answered.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from subscribers.addresses import MAX_EMAIL
from subscribers.middleware import COMMON_HEADERS
from subscribers.models import MAX_LEAVING_COMMENT, LeavingReason, mask_email
from subscribers.page_loader import PageTemplates, partials, signup_form_html
from subscribers.page_samples import samples
from subscribers.provenance import origin_of
from subscribers.text import MAX_NAME

if TYPE_CHECKING:
    from starlette.responses import Response

    from subscribers.errors import SubscriberError, TokenError
    from subscribers.webconfig import WebConfig

log = logging.getLogger(__name__)


SIGNUP_ACTION = "/subscribe"
THANKS_PATH = "/subscribe/thanks"
"""Where a signup from another site's page is sent once taken."""
LEAVING = {
    LeavingReason.TOO_OFTEN: "Too often",
    LeavingReason.NOT_RELEVANT: "Not relevant to me",
    LeavingReason.NEVER_SIGNED_UP: "I never signed up",
    LeavingReason.OTHER: "Other",
}
"""The choices the page after the unsubscribe button offers, as worded there."""
PROBLEMS = {
    400: "bad-link",
    404: "not-found",
    405: "not-allowed",
    410: "expired-link",
    413: "too-large",
    415: "unsupported",
    422: "invalid",
    429: "too-many",
    431: "headers-too-large",
    500: "failed",
}
"""The error page's ``problem`` for each status it is answered with."""
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
"""The JSON answer to a signup taken; the check-inbox page words it its own way."""
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)


def built_in_layout(config: WebConfig) -> dict[str, Any]:
    """What the built-in layout needs, from ``config`` alone: for a service
    run without the site's values (``WebConfig.layout``)."""
    newsletter = config.newsletter
    return {
        "newsletter": {
            "name": config.name,
            "description": "",
            "language": "en",
            "postal_address": config.postal_address,
            "site_url": config.site_url,
        },
        "urls": {"archive": newsletter.url(""), "subscribe": newsletter.url("subscribe")},
    }


class Pages:
    """Renders the service's own pages with their headers.

    The first methods are the building blocks (a page, the forms, an error);
    the rest are the pages the handlers answer with, by what happened."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.newsletter = config.newsletter
        self.templates = PageTemplates(config.template_dirs, config.template_cache)
        self.layout = dict(config.layout) or built_in_layout(config)

    @cached_property
    def headers(self) -> dict[str, str]:
        """The headers every answer carries. Made on first use, since the
        content policy needs every page filled once (publish check fills
        them itself and never answers)."""
        styles = " ".join(f"'sha256-{digest}'" for digest in self._style_hashes()) or "'none'"
        images = " ".join(filter(None, ("'self' data:", origin_of(self.config.site_url))))
        return {
            **COMMON_HEADERS,
            "Content-Security-Policy": (
                f"default-src 'none'; style-src {styles}; img-src {images}; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
        }

    def _style_hashes(self) -> list[str]:
        """The hashes of the ``<style>`` elements of every page, the editor's
        and the built-in one, as filled with sample values: the content
        policy allows these and no other style."""
        found: dict[str, None] = {}
        for sample in samples(self):
            for fill in (self.templates.fill, self.templates.fill_built_in):
                try:
                    html = fill(sample.page, self.values(sample.page, **sample.values))
                except Exception:  # noqa: S112 - publish check reports it; answering falls back
                    continue
                for css in _STYLE.findall(html):
                    digest = hashlib.sha256(css.encode("utf-8")).digest()
                    found[base64.b64encode(digest).decode()] = None
        return list(found)

    # -- building blocks -----------------------------------------------------

    def values(self, page: str, /, **values: Any) -> dict[str, Any]:
        """What template ``page`` is filled with: the layout's values, the
        page's name, whether opens and clicks are counted, and ``values``."""
        return {**self.layout, "page": page, "tracking": self.config.tracking, **values}

    def html(self, page: str, /, **values: Any) -> str:
        """``page`` filled with ``values``; the built-in page should the
        editor's fail (logged at its file and line, without the values)."""
        filled = self.values(page, **values)
        try:
            return self.templates.fill(page, filled)
        except Exception as exc:  # an editor's template may raise anything
            path, line, message = self.templates.located(exc, page, detail=False)
            log.error("%s:%s: %s; the built-in %s page answered", path, line or 1, message, page)
            return self.templates.fill_built_in(page, filled)

    def render(self, page: str, status: int, /, **values: Any) -> Response:
        from starlette.responses import HTMLResponse

        return HTMLResponse(self.html(page, **values), status_code=status, headers=self.headers)

    def form(self, *, email: str = "", name: str = "", error: str = "", source: str = "") -> Markup:
        """The signup form, posting to this service (escaped markup)."""
        html = signup_form_html(
            SIGNUP_ACTION, self.config.consent, email=email, name=name, error=error, source=source
        )
        return Markup(html)  # noqa: S704 - escaped by its template

    def reason_form(
        self, token: str, *, chosen: str = "", comment: str = "", error: str = ""
    ) -> Markup:
        """The optional form that asks why a reader left (escaped markup)."""
        html = (
            partials()
            .get_template("reason.html")
            .render(
                action=f"/unsubscribe/{token}/reason",
                choices=[(str(code), label) for code, label in LEAVING.items()],
                chosen=chosen,
                comment=comment[:MAX_LEAVING_COMMENT],
                error=error,
                max_comment=MAX_LEAVING_COMMENT,
            )
        )
        return Markup(html)  # noqa: S704 - escaped by its template

    def error(
        self,
        status: int,
        message: str = "",
        *,
        as_json: bool = False,
        problem: str = "",
        form: Markup | str = "",
    ) -> Response:
        """An error as the error page, or as ``{"error": ...}`` for JSON
        clients; ``message`` or the status's own wording."""
        from starlette.responses import JSONResponse

        text = message or _MESSAGES.get(status, "The request could not be served.")
        if as_json:
            return JSONResponse({"error": text}, status_code=status, headers=self.headers)
        problem = problem or PROBLEMS.get(status, "failed" if status >= 500 else "refused")
        return self.render(
            "error", status, status=status, problem=problem, message=text, signup_form=form
        )

    # -- signing up ----------------------------------------------------------

    def signup(self, source: str = "") -> Response:
        """``GET /subscribe``: the form, and what it promises; ``source`` (from
        ``?ref=``) goes with the signup."""
        return self.render("subscribe", 200, signup_form=self.form(source=source), error="")

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
        return self.render("check-inbox", 200, back_url="")

    def signup_thanks(self) -> Response:
        """``GET /subscribe/thanks``, where a signup posted from another
        site's page (the blog's) is sent: the same words, and the way back."""
        return self.render("check-inbox", 200, back_url=self.config.blog_url)

    def signup_problem(
        self, error: SubscriberError, email: str, name: str, source: str = "", *, as_json: bool
    ) -> Response:
        """A signup the rules refused: the form again, filled in, with the reason."""
        problem = _for_readers(error)
        if as_json:
            return self.error(422, problem, as_json=True)
        email, name = email[:MAX_EMAIL], name[:MAX_NAME]
        form = self.form(email=email, name=name, error=problem, source=source)
        return self.render("subscribe", 422, signup_form=form, error=problem)

    def too_many_signups(self, retry_after: float, *, as_json: bool) -> Response:
        """429, with the seconds until the client's network may sign up again."""
        response = self.error(429, as_json=as_json)
        response.headers["Retry-After"] = str(max(1, int(retry_after)))
        return response

    # -- confirming ----------------------------------------------------------

    def confirm(self, token: str, email: str) -> Response:
        """The page a confirmation link opens: one button, which confirms."""
        return self.render(
            "confirm", 200, masked_email=mask_email(email), action=f"/confirm/{token}", token=token
        )

    def subscribed(self) -> Response:
        return self.render("confirmed", 200)

    def confirm_problem(self, error: TokenError) -> Response:
        """A confirmation link that confirms nothing: out of date or expired
        (410, with the form to sign up again), or not one of ours (400)."""
        from subscribers.confirm import StaleLink
        from subscribers.tokens import ExpiredToken

        if isinstance(error, StaleLink):
            return self.error(410, _sentence(error), problem="stale-link", form=self.form())
        if isinstance(error, ExpiredToken):
            return self.error(410, _sentence(error), problem="expired-link", form=self.form())
        return self.bad_link(error)

    # -- unsubscribing -------------------------------------------------------

    def unsubscribe(self, token: str, email: str) -> Response:
        """The page an unsubscribe link opens: one button, which unsubscribes."""
        return self.render(
            "unsubscribe",
            200,
            masked_email=mask_email(email),
            action=f"/unsubscribe/{token}",
            token=token,
        )

    def unsubscribed(self, email: str, reason_token: str = "") -> Response:
        """Done, with the form (filled in) should they change their mind;
        with ``reason_token``, first the form that asks them why."""
        reason = self.reason_form(reason_token) if reason_token else ""
        return self.render(
            "unsubscribed", 200, reason_form=reason, signup_form=self.form(email=email)
        )

    def reason_problem(
        self, token: str, error: SubscriberError, chosen: str, comment: str
    ) -> Response:
        """A reason that cannot be kept as sent: the form again, with why."""
        form = self.reason_form(token, chosen=chosen, comment=comment, error=_for_readers(error))
        return self.render("reason", 422, kept=False, reason_form=form)

    def reason_kept(self) -> Response:
        return self.render("reason", 200, kept=True, reason_form="")

    def still_subscribed(self) -> Response:
        """409 for a reason sent for a reader who is not unsubscribed."""
        return self.error(
            409,
            "This address is not unsubscribed, so there is no leaving to give a reason "
            "for. Use the unsubscribe link in any issue to leave.",
            problem="still-subscribed",
        )

    def not_on_list(self) -> Response:
        return self.error(200, "This address gets no mail from us.", problem="not-on-list")

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
