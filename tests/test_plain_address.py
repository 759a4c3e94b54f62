"""The plain address takes a short path that must agree with email-validator
on every address it accepts, and must spare the settings its loading."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator import rfc_constants as rfc

from subscribers import plain_address as plain
from subscribers.addresses import normalize_address

ROOT = Path(__file__).resolve().parent.parent

LOCALS = [
    "dana", "Dana.Whitfield", "a", "a.b.c", "o'hara", "x+tag", "first_last", "{weird}", "a/b",
    "~", "#", "INFO", "Info", "info", "postmaster", "WWW", "news.letter", "infos",
    ".a", "a.", "a..b", "", "a b", '"quoted"', "é", "a@b", "a(b)", "a,b", "a;b", "a[b]", "a\\b",
    "x" * 64, "x" * 65, "x" * 200,
]
DOMAINS = [
    "example.com", "painfreeliving.example.com", "a.bc", "a-b.c-d.org", "x1.y2.io", "b.co",
    "EXAMPLE.COM", "Example.com", "com", "localhost", "a.local", "mail.test", "test", "x.invalid",
    "onion", "a.onion", "in-addr.arpa", "a.arpa", "example.123", "1.2.3.4", "example.c0m",
    "-a.com", "a-.com", "a..com", ".a.com", "a.com.", "a--b.com", "ab--cd.com", "xn--fa-hia.de",
    "a_b.com", "ex ample.com", "faß.de", "[127.0.0.1]", "a.b-", "a.-b",
    "l" * 63 + ".com", "l" * 64 + ".com", ".".join(["abcdefghi"] * 25) + ".com",
    ".".join(["abcdefghi"] * 25) + ".co",
]


def slow(candidate: str) -> str | None:
    """email-validator's verdict: the address it normalizes to, or None."""
    try:
        return str(validate_email(candidate, check_deliverability=False, allow_smtputf8=False).ascii_email)
    except EmailNotValidError:
        return None


def candidates() -> list[str]:
    made = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
    made += ["", "@", "no-at-sign", "a@b@example.com", "@example.com", "a@", "a@@example.com"]
    shuffle = random.Random(17)
    alphabet = "abcXYZ019.-_+@'!~é \"[]"
    for _ in range(4000):
        local = "".join(shuffle.choice(alphabet[:-4]) for _ in range(shuffle.randint(0, 8)))
        domain = "".join(shuffle.choice("abz09.-") for _ in range(shuffle.randint(0, 12)))
        made.append(f"{local}@{domain}")
    return made


def test_the_rules_are_email_validators_own():
    assert plain.ATEXT == rfc.ATEXT
    assert plain.EMAIL_MAX_LENGTH == rfc.EMAIL_MAX_LENGTH
    assert plain.DOMAIN_MAX_LENGTH == rfc.DOMAIN_MAX_LENGTH
    assert plain.DNS_LABEL_LENGTH_LIMIT == rfc.DNS_LABEL_LENGTH_LIMIT
    mailboxes, special = plain.CASE_INSENSITIVE_MAILBOX_NAMES, plain.SPECIAL_USE_DOMAIN_NAMES
    assert mailboxes == frozenset(rfc.CASE_INSENSITIVE_MAILBOX_NAMES)
    assert special == tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def test_every_address_the_short_path_takes_is_what_email_validator_makes_of_it():
    taken = 0
    for candidate in candidates():
        fast = plain.plain_address(candidate)
        if fast is not None:
            taken += 1
            assert fast == slow(candidate), candidate
    assert taken > 200  # the short path is the usual one, not a rare one


@pytest.mark.parametrize("candidate", ["Info@example.com", "a@xn--fa-hia.de", "a@EXAMPLE.COM"])
def test_what_email_validator_rewrites_is_left_to_it(candidate):
    assert plain.plain_address(candidate) is None
    assert slow(candidate) is not None


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        (" Dana@PainFreeLiving.Example.com ", "Dana@painfreeliving.example.com"),
        ("Info@example.com", "info@example.com"),
        ("a@faß.de", "a@xn--fa-hia.de"),
    ],
)
def test_normalize_address_gives_what_it_gave_before(text, stored):
    assert normalize_address(text) == stored


def test_plain_settings_never_load_email_validator():
    code = (
        "import sys\n"
        "from subscribers.addresses import normalize_address\n"
        "normalize_address('Pain.Free+news@PainFreeLiving.example.com')\n"
        "print('email_validator' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


NAMES = ["", "Dana", "Pain Free Living", "Dr Dana 2", "Dana  Whitfield", " Dana", "Dana ",
         "Dr. Dana", "O'Hara", "Dana, W", '"Dana"', "Dana (PT)", "Dána", "Dana;x", "a<b"]
SPECS = ["dana@example.com", "Pain.Free+news@PainFreeLiving.example.com", "a@b", "a..b@c.d",
         ".a@b.c", "a@b..c", "a@-b.c", "a b@c.d", '"a"@b.c', "a@[1.2.3.4]", "a@b.c.", "é@b.c", ""]


def test_every_address_split_short_is_what_parseaddr_splits():
    from email.utils import parseaddr

    taken = 0
    for name in NAMES:
        for spec in SPECS:
            for form in ("{name} <{spec}>", "{spec}", "{name}<{spec}>", "<{spec}>"):
                text = form.format(name=name, spec=spec)
                split = plain.split_plain(text)
                assert split is None or split == parseaddr(text), text
                taken += split is not None
    assert taken > 20


def test_random_text_split_short_is_what_parseaddr_splits():
    from email.utils import parseaddr

    rng = random.Random(20261201)
    alphabet = "ab Z9.@<>\"(),;:'+- \\[]é"
    taken = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16)))
        split = plain.split_plain(text)
        if split is not None:
            taken += 1
            assert split == parseaddr(text), text
    assert taken  # the short path was taken at least once


def test_the_settings_sender_is_read_without_the_email_package():
    code = (
        "import sys\n"
        "from pipeline.config import load_settings\n"
        "from pathlib import Path\n"
        f"load_settings(Path({str(ROOT)!r}))\n"
        "print('email.utils' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
