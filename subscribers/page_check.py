"""What every reader-facing page must show, checked on its samples.

Each page is filled with sample values (:mod:`subscribers.page_samples`),
as the service would answer, and its HTML is read for what the service
needs of it: on every page the postal address; on the signup page the form
that posts to /subscribe with its email field, honeypot and consent
wording (and, refused, why, and the page the signup came from); on the
confirm and unsubscribe pages the button's form posting to the link's
token; after unsubscribing the question why and the form to subscribe
again. A page that does not render is one problem, at its file and line::

    Pages ─ samples ─ fill ─ read forms, fields, links ─▶ [PageProblem(path, line, message)]

A missing element is put on the editor's file closest to where it goes:
the page's own for a form, the layout's for the postal address (line 1: the
page as a whole); the built-in file when the editor wrote none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import escape

from subscribers.page_samples import (
    SAMPLE_BLOG,
    SAMPLE_PROBLEM,
    SAMPLE_SOURCE,
    SAMPLE_TOKEN,
    Sample,
    samples,
)

if TYPE_CHECKING:
    from subscribers.pages import Pages


@dataclass(frozen=True)
class PageProblem:
    """A page that would not serve its readers: which, where, and what is wrong."""

    page: str
    path: Path
    line: int
    message: str


@dataclass
class _Form:
    method: str
    action: str
    inputs: dict[str, str] = field(default_factory=dict)
    """Each named field's value (its ``value`` attribute, "" if none)."""
    submits: int = 0


class _Reader(HTMLParser):
    """The forms and the links' targets of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: set[str] = set()
        self._open: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = _Form(values.get("method", "get").lower(), values.get("action", ""))
            self.forms.append(self._open)
        elif tag == "a" and "href" in values:
            self.links.add(values["href"])
        elif self._open is not None and tag in ("input", "textarea", "select", "button"):
            kind = values.get("type", "submit" if tag == "button" else "text").lower()
            if kind == "submit" and tag in ("input", "button"):
                self._open.submits += 1
            if values.get("name"):
                self._open.inputs[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def check_pages(pages: Pages) -> list[PageProblem]:
    """Every problem of every page, by file and line: each once, at the first
    case of the page it shows in."""
    found: dict[tuple[Path, int, str], PageProblem] = {}
    for sample in samples(pages):
        try:
            html = pages.templates.fill(sample.page, pages.values(sample.page, **sample.values))
        except Exception as exc:  # an editor's template may raise anything
            path, at, message = pages.templates.located(exc, sample.page)
            problem = PageProblem(sample.page, path, at or 1, message)
            found.setdefault((path, problem.line, message), problem)
            continue
        for where, lack in _missing(sample, html, pages):
            path = _blamed(pages, sample.page, where)
            message = f"the {sample.page} page ({sample.case}) {lack}"
            found.setdefault((path, 1, lack), PageProblem(sample.page, path, 1, message))
    return list(found.values())


def _blamed(pages: Pages, page: str, where: str) -> Path:
    """The file to name for something missing from ``page``: the editor's
    page, or the editor's template nearest the outside for the layout's part."""
    chain = pages.templates.chain(page)
    own = [template for template in chain if not template.built_in]
    if not own:
        return chain[0].path
    return (own[-1] if where == "layout" else own[0]).path


def _missing(sample: Sample, html: str, pages: Pages) -> list[tuple[str, str]]:
    """What ``sample``'s page lacks: (``page`` or ``layout``, the message)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    out: list[tuple[str, str]] = []
    page = sample.page

    def lacks(message: str, where: str = "page") -> None:
        out.append((where, message))

    address = pages.config.postal_address.strip().splitlines()
    if address and str(escape(address[0].strip())) not in html:
        lacks("has no postal address ({{ newsletter.postal_address }})", "layout")
    if page == "subscribe":
        out.extend(_signup_missing(reader, html, pages, sample))
    elif page == "check-inbox" and sample.values["back_url"] and SAMPLE_BLOG not in reader.links:
        lacks("has no link back to the blog ({{ back_url }})")
    elif page in ("confirm", "unsubscribe") and not _button(reader, f"/{page}/{SAMPLE_TOKEN}"):
        lacks(f"has no {page} button: a form posting to {{{{ action }}}} (/{page}/TOKEN)")
    elif page == "unsubscribed":
        if sample.values.get("reason_form") and not _button(reader, _reason_action()):
            lacks("has no question why they left ({{ reason_form }})")
        if not _signup(reader):
            lacks("has no form to subscribe again ({{ signup_form }})")
    elif page == "reason" and sample.values.get("reason_form"):
        if not _button(reader, _reason_action()):
            lacks("has no form to answer again ({{ reason_form }})")
        if str(escape(SAMPLE_PROBLEM)) not in html:
            lacks("does not say what is wrong with the answer ({{ reason_form }} shows it)")
    return out


def _signup_missing(
    reader: _Reader, html: str, pages: Pages, sample: Sample
) -> list[tuple[str, str]]:
    form = _signup(reader)
    if form is None:
        return [("page", "has no signup form ({{ signup_form }}, posting to /subscribe)")]
    out = []
    if "email" not in form.inputs:
        out.append("has a signup form without the email field")
    if "website" not in form.inputs:
        out.append("has a signup form without the honeypot field (website)")
    if str(escape(pages.config.consent)) not in html:
        out.append("does not show the consent wording ({{ signup_form }} does)")
    if sample.values.get("error"):
        if str(escape(SAMPLE_PROBLEM)) not in html:
            out.append("does not say why the signup was refused ({{ error }})")
        if form.inputs.get("source") != SAMPLE_SOURCE:
            out.append("has a signup form that drops the page it came from (source)")
    return [("page", message) for message in out]


def _reason_action() -> str:
    return f"/unsubscribe/{SAMPLE_TOKEN}/reason"


def _button(reader: _Reader, action: str) -> _Form | None:
    """The form that posts to ``action`` with a button, if any."""
    return next(
        (f for f in reader.forms if f.method == "post" and f.action == action and f.submits), None
    )


def _signup(reader: _Reader) -> _Form | None:
    """The signup form: it posts to /subscribe, with a button."""
    return _button(reader, "/subscribe")
