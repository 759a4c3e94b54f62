"""What ``publish setup ses`` says about DMARC, given the policy DNS already
has for the sending domain: whether the ``p=none`` record is printed to add,
and the lines that say why not.

    DmarcSeen("example.com", ("v=DMARC1; p=reject",))     for news.example.com
      └ adds_record: False
        dmarc_lines: ['DMARC: news.example.com is covered by _dmarc.example.com,
                       whose p=reject applies to it (no sp=): ...']

A second record at ``_dmarc.DOMAIN`` makes receivers apply no DMARC at all
(RFC 7489 6.6.3), and one where a parent's policy covers the domain
overrides it, so the record is printed only when the walk found nothing, or
could not read DNS (then with a warning). Pure: :func:`pipeline.golive.setup.read_dmarc`
reads DNS with ``publish doctor``'s tree walk (:func:`pipeline.golive.dns.find_dmarc`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.golive.dmarc import POLICIES, parse_policy, same_domain


@dataclass(frozen=True)
class DmarcSeen:
    """What the DNS tree walk found for the sending domain."""

    found_at: str = ""
    """The first domain of the walk with a DMARC record at ``_dmarc.``; empty: none."""
    records: tuple[str, ...] = ()
    """The DMARC records there (:func:`~pipeline.golive.dmarc.dmarc_records` of its TXT records)."""
    problem: str = ""
    """Why DNS could not be read (then nothing is known); empty when it was."""


def adds_record(seen: DmarcSeen) -> bool:
    """Whether to print the ``p=none`` record to add: only where no policy
    is known to cover the domain."""
    return bool(seen.problem) or not seen.records


def dmarc_lines(domain: str, seen: DmarcSeen) -> list[str]:
    """One line on the policy found, or the warning that DNS was not read;
    none when nothing covers ``domain`` (the record to add says it all)."""
    if seen.problem:
        return [
            f"warning: DNS could not be read to see whether a DMARC policy already covers "
            f"{domain} ({_shown(seen.problem)}): check for one before adding the DMARC "
            "record above"
        ]
    found = seen.records
    if not found:
        return []
    at = seen.found_at
    name = f"_dmarc.{at}"
    own = same_domain(at, domain)
    if len(found) > 1:
        error = (
            f"DMARC: {name} has {len(found)} DMARC records, an error receivers treat as no "
            "DMARC at all (RFC 7489 6.6.3)"
        )
        if own:
            return [f"{error}: delete all but one (no DMARC record is printed to add)"]
        return [
            f"{error}, for {domain} too: delete all but one there (it then covers {domain}, "
            f"so none is added at _dmarc.{domain})"
        ]
    record = _shown(found[0])
    if own:
        return [f'DMARC: {name} already publishes "{record}" (kept)']
    policy = parse_policy(found[0])
    tag = "sp" if policy.has_sp else "p"
    where = "" if policy.has_sp else " (no sp=)"
    override = f"a record at _dmarc.{domain} would override it, so none is added"
    covered = f"DMARC: {domain} is covered by {name}, whose {tag}={_shown(policy.sp)}"
    if policy.sp not in POLICIES:
        return [
            f'{covered} is not a policy (none, quarantine or reject): "{record}"; '
            f"fix it there: {override}"
        ]
    line = f'{covered} applies to it{where}: "{record}"; {override}'
    if policy.sp == "none":
        line += f"; to act on failing mail, raise {tag}= at {name} once its reports are clean"
    return [line]


def dmarc_todo(domain: str, seen: DmarcSeen) -> list[str]:
    """The next step DNS's DMARC records need, if any: several at one name."""
    found = () if seen.problem else seen.records
    if len(found) < 2:
        return []
    return [
        f"delete all but one of the {len(found)} DMARC records at _dmarc.{seen.found_at}: "
        f"until then receivers apply no DMARC policy to mail from {domain}"
    ]


def _shown(text: str) -> str:
    """DNS text as printed: a character that is not printable (a terminal
    escape among them) as ``?``."""
    return "".join(char if char.isprintable() else "?" for char in text)


__all__ = ["DmarcSeen", "adds_record", "dmarc_lines", "dmarc_todo"]
