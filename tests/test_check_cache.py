"""`publish check` says an earlier run's findings again when nothing it read
has changed, and checks again the moment anything has: an issue, a
template, a setting, the issues named."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import checking
from pipeline.cli import app

runner = CliRunner()
CALF = Path("issues") / "2026-12-01-calf-stretch.md"
WRIST = Path("issues") / "2026-12-15-desk-wrist-routine.md"


@pytest.fixture
def lints(monkeypatch):
    """How many times the issues were read and linted (not said again)."""
    calls: list[tuple[str, ...]] = []
    real = checking.lint

    def counted(settings, names=(), parts=None):
        calls.append(tuple(names))
        return real(settings, names, parts)

    monkeypatch.setattr(checking, "lint", counted)
    return calls


def check(*names: str):
    return runner.invoke(app, ["check", *names])


def settled(root: Path) -> None:
    """Wait until every file under ``root`` changed longer ago than a stat
    can be trusted after (a stat fresher than that is compared by its bytes,
    or counted as changed, so a run could not yet say anything again)."""
    from pipeline.filestate import RACY_NS

    latest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in root.rglob("*"))
    wait_ns = latest + RACY_NS - time.time_ns()
    if wait_ns > 0:
        time.sleep(wait_ns / 1e9 + 0.001)


def without_preheader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^preheader:.*\n", "", text, count=1), encoding="utf-8")


def test_a_second_run_over_unchanged_files_says_the_same_without_reading(newsletter, lints):
    without_preheader(CALF)
    settled(newsletter)
    first = check(str(CALF))
    second = check(str(CALF))
    assert first.exit_code == second.exit_code == 0
    assert ": warning: no preheader" in first.stdout
    assert (second.stdout, second.stderr) == (first.stdout, first.stderr)
    assert lints == [(str(CALF),)]


def test_an_issue_edited_keeping_its_size_and_time_is_checked_again(newsletter, lints):
    check(str(CALF))
    before = CALF.stat()
    text = CALF.read_text(encoding="utf-8")
    # The same number of bytes, and the old modification time put back:
    # only the change time (and the bytes) tell.
    edited = text.replace("title:", "titel:", 1)
    assert len(edited) == len(text)
    CALF.write_text(edited, encoding="utf-8")
    os.utime(CALF, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = check(str(CALF))
    assert again.exit_code == 1
    assert "error" in again.stdout
    assert len(lints) == 2


def test_a_file_touched_but_unchanged_is_still_unchanged(newsletter, lints):
    settled(newsletter)
    check(str(CALF))
    CALF.touch()
    settled(newsletter)
    check(str(CALF))
    check(str(CALF))
    assert len(lints) == 1


def test_errors_said_again_still_exit_1(newsletter, lints):
    CALF.write_text("---\ntitle: [unclosed\n---\nBody\n", encoding="utf-8")
    settled(newsletter)
    first = check(str(CALF))
    second = check(str(CALF))
    assert first.exit_code == second.exit_code == 1
    assert second.stdout == first.stdout and ": error: " in second.stdout
    assert second.stderr == first.stderr
    assert len(lints) == 1


def test_a_template_edited_means_checking_again(newsletter, lints):
    check(str(CALF))
    template = Path("templates") / "email.mjml.j2"
    template.write_text(template.read_text(encoding="utf-8") + "{{ nothing_by_this_name }}\n")
    again = check(str(CALF))
    assert again.exit_code == 1
    assert "email.mjml.j2" in again.stdout
    assert len(lints) == 2


def test_a_setting_changed_means_checking_again(newsletter, lints, monkeypatch):
    settled(newsletter)
    check(str(CALF))
    monkeypatch.setenv("NEWSLETTER_GREETING", "Hello {first_name},")
    check(str(CALF))
    check(str(CALF))
    assert len(lints) == 2


def test_another_issue_added_means_checking_every_issue_again(newsletter, lints):
    first = check()
    (Path("issues") / "2027-01-05-new.md").write_text(
        "---\ntitle: New\ndate: 2027-01-05\n---\nBody\n", encoding="utf-8"
    )
    again = check()
    assert "2 issues checked" in first.stderr
    assert "3 issues checked" in again.stderr
    assert len(lints) == 2


def test_each_set_of_issues_named_is_kept_apart(newsletter, lints):
    settled(newsletter)
    check(str(CALF))
    check(str(WRIST))
    check(str(CALF))
    check(str(WRIST))
    assert lints == [(str(CALF),), (str(WRIST),)]


def test_a_damaged_record_means_checking_again(newsletter, lints):
    check(str(CALF))
    record = newsletter / checking.RECORD
    for damaged in ("{not json", json.dumps({"version": checking.VERSION, "runs": []}),
                    json.dumps({"version": checking.VERSION, "runs": {"k": 1}})):
        record.write_text(damaged, encoding="utf-8")
        result = check(str(CALF))
        assert result.exit_code == 0, result.output
    key_damaged = json.loads(record.read_text(encoding="utf-8"))
    for run in key_damaged["runs"].values():
        run["findings"] = [["x"]]
    record.write_text(json.dumps(key_damaged), encoding="utf-8")
    result = check(str(CALF))
    assert result.exit_code == 0, result.output
    assert len(lints) == 5


def test_a_cache_that_cannot_be_written_only_means_checking_every_time(newsletter, lints):
    (newsletter / ".cache").write_text("a file where the folder would be", encoding="utf-8")
    first = check(str(CALF))
    second = check(str(CALF))
    assert first.exit_code == second.exit_code == 0
    assert second.stdout == first.stdout
    assert len(lints) == 2


def test_the_record_is_the_owners_only(newsletter):
    check(str(CALF))
    record = newsletter / checking.RECORD
    assert record.stat().st_mode & 0o777 == 0o600


def test_a_page_written_after_its_built_in_was_compiled_is_the_one_checked(newsletter):
    first = check(str(CALF))
    assert first.exit_code == 0, first.output
    assert any((newsletter / ".cache" / "templates").iterdir())  # compiled pages kept
    page = Path("templates") / "web" / "pages" / "confirm.html.j2"
    page.parent.mkdir(parents=True)
    page.write_text('{% extends "base.html.j2" %}{% block content %}No button{% endblock %}\n')
    again = check(str(CALF))
    assert again.exit_code == 1
    assert f"{page}:1: error: the confirm page" in again.stdout
    assert "has no confirm button" in again.stdout


def test_a_digest_is_taken_from_the_last_listing_only_where_the_stat_is_as_it_was(tmp_path):
    from pipeline.filestate import listing, with_digests

    kept, edited = tmp_path / "kept.md", tmp_path / "edited.md"
    kept.write_text("kept\n")
    edited.write_text("before\n")
    settled(tmp_path)
    taken = time.time_ns()
    known = with_digests(listing(tmp_path), taken)
    # A recorded digest that the bytes would not give shows it was reused.
    known[str(kept)] = {**known[str(kept)], "sha256": "recorded"}
    known[str(edited)] = {**known[str(edited)], "sha256": "recorded"}
    edited.write_text("after!\n")
    settled(tmp_path)
    again = with_digests(listing(tmp_path), time.time_ns(), known, taken)
    assert again[str(kept)]["sha256"] == "recorded"
    assert again[str(edited)]["sha256"] not in (None, "recorded")
    # Recorded while the stat was too fresh to trust: read again.
    fresh_then = kept.stat().st_mtime_ns
    again = with_digests(listing(tmp_path), time.time_ns(), known, fresh_then)
    assert again[str(kept)]["sha256"] not in (None, "recorded")


@pytest.fixture
def parts(monkeypatch):
    """Which issues were linted, and how many times the pages were."""
    import pipeline.lint
    import pipeline.reader_pages

    linted: dict[str, list] = {"issues": [], "pages": []}
    issue, pages = pipeline.lint.check_issue, pipeline.reader_pages.check_pages

    def check_issue(path, context):
        linted["issues"].append(Path(path).name)
        return issue(path, context)

    def check_pages(settings):
        linted["pages"].append(1)
        return pages(settings)

    monkeypatch.setattr(pipeline.lint, "check_issue", check_issue)
    monkeypatch.setattr(pipeline.reader_pages, "check_pages", check_pages)
    return linted


def fresh_check(newsletter: Path, *names: str):
    """A check with no record: what a run must say, whatever was kept."""
    (newsletter / checking.RECORD).unlink(missing_ok=True)
    return check(*names)


def test_editing_one_issue_lints_that_issue_alone(newsletter, parts):
    settled(newsletter)
    assert check().exit_code == 0
    assert sorted(parts["issues"]) == sorted([CALF.name, WRIST.name])
    without_preheader(WRIST)
    settled(newsletter)
    parts["issues"].clear()
    again = check()
    assert parts["issues"] == [WRIST.name]
    assert parts["pages"] == [1]  # linted once, by the first run
    assert ": warning: no preheader" in again.stdout
    expected = fresh_check(newsletter)
    assert (again.stdout, again.stderr, again.exit_code) == (
        expected.stdout, expected.stderr, expected.exit_code)


def test_a_slug_taken_by_another_issue_changes_the_findings_of_both(newsletter, parts):
    settled(newsletter)
    assert check().exit_code == 0
    calf_slug = re.search(r"(?m)^slug: *(.+)$", CALF.read_text(encoding="utf-8"))
    slug = calf_slug.group(1).strip() if calf_slug else CALF.stem[len("2026-12-01-"):]
    text = WRIST.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^slug:.*\n", "", text)
    WRIST.write_text(text.replace("---\n", f"---\nslug: {slug}\n", 1), encoding="utf-8")
    again = check()
    assert again.exit_code == 1
    shared = [line for line in again.stdout.splitlines() if "is also the slug of" in line]
    assert {line.split(":", 1)[0] for line in shared} == {str(CALF), str(WRIST)}
    assert sorted(parts["issues"]) == sorted([CALF.name, WRIST.name] * 2)


def test_a_picture_replaced_means_the_issue_using_it_is_linted_again(newsletter, parts):
    settled(newsletter)
    assert check(str(CALF)).exit_code == 0
    picture = Path("issues") / "images" / "calf-stretch.png"
    picture.write_bytes(b"not a picture at all")
    parts["issues"].clear()
    again = check(str(CALF))
    assert again.exit_code == 1
    assert "calf-stretch.png" in again.stdout
    assert parts["issues"] == [CALF.name]
    assert parts["pages"] == [1, 1]  # any file but an issue's text: the pages too


def test_a_page_edited_lints_the_pages_and_not_the_issues(newsletter, parts):
    settled(newsletter)
    assert check().exit_code == 0
    page = Path("templates") / "web" / "pages" / "confirm.html.j2"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text('{% extends "base.html.j2" %}{% block content %}No button{% endblock %}\n')
    parts["issues"].clear()
    again = check()
    assert again.exit_code == 1
    assert "has no confirm button" in again.stdout
    assert sorted(parts["issues"]) == sorted([CALF.name, WRIST.name])  # a template: every part
    assert parts["pages"] == [1, 1]


def test_nothing_is_kept_from_a_run_during_which_a_file_changed(newsletter, parts, monkeypatch):
    """A page edited while the check read it, then put back as it was: the
    findings of the edited page must not be said again for the old bytes."""
    import pipeline.reader_pages

    page = Path("templates") / "web" / "pages" / "confirm.html.j2"
    page.parent.mkdir(parents=True, exist_ok=True)
    import subscribers

    built_in = Path(subscribers.__file__).parent / "templates" / "web" / "pages" / page.name
    good = built_in.read_text(encoding="utf-8") + "\n"
    page.write_text(good)
    settled(newsletter)
    real = pipeline.reader_pages.check_pages

    def edited_meanwhile(settings):
        page.write_text('{% extends "base.html.j2" %}{% block content %}No button'
                        '{% endblock %}\n')
        try:
            return real(settings)
        finally:
            page.write_text(good)

    monkeypatch.setattr(pipeline.reader_pages, "check_pages", edited_meanwhile)
    assert "has no confirm button" in check(str(CALF)).stdout
    monkeypatch.setattr(pipeline.reader_pages, "check_pages", real)
    settled(newsletter)
    again = check(str(CALF))
    assert "has no confirm button" not in again.stdout
    assert again.stdout == fresh_check(newsletter, str(CALF)).stdout
