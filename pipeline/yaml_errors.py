"""A YAML syntax error in an issue's front matter, in the editor's words.

PyYAML says ``expected <block end>, but found '<scalar>'``; the editor needs
to hear which line is wrong and what usually makes it so. For
``title: Neck pain: a fix``::

    this line is not a "key: value" pair (a value with a colon in it needs quotes)

:func:`explain` knows the mistakes people make in front matter (an unquoted
colon, a line indented by accident, a tab, a quote left open or closed too
early, a value starting with one of YAML's special characters, a missing
colon, an unclosed ``[`` list) and says something useful, still naming the
line, about anything else.
"""

from __future__ import annotations

import yaml

# A plain value cannot start with these: YAML reads each as syntax.
_SPECIAL_STARTS = "@`*&!|>%{"

KEY_VALUE = 'this line is not a "key: value" pair'
COLON = f"{KEY_VALUE} (a value with a colon in it needs quotes)"
NO_COLON = f"{KEY_VALUE} (write the key, a colon and a space, then the value)"
INDENTED = "this line is indented: a key starts at the beginning of its line"
INDENTATION = (
    "this line's indentation does not match the lines above it (keys start at the "
    'beginning of a line; the "- " items of a list are indented alike under their key)'
)
TAB = "this line has a tab character: use spaces instead"
UNCLOSED_QUOTE = "the quote ({quote}) that opens this value is never closed"
AFTER_QUOTE = (
    "text after the closing quote: quote the whole value, and write a ' inside '...' "
    "as '' (or use \"...\")"
)
SPECIAL = "a value starting with {char} needs quotes: {key}: \"{char}...\""
AFTER_LIST = (
    "text after the ] that closes this list: a value starting with [ that is not a "
    "list needs quotes"
)
UNCLOSED_LIST = (
    "the list that opens with [ on this line is not closed by ] (or an item with a "
    "colon or a quote in it needs quotes)"
)
GENERIC = (
    'this line is not valid front matter: write "key: value", with values that '
    "contain special characters in quotes"
)


def explain(error: yaml.YAMLError, front: str) -> tuple[int, str]:
    """(line index within ``front``, starting at 0; message) for ``error``."""
    lines = front.split("\n")
    problem = str(getattr(error, "problem", "") or "")
    context = str(getattr(error, "context", "") or "")
    problem_line = _line_of(getattr(error, "problem_mark", None), lines)
    context_line = _line_of(getattr(error, "context_mark", None), lines)
    at = problem_line if problem_line is not None else context_line or 0
    text = lines[at] if at < len(lines) else ""

    if "\t" in text or "'\\t'" in problem:
        return at, TAB
    if "quoted scalar" in context and context_line is not None:
        quote = _opening_quote(lines[context_line])
        return context_line, UNCLOSED_QUOTE.format(quote=quote)
    if "mapping values are not allowed" in problem:
        return at, INDENTED if text[:1].isspace() else COLON
    if "simple key" in context and context_line is not None:
        return context_line, NO_COLON
    if "flow sequence" in context and context_line is not None:
        return context_line, UNCLOSED_LIST
    if "flow mapping" in context and context_line is not None:
        at, text = context_line, lines[context_line]
    key, value = _key_and_value(text)
    if value[:1] in _SPECIAL_STARTS and value and (
        "cannot start any token" in problem
        or "alias" in problem
        or "anchor" in context
        or "block scalar" in context
        or "directive" in context
        or "flow mapping" in context
    ):
        return at, SPECIAL.format(char=value[0], key=key or "key")
    if "<block end>" in problem or "block mapping" in context:
        column = getattr(getattr(error, "problem_mark", None), "column", 0)
        if column <= len(text) - len(text.lstrip()):
            return at, INDENTATION  # the line itself starts in the wrong place
        # The value ended early and more text follows it on the line.
        if value[:1] in "'\"" and value:
            return at, AFTER_QUOTE
        if value[:1] == "[":
            return at, AFTER_LIST
        if value[:1] == "{":
            return at, SPECIAL.format(char="{", key=key or "key")
    return at, GENERIC


def _line_of(mark: object, lines: list[str]) -> int | None:
    line = getattr(mark, "line", None)
    if not isinstance(line, int):
        return None
    # An error found at the end of the block belongs to its last line.
    last = max(len(lines) - 1, 0)
    while last > 0 and not lines[last].strip():
        last -= 1
    return min(line, last)


def _key_and_value(text: str) -> tuple[str, str]:
    key, colon, value = text.partition(":")
    if not colon:
        return "", ""
    return key.strip(), value.strip()


def _opening_quote(text: str) -> str:
    _, value = _key_and_value(text)
    if value[:1] in "'\"" and value:
        return value[0]
    return next((char for char in text if char in "'\""), '"')
