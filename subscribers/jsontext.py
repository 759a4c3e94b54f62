"""JSON from strangers, read with a bound on how deeply it nests.

``json.loads`` recurses once per level: a body of a few kilobytes of ``[``
makes it raise RecursionError, which is no ValueError and would become a
500. :func:`loads` counts the nesting first, in one regular-expression pass
that skips over strings, and refuses anything deeper than asked.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A string (with its escapes) or one bracket: brackets inside strings are text.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class TooDeep(ValueError):
    """The document nests deeper than allowed.

    An internal signal, outside the tree of :mod:`subscribers.errors`, and a
    ValueError like the others ``json.loads`` raises, so that callers that
    catch those catch it too; the signup form answers it as a ``BadInput``."""


def loads(data: str | bytes, *, max_depth: int) -> Any:
    """``json.loads(data)``, or :class:`TooDeep` (a ValueError) when objects
    and arrays nest more than ``max_depth`` levels."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    depth = 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"nested more than {max_depth} levels deep")
        elif mark in "]}":
            depth -= 1
    return json.loads(text)
