"""The subscribe box for the blog (`publish embed`): a self-contained HTML
fragment to paste into any page.

    embed_snippet(settings, source)  the box for this newsletter, once its
                                     settings allow it (blog_url set)
    subscribe_box(action, ...)       the fragment itself, from plain values

The box is one ``<form>`` that posts to the site's ``/subscribe``, as the
service's own form does: email, optional first name, the same honeypot,
the consent wording the service records, and a hidden ``source`` that the
consent record keeps. There is no script, no font, no picture and no
stylesheet to fetch: every rule is inline, so it cannot leak into the host
page, and inline rules win over the host's selectors. Each element's style
first sets back what host stylesheets like to change on every element
(margins, borders, widths, floats, letter case: a reset, or ``all:
revert``, does no harm) and then sets what it needs on top: system fonts,
its own colours on its own background, a maximum width. Labels wrap
their inputs, so the box needs no ids and two of them on one page do not
clash. The service accepts the post only from the blog's origin
(``newsletter.blog_url``), besides the site's own.
"""

from __future__ import annotations

from markupsafe import escape

from pipeline.config import Settings
from pipeline.errors import ConfigError
from subscribers.addresses import MAX_EMAIL
from subscribers.consent import consent_wording
from subscribers.errors import SubscriberError
from subscribers.provenance import check_source, origin_of
from subscribers.text import MAX_NAME

CLASS = "newsletter-subscribe"
"""The prefix of every class in the box, for a host page that wants to restyle it."""
_FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"
_INK, _MUTED, _CARD, _BRAND, _LINE = "#1f2a24", "#4f5a54", "#fffdf8", "#2f5d45", "#8f8a7e"
_R = (
    "box-sizing: border-box; float: none; position: static; width: auto; height: auto;"
    " min-width: 0; max-width: none; margin: 0; padding: 0; border: 0; background: none;"
    " box-shadow: none; color: inherit; font: inherit; text-transform: none;"
    " text-decoration: none; text-indent: 0; letter-spacing: normal;"
)
"""What a host page's stylesheet may set on any element, set back, before
each element's own rules: a reset of the page's reset, element by element."""
STYLES = {
    "box": (
        f"{_R} display: block; max-width: 28rem; margin: 1.5rem 0; padding: 1.25rem;"
        f" border: 1px solid #c9c2b3; border-radius: 6px; background: {_CARD}; color: {_INK};"
        f" font-family: {_FONT}; font-size: 16px; font-style: normal; font-weight: normal;"
        " line-height: 1.5; text-align: left;"
    ),
    "form": f"{_R} display: block; margin: 0; padding: 0;",
    "title": f"{_R} margin: 0 0 0.75rem; font-size: 1.125rem; font-weight: bold; line-height: 1.3;",
    "field": f"{_R} margin: 0 0 0.75rem;",
    "label": f"{_R} display: block; font-size: 0.9375rem; font-weight: bold;",
    "optional": f"{_R} font-weight: normal; color: {_MUTED};",
    "input": (
        f"{_R} display: block; width: 100%; margin: 0.25rem 0 0; padding: 0.5rem 0.625rem;"
        f" font-weight: normal; color: {_INK}; background: #ffffff;"
        f" border: 1px solid {_LINE}; border-radius: 4px;"
    ),
    "trap": "display: none !important;",
    "consent": f"{_R} margin: 0 0 0.75rem; font-size: 0.875rem; color: {_MUTED};",
    "actions": f"{_R} margin: 0;",
    "button": (
        f"{_R} display: inline-block; margin: 0; padding: 0.625rem 1.25rem;"
        f" font-weight: bold; color: #ffffff; background: {_BRAND}; border: 0;"
        " border-radius: 4px; cursor: pointer;"
    ),
}


def embed_snippet(settings: Settings, source: str) -> str:
    """The subscribe box for this newsletter, its signups kept as coming
    from ``source``. Raises :class:`ConfigError` when ``newsletter.blog_url``
    is not set (the service would take the box's posts for a stranger's)
    or ``source`` is no short line of text."""
    if origin_of(settings.blog_url) is None:
        raise ConfigError(
            "newsletter.blog_url: not set; /subscribe accepts the box only from the blog's "
            "address, so set it to the blog the box goes on"
        )
    try:
        where = check_source(source)
    except SubscriberError as exc:
        raise ConfigError(f"--{exc}") from None
    return subscribe_box(
        settings.url("subscribe"),
        settings.name,
        consent_wording(settings.name, settings.consent_text),
        where,
    )


def subscribe_box(action: str, name: str, consent: str, source: str) -> str:
    """The box's HTML: a form posting to ``action``, titled for the
    newsletter ``name``, with the ``consent`` wording and a hidden
    ``source``. Every value is escaped."""
    title = f"Subscribe to {name}"

    def style(part: str) -> str:
        return f'class="{CLASS}-{part}" style="{escape(STYLES[part])}"'

    return "\n".join(
        [
            f"<!-- {CLASS}: a subscribe box from `publish embed`; no script, styles inline -->",
            f'<div {style("box")}>',
            f'<form {style("form")} action="{escape(action)}" method="post"'
            f' accept-charset="utf-8" aria-label="{escape(title)}">',
            f'<p {style("title")}>{escape(title)}</p>',
            f'<p {style("field")}><label {style("label")}>Email address'
            f'<input {style("input")} name="email" type="email" autocomplete="email"'
            f' required maxlength="{MAX_EMAIL}"></label></p>',
            f'<p {style("field")}><label {style("label")}>First name'
            f' <span {style("optional")}>(optional)</span>'
            f'<input {style("input")} name="name" type="text" autocomplete="given-name"'
            f' maxlength="{MAX_NAME}"></label></p>',
            f'<div hidden {style("trap")}><label>Leave this field empty'
            ' <input name="website" type="text" tabindex="-1" autocomplete="off"></label></div>',
            f'<input type="hidden" name="source" value="{escape(source)}">',
            f'<p {style("consent")}>{escape(consent)}</p>',
            f'<p {style("actions")}><button {style("button")} type="submit">Subscribe</button></p>',
            "</form>",
            "</div>",
        ]
    )


__all__ = ["CLASS", "STYLES", "embed_snippet", "subscribe_box"]
