"""What may stand in one line of text that people wrote and others will read.

A subject, a title, a reader's name, a user agent: text that ends up in a
mail header, a web page's ``<title>`` and the editor's terminal. Some
characters never belong in it, because each of those places would show them
differently, or act on them:

    C0 controls  U+0000-U+001F   NUL, BEL, ESC, tab, CR and LF among them:
                                 a CR or LF could start a header of its own,
                                 an ESC drives the terminal
    DEL          U+007F
    C1 controls  U+0080-U+009F   NEL (U+0085) is a line break to some
                                 readers; CSI (U+009B) an ESC [ to a terminal
    U+2028, U+2029               line and paragraph separators
    U+D800-U+DFFF                lone surrogates: no UTF-8 can carry them

That is :data:`NOT_IN_LINE`. :func:`one_line` makes each of them a space and
then collapses whitespace, so the same text comes out the same wherever it
is shown; :func:`clean_name` is that with the store's limit on a name, and
:func:`clip` only blanks them and cuts the line short (request metadata,
kept as it came but on one line). Text of several lines shown to a person (the
terminal, see :func:`pipeline.cli.app.printable`) keeps its tabs and line
feeds and nothing else of the set: :data:`NOT_IN_TEXT`.

An XML document has a rule of its own (:data:`pipeline.feed_filters.NOT_XML`):
what XML 1.0 forbids, which is another set for another job.
"""

from __future__ import annotations

import re

from subscribers.errors import SubscriberError

MAX_NAME = 200

_SET = "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
NOT_IN_LINE = re.compile(f"[{_SET}]")
"""The characters that never belong in a single line of text."""
NOT_IN_TEXT = re.compile(f"(?![\t\n])[{_SET}]")
""":data:`NOT_IN_LINE` less tab and line feed: what text of several lines
must not carry."""


def one_line(text: str) -> str:
    """``text`` as one line: each character of :data:`NOT_IN_LINE` (CR and
    LF among them) a space, runs of whitespace one space, no space at
    either end."""
    return " ".join(NOT_IN_LINE.sub(" ", text).split())


def clip(text: str | None, limit: int) -> str | None:
    """Request metadata (an IP, a user agent) as recorded: each character of
    :data:`NOT_IN_LINE` a space, nothing else changed, at most ``limit``
    characters."""
    if text is None:
        return None
    return NOT_IN_LINE.sub(" ", text)[:limit]


def clean_name(text: str | None) -> str:
    """A display name as stored: :func:`one_line`, at most ``MAX_NAME``
    characters. Raises :class:`SubscriberError` if longer."""
    if not text:
        return ""
    name = one_line(text)
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name: longer than {MAX_NAME} characters")
    return name
