"""Judging the DMARC policy that applies to mail from a domain: which names
the DNS tree walk queries to find it, that there is exactly one record where
it stops, that its policy parses, and what that policy does to mail given
what aligns with the From domain.

    walk_domains("news.painfreeliving.example.com")
      └ ["news.painfreeliving.example.com", "painfreeliving.example.com", "example.com"]
    check_record(["v=DMARC1; p=reject; aspf=s"], names, "",
                 dkim_aligns=False, spf_passes=True)
      └ [error DMARC: p=reject, and neither DKIM nor SPF aligns ...: every
         message would be rejected (fix: fix the DKIM records; set aspf=r ...)]

Pure: :mod:`pipeline.golive.dns` queries ``_dmarc.`` each name of the walk
in turn, stops at the first with a DMARC record, and says whether DKIM and
SPF pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.golive.findings import Finding, error, ok, warning
from pipeline.golive.names import Names
from pipeline.golive.records import dmarc_record, dmarc_value

POLICIES = ("none", "quarantine", "reject")
WALK_JUMP_LABELS = 8
"""DMARCbis "DNS Tree Walk": a domain longer than this many labels jumps
straight to its last ``WALK_JUMP_LABELS - 1``, so that a long name costs at
most 8 queries."""


@dataclass(frozen=True)
class DmarcPolicy:
    """The tags that matter here (RFC 7489 6.3), lower case; defaults filled in."""

    p: str
    sp: str
    """The policy for subdomains; ``p`` when absent."""
    adkim: str
    """``r`` (relaxed, the default) or ``s`` (strict)."""
    aspf: str
    rua: str
    """Where aggregate reports go; empty without."""
    has_sp: bool = False
    """Whether the record says ``sp=`` itself."""


def parse_policy(record: str) -> DmarcPolicy:
    tags = dmarc_tags(record)
    p = tags.get("p", "").lower()
    return DmarcPolicy(
        p=p,
        sp=tags.get("sp", p).lower(),
        adkim=tags.get("adkim", "r").lower(),
        aspf=tags.get("aspf", "r").lower(),
        rua=tags.get("rua", ""),
        has_sp="sp" in tags,
    )


_DMARC_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")


def dmarc_tags(record: str) -> dict[str, str]:
    """``v=DMARC1; p=reject; aspf=s`` -> {"v": "DMARC1", "p": "reject", "aspf": "s"}."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, separator, value = part.partition("=")
        if separator:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def dmarc_records(texts: Sequence[str]) -> list[str]:
    """RFC 7489 6.6.3: the TXT strings that start with ``v=DMARC1``; others
    are not DMARC records."""
    return [text for text in texts if _DMARC_VERSION.match(text.strip())]


def walk_domains(domain: str) -> list[str]:
    """The domains whose ``_dmarc.`` names a receiver queries, in order, for
    the policy of mail from ``domain`` (DMARCbis "DNS Tree Walk", which
    replaces RFC 7489's public suffix list): ``domain`` itself, then its
    parents, one label shorter each, never a single label (no ``_dmarc.com``).
    Past 8 labels the first parent is the last 7."""
    labels = domain.rstrip(".").split(".")
    walked = [".".join(labels)]
    parent = labels[-(WALK_JUMP_LABELS - 1) :] if len(labels) > WALK_JUMP_LABELS else labels[1:]
    while len(parent) > 1:
        walked.append(".".join(parent))
        parent = parent[1:]
    return walked


def same_domain(one: str, other: str) -> bool:
    """Domain names compare case-insensitive, a trailing dot or not."""
    return one.lower().rstrip(".") == other.lower().rstrip(".")


def within(name: str, domain: str) -> bool:
    """``name`` is ``domain`` or a name under it."""
    return same_domain(name, domain) or name.lower().rstrip(".").endswith(
        "." + domain.lower().rstrip(".")
    )


def aligns(identifier: str, from_domain: str, organizational: str, *, strict: bool) -> bool:
    """RFC 7489 3.1: strict alignment needs ``identifier`` to be the From
    domain itself; relaxed needs the same organizational domain, here the
    one whose record the walk found: both are it or under it."""
    if strict:
        return same_domain(identifier, from_domain)
    return within(identifier, organizational) and within(from_domain, organizational)


def check_record(
    texts: Sequence[str],
    names: Names,
    dmarc_report: str,
    *,
    dkim_aligns: bool | None,
    spf_passes: bool,
    found_at: str = "",
) -> list[Finding]:
    """``texts``: the TXT records at ``_dmarc.FOUND_AT``, the first name of
    the walk that has a DMARC record (``found_at`` empty: the From domain
    itself, or nothing found anywhere). ``dkim_aligns``: the DKIM CNAMEs are
    right (Easy DKIM signs with d= the From domain); None: not known (the
    SES identity could not be read), and then what the policy does to mail
    is not judged. ``spf_passes``: SPF and
    the MAIL FROM MX are right, so SES uses the MAIL FROM domain and SPF
    passes for it; whether that aligns depends on the record's aspf."""
    domain = names.domain
    at = found_at or domain
    inherited = not same_domain(at, domain)
    name = f"_dmarc.{at}"
    want = dmarc_record(domain, dmarc_report)
    found = dmarc_records(texts)
    if not found:
        return [
            error(
                "DMARC",
                f"no DMARC record at {name}: Gmail and Yahoo require one for bulk senders",
                f"add {want.line()}",
            )
        ]
    if len(found) > 1:
        return [
            error(
                "DMARC",
                f"{len(found)} DMARC records at {name}: receivers then apply none",
                f"keep one at {name}, or publish {want.line()}"
                if inherited
                else f"keep one, e.g. {want.line()}",
            )
        ]
    parsed = parse_policy(found[0])
    if parsed.p not in POLICIES:
        return [
            error(
                "DMARC",
                f"the DMARC record at {name} has no valid p= (none, quarantine or reject)",
                f'start it with "{dmarc_value(dmarc_report)}"',
            )
        ]
    # Mail from a subdomain of where the record is gets its sp=, which is p= when absent.
    policy = parsed.sp if inherited else parsed.p
    if policy not in POLICIES:
        return [
            error(
                "DMARC",
                f"the DMARC record at {name} has no valid sp= (none, quarantine or "
                f"reject) for its subdomain {domain}",
                f"fix its sp=, or publish {want.line()}",
            )
        ]
    # Easy DKIM signs with d= the From domain itself: aligned under adkim=r and s.
    dkim_aligned = bool(dkim_aligns) and aligns(domain, domain, at, strict=parsed.adkim == "s")
    strict_spf = parsed.aspf == "s"
    spf_aligned = spf_passes and aligns(names.mail_from_domain, domain, at, strict=strict_spf)
    tag = "sp" if inherited and parsed.has_sp else "p"
    label = f"{tag}={policy}"
    if inherited:
        whose = (
            f"its subdomain {domain}"
            if parsed.has_sp
            else f"{domain} too, as the record has no sp="
        )
        label += f" at {name} (the organizational domain's policy for {whose})"
    if dkim_aligns is None:
        verdict = ok("DMARC", f"{label}; what it does to mail is not judged while DKIM is unknown")
    else:
        verdict = _dmarc_policy(
            _Verdict(name, label, tag, policy, inherited),
            dkim_aligned,
            spf_aligned,
            strict_spf,
            names,
        )
    findings = [verdict]
    if not parsed.rua:
        fix = f"add rua=mailto:{dmarc_report}" if dmarc_report else "add rua=mailto:ADDRESS"
        findings.append(
            warning(
                "DMARC",
                f"no rua= at {name}: no one gets the reports that show what passes",
                f"{fix} to the TXT record at {name}",
            )
        )
    return findings


@dataclass(frozen=True)
class _Verdict:
    name: str
    """Where the record is: ``_dmarc.DOMAIN`` or a parent's."""
    label: str
    """How the finding names the policy: ``p=reject``, or with where it was found."""
    tag: str
    """The tag to change: ``p`` or ``sp``."""
    policy: str
    inherited: bool


def _dmarc_policy(
    verdict: _Verdict, dkim_aligns: bool, spf_aligns: bool, strict_spf: bool, names: Names
) -> Finding:
    name, label, tag, policy = verdict.name, verdict.label, verdict.tag, verdict.policy
    aligned = [what for what, yes in (("DKIM", dkim_aligns), ("SPF", spf_aligns)) if yes]
    repairs = []
    if not dkim_aligns:
        repairs.append("fix the DKIM records")
    if not spf_aligns:
        repairs.append(
            f"set aspf=r at {name} (the MAIL FROM domain {names.mail_from_domain} is a "
            "subdomain, aligned only under relaxed SPF alignment)"
            if strict_spf
            else "fix the SPF and MAIL FROM records"
        )
    repair = "; ".join(repairs)
    if policy == "none":
        if not aligned:
            return warning(
                "DMARC",
                f"{label}, but neither DKIM nor SPF aligns with {names.domain}: "
                "mail fails DMARC, which Gmail and Yahoo require bulk senders to pass",
                repair,
            )
        return ok(
            "DMARC",
            f"{label}, {' and '.join(aligned)} aligned; move to {tag}=quarantine "
            "after a few weeks of clean reports",
        )
    outcome = "rejected" if policy == "reject" else "quarantined"
    relax = f"set {tag}=none at {name}" if verdict.inherited else "set p=none"
    if not aligned:
        return error(
            "DMARC",
            f"{label}, and neither DKIM nor SPF aligns with {names.domain}: "
            f"every message would be {outcome}",
            f"{repair}, or {relax} until they align",
        )
    if len(aligned) == 1:
        return warning(
            "DMARC",
            f"{label}, but only {aligned[0]} aligns with {names.domain}: "
            f"a message that fails it would be {outcome}",
            repair,
        )
    return ok("DMARC", f"{label}, DKIM and SPF aligned")
