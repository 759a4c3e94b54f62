"""One domain normalization (IDNA 2008, UTS #46) on every path: the store,
the sender's addresses, --test-to, Message-IDs and URL hosts agree, and a
domain IDNA 2008 refuses is a one-line error naming where it came from."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from email_validator import validate_email
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.personalize import Personalizer, Recipient, UndeliverableAddress, ascii_address
from pipeline.render import render_issue
from subscribers.addresses import ascii_domain
from subscribers.errors import InvalidDomain, InvalidEmail
from subscribers.models import normalize_email
from subscribers.store import Store
from subscribers.tokens import Signer

ISSUE = "issues/2026-12-01-calf-stretch.md"
SIGNER = Signer("a test secret that is long enough")

# Where IDNA 2003 (Python's "idna" codec) and IDNA 2008 part ways, and the
# mappings UTS #46 makes before either: case, compatibility forms, dots.
DOMAINS = [
    "faß.de",  # 2003: fass.de, another domain
    "straße。de",  # an ideographic full stop
    "Bücher.Example",
    "İstanbul.example",
    "ﬁ.example",  # a ligature, mapped to "fi"
    "Ⅸ.example",  # a Roman numeral, mapped to "ix"
    "ԛәлп.com",
    "FASS.de",
    "xn--fa-hia.de",
]
REFUSED = ["☃.net", "xn--zz.example", "faß..de", "-faß.de", "ß" * 64 + ".de"]


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_domain_is_what_email_validator_makes_of_it(domain):
    expected = validate_email(
        f"x@{domain}", check_deliverability=False, allow_smtputf8=False
    ).ascii_domain
    assert ascii_domain(domain) == expected
    assert normalize_email(f"Dana@{domain}") == f"Dana@{expected}"
    assert ascii_address(f"Dana@{domain}") == f"Dana@{expected}"


def test_eszett_is_not_folded_into_another_domain():
    assert "faß.de".encode("idna") == b"fass.de"  # what the sender used to do
    assert ascii_domain("faß.de") == "xn--fa-hia.de"


@pytest.mark.parametrize("domain", REFUSED)
def test_a_domain_idna_2008_refuses(domain):
    with pytest.raises(InvalidDomain) as info:
        ascii_domain(domain)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidEmail):
        normalize_email(f"dana@{domain}")
    with pytest.raises(UndeliverableAddress):
        ascii_address(f"dana@{domain}")


def test_the_store_and_the_sender_agree(settings):
    with Store.open(settings.database_url, settings.root) as store:
        stored = store.add("dana@faß.de", name="Dana").email
    assert stored == "dana@xn--fa-hia.de"
    rendered = render_issue(load_issue(settings.root / ISSUE), Context.load(settings))
    message = Personalizer(rendered, settings, SIGNER.unsubscribe)(Recipient(1, "dana@faß.de"))
    assert message.recipient == stored
    assert parse(message.raw)["To"].addresses[0].addr_spec == stored


def write_settings(root: Path, replacements: dict[str, str]) -> None:
    path = root / "newsletter.toml"
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)


def test_a_sender_and_a_site_on_international_domains(newsletter):
    write_settings(
        newsletter,
        {
            "newsletter@painfreeliving.example.com": "newsletter@faß.de",
            "dana@painfreeliving.example.com": "dana@Straße.de",
            '"https://painfreeliving.example.com"': '"https://Bücher.example"',
        },
    )
    settings = load_settings(newsletter)
    assert settings.sender.email == "newsletter@xn--fa-hia.de"
    assert settings.reply_to.email == "dana@xn--strae-oqa.de"
    rendered = render_issue(load_issue(newsletter / ISSUE), Context.load(settings))
    message = Personalizer(rendered, settings, SIGNER.unsubscribe)(Recipient(1, "r@example.com"))
    parsed = parse(message.raw)
    assert message.sender == "newsletter@xn--fa-hia.de"
    assert parsed["From"].addresses[0].addr_spec == "newsletter@xn--fa-hia.de"
    assert parsed["Reply-To"].addresses[0].addr_spec == "dana@xn--strae-oqa.de"
    assert parsed["Message-ID"].rstrip(">").endswith("@xn--fa-hia.de")
    assert str(parsed["List-Id"]).endswith(".xn--bcher-kva.example>")
    assert "<https://xn--bcher-kva.example/unsubscribe/" in str(parsed["List-Unsubscribe"])


def test_test_to_an_international_domain(newsletter):
    result = CliRunner().invoke(app, ["issue", ISSUE, "--test-to", "dana@faß.de"])
    assert result.exit_code == 0, result.output
    [path] = (newsletter / "outbox").glob("*.eml")
    assert parse(path.read_bytes())["To"].addresses[0].addr_spec == "dana@xn--fa-hia.de"


@pytest.mark.parametrize(
    ("replacements", "key"),
    [
        ({"newsletter@painfreeliving.example.com": "newsletter@☃.net"}, "sender.from"),
        ({"dana@painfreeliving.example.com": "dana@xn--zz.example"}, "sender.reply_to"),
        (
            {'"https://painfreeliving.example.com"': '"https://☃.example"'},
            "newsletter.site_url",
        ),
    ],
)
def test_a_refused_domain_in_the_settings_is_one_line_naming_the_key(
    newsletter, replacements, key
):
    write_settings(newsletter, replacements)
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {key}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_a_refused_domain_for_test_to_is_one_line_naming_the_flag(newsletter):
    result = CliRunner().invoke(app, ["issue", ISSUE, "--test-to", "dana@☃.net"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --test-to: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (newsletter / "outbox").exists()
