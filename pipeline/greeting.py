"""The greeting line above an issue: its format checked, filled once per
issue, and the greeting an issue may open with on its own.

The editor chooses the line (``newsletter.greeting``, or ``greeting:`` in an
issue's front matter) as a format whose one field is ``{first_name}``:

    "Hi {first_name},"  ─ check_greeting ─▶ the format, or ValueError saying why
                        ─ greeting_line(format, slot) ─▶ "Hi pflslot…firstnamex,"
    ""                  ─▶ no greeting line at all

The line is rendered once per issue with the first-name *slot* in place of
the field (:mod:`pipeline.render`), so personalizing a message fills in only
the name, as it did before the greeting could be chosen.

:func:`opening_greeting` finds the greeting an issue's first paragraph
starts with ("Hi there."), which under the template's own would make two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from string import Formatter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.token import Token

DEFAULT_GREETING = "Hi {first_name},"
NAME_FIELD = "first_name"

GREETING_WORDS = (
    "hi",
    "hiya",
    "hello",
    "hey",
    "howdy",
    "dear",
    "greetings",
    "good morning",
    "good afternoon",
    "good evening",
    "good day",
)
"""How an English paragraph that greets the reader begins (the newsletter is
written in English); matched case-insensitively, as whole words."""

_MARKUP = "*_~ \t"
"""Emphasis around the opening words (``**Hi there!**``), skipped."""


@cache
def _opening() -> re.Pattern[str]:
    """A greeting word, up to three words after it (a name, "there",
    "everyone", "dear friends"), then punctuation, a symbol or the end of
    the line: "Hi there.", "Hello, everyone!", "Good morning", but not
    "Hello world programs print text" or "Hi-fi speakers". Compiled when
    first used: loading the settings imports this module, only linting an
    issue looks for a greeting."""
    return re.compile(
        r"(?:{words})\b(?:[ \t,]+[^\W\d_][\w'’-]*){{0,3}}[ \t]*(?:[^\w\s'’-]|(?=\n)|\Z)".format(
            words="|".join(word.replace(" ", r"\s+") for word in GREETING_WORDS)
        ),
        re.IGNORECASE,
    )


def check_greeting(text: str) -> str:
    """``text`` if it is a greeting format: any text, ``{first_name}`` where
    the name goes, ``{{`` and ``}}`` for a brace; "" turns the greeting off.

    Raises :class:`ValueError` with a one-line reason otherwise.
    """
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:
        reason = str(exc)[:1].lower() + str(exc)[1:]
        raise ValueError(
            f"{text!r} is not a greeting: {reason} "
            "(write {first_name} for the name, {{ and }} for a brace)"
        ) from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field != NAME_FIELD or spec or conversion:
            written = "{" + field + (f"!{conversion}" if conversion else "")
            written += (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{text!r} has the field {written}: the only field is {{first_name}}")
    return text


def greeting_line(greeting: str, name_slot: str) -> str:
    """The checked format ``greeting`` with ``name_slot`` for ``{first_name}``."""
    return greeting.format_map({NAME_FIELD: name_slot})


def opening_greeting(tokens: Sequence[Token]) -> tuple[int, str] | None:
    """(line offset in the body, the words) of the greeting that the first
    block of ``tokens``, a paragraph, starts with; None if it does not."""
    if len(tokens) < 2 or tokens[0].type != "paragraph_open" or tokens[1].type != "inline":
        return None
    text = tokens[1].content.lstrip(_MARKUP)
    match = _opening().match(text)
    if match is None:
        return None
    offset = tokens[0].map[0] if tokens[0].map else 0
    return offset, " ".join(match.group().split()).rstrip(_MARKUP)
