"""`publish setup ses` and the DMARC policy DNS already has, against a real
DNS server on loopback (dnslib) and moto behind the SES stand-in: the p=none
record is printed only where no policy covers the sending domain; a record
of the domain's own is kept, a parent's is never overridden, and DNS that
cannot be read is a warning, never a failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.support.dns_server import ZoneServer

runner = CliRunner()
DOMAIN = "painfreeliving.example.com"
SUB = f"news.{DOMAIN}"
REPLY_TO = "dana@painfreeliving.example.com"
NONE_RECORD = f'"v=DMARC1; p=none; rua=mailto:{REPLY_TO}"'
DRY = [[], ["--dry-run"]]


def setup(nameserver: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["setup", "ses", "--nameserver", nameserver, *args])


def at(domain: str, value: str) -> str:
    return f'_dmarc.{domain}. 3600 IN TXT "{value}"\n'


def to_add(out: str) -> list[str]:
    """The DMARC records of the snippet to add, as printed."""
    return [line for line in out.splitlines() if line.startswith("_dmarc.")]


def dmarc_said(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("DMARC:", "warning: DNS"))]


@pytest.fixture
def zone_server() -> Iterator[Callable[..., ZoneServer]]:
    """Like dns_zone, but the server itself, to read back the queries it received."""
    started: list[ZoneServer] = []

    def serve(zone: str, **served: list[str]) -> ZoneServer:
        started.append(ZoneServer(zone, **served))
        return started[-1]

    yield serve
    for server in started:
        server.close()


@pytest.fixture
def subdomain(monkeypatch: pytest.MonkeyPatch) -> str:
    """The newsletter sends from news.DOMAIN."""
    monkeypatch.setenv("NEWSLETTER_FROM", f"Pain Free Living <newsletter@{SUB}>")
    return SUB


@pytest.mark.parametrize("args", DRY)
def test_a_record_of_the_domains_own_is_kept(newsletter, ses_standin, dns_zone, args) -> None:
    record = f"v=DMARC1; p=reject; rua=mailto:reports@{DOMAIN}"
    result = setup(dns_zone(at(DOMAIN, record)), *args)
    assert result.exit_code == 0, result.output
    assert to_add(result.stdout) == []
    assert dmarc_said(result.stdout) == [
        f'DMARC: _dmarc.{DOMAIN} already publishes "{record}" (kept)'
    ]
    assert f"bounce.{DOMAIN}." in result.stdout  # the other records are still there to add
    assert "; DMARC:" not in result.stdout


def test_two_records_at_the_name_are_an_error_and_none_is_added(
    newsletter, ses_standin, dns_zone
) -> None:
    zone = at(DOMAIN, "v=DMARC1; p=reject") + at(DOMAIN, "v=DMARC1; p=none")
    result = setup(dns_zone(zone))
    assert result.exit_code == 0, result.output
    assert to_add(result.stdout) == []
    [said] = dmarc_said(result.stdout)
    assert said.startswith(f"DMARC: _dmarc.{DOMAIN} has 2 DMARC records")
    assert "receivers treat as no DMARC" in said and "delete all but one" in said
    steps = result.stdout.split("next:", 1)[1]
    assert f"delete all but one of the 2 DMARC records at _dmarc.{DOMAIN}" in steps


@pytest.mark.parametrize("args", DRY)
def test_a_parents_reject_covers_the_subdomain_and_is_not_overridden(
    newsletter, ses_standin, zone_server, subdomain, args
) -> None:
    record = f"v=DMARC1; p=reject; rua=mailto:reports@{DOMAIN}"
    server = zone_server(at(DOMAIN, record))
    result = setup(server.address, *args)
    assert result.exit_code == 0, result.output
    assert to_add(result.stdout) == []
    assert dmarc_said(result.stdout) == [
        f"DMARC: {SUB} is covered by _dmarc.{DOMAIN}, whose p=reject applies to it (no sp=): "
        f'"{record}"; a record at _dmarc.{SUB} would override it, so none is added'
    ]
    # The doctor's walk: the subdomain first, then the parent, where it stops.
    dmarc = [name for kind, name in server.resolver.queries if name.startswith("_dmarc.")]
    assert dmarc == [f"_dmarc.{SUB}.", f"_dmarc.{DOMAIN}."]


def test_a_parents_sp_none_still_adds_nothing_and_says_where_to_raise_it(
    newsletter, ses_standin, dns_zone, subdomain
) -> None:
    record = "v=DMARC1; p=reject; sp=none"
    result = setup(dns_zone(at(DOMAIN, record)))
    assert result.exit_code == 0, result.output
    assert to_add(result.stdout) == []
    [said] = dmarc_said(result.stdout)
    assert said.startswith(
        f"DMARC: {SUB} is covered by _dmarc.{DOMAIN}, whose sp=none applies to it: "
        f'"{record}"; a record at _dmarc.{SUB} would override it, so none is added'
    )
    assert said.endswith(f"raise sp= at _dmarc.{DOMAIN} once its reports are clean")


@pytest.mark.parametrize("args", DRY)
def test_nothing_anywhere_prints_the_none_record_as_before(
    newsletter, ses_standin, zone_server, args
) -> None:
    server = zone_server(f'{DOMAIN}. 3600 IN TXT "v=spf1 -all"\n')  # no _dmarc. name at all
    result = setup(server.address, *args)
    assert result.exit_code == 0, result.output
    [line] = to_add(result.stdout)
    assert line.startswith(f"_dmarc.{DOMAIN}.") and line.endswith(f"IN  TXT    {NONE_RECORD}")
    assert f"; DMARC: reports on mail from {DOMAIN}" in result.stdout
    assert dmarc_said(result.stdout) == []
    dmarc = [name for kind, name in server.resolver.queries if name.startswith("_dmarc.")]
    assert dmarc == [f"_dmarc.{DOMAIN}.", "_dmarc.example.com."]  # never _dmarc.com


@pytest.mark.parametrize("fault", ["silent", "servfail"])
def test_dns_that_cannot_be_read_prints_the_record_with_a_warning(
    newsletter, ses_standin, dns_zone, fault
) -> None:
    address = dns_zone(at(DOMAIN, "v=DMARC1; p=reject"), **{fault: [f"_dmarc.{DOMAIN}"]})
    result = setup(address)
    assert result.exit_code == 0, result.output
    [line] = to_add(result.stdout)
    assert line.endswith(NONE_RECORD)
    [warning] = dmarc_said(result.stdout)
    assert warning.startswith(
        f"warning: DNS could not be read to see whether a DMARC policy already covers {DOMAIN} "
    )
    assert f"for TXT _dmarc.{DOMAIN}" in warning and address in warning
    assert warning.endswith("check for one before adding the DMARC record above")
    assert "created the SES identity" in result.stdout  # setup itself went on


def test_no_name_server_answering_at_all_is_the_same_warning(
    newsletter, ses_standin, silent_dns
) -> None:
    result = setup(silent_dns, "--dry-run")
    assert result.exit_code == 0, result.output
    assert to_add(result.stdout) != []
    [warning] = dmarc_said(result.stdout)
    assert f"no answer from {silent_dns} for TXT _dmarc.{DOMAIN} within 2 s" in warning


def test_a_malformed_nameserver_is_one_line_before_any_aws_call(newsletter, ses_standin) -> None:
    result = setup("ns.example.com")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --nameserver 'ns.example.com': expected IP[:PORT]")
    assert ses_standin.calls == []


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        (
            (DOMAIN, ("v=DMARC1; p=always",)),
            f"DMARC: {SUB} is covered by _dmarc.{DOMAIN}, whose p=always is not a policy "
            '(none, quarantine or reject): "v=DMARC1; p=always"; fix it there: a record at '
            f"_dmarc.{SUB} would override it, so none is added",
        ),
        (
            (DOMAIN, ("v=DMARC1; p=reject", "v=DMARC1; p=none")),
            f"DMARC: _dmarc.{DOMAIN} has 2 DMARC records, an error receivers treat as no DMARC "
            f"at all (RFC 7489 6.6.3), for {SUB} too: delete all but one there (it then covers "
            f"{SUB}, so none is added at _dmarc.{SUB})",
        ),
        (
            (SUB, ("v=DMARC1;\x1b[2Jp=none",)),
            f'DMARC: _dmarc.{SUB} already publishes "v=DMARC1;?[2Jp=none" (kept)',
        ),
    ],
)
def test_what_is_said_of_a_policy_found(seen: tuple[str, tuple[str, ...]], said: str) -> None:
    from pipeline.golive.setup_dmarc import DmarcSeen, adds_record, dmarc_lines

    found = DmarcSeen(*seen)
    assert not adds_record(found)
    assert dmarc_lines(SUB, found) == [said]
