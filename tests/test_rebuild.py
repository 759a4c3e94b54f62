"""`publish site` with nothing changed reads, parses and renders nothing;
anything the site is made from that changed, however it changed, builds it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.config import load_settings
from pipeline.filestate import COARSE_RACY_NS, is_racy, stat_entry, unchanged
from pipeline.rebuild import publish_site
from tests.test_cli_commands import loaded_by

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
BUILDING = ("pipeline.context", "pipeline.render", "pipeline.site", "sqlalchemy")
"""What reading, rendering or opening the ledger would import."""


def knees(root: Path, publish_at: datetime, word: str = "gentle") -> Path:
    """A published (or scheduled) issue of this test's own."""
    path = root / "issues" / "2026-11-03-knees.md"
    path.write_text(
        "---\ntitle: Knees\ndate: 2026-11-03\n"
        'preheader: "Stairs without the ache: three moves for knees that complain."\n'
        f"publish_at: {publish_at.isoformat()}\n---\n"
        f"A {word} start for knees that ache on the stairs.\n",
        encoding="utf-8",
    )
    return path


def settled(root: Path, now: datetime = NOW):  # type: ignore[no-untyped-def]
    """The settings, once the site was built twice: the fixture's files were
    copied just now, too recently to be trusted by their stat, so the second
    build is the one whose record the next run trusts."""
    settings = load_settings(root)
    publish_site(settings, now)
    publish_site(settings, now)
    return settings


def test_an_unchanged_rebuild_reads_parses_and_renders_nothing(newsletter):
    knees(newsletter, NOW - timedelta(days=60))
    runs = [loaded_by(["site"], newsletter, BUILDING) for _ in range(3)]
    for out, _ in runs:
        assert out.returncode == 0, out.stderr
    (first, _), (second, _), (third, loaded) = runs
    assert first.stdout.startswith("1 issue published, 2 drafts left out; 10 files written")
    assert third.stdout == second.stdout
    assert "0 files written, 10 unchanged, 0 removed" in third.stdout
    assert loaded == []


def test_touched_files_unchanged_inside_are_still_unchanged(newsletter):
    knees(newsletter, NOW - timedelta(days=60))
    for _ in range(2):
        loaded_by(["site"], newsletter, BUILDING)
    for path in (newsletter / "issues" / "2026-11-03-knees.md", newsletter / "templates" / "web"):
        os.utime(path)  # a new mtime and ctime, the same bytes
    out, loaded = loaded_by(["site"], newsletter, BUILDING)
    assert out.returncode == 0, out.stderr
    assert "0 files written" in out.stdout
    assert loaded == []


def test_an_issue_rewritten_with_its_old_size_and_times_is_built_again(newsletter):
    path = knees(newsletter, NOW - timedelta(days=60))
    settings = settled(newsletter)
    before = path.stat()
    path.write_text(path.read_text().replace("gentle", "GENTLE"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as rsync -t or touch -r would
    assert path.stat().st_size == before.st_size

    report = publish_site(settings, NOW)

    assert "issues/knees/index.html" in report.written
    assert "GENTLE" in (settings.public_dir / "issues" / "knees" / "index.html").read_text()


def test_an_issue_sent_since_the_last_build_is_published(newsletter):
    from sqlalchemy import insert

    from subscribers.db import connect
    from subscribers.schema import sends

    settings = settled(newsletter)
    assert publish_site(settings, NOW).issues == ()
    engine = connect(settings.database_url, settings.root)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(sends).values(
                    issue_slug="calf-stretch",
                    issue_path="issues/2026-12-01-calf-stretch.md",
                    subject="An easy stretch for chronic calf pain",
                    transport="outbox",
                    status="done",
                    created_at=datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
                )
            )
    finally:
        engine.dispose()

    assert publish_site(settings, NOW).issues == ("calf-stretch",)


def test_a_scheduled_issue_joins_the_site_once_its_publish_at_passes(newsletter):
    knees(newsletter, NOW + timedelta(hours=1))
    settings = settled(newsletter)
    assert "knees" in publish_site(settings, NOW).drafts

    later = publish_site(settings, NOW + timedelta(hours=2))

    assert later.issues == ("knees",)
    assert (settings.public_dir / "issues" / "knees" / "index.html").is_file()


def test_a_file_changed_by_hand_in_public_is_written_again(newsletter):
    knees(newsletter, NOW - timedelta(days=60))
    settings = settled(newsletter)
    index = settings.public_dir / "index.html"
    built = index.read_bytes()
    index.write_bytes(built.replace(b"Knees", b"Elbows"))

    report = publish_site(settings, NOW)

    assert report.written == ("index.html",)
    assert index.read_bytes() == built


def test_a_changed_setting_builds_again(newsletter):
    knees(newsletter, NOW - timedelta(days=60))
    settled(newsletter)
    toml = newsletter / "newsletter.toml"
    toml.write_text(toml.read_text().replace("twice a month", "every other week", 1))

    report = publish_site(load_settings(newsletter), NOW)

    assert "index.html" in report.written
    assert "every other week" in (newsletter / "public" / "index.html").read_text()


def test_a_stat_is_trusted_only_when_recorded_well_after_the_files_last_change(tmp_path):
    path = tmp_path / "issue.md"
    path.write_text("text")
    entry = stat_entry(path)
    assert entry is not None
    changed_at = entry["stat"][2]
    wrong = {str(path): {**entry, "sha256": "0" * 64}}  # a digest that does not match

    # Recorded a second after its change: the stat alone decides, nothing is read.
    assert unchanged(wrong, {str(path): entry}, changed_at + 10**9) == wrong
    # Recorded within a tick of it: the file is read, and its digest decides.
    assert unchanged(wrong, {str(path): entry}, changed_at + 5_000_000) is None
    assert unchanged({str(path): entry}, {str(path): entry}, changed_at + 5_000_000) is None
    # Whole-second times (ext3, HFS+, FAT) leave seconds to a change unseen.
    assert is_racy([1, 4, 10**10, 10**10], 10**10 + COARSE_RACY_NS - 1)
