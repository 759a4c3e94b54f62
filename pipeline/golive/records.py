"""The DNS records that sending (and receiving) through SES needs, as data and
as a zone-file snippet to paste at the DNS provider.

    dns_records(names, "eu-west-1", tokens, "dmarc@example.com", receive=True)
      └ zone_snippet(...)
    ; DKIM (Easy DKIM): SES signs mail from example.com with these keys.
    abc._domainkey.example.com.  3600  IN  CNAME  abc.dkim.amazonses.com.
    ...
    ; MAIL FROM: bounces return to SES at bounce.example.com; SPF lets SES send.
    bounce.example.com.          3600  IN  MX     10 feedback-smtp.eu-west-1.amazonses.com.
    bounce.example.com.          3600  IN  TXT    "v=spf1 include:amazonses.com ~all"

Names are absolute (a trailing dot), so the snippet means the same whatever
``$ORIGIN`` the provider's zone has. Pure: ``publish setup ses`` prints it,
and ``publish doctor`` (:mod:`pipeline.golive.dns`) checks DNS against the
same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.golive.names import Names

TTL = 3600
"""Seconds resolvers may cache each record: an hour, short enough to fix a typo."""

SES_SPF_DOMAIN = "amazonses.com"
DKIM_TARGET = "{token}.dkim.amazonses.com"
MAIL_FROM_MX = "feedback-smtp.{region}.amazonses.com"
INBOUND_MX = "inbound-smtp.{region}.amazonaws.com"
MX_PREFERENCE = 10
SPF_VALUE = f"v=spf1 include:{SES_SPF_DOMAIN} ~all"


@dataclass(frozen=True)
class Record:
    name: str
    """Absolute, with the trailing dot: ``bounce.example.com.``."""
    type: str
    """``CNAME``, ``MX`` or ``TXT``."""
    value: str
    """The data in zone syntax: ``target.``, ``10 host.`` or ``"quoted text"``."""
    purpose: str
    """The comment above the record's group (one line per ``\n``); consecutive
    records that share it are one group."""
    pending: bool = False
    """Not known yet (DKIM before SES made the tokens): printed commented out."""

    def line(self) -> str:
        """The record on one line without TTL or class, for a finding's fix."""
        return f"{self.name} {self.type} {self.value}"


def absolute(name: str) -> str:
    return name.rstrip(".") + "."


def quote_txt(text: str) -> str:
    """``text`` as zone-file character strings: quoted, escaped, and split into
    strings of at most 255 bytes (one TXT record, read back joined)."""
    escaped = []
    for char in text:
        escaped.append("\\" + char if char in '"\\' else char)
    parts: list[str] = []
    current = ""
    size = 0
    for piece in escaped:
        width = len(piece.replace("\\", "", 1).encode())
        if size + width > 255:
            parts.append(current)
            current, size = "", 0
        current += piece
        size += width
    parts.append(current)
    return " ".join(f'"{part}"' for part in parts)


DKIM_PURPOSE = "DKIM (Easy DKIM): SES signs mail from {domain} with these keys."


def dkim_record(domain: str, token: str) -> Record:
    return Record(
        absolute(f"{token}._domainkey.{domain}"),
        "CNAME",
        absolute(DKIM_TARGET.format(token=token)),
        DKIM_PURPOSE.format(domain=domain),
    )


def dkim_records(domain: str, tokens: Sequence[str]) -> list[Record]:
    """The three CNAMEs, or without tokens one commented-out example saying
    where they will come from."""
    if tokens:
        return [dkim_record(domain, token) for token in tokens]
    purpose = (
        "DKIM (Easy DKIM): SES makes the three keys with the identity, which does not "
        "exist yet;\n`publish setup ses` then prints these CNAMEs, one per TOKEN."
    )
    example = dkim_record(domain, "TOKEN")
    return [Record(example.name, example.type, example.value, purpose, pending=True)]


def mail_from_mx(names: Names, region: str) -> Record:
    return Record(
        absolute(names.mail_from_domain),
        "MX",
        f"{MX_PREFERENCE} {absolute(MAIL_FROM_MX.format(region=region))}",
        f"MAIL FROM: bounces return to SES at {names.mail_from_domain}; SPF lets SES send.",
    )


def spf_record(names: Names, region: str) -> Record:
    return Record(
        absolute(names.mail_from_domain),
        "TXT",
        quote_txt(SPF_VALUE),
        mail_from_mx(names, region).purpose,
    )


def dmarc_value(report_address: str) -> str:
    """The DMARC policy to start with: report, do not reject yet."""
    if not report_address:
        return "v=DMARC1; p=none"
    # RFC 7489 6.2: a comma or "!" in the URI must be percent-encoded.
    uri = report_address.replace("!", "%21").replace(",", "%2C")
    return f"v=DMARC1; p=none; rua=mailto:{uri}"


def dmarc_record(domain: str, report_address: str) -> Record:
    return Record(
        absolute(f"_dmarc.{domain}"),
        "TXT",
        quote_txt(dmarc_value(report_address)),
        f"DMARC: reports on mail from {domain}; after weeks of clean ones, raise p=none "
        "to p=quarantine.",
    )


def receive_mx(names: Names, region: str) -> Record:
    return Record(
        absolute(names.receive_domain),
        "MX",
        f"{MX_PREFERENCE} {absolute(INBOUND_MX.format(region=region))}",
        f"Receiving: unsubscribe mail to {names.receive_domain} goes to SES.",
    )


def dns_records(
    names: Names,
    region: str,
    dkim_tokens: Sequence[str],
    dmarc_report: str,
    *,
    receive: bool,
    dmarc: bool = True,
) -> list[Record]:
    """Every record the newsletter needs, grouped by what each is for;
    without ``dmarc`` no DMARC record (a policy DNS has already covers the
    domain: :mod:`pipeline.golive.setup_dmarc`)."""
    records = dkim_records(names.domain, dkim_tokens)
    records += [mail_from_mx(names, region), spf_record(names, region)]
    if dmarc:
        records.append(dmarc_record(names.domain, dmarc_report))
    if receive:
        records.append(receive_mx(names, region))
    return records


def zone_snippet(records: Sequence[Record]) -> str:
    """The records in zone-file syntax, columns aligned, a ``;`` comment before
    each group; pending records commented out."""
    widths = [
        max((len(record.name) for record in records), default=0),
        len(str(TTL)),
        len("IN"),
        max((len(record.type) for record in records), default=0),
    ]
    lines: list[str] = []
    purpose = None
    for record in records:
        if record.purpose != purpose:
            if lines:
                lines.append("")
            lines += [f"; {part}" for part in record.purpose.split("\n")]
            purpose = record.purpose
        columns = (record.name, str(TTL), "IN", record.type)
        text = "  ".join(col.ljust(width) for col, width in zip(columns, widths, strict=True))
        text = f"{text}  {record.value}"
        lines.append(f"; {text}" if record.pending else text)
    return "\n".join(lines) + "\n"
