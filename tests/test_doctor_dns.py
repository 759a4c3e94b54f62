"""`publish doctor`'s DNS checks against a real DNS server on loopback, and
the zone-file snippet `publish setup ses` prints: the snippet, served as the
zone, passes every check, and each broken zone gives the error that names
the record to fix."""

from __future__ import annotations

import dataclasses
import time

import pytest
from dnslib import QTYPE, RR

from pipeline.errors import ConfigError
from pipeline.golive.dns import check_dns, make_resolver, parse_nameserver, server_label
from pipeline.golive.names import names_for
from pipeline.golive.records import dns_records, quote_txt, zone_snippet
from pipeline.settings_spec import Address
from tests.support.dns_server import ZoneServer

REGION = "eu-west-1"
TOKENS = (
    "4fkzq6xyb2u7tq3ngsv2h5qeq4rmwbd3",
    "m3y7fzq2ndb3l5x4tbj4rfqo3e7hwtka",
    "p6bvd2ys4mkq7n3hzr2ewfx5tj6lqc4u",
)
REPORTS = "dmarc@painfreeliving.example.com"
DOMAIN = "painfreeliving.example.com"
BOUNCE = f"bounce.{DOMAIN}"
SES_SPF = 'amazonses.com. 3600 IN TXT "v=spf1 ip4:199.255.192.0/22 ip4:54.240.0.0/18 -all"\n'
"""The rest of the internet the zone stands in for: the record SES publishes."""


@pytest.fixture
def names(settings):
    return names_for(settings)


@pytest.fixture
def good_zone(names) -> str:
    """The snippet `publish setup ses` prints, plus amazonses.com's SPF."""
    return zone_snippet(dns_records(names, REGION, TOKENS, REPORTS, receive=True)) + SES_SPF


def edit(zone: str, drop: str = "", add: str = "") -> str:
    """``zone`` without its lines that contain ``drop``, plus the lines ``add``."""
    kept = [line for line in zone.splitlines() if not drop or drop not in line]
    return "\n".join(kept) + "\n" + add


def check(dns_zone, names, zone, *, tokens=TOKENS, receive=True, **served):
    return check_at(dns_zone(zone, **served), names, tokens=tokens, receive=receive)


def check_at(address, names, *, tokens=TOKENS, receive=True):
    """Every DNS check, asking the name server at ``address``."""
    resolver = make_resolver(address, timeout=2)
    return check_dns(resolver, names, REGION, tokens, receive=receive, dmarc_report=REPORTS)


def lines(findings, level=None, subject=None):
    return [
        item.line()
        for item in findings
        if (level is None or item.level == level) and (subject is None or item.subject == subject)
    ]


def test_the_printed_snippet_served_as_the_zone_passes_every_check(dns_zone, names, good_zone):
    findings = check(dns_zone, names, good_zone)
    assert lines(findings, "error") == lines(findings, "warning") == []
    assert [item.subject for item in findings] == [
        "DKIM",
        "SPF",
        "SPF",
        "MAIL FROM",
        "DMARC",
        "receiving",
    ]
    assert lines(findings, subject="DMARC") == [
        "ok: DMARC: p=none, DKIM and SPF aligned; move to p=quarantine after a few weeks "
        "of clean reports"
    ]
    assert f"ok: SPF: {BOUNCE} needs 1 of at most 10 DNS lookups" in lines(findings)


def test_no_spf_record_names_the_record_to_add(dns_zone, names, good_zone):
    findings = check(dns_zone, names, edit(good_zone, drop="v=spf1 include:amazonses.com"))
    assert lines(findings, "error") == [
        f"error: SPF: no SPF record at {BOUNCE} "
        f'(fix: add {BOUNCE}. TXT "v=spf1 include:amazonses.com ~all")'
    ]
    # DKIM still aligns, so p=none passes on DKIM alone.
    assert lines(findings, subject="DMARC")[0].startswith("ok: DMARC: p=none, DKIM aligned")


def test_two_spf_records_are_a_permerror(dns_zone, names, good_zone):
    zone = good_zone + f'{BOUNCE}. 3600 IN TXT "v=spf1 include:_spf.google.com ~all"\n'
    [problem] = lines(check(dns_zone, names, zone), "error")
    assert problem.startswith(f"error: SPF: 2 SPF records at {BOUNCE}: RFC 7208 4.5: permerror")
    assert "delete the others" in problem


def test_spf_without_amazonses_fails(dns_zone, names, good_zone):
    zone = edit(
        good_zone,
        drop="v=spf1 include:amazonses.com",
        add=(f'{BOUNCE}. 3600 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'),
    )
    assert lines(check(dns_zone, names, zone), "error", "SPF") == [
        f"error: SPF: the SPF record at {BOUNCE} does not include amazonses.com (fix: add "
        f'include:amazonses.com before its all, e.g. {BOUNCE}. TXT "v=spf1 include:amazonses.com ~all")'
    ]


def nested_includes(last: str) -> str:
    """2 lookups at the MAIL FROM domain, 3 in l1, 4 in l2, and ``last`` in l3."""
    return (
        f'{BOUNCE}. 3600 IN TXT "v=spf1 include:amazonses.com include:l1.example.net ~all"\n'
        'l1.example.net. 3600 IN TXT "v=spf1 a mx include:l2.example.net -all"\n'
        'l2.example.net. 3600 IN TXT "v=spf1 a mx ip4:192.0.2.1 exists:%{i}.x.example.net '
        'include:l3.example.net -all"\n'
        f'l3.example.net. 3600 IN TXT "v=spf1 {last} -all"\n'
        "l1.example.net. 3600 IN A 192.0.2.1\n"
    )


@pytest.mark.parametrize(
    ("last", "verdict"),
    [
        ("a", f"ok: SPF: {BOUNCE} needs 10 of at most 10 DNS lookups"),
        (
            "a/24 mx:mail.example.net",
            "error: SPF: the SPF record at "
            f"{BOUNCE} needs 11 DNS lookups, more than the 10 RFC 7208 4.6.4 allows: permerror",
        ),
    ],
)
def test_lookups_are_counted_through_nested_includes(dns_zone, names, good_zone, last, verdict):
    zone = edit(good_zone, drop="v=spf1", add=nested_includes(last))
    [found] = [line for line in lines(check(dns_zone, names, zone)) if "lookups" in line]
    assert found.startswith(verdict)


def test_a_loop_of_includes_stops_past_the_limit(dns_zone, names, good_zone):
    zone = edit(
        good_zone,
        drop="v=spf1",
        add=(
            f'{BOUNCE}. 3600 IN TXT "v=spf1 include:amazonses.com include:loop.example.net ~all"\n'
            'loop.example.net. 3600 IN TXT "v=spf1 include:loop.example.net -all"\n'
        ),
    )
    started = time.monotonic()
    findings = check(dns_zone, names, zone)
    assert time.monotonic() - started < 10
    assert any("needs at least 11 DNS lookups" in line for line in lines(findings, "error"))


def test_an_include_without_spf_record_is_a_permerror(dns_zone, names, good_zone):
    zone = edit(
        good_zone,
        drop="v=spf1",
        add=(
            f'{BOUNCE}. 3600 IN TXT "v=spf1 include:amazonses.com include:gone.example.net ~all"\n'
            + SES_SPF
        ),
    )
    assert lines(check(dns_zone, names, zone), "error", "SPF")[0].startswith(
        "error: SPF: include:gone.example.net has no SPF record, a permerror"
    )


def test_a_long_spf_record_is_read_whole_over_tcp(dns_zone, names, good_zone):
    ranges = " ".join(f"ip4:198.51.{n}.0/24" for n in range(40))
    record = f"v=spf1 {ranges} include:amazonses.com ~all"
    assert len(record) > 512  # past one string, and truncated over UDP
    zone = edit(
        good_zone, drop="v=spf1", add=f"{BOUNCE}. 3600 IN TXT {quote_txt(record)}\n" + SES_SPF
    )
    findings = check(dns_zone, names, zone)
    assert lines(findings, "error") == []
    assert f"ok: SPF: {BOUNCE} lets SES send (include:amazonses.com)" in lines(findings)


def test_a_missing_or_wrong_dkim_cname_names_the_record(dns_zone, names, good_zone):
    missing, wrong, _ = TOKENS
    zone = edit(
        edit(good_zone, drop=missing),
        drop=wrong,
        add=(f"{wrong}._domainkey.{DOMAIN}. 3600 IN CNAME {wrong}.dkim.amazonses.com.{DOMAIN}.\n"),
    )
    findings = check(dns_zone, names, zone)
    assert lines(findings, "error") == [
        f"error: DKIM: no CNAME at {missing}._domainkey.{DOMAIN} (fix: add "
        f"{missing}._domainkey.{DOMAIN}. CNAME {missing}.dkim.amazonses.com.)",
        f"error: DKIM: {wrong}._domainkey.{DOMAIN} points to {wrong}.dkim.amazonses.com.{DOMAIN}, "
        f"not {wrong}.dkim.amazonses.com (fix: change the CNAME to "
        f"{wrong}._domainkey.{DOMAIN}. CNAME {wrong}.dkim.amazonses.com.)",
    ]
    assert lines(findings, subject="DMARC")[0].startswith("ok: DMARC: p=none, SPF aligned")


def with_dmarc(zone: str, value: str) -> str:
    return edit(zone, drop="_dmarc.", add=f'_dmarc.{DOMAIN}. 3600 IN TXT "{value}"\n')


def test_strict_dmarc_that_nothing_aligns_with_rejects_everything(dns_zone, names, good_zone):
    zone = with_dmarc(
        edit(good_zone, drop=TOKENS[0]),
        f"v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:{REPORTS}",
    )
    [verdict] = lines(check(dns_zone, names, zone), subject="DMARC")
    assert verdict.startswith(
        f"error: DMARC: p=reject, and neither DKIM nor SPF aligns with {DOMAIN}: "
        "every message would be rejected (fix: fix the DKIM records; set aspf=r"
    )


def test_only_one_aligned_under_quarantine_is_a_warning(dns_zone, names, good_zone):
    zone = with_dmarc(good_zone, f"v=DMARC1; p=quarantine; aspf=s; rua=mailto:{REPORTS}")
    [verdict] = lines(check(dns_zone, names, zone), subject="DMARC")
    assert verdict.startswith(f"warning: DMARC: p=quarantine, but only DKIM aligns with {DOMAIN}")
    assert "set aspf=r" in verdict


def test_reject_with_both_aligned_passes_and_no_rua_warns(dns_zone, names, good_zone):
    zone = with_dmarc(good_zone, "v=DMARC1; p=reject")
    assert lines(check(dns_zone, names, zone), subject="DMARC") == [
        "ok: DMARC: p=reject, DKIM and SPF aligned",
        f"warning: DMARC: no rua= at _dmarc.{DOMAIN}: no one gets the reports that show what "
        f"passes (fix: add rua=mailto:{REPORTS} to the TXT record at _dmarc.{DOMAIN})",
    ]


def test_no_dmarc_record_or_two_is_an_error(dns_zone, names, good_zone):
    [missing] = lines(check(dns_zone, names, edit(good_zone, drop="_dmarc.")), subject="DMARC")
    assert missing == (
        f"error: DMARC: no DMARC record at _dmarc.{DOMAIN}: Gmail and Yahoo require one for "
        f'bulk senders (fix: add _dmarc.{DOMAIN}. TXT "v=DMARC1; p=none; rua=mailto:{REPORTS}")'
    )
    two = good_zone + f'_dmarc.{DOMAIN}. 3600 IN TXT "v=DMARC1; p=reject"\n'
    [twice] = lines(check(dns_zone, names, two), subject="DMARC")
    assert twice.startswith(f"error: DMARC: 2 DMARC records at _dmarc.{DOMAIN}")
    [no_policy] = lines(
        check(dns_zone, names, with_dmarc(good_zone, "v=DMARC1; p=never")), subject="DMARC"
    )
    assert no_policy.startswith(
        f"error: DMARC: the DMARC record at _dmarc.{DOMAIN} has no valid p="
    )


# -- DMARC for a From on a subdomain: the DNS tree walk -------------------------

SUB = f"news.{DOMAIN}"
NO_ANSWER_FIX = "(fix: check that the name server answers, or pass another --nameserver IP[:PORT])"


def names_from(settings, domain: str):
    return names_for(dataclasses.replace(settings, sender=Address(f"newsletter@{domain}")))


@pytest.fixture
def sub_names(settings):
    return names_from(settings, SUB)


def zone_without_dmarc(names) -> str:
    """The snippet printed for ``names``, with amazonses.com's SPF, without its DMARC record."""
    snippet = zone_snippet(dns_records(names, REGION, TOKENS, REPORTS, receive=True))
    return edit(snippet + SES_SPF, drop="_dmarc.")


@pytest.fixture
def sub_zone(sub_names) -> str:
    return zone_without_dmarc(sub_names)


def at_org(value: str) -> str:
    return f'_dmarc.{DOMAIN}. 3600 IN TXT "{value}"\n'


@pytest.fixture
def zone_server():
    """Like dns_zone, but the server itself, to read back the queries it received."""
    started: list[ZoneServer] = []

    def serve(zone: str, **served) -> ZoneServer:
        started.append(ZoneServer(zone, **served))
        return started[-1]

    yield serve
    for server in started:
        server.close()


def dmarc_queries(server: ZoneServer) -> list[str]:
    return [name for kind, name in server.resolver.queries if name.startswith("_dmarc.")]


@pytest.mark.parametrize(
    ("record", "verdict"),
    [
        (
            f"v=DMARC1; p=reject; sp=none; rua=mailto:{REPORTS}",
            f"ok: DMARC: sp=none at _dmarc.{DOMAIN} (the organizational domain's policy for its "
            f"subdomain {SUB}), DKIM and SPF aligned; move to sp=quarantine after a few weeks of "
            "clean reports",
        ),
        (
            f"v=DMARC1; p=reject; rua=mailto:{REPORTS}",
            f"ok: DMARC: p=reject at _dmarc.{DOMAIN} (the organizational domain's policy for {SUB} "
            "too, as the record has no sp=), DKIM and SPF aligned",
        ),
    ],
)
def test_a_subdomain_gets_the_organizational_domains_policy(
    dns_zone, sub_names, sub_zone, record, verdict
):
    # Relaxed SPF alignment: bounce.news.DOMAIN and news.DOMAIN share DOMAIN.
    assert lines(check(dns_zone, sub_names, sub_zone + at_org(record)), subject="DMARC") == [
        verdict
    ]


def test_the_organizational_sp_reject_with_strict_spf_names_where_to_fix(
    dns_zone, sub_names, sub_zone
):
    record = f"v=DMARC1; p=none; sp=reject; aspf=s; rua=mailto:{REPORTS}"
    where = (
        f"sp=reject at _dmarc.{DOMAIN} (the organizational domain's policy for its subdomain {SUB})"
    )
    relax = (
        f"set aspf=r at _dmarc.{DOMAIN} (the MAIL FROM domain bounce.{SUB} is a subdomain, "
        "aligned only under relaxed SPF alignment)"
    )
    [nothing] = lines(
        check(dns_zone, sub_names, edit(sub_zone, drop=TOKENS[0]) + at_org(record)),
        "error",
        "DMARC",
    )
    assert nothing == (
        f"error: DMARC: {where}, and neither DKIM nor SPF aligns with {SUB}: every message "
        f"would be rejected (fix: fix the DKIM records; {relax}, or set sp=none at "
        f"_dmarc.{DOMAIN} until they align)"
    )
    [only_dkim] = lines(check(dns_zone, sub_names, sub_zone + at_org(record)), subject="DMARC")
    assert only_dkim == (
        f"warning: DMARC: {where}, but only DKIM aligns with {SUB}: a message that fails it "
        f"would be rejected (fix: {relax})"
    )


def test_a_record_at_the_subdomain_wins_over_the_parents(zone_server, sub_names, sub_zone):
    zone = (
        sub_zone
        + at_org("v=DMARC1; p=reject; sp=reject")
        + (f'_dmarc.{SUB}. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:{REPORTS}"\n')
    )
    server = zone_server(zone)
    findings = check_at(server.address, sub_names)
    assert lines(findings, subject="DMARC") == [
        "ok: DMARC: p=none, DKIM and SPF aligned; move to p=quarantine after a few weeks "
        "of clean reports"
    ]
    assert dmarc_queries(server) == [f"_dmarc.{SUB}."]


@pytest.mark.parametrize(
    ("domain", "walked"),
    [
        (SUB, [SUB, DOMAIN, "example.com"]),
        # Past 8 labels the walk jumps to the last 7.
        (
            f"a.b.c.d.e.f.{SUB}",
            [
                f"a.b.c.d.e.f.{SUB}",
                f"d.e.f.{SUB}",
                f"e.f.{SUB}",
                f"f.{SUB}",
                SUB,
                DOMAIN,
                "example.com",
            ],
        ),
    ],
)
def test_no_record_anywhere_walks_up_to_but_not_the_tld(zone_server, settings, domain, walked):
    names = names_from(settings, domain)
    server = zone_server(zone_without_dmarc(names))
    findings = check_at(server.address, names)
    assert lines(findings, subject="DMARC") == [
        f"error: DMARC: no DMARC record at _dmarc.{domain}: Gmail and Yahoo require one for "
        f'bulk senders (fix: add _dmarc.{domain}. TXT "v=DMARC1; p=none; rua=mailto:{REPORTS}")'
    ]
    assert dmarc_queries(server) == [f"_dmarc.{name}." for name in walked]


@pytest.mark.parametrize(
    ("served", "problem"),
    [
        (
            {"silent": [f"_dmarc.{DOMAIN}"]},
            "no answer from {server} for TXT _dmarc.{domain} within 0.3 s",
        ),
        ({"servfail": [f"_dmarc.{DOMAIN}"]}, "SERVFAIL from {server} for TXT _dmarc.{domain}"),
    ],
)
def test_a_parent_that_does_not_answer_is_named(dns_zone, sub_names, sub_zone, served, problem):
    resolver = make_resolver(dns_zone(sub_zone + at_org("v=DMARC1; p=none"), **served), timeout=0.3)
    findings = check_dns(resolver, sub_names, REGION, TOKENS, receive=True)
    message = problem.format(server=server_label(resolver), domain=DOMAIN)
    assert lines(findings, "error") == [f"error: DMARC: {message} {NO_ANSWER_FIX}"]
    assert len(lines(findings, "ok")) == 5


def test_two_dmarc_records_at_the_parent_are_an_error_naming_it(dns_zone, sub_names, sub_zone):
    zone = sub_zone + at_org("v=DMARC1; p=reject") + at_org("v=DMARC1; p=none")
    assert lines(check(dns_zone, sub_names, zone), subject="DMARC") == [
        f"error: DMARC: 2 DMARC records at _dmarc.{DOMAIN}: receivers then apply none (fix: "
        f'keep one at _dmarc.{DOMAIN}, or publish _dmarc.{SUB}. TXT "v=DMARC1; p=none; '
        f'rua=mailto:{REPORTS}")'
    ]


def test_a_mail_from_mx_in_another_region_is_an_error(dns_zone, names, good_zone):
    zone = edit(
        good_zone,
        drop="feedback-smtp",
        add=(f"{BOUNCE}. 3600 IN MX 10 feedback-smtp.us-east-1.amazonses.com.\n"),
    )
    findings = check(dns_zone, names, zone)
    assert lines(findings, "error") == [
        f"error: MAIL FROM: the MX at {BOUNCE} points to feedback-smtp.us-east-1.amazonses.com, "
        f"not feedback-smtp.{REGION}.amazonses.com: SES then falls back to a MAIL FROM under "
        "amazonses.com, and SPF no longer aligns (fix: change the MX to "
        f"{BOUNCE}. MX 10 feedback-smtp.{REGION}.amazonses.com.)"
    ]
    # SPF passes for bounce.DOMAIN but SES no longer uses it: only DKIM aligns.
    assert lines(findings, subject="DMARC")[0].startswith("ok: DMARC: p=none, DKIM aligned")


def test_the_receiving_mx_is_checked_only_when_receiving(dns_zone, names, good_zone):
    zone = edit(good_zone, drop="inbound-smtp")
    assert lines(check(dns_zone, names, zone), "error") == [
        f"error: receiving: no MX at list.{DOMAIN}: unsubscribe mail to it does not reach SES "
        f"(fix: add list.{DOMAIN}. MX 10 inbound-smtp.{REGION}.amazonaws.com.)"
    ]
    assert lines(check(dns_zone, names, zone, receive=False), subject="receiving") == []


def test_without_tokens_dkim_says_to_run_setup(dns_zone, names, good_zone):
    findings = check(dns_zone, names, good_zone, tokens=())
    assert lines(findings, "error") == [
        f"error: DKIM: SES has no DKIM tokens for {DOMAIN} yet, so its records cannot be "
        "checked (fix: run `publish setup ses`, then add the three DKIM CNAMEs it prints)"
    ]
    assert lines(findings, subject="DMARC")[0].startswith("ok: DMARC: p=none, SPF aligned")


def test_servfail_is_one_error_and_the_other_checks_go_on(dns_zone, names, good_zone):
    resolver = make_resolver(dns_zone(good_zone, servfail=[f"_dmarc.{DOMAIN}"]), timeout=2)
    findings = check_dns(resolver, names, REGION, TOKENS, receive=True)
    server = server_label(resolver)
    assert lines(findings, "error") == [
        f"error: DMARC: SERVFAIL from {server} for TXT _dmarc.{DOMAIN} (fix: check that the "
        "name server answers, or pass another --nameserver IP[:PORT])"
    ]
    assert len(lines(findings, "ok")) == 5


def test_a_silent_server_times_out_each_query_within_its_bound(silent_dns, names):
    timeout = 0.3
    resolver = make_resolver(silent_dns, timeout=timeout)
    started = time.monotonic()
    findings = check_dns(resolver, names, REGION, TOKENS, receive=True)
    elapsed = time.monotonic() - started
    queries = 7  # three CNAMEs, SPF's TXT, two MX, DMARC's TXT
    assert elapsed < queries * timeout + 3
    assert [item.level for item in findings] == ["error"] * queries
    assert findings[3].line() == (
        f"error: SPF: no answer from {silent_dns} for TXT {BOUNCE} within 0.3 s (fix: check "
        "that the name server answers, or pass another --nameserver IP[:PORT])"
    )
    assert {item.subject for item in findings} == {"DKIM", "SPF", "MAIL FROM", "DMARC", "receiving"}


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_nameserver_addresses(text, parsed):
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize("text", ["dns.example.com", "127.0.0.1:0", "127.0.0.1:99999", "[::1]x"])
def test_a_bad_nameserver_is_a_one_line_error(text):
    with pytest.raises(ConfigError, match=r"^--nameserver .*: expected IP\[:PORT\]"):
        make_resolver(text)


# -- the zone-file snippet -----------------------------------------------------


def parsed(snippet: str) -> list[tuple[str, str, int, str]]:
    """Each record as dnslib's zone parser reads it back: (name, type, ttl, data)."""
    out = []
    for rr in RR.fromZone(snippet):
        txt = rr.rtype == QTYPE.TXT
        data = b"".join(rr.rdata.data).decode() if txt else rr.rdata.toZone()
        out.append((str(rr.rname), QTYPE[rr.rtype], rr.ttl, data))
    return out


def test_the_snippet_is_zone_syntax_with_every_record(names):
    snippet = zone_snippet(dns_records(names, REGION, TOKENS, REPORTS, receive=True))
    assert parsed(snippet) == [
        *[(f"{t}._domainkey.{DOMAIN}.", "CNAME", 3600, f"{t}.dkim.amazonses.com.") for t in TOKENS],
        (f"{BOUNCE}.", "MX", 3600, f"10 feedback-smtp.{REGION}.amazonses.com."),
        (f"{BOUNCE}.", "TXT", 3600, "v=spf1 include:amazonses.com ~all"),
        (f"_dmarc.{DOMAIN}.", "TXT", 3600, f"v=DMARC1; p=none; rua=mailto:{REPORTS}"),
        (f"list.{DOMAIN}.", "MX", 3600, f"10 inbound-smtp.{REGION}.amazonaws.com."),
    ]
    groups = snippet.split("\n\n")
    assert [group.split(":")[0] for group in groups] == [
        "; DKIM (Easy DKIM)",
        "; MAIL FROM",
        "; DMARC",
        "; Receiving",
    ]
    records = [line for line in snippet.splitlines() if line and not line.startswith(";")]
    assert len({line.index(" IN ") for line in records}) == 1  # aligned columns
    assert len({line.index(line.split()[4], line.index(" IN ") + 4) for line in records}) == 1


def test_before_the_identity_exists_dkim_is_a_comment_not_invented_tokens(names):
    snippet = zone_snippet(dns_records(names, REGION, [], "", receive=False))
    assert [kind for _, kind, _, _ in parsed(snippet)] == ["MX", "TXT", "TXT"]
    dkim = snippet.split("\n\n")[0]
    assert all(line.startswith("; ") for line in dkim.splitlines())
    assert "`publish setup ses`" in dkim
    assert "TOKEN._domainkey" in dkim
    assert "inbound-smtp" not in snippet
    assert (f"_dmarc.{DOMAIN}.", "TXT", 3600, "v=DMARC1; p=none") in parsed(snippet)


def test_long_and_quoted_txt_reads_back_whole():
    text = 'say "hi" \\ ' + "x" * 600
    [rr] = RR.fromZone(f"t.example.com. 60 IN TXT {quote_txt(text)}")
    assert [len(part) <= 255 for part in rr.rdata.data] == [True] * 3
    assert b"".join(rr.rdata.data).decode() == text
