"""``publish doctor``'s DNS checks: the records :mod:`pipeline.golive.records`
asks for, read back from a name server, one finding per check with the
record to add or change.

    resolver = make_resolver("127.0.0.1:5353", timeout=2)
    check_dns(resolver, names, "eu-west-1", tokens, receive=True)
      └ [ok DKIM, ok SPF x2, ok MAIL FROM, ok DMARC, ok receiving]

Checks: DKIM (the CNAMEs), SPF of the MAIL FROM domain (one record, includes
amazonses.com, at most 10 lookups), the MAIL FROM MX, DMARC (one record, its
policy against what aligns; for a subdomain without one, the parent's found
by the DNS tree walk), and with ``receive`` the receiving domain's MX.
NXDOMAIN and an empty answer mean "no record"; a timeout or an error rcode
is one error finding naming the server and the query, and the other checks
go on. Every query is bounded by the resolver's lifetime, and the number of
queries by the SPF lookup limit and the DMARC walk's at most 8 names, so the
whole run is bounded too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from pipeline.errors import ConfigError
from pipeline.golive import dmarc, spf
from pipeline.golive.findings import Finding, error, has_errors, ok, warning
from pipeline.golive.names import Names
from pipeline.golive.records import (
    SES_SPF_DOMAIN,
    SPF_VALUE,
    Record,
    dkim_record,
    mail_from_mx,
    receive_mx,
    spf_record,
)

DEFAULT_TIMEOUT = 2.0
"""Seconds each query may take, retries included."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                host = ""
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ConfigError(f"--nameserver {text!r}: expected IP[:PORT], e.g. 127.0.0.1:5353")
    return host, number


def make_resolver(
    nameserver: str = "", *, timeout: float = DEFAULT_TIMEOUT
) -> dns.resolver.Resolver:
    """A resolver that asks ``nameserver`` (``IP[:PORT]``), or the system's
    name servers when it is empty; each query gives up after ``timeout``."""
    if nameserver:
        host, port = parse_nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise ConfigError(
                "no name server configured in /etc/resolv.conf: pass --nameserver IP[:PORT]"
            ) from exc
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def server_label(resolver: dns.resolver.Resolver) -> str:
    """``127.0.0.1:5353``, or several, comma-separated."""
    labels = []
    for server in resolver.nameservers:
        if isinstance(server, dns.nameserver.Nameserver):
            host, port = server.answer_nameserver(), server.answer_port()
        else:
            host, port = server, resolver.port
        labels.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return ", ".join(labels)


@dataclass
class QueryFailed(Exception):
    """The name server did not answer a query usefully: an internal signal,
    reported as an error finding (:meth:`finding`), never raised to a person."""

    message: str

    def finding(self, subject: str) -> Finding:
        return error(
            subject,
            self.message,
            "check that the name server answers, or pass another --nameserver IP[:PORT]",
        )


class Lookup:
    """Queries through one resolver: the answers as text, a failure as
    :class:`QueryFailed` naming the server and the query."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.server = server_label(resolver)

    def _answers(self, rdtype: str, name: str) -> list[dns.rdata.Rdata]:
        query = f"{rdtype} {name}"
        try:
            answer = self.resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout as exc:
            within = f"{self.resolver.lifetime:g} s"
            raise QueryFailed(f"no answer from {self.server} for {query} within {within}") from exc
        except dns.resolver.NoNameservers as exc:
            errors = exc.kwargs.get("errors") or []
            reason = errors[-1][3] if errors else "no usable answer"
            if isinstance(reason, str):
                raise QueryFailed(f"{reason} from {self.server} for {query}") from exc
            raise QueryFailed(f"no answer from {self.server} for {query}: {reason}") from exc
        except dns.exception.DNSException as exc:
            raise QueryFailed(f"cannot ask {self.server} for {query}: {exc}") from exc
        wanted = dns.rdatatype.from_text(rdtype)
        return [rdata for rdata in answer.rrset or () if rdata.rdtype == wanted]

    def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined, as RFC 7208 3.3 reads them."""
        return [
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rdata in self._answers("TXT", name)
            if isinstance(rdata, TXT)
        ]

    def cname(self, name: str) -> list[str]:
        return [
            plain(rdata.target.to_text())
            for rdata in self._answers("CNAME", name)
            if isinstance(rdata, CNAME)
        ]

    def mx(self, name: str) -> list[str]:
        return [
            plain(rdata.exchange.to_text())
            for rdata in self._answers("MX", name)
            if isinstance(rdata, MX)
        ]


def plain(name: str) -> str:
    """A name as compared: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def check_dkim(lookup: Lookup, domain: str, tokens: Sequence[str]) -> list[Finding]:
    if not tokens:
        return [
            error(
                "DKIM",
                f"SES has no DKIM tokens for {domain} yet, so its records cannot be checked",
                "run `publish setup ses`, then add the three DKIM CNAMEs it prints",
            )
        ]
    findings = []
    for token in tokens:
        want = dkim_record(domain, token)
        name, target = plain(want.name), plain(want.value)
        try:
            found = lookup.cname(name)
        except QueryFailed as failed:
            findings.append(failed.finding("DKIM"))
            continue
        if not found:
            findings.append(error("DKIM", f"no CNAME at {name}", f"add {want.line()}"))
        elif found != [target]:
            findings.append(
                error(
                    "DKIM",
                    f"{name} points to {', '.join(found)}, not {target}",
                    f"change the CNAME to {want.line()}",
                )
            )
    if findings:
        return findings
    return [ok("DKIM", f"the {len(tokens)} CNAMEs at _domainkey.{domain} point to amazonses.com")]


def check_spf(lookup: Lookup, names: Names, region: str) -> list[Finding]:
    domain = names.mail_from_domain
    want = spf_record(names, region)
    try:
        found = spf.spf_records(lookup.txt(domain))
        if not found:
            return [error("SPF", f"no SPF record at {domain}", f"add {want.line()}")]
        if len(found) > 1:
            return [
                error(
                    "SPF",
                    f"{len(found)} SPF records at {domain}: RFC 7208 4.5: permerror",
                    f"keep one TXT record at {domain} that includes {SES_SPF_DOMAIN}, "
                    f'e.g. "{SPF_VALUE}", and delete the others',
                )
            ]
        walked = spf.walk(found[0], lookup.txt)
    except QueryFailed as failed:
        return [failed.finding("SPF")]
    findings = [
        error("SPF", problem, f"fix or remove that term in the SPF record at {domain}")
        for problem in walked.problems
    ]
    if SES_SPF_DOMAIN in walked.reached:
        findings.append(ok("SPF", f"{domain} lets SES send (include:{SES_SPF_DOMAIN})"))
    else:
        findings.append(
            error(
                "SPF",
                f"the SPF record at {domain} does not include {SES_SPF_DOMAIN}",
                f"add include:{SES_SPF_DOMAIN} before its all, e.g. {want.line()}",
            )
        )
    count = walked.lookups if walked.complete else f"at least {walked.lookups}"
    if walked.lookups > spf.LOOKUP_LIMIT:
        findings.append(
            error(
                "SPF",
                f"the SPF record at {domain} needs {count} DNS lookups, more than the "
                f"{spf.LOOKUP_LIMIT} RFC 7208 4.6.4 allows: permerror",
                "remove include:, a, mx, ptr or exists terms (ip4:/ip6: ranges need no lookup); "
                f'{domain} needs only "{SPF_VALUE}"',
            )
        )
    else:
        findings.append(
            ok("SPF", f"{domain} needs {count} of at most {spf.LOOKUP_LIMIT} DNS lookups")
        )
    return findings


def check_mx(lookup: Lookup, subject: str, want: Record, without: str) -> Finding:
    name = plain(want.name)
    target = plain(want.value.split()[-1])
    try:
        found = lookup.mx(name)
    except QueryFailed as failed:
        return failed.finding(subject)
    if not found:
        return error(subject, f"no MX at {name}: {without}", f"add {want.line()}")
    if target not in found:
        return error(
            subject,
            f"the MX at {name} points to {', '.join(found)}, not {target}: {without}",
            f"change the MX to {want.line()}",
        )
    if len(found) > 1:
        others = ", ".join(host for host in found if host != target)
        return warning(subject, f"{name} also has MX {others}", f"keep only {want.line()}")
    return ok(subject, f"{name} MX {target}")


def find_dmarc(lookup: Lookup, domain: str) -> tuple[str, list[str]]:
    """The DNS tree walk: the first of :func:`dmarc.walk_domains` whose
    ``_dmarc.`` name has a DMARC record, and its DMARC records; ``("", [])``
    when none has. A query that fails stops the walk (:class:`QueryFailed`):
    a receiver would not know either whether a policy is there."""
    for candidate in dmarc.walk_domains(domain):
        found = dmarc.dmarc_records(lookup.txt(f"_dmarc.{candidate}"))
        if found:
            return candidate, found
    return "", []


def check_dmarc(
    lookup: Lookup, names: Names, dmarc_report: str, *, dkim_aligns: bool | None, spf_passes: bool
) -> list[Finding]:
    try:
        found_at, texts = find_dmarc(lookup, names.domain)
    except QueryFailed as failed:
        return [failed.finding("DMARC")]
    return dmarc.check_record(
        texts,
        names,
        dmarc_report,
        dkim_aligns=dkim_aligns,
        spf_passes=spf_passes,
        found_at=found_at,
    )


def check_dns(
    resolver: dns.resolver.Resolver,
    names: Names,
    region: str,
    dkim_tokens: Sequence[str] | None,
    *,
    receive: bool,
    dmarc_report: str = "",
) -> list[Finding]:
    """Every DNS check, in the order the records are printed. ``dkim_tokens``
    None: not known (the SES identity could not be read), so no DKIM
    finding, and DMARC is not judged by what aligns. ``dmarc_report`` only
    completes the suggested DMARC record in a fix."""
    lookup = Lookup(resolver)
    dkim = check_dkim(lookup, names.domain, dkim_tokens) if dkim_tokens is not None else []
    spf_findings = check_spf(lookup, names, region)
    mail_from = check_mx(
        lookup,
        "MAIL FROM",
        mail_from_mx(names, region),
        "SES then falls back to a MAIL FROM under amazonses.com, and SPF no longer aligns",
    )
    findings = [*dkim, *spf_findings, mail_from]
    findings += check_dmarc(
        lookup,
        names,
        dmarc_report,
        dkim_aligns=not has_errors(dkim) if dkim_tokens is not None else None,
        spf_passes=not has_errors([*spf_findings, mail_from]),
    )
    if receive:
        findings.append(
            check_mx(
                lookup,
                "receiving",
                receive_mx(names, region),
                "unsubscribe mail to it does not reach SES",
            )
        )
    return findings
