"""Reading an SPF record the way a receiver evaluates it, far enough to
count its DNS lookups (RFC 7208 4.6.4: more than 10 is a permerror) and to
see which domains it reaches through ``include:`` and ``redirect=``.

    walk("v=spf1 include:amazonses.com ~all", fetch)
      └ SpfWalk(lookups=1, complete=True, reached={"amazonses.com"}, problems=())

``fetch(domain)`` returns the SPF records (the TXT strings that start with
``v=spf1``) at a domain; whatever it raises passes through. The walk stops
following includes once the count passes the limit, so a loop of includes
ends after at most ``limit + 1`` fetches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

LOOKUP_LIMIT = 10
"""RFC 7208 4.6.4: at most 10 terms that query DNS per evaluation."""

QUERYING_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})

_VERSION = re.compile(r"v=spf1(?:\s|$)", re.IGNORECASE)
_QUALIFIERS = "+-~?"

Fetch = Callable[[str], Sequence[str]]


def spf_records(texts: Iterable[str]) -> list[str]:
    """The TXT strings that are SPF records (RFC 7208 4.5: ``v=spf1``, then a
    space or nothing)."""
    return [text for text in texts if _VERSION.match(text.strip())]


@dataclass(frozen=True)
class SpfWalk:
    lookups: int
    """Terms that query DNS, counted through every include and redirect."""
    complete: bool
    """False when the walk stopped past the limit: ``lookups`` is a floor."""
    reached: frozenset[str]
    """The domains included or redirected to, lower case."""
    problems: tuple[str, ...]
    """Permerrors met on the way: an include with no SPF record, or two."""


@dataclass
class _State:
    fetch: Fetch
    limit: int
    lookups: int = 0
    complete: bool = True


def _split(term: str) -> tuple[str, str]:
    """``~include:x.com`` -> ("include", "x.com"); ``redirect=x.com`` ->
    ("redirect", "x.com"); ``a/24`` -> ("a", "")."""
    term = term.lstrip(_QUALIFIERS)
    match = re.match(r"([A-Za-z][A-Za-z0-9_.-]*)([:=/]?)(.*)", term)
    if not match:
        return term.lower(), ""
    name, separator, rest = match.groups()
    if separator == "/":
        rest = ""
    return name.lower(), rest.split("/")[0] if separator == ":" else rest


def walk(record: str, fetch: Fetch, *, limit: int = LOOKUP_LIMIT) -> SpfWalk:
    """Count the DNS lookups ``record`` needs, fetching included records."""
    state = _State(fetch, limit)
    reached: set[str] = set()
    problems: list[str] = []
    _visit(record, state, reached, problems)
    return SpfWalk(state.lookups, state.complete, frozenset(reached), tuple(problems))


def _visit(record: str, state: _State, reached: set[str], problems: list[str]) -> None:
    terms = [_split(term) for term in record.split()[1:]]
    redirect = ""
    for name, argument in terms:
        if name == "redirect":
            redirect = argument
        elif name in QUERYING_MECHANISMS:
            state.lookups += 1
            if name == "include":
                _follow("include", argument, state, reached, problems)
    # RFC 7208 6.1: redirect is ignored when the record has an "all".
    if redirect and not any(name == "all" for name, _ in terms):
        state.lookups += 1
        _follow("redirect", redirect, state, reached, problems)


def _follow(
    how: str, domain: str, state: _State, reached: set[str], problems: list[str]
) -> None:
    domain = domain.rstrip(".").lower()
    if not domain or "%" in domain:
        return  # a macro depends on the message: counted, not followed
    reached.add(domain)
    if state.lookups > state.limit:
        state.complete = False
        return
    found = spf_records(state.fetch(domain))
    if not found:
        problems.append(f"{how}:{domain} has no SPF record, a permerror (RFC 7208 5.2)")
    elif len(found) > 1:
        problems.append(
            f"{how}:{domain} has {len(found)} SPF records, a permerror (RFC 7208 4.5)"
        )
    else:
        _visit(found[0], state, reached, problems)
