"""A site built from the test newsletter plus issues that stretch a page:
a table wider than a phone, a German title with umlauts and a soft hyphen,
emoji in a title, a tag and the text, and pictures (a figure with and one
without a caption, an image inside a paragraph), headings that start at
``#`` in one issue and at ``###`` in another. Every issue is published: the two samples as sent, the others by a
``publish_at`` in the past.

    build_sample_site(root) ─▶ SampleSite (settings, public/, the slugs newest first)

For a module's tests to share one build, build it inside
:func:`tests.support.newsletter.isolated`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.newsletter import copy_newsletter

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SENT = {
    "calf-stretch": datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
    "desk-wrist-routine": datetime(2026, 12, 15, 7, 0, tzinfo=UTC),
}
SOFT_HYPHEN = "\u00ad"
GERMAN_TITLE = f"Rücken{SOFT_HYPHEN}schmerzen im Büro: Übungen für Schultern und Nacken"
EMOJI_TITLE = "Happy feet 👣 five moves for tired soles 🎉"

WIDE_TABLE = """\
| Exercise | Monday morning | Tuesday lunch | Wednesday evening | Thursday morning | Friday lunch | Saturday | Sunday | Repetitions per set |
|:---------|:--------------:|:-------------:|:-----------------:|:----------------:|:------------:|:--------:|:------:|--------------------:|
| Shoulder rolls backwards, slowly | yes | no | yes | yes | no | yes | rest | 10 |
| Chin tucks against the headrest | no | yes | yes | no | yes | no | rest | 8 |
"""

ISSUES = {
    "2027-01-05-shoulder-desk.md": f"""---
title: "{GERMAN_TITLE}"
date: 2027-01-05
preheader: "Verspannte Schultern nach einem langen Tag? Fünf Übungen, die Sie am Schreibtisch machen können."
author: Jürgen Weiß
tags: [Rücken, Büro, stretching]
publish_at: 2027-01-05T07:00:00+00:00
---
# Warum der Nacken schmerzt

Stundenlang auf den Bildschirm schauen: Die Schultern wandern nach vorn, der
Nacken trägt den Kopf allein. Größere Pausen helfen, **kleine Übungen** auch.

![Eine Frau am Schreibtisch, die Schultern nach hinten gerollt](images/calf-stretch.png)

## Der Wochenplan

{WIDE_TABLE}
Jede Übung dauert weniger als eine Minute. Mehr auf dem
[Forum](https://forum.painfreeliving.example.com/).

---

Bleiben Sie gesund,
Jürgen
""",
    "2027-01-19-happy-feet.md": f"""---
title: "{EMOJI_TITLE}"
date: 2027-01-19
preheader: "Tired feet at the end of the day? 👣 Five small moves, two minutes each, no gym needed."
tags: [feet, "🦶", stretching]
publish_at: 2027-01-19T07:00:00+00:00
---
Your feet carry you all day 🚶 and rarely get thanks. Here is a picture of the
first move ![a foot on a tennis ball](images/feet.png) in case words fail.

![A bare foot rolling a tennis ball on a wooden floor](images/feet.png "Roll slowly, heel to toe 🎾")

1. Roll the ball under each foot for a minute.
2. Spread your toes wide 🖐 and hold for five seconds.
3. Draw the alphabet with each big toe.

> Stop if anything tingles or goes numb.

    toe raises: 3 × 10

P.S. Reply and tell us which move helped 💬.
""",
    "2027-02-02-knees.md": """---
title: Knees that creak on the stairs
date: 2027-02-02
preheader: Creaky knees on the stairs are common, and three gentle moves strengthen the muscles that carry them.
tags: [knees, stretching]
publish_at: 2027-02-02T07:00:00+00:00
---
Creaking alone is rarely a worry. Pain, swelling or a knee that gives way are.

### What helps

Read [the calf stretch](2026-12-01-calf-stretch.md) first: tight calves pull on
the knee too.
""",
}


@dataclass(frozen=True)
class SampleSite:
    settings: Any
    public: Path
    slugs: tuple[str, ...]
    """Every published issue's slug, newest first."""

    def page(self, path: str) -> str:
        return (self.public / path).read_text(encoding="utf-8")


def write_sample_issues(root: Path) -> None:
    """Add the issues that stretch a page to the newsletter at ``root``."""
    images = root / "issues" / "images"
    shutil.copy(images / "calf-stretch.png", images / "feet.png")
    for name, text in ISSUES.items():
        (root / "issues" / name).write_text(text, encoding="utf-8")


def build_sample_site(root: Path, site_url: str = "") -> SampleSite:
    """The test newsletter at ``root`` with the sample issues, its site built
    (for ``site_url``, if given, instead of the newsletter's)."""
    from pipeline.config import load_settings, with_overrides
    from pipeline.context import Context
    from pipeline.site import build_site

    copy_newsletter(root)
    write_sample_issues(root)
    settings = load_settings(root)
    if site_url:
        settings = with_overrides(settings, site_url=site_url)
    report = build_site(Context.load(settings), SENT, NOW)
    assert not report.warnings, report.warnings
    return SampleSite(settings, settings.public_dir, report.issues)


