"""Judging a domain's DMARC record: there is exactly one, its policy parses,
and what that policy does to mail given what aligns with the From domain.

    check_record(["v=DMARC1; p=reject; aspf=s"], names, "",
                 dkim_aligns=False, spf_passes=True)
      └ [error DMARC: p=reject, and neither DKIM nor SPF aligns ...: every
         message would be rejected (fix: fix the DKIM records; set aspf=r ...)]

Pure: :mod:`pipeline.golive.dns` fetches the TXT records and says whether
DKIM and SPF pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.golive.findings import Finding, error, ok, warning
from pipeline.golive.names import Names
from pipeline.golive.records import dmarc_record, dmarc_value

POLICIES = ("none", "quarantine", "reject")


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


def parse_policy(record: str) -> DmarcPolicy:
    tags = dmarc_tags(record)
    p = tags.get("p", "").lower()
    return DmarcPolicy(
        p=p,
        sp=tags.get("sp", p).lower(),
        adkim=tags.get("adkim", "r").lower(),
        aspf=tags.get("aspf", "r").lower(),
        rua=tags.get("rua", ""),
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


def check_record(
    texts: Sequence[str],
    names: Names,
    dmarc_report: str,
    *,
    dkim_aligns: bool,
    spf_passes: bool,
) -> list[Finding]:
    """``texts``: the TXT records at ``_dmarc.DOMAIN``. ``dkim_aligns``: the
    DKIM CNAMEs are right (Easy DKIM signs with d= the sending domain).
    ``spf_passes``: SPF and the MAIL FROM MX are right, so SES uses the
    MAIL FROM domain and SPF passes for it; whether that aligns depends on
    the record's aspf."""
    domain = names.domain
    name = f"_dmarc.{domain}"
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
                f"keep one, e.g. {want.line()}",
            )
        ]
    parsed = parse_policy(found[0])
    policy = parsed.p
    if policy not in POLICIES:
        return [
            error(
                "DMARC",
                f"the DMARC record at {name} has no valid p= (none, quarantine or reject)",
                f'start it with "{dmarc_value(dmarc_report)}"',
            )
        ]
    strict_spf = parsed.aspf == "s"
    mail_from = names.mail_from_domain.lower()
    # Easy DKIM signs with d= the sending domain itself: aligned under adkim=r and s.
    spf_aligns = spf_passes and (
        mail_from == domain.lower() or (not strict_spf and mail_from.endswith("." + domain.lower()))
    )
    findings = [_dmarc_policy(name, policy, dkim_aligns, spf_aligns, strict_spf, names)]
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


def _dmarc_policy(
    name: str, policy: str, dkim_aligns: bool, spf_aligns: bool, strict_spf: bool, names: Names
) -> Finding:
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
                f"p=none, but neither DKIM nor SPF aligns with {names.domain}: "
                "mail fails DMARC, which Gmail and Yahoo require bulk senders to pass",
                repair,
            )
        return ok(
            "DMARC",
            f"p=none, {' and '.join(aligned)} aligned; move to p=quarantine "
            "after a few weeks of clean reports",
        )
    outcome = "rejected" if policy == "reject" else "quarantined"
    if not aligned:
        return error(
            "DMARC",
            f"p={policy}, and neither DKIM nor SPF aligns with {names.domain}: "
            f"every message would be {outcome}",
            f"{repair}, or set p=none until they align",
        )
    if len(aligned) == 1:
        return warning(
            "DMARC",
            f"p={policy}, but only {aligned[0]} aligns with {names.domain}: "
            f"a message that fails it would be {outcome}",
            repair,
        )
    return ok("DMARC", f"p={policy}, DKIM and SPF aligned")
