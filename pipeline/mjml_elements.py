"""The MJML elements the compiler knows, and the tags of a template that are none.

mjml-python compiles with MRML, which copies a tag it does not know into the
HTML as it is: ``<mj-colum>`` gives no error, only a layout that falls apart
in some inboxes. So the email template's tags are checked against the
elements MRML implements (mrml-core 6: one module per element, each with its
``NAME``; MRML has no ``mj-html-attributes``, which MJML 4 has).
"""

from __future__ import annotations

import difflib
import re

KNOWN_ELEMENTS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-include",
        # in mj-head
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-preview",
        "mj-style",
        "mj-title",
        # in mj-body
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-text",
        "mj-accordion-title",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-raw",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    }
)

# A tag whose name starts like an MJML element's: <mj-...>, </mj-...>, <mjml>.
_TAG = re.compile(r"<(/?)\s*(mj[A-Za-z0-9_.:-]*)")
# What MJML and Jinja leave out: comments, and a Jinja expression inside a name.
_COMMENTS = re.compile(r"<!--.*?-->|\{#.*?#\}", re.S)


def unknown_elements(source: str) -> list[tuple[int, str]]:
    """Each tag in ``source`` (an MJML template, Jinja and all) that names no
    MJML element: (line, a message naming it and the element it is closest to)."""
    text = _COMMENTS.sub(lambda m: "\n" * m.group().count("\n"), source)
    found: list[tuple[int, str]] = []
    for match in _TAG.finditer(text):
        slash, name = match.groups()
        if name in KNOWN_ELEMENTS or text.startswith("{{", match.end()):
            continue
        line = text.count("\n", 0, match.start()) + 1
        message = f"unknown MJML element <{slash}{name}>"
        close = difflib.get_close_matches(name.lower(), KNOWN_ELEMENTS, n=1, cutoff=0.7)
        if close:
            message += f" (did you mean <{slash}{close[0]}>?)"
        found.append((line, message))
    return found
