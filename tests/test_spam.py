"""Every message the project sends scores at most 0.0 with offline SpamAssassin.

The messages are built by the project's own code and scored as the outbox
transport wrote them:

* ``publish issue --yes`` and ``publish issue --test-to`` (the ``[PREVIEW]``)
  of both sample issues of the test newsletter;
* the same for a stress issue: a wide table, a German title with umlauts and
  soft hyphens (U+00AD, carried into the subject), emoji, and an article
  long enough for about 90 KB of email HTML (under Gmail's 102 KB clip,
  which `publish check` enforces);
* the confirmation and welcome messages, mailed by the subscription service
  (:mod:`subscribers.mail`) through the outbox transport, as `publish serve`
  wires it.

Each goes through Debian's ``spamassassin -L -t``: local tests only (no DNS
blocklists, no network), with a HOME of its own so that no user's
preferences or Bayes database play a part, and the C locale.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, load_settings
from subscribers.service import Origin
from subscribers.store import Store
from tests.support.newsletter import copy_newsletter, isolated

SPAMASSASSIN = shutil.which("spamassassin")
pytestmark = pytest.mark.skipif(
    SPAMASSASSIN is None, reason="needs Debian's spamassassin (tests/run installs it)"
)

SHY = "\u00ad"
STRESS = "2026-12-29-schultern"
ISSUES = ("2026-12-01-calf-stretch", "2026-12-15-desk-wrist-routine", STRESS)
MESSAGES = [
    *(f"{issue}{kind}" for issue in ISSUES for kind in ("", " [PREVIEW]")),
    "confirm",
    "welcome",
]
runner = CliRunner()


# -- the stress issue ------------------------------------------------------------

_WORDS = [
    "Schulter",
    "Nacken",
    "Rücken",
    "Handgelenk",
    "Übung",
    "Dehnung",
    "Muskel",
    "Sehne",
    "Entspannung",
    "Bürostuhl",
    "Bildschirm",
    "Tastatur",
    "Haltung",
    "Atmung",
    "Wärme",
    "Bewegung",
    "Pause",
    "Ellbogen",
    "Unterarm",
    "Faszie",
    "Gelenk",
    "Kraft",
    "Ausdauer",
    "Geduld",
    "Schlüsselbein",
    "Brustwirbelsäule",
    "Oberarm",
    "Trapezmuskel",
]
_VERBS = ["lockert", "stärkt", "entlastet", "beruhigt", "dehnt", "wärmt", "bewegt", "mobilisiert"]
_WHEN = ("am Morgen", "in der Mittagspause", "nach dem Telefonat", "vor dem Schlafengehen")


def _article(size: int) -> str:
    """About ``size`` characters of German prose in sections, varied the way
    an article is (a fixed walk through the word lists, so every run makes
    the same issue), with a soft hyphen in every compound it builds."""
    paragraphs: list[str] = []
    step = 0
    while sum(len(p) for p in paragraphs) < size:
        if step % 6 == 0:
            paragraphs.append(f"## Abschnitt {step // 6 + 1}: Größere Beweglichkeit 🧘")
        sentences = []
        for n in range(4 + step % 5):
            first, second = (
                _WORDS[(step * 7 + n) % len(_WORDS)],
                _WORDS[(step * 3 + n * 5 + 1) % len(_WORDS)],
            )
            verb, when = _VERBS[(step + n) % len(_VERBS)], _WHEN[(step * 2 + n) % len(_WHEN)]
            sentences.append(
                f"Die {first}{SHY}übung {verb} {when} die {second.lower()}nahe Muskulatur, "
                f"und nach {n + 2} Wochen spüren viele Leser{SHY}innen den Unterschied."
            )
        paragraphs.append(" ".join(sentences))
        step += 1
    return "\n\n".join(paragraphs)


def _wide_table() -> str:
    columns = [
        "Übung",
        "Muskel",
        "Wiederholungen",
        "Dauer",
        "Häufigkeit",
        "Hilfsmittel",
        "Schwierigkeit",
        "Hinweis für Büroarbeiter",
    ]
    rows = [
        [f"{column} {row}: Schulter{SHY}blatt{SHY}mobilisation 💪" for column in columns]
        for row in range(1, 7)
    ]
    lines = [columns, ["---"] * len(columns), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def stress_issue() -> str:
    return f"""---
title: "Schulter{SHY}schmerzen am Schreib{SHY}tisch? Fünf Übungen für Büro{SHY}arbeiter 💪"
date: 2026-12-29
preheader: "Warum die Schultern verspannen, und fünf sanfte Übungen für die Mittagspause 🙂"
author: Dana Whitfield, PT
tags: [schultern, büro]
---
Liebe Leserinnen und Leser, heute geht es um die Schultern 😊 und darum, was
Sie am Schreibtisch für sie tun können. Mehr dazu im
[Forum](https://forum.painfreeliving.example.com/c/schultern).

{_wide_table()}

{_article(52_000)}

---

Bleiben Sie gesund und in Bewegung,
Dana

P.S. Kennen Sie jemanden, der den ganzen Tag am Bildschirm sitzt? Leiten Sie
diese E-Mail weiter 💌
"""


# -- the messages ------------------------------------------------------------------


def _new_files(outbox: Path, before: set[Path]) -> list[Path]:
    return sorted(set(outbox.glob("*.eml")) - before)


def _publish(settings: Settings, *args: str) -> Path:
    """Run `publish ARGS` (one message out); the outbox file it wrote."""
    before = set(settings.outbox_dir.glob("*.eml"))
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    (written,) = _new_files(settings.outbox_dir, before)
    return written


def _service_mail(settings: Settings) -> dict[str, Path]:
    """A signup's confirmation and, once it is confirmed, its welcome, mailed
    by the subscription service through the newsletter's outbox transport."""
    from pipeline.service_mail import service_mail
    from pipeline.transports import open_transport
    from subscribers.mail_template import OutgoingMessage
    from subscribers.webconfig import WebConfig

    web = WebConfig(
        name=settings.name,
        site_url=settings.site_url,
        sender=str(settings.sender),
        reply_to=str(settings.reply_to),
        postal_address=settings.postal_address,
        secret="spam-test-secret-0123456789abcdef",
    )
    mail: dict[str, Path] = {}
    with (
        open_transport(settings) as transport,
        Store.open(settings.database_url, settings.root) as store,
    ):

        def send_mail(message: OutgoingMessage) -> None:
            transport.send(message)

        service = web.subscriptions(
            store.engine, send_mail, service_mail(settings, store.engine)
        )
        before = set(settings.outbox_dir.glob("*.eml"))
        subscriber = service.subscribe(
            "juergen@example.com", "Jürgen Müller", consent_text=web.consent, origin=Origin()
        )
        assert subscriber is not None and service.send_due_confirmations() == 1
        (mail["confirm"],) = _new_files(settings.outbox_dir, before)
        token = re.search(rb"/confirm/([A-Za-z0-9._-]+)", _text_part(mail["confirm"]))
        assert token is not None
        service.confirm(token.group(1).decode(), Origin())
        before = set(settings.outbox_dir.glob("*.eml"))
        assert service.send_welcome(subscriber)
        (mail["welcome"],) = _new_files(settings.outbox_dir, before)
    return mail


def _text_part(path: Path) -> bytes:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content()).encode()


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Every kind of message, as the outbox transport wrote it, by name."""
    root = copy_newsletter(tmp_path_factory.mktemp("spam") / "newsletter")
    (root / "issues" / f"{STRESS}.md").write_text(stress_issue(), encoding="utf-8")
    with isolated(root):
        settings = load_settings(root)
        with Store.open(settings.database_url, settings.root) as store:
            store.add("sam@example.com", name="Sam Reader")
        found: dict[str, Path] = {}
        for issue in ISSUES:
            path = f"issues/{issue}.md"
            found[issue] = _publish(settings, "issue", path, "--yes")
            found[f"{issue} [PREVIEW]"] = _publish(
                settings, "issue", path, "--test-to", "editor@example.com"
            )
        found.update(_service_mail(settings))
        yield found


# -- SpamAssassin --------------------------------------------------------------------

_STATUS = re.compile(
    r"^X-Spam-Status: (?:Yes|No), score=(-?\d+(?:\.\d+)?) required=\S+ tests=(.*?) autolearn=",
    re.M | re.S,
)


def spam_score(message: Path, home: Path) -> tuple[float, list[str]]:
    """SpamAssassin's score of ``message`` with local tests only, and the
    rules that fired."""
    assert SPAMASSASSIN is not None
    checked = subprocess.run(
        [SPAMASSASSIN, "-L", "-t"],
        input=message.read_bytes(),
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C"},
        timeout=180,
        check=True,
    )
    headers = checked.stdout.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    status = _STATUS.search(headers)
    assert status is not None, headers
    rules = [rule for rule in re.split(r"[\s,]+", status.group(2)) if rule and rule != "none"]
    return float(status.group(1)), rules


@pytest.fixture(scope="module")
def spam_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spamassassin-home")


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_scores_at_most_zero(messages, spam_home, name):
    score, rules = spam_score(messages[name], spam_home)
    assert score <= 0.0, f"{name} scores {score}: {', '.join(rules)}"


def test_the_stress_issue_is_what_it_claims_to_be(messages):
    """The stress issue reached the outbox whole: the title's umlauts, soft
    hyphens and emoji in the subject, the wide table, about 90 KB of HTML."""
    for name in (STRESS, f"{STRESS} [PREVIEW]"):
        message = message_from_bytes(messages[name].read_bytes(), policy=policy.default)
        assert f"Schulter{SHY}schmerzen" in str(message["Subject"])
        assert "Büro" in str(message["Subject"]) and "💪" in str(message["Subject"])
        html = message.get_body(("html",))  # type: ignore[attr-defined]
        assert html is not None
        content = str(html.get_content())
        assert "Hinweis für Büroarbeiter" in content and "🧘" in content
        as_sent = len(str(html.get_payload()).encode("ascii", "surrogateescape"))
        assert 80 * 1024 <= as_sent <= 102 * 1024, as_sent
