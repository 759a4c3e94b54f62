"""`publish site`: which issues are published, what is written, and that an
unchanged rebuild writes nothing."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pipeline.site.plan as site_module
from pipeline.cli import app
from pipeline.config import Address, Settings, load_settings, with_overrides
from pipeline.context import Context
from pipeline.errors import ConfigError, IssueError, SiteError
from pipeline.images import prepare_picture
from pipeline.issue import find_issue, load_issue
from pipeline.render import render_issue
from pipeline.site import (
    MANIFEST,
    build_site,
    build_site_from_ledger,
    plan_site,
    published_at,
    read_last_build,
)
from pipeline.site.cache import page_settings
from pipeline.webpage import IssueLink, Neighbours

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
SENT = {
    "calf-stretch": datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
    "desk-wrist-routine": datetime(2026, 12, 15, 7, 0, tzinfo=UTC),
}


def write_issue(root: Path, name: str, title: str, day: str, body: str = "", **front: str) -> Path:
    lines = ["---", f'title: "{title}"', f"date: {day}"]
    lines += [f"{key}: {value}" for key, value in front.items()]
    lines += ["---", body or f"A few words about {title.lower()}, for the archive.", ""]
    path = root / "issues" / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder with its bytes and modification time."""
    found = {}
    for path in sorted(folder.rglob("*")):
        data = path.read_bytes() if path.is_file() else b"<dir>"
        found[str(path.relative_to(folder))] = (data, path.stat().st_mtime_ns)
    return found


def test_build_writes_pages_archive_subscribe_page_feeds_and_media(settings):
    report = build_site(Context.load(settings), SENT, NOW)

    public = settings.public_dir
    assert report.issues == ("desk-wrist-routine", "calf-stretch")
    assert report.drafts == ()
    assert set(report.written) == {
        "404.html",
        "feed.atom",
        "feed.xml",
        "index.html",
        "issues/calf-stretch/index.html",
        "issues/desk-wrist-routine/index.html",
        "media/images/calf-stretch.png",
        "robots.txt",
        "sitemap.xml",
        "static/favicon.svg",
        "static/logo.png",
        "subscribe/index.html",
        "tags/calves/index.html",
        "tags/desk-work/index.html",
        "tags/rsi/index.html",
        "tags/self-treatment/index.html",
        "tags/stretching/index.html",
        "tags/wrists/index.html",
    }
    calf = load_issue(find_issue("calf-stretch", settings.issues_dir))
    context = Context.load(settings)
    rendered = render_issue(calf, context)
    page = (public / "issues" / "calf-stretch" / "index.html").read_text()
    # The issue's page as rendering made it, with the issue after it around it.
    wrist = IssueLink(
        "A five-minute wrist routine for desk workers",
        "https://painfreeliving.example.com/issues/desk-wrist-routine/",
        date(2026, 12, 15),
        "December 15, 2026",
    )
    assert page == rendered.page.html(context.web, Neighbours(next=wrist, latest=(wrist,)))
    assert rendered.web_url == "https://painfreeliving.example.com/issues/calf-stretch/"
    assert "View this issue in your browser" not in page  # no recipient's parts
    assert "Unsubscribe</a>" not in page and "pflslot" not in page
    # The picture as made ready for email (tests/test_images.py), not the file's bytes.
    source = settings.issues_dir / "images" / "calf-stretch.png"
    made = prepare_picture(source.read_bytes(), source)
    assert (public / "media/images/calf-stretch.png").read_bytes() == made.data

    from subscribers.consent import consent_wording
    from subscribers.page_loader import signup_form_html

    form = signup_form_html(
        action_url="https://painfreeliving.example.com/subscribe",
        consent_text=consent_wording(settings.name, settings.consent_text),
    )
    assert form in (public / "subscribe" / "index.html").read_text()
    assert "Page not found" in (public / "404.html").read_text()


def test_the_archive_lists_issues_newest_first_with_dates_and_preheaders(settings):
    build_site(Context.load(settings), SENT, NOW)
    index = (settings.public_dir / "index.html").read_text()

    wrist = index.index("A five-minute wrist routine for desk workers")
    calf = index.index("An easy stretch for chronic calf pain")
    assert wrist < calf
    assert '<time datetime="2026-12-15">December 15, 2026</time>' in index
    assert '<time datetime="2026-12-01">December 1, 2026</time>' in index
    assert "Why tight calves keep aching, and a gentle wall stretch" in index
    assert 'href="https://painfreeliving.example.com/issues/calf-stretch/"' in index
    assert 'type="application/rss+xml"' in index


def test_drafts_and_future_issues_stay_off_the_site(newsletter, settings):
    write_issue(newsletter, "2027-01-05-knees.md", "Knees", "2027-01-05",
                publish_at="2027-01-05T07:00:00+00:00")
    write_issue(newsletter, "2027-01-19-hips.md", "Hips", "2027-01-19",
                publish_at="2027-01-19T07:00:00+00:00")
    write_issue(newsletter, "2026-11-01-never-sent.md", "Never sent", "2026-11-01")

    report = build_site(Context.load(settings), {}, NOW)

    assert report.issues == ("knees",)
    assert set(report.drafts) == {"hips", "never-sent", "calf-stretch", "desk-wrist-routine"}
    public = settings.public_dir
    assert sorted(p.name for p in (public / "issues").iterdir()) == ["knees"]
    assert not (public / "media").exists()  # only published issues' images go up
    for text in ((public / "index.html").read_text(), (public / "feed.xml").read_text()):
        assert "Knees" in text
        assert "Hips" not in text and "Never sent" not in text and "calf" not in text.lower()

    later = build_site(Context.load(settings), {}, datetime(2027, 1, 19, 7, 0, tzinfo=UTC))
    assert later.issues == ("hips", "knees")


def test_publication_time_is_the_send_or_the_schedule(newsletter, settings):
    path = write_issue(newsletter, "2027-01-05-knees.md", "Knees", "2027-01-05",
                       publish_at="2027-01-05T07:00:00+01:00")
    knees = load_issue(path)
    assert published_at(knees, {}, NOW) == datetime(2027, 1, 5, 6, 0, tzinfo=UTC)
    assert published_at(knees, {}, datetime(2027, 1, 5, 5, 59, tzinfo=UTC)) is None
    sent = datetime(2027, 1, 4, 9, 30)  # SQLite hands back naive UTC
    assert published_at(knees, {"knees": sent}, NOW) == sent.replace(tzinfo=UTC)


def test_an_unchanged_rebuild_rewrites_nothing(settings):
    first = build_site(Context.load(settings), SENT, NOW)
    assert first.written
    before = snapshot(settings.public_dir)

    again = build_site(Context.load(settings), SENT, NOW + timedelta(days=30))

    assert again.written == () and again.removed == ()
    assert again.unchanged == len(first.written)
    assert snapshot(settings.public_dir) == before


def test_a_changed_issue_rewrites_its_page_and_the_lists_only(settings):
    build_site(Context.load(settings), SENT, NOW)
    path = find_issue("desk-wrist-routine", settings.issues_dir)
    path.write_text(path.read_text().replace("Three gentle moves", "Three easy moves"))

    report = build_site(Context.load(settings), SENT, NOW)

    assert set(report.written) == {
        "issues/desk-wrist-routine/index.html",
        "index.html",
        "feed.xml",
        "feed.atom",
        "tags/desk-work/index.html",
        "tags/rsi/index.html",
        "tags/wrists/index.html",
    }


def test_a_rebuild_reuses_pages_whose_inputs_are_unchanged(settings, monkeypatch):
    build_site(Context.load(settings), SENT, NOW)
    renders = []
    real = site_module.render_issue

    def counting(issue, config, *args):
        renders.append(issue.slug)
        return real(issue, config, *args)

    monkeypatch.setattr(site_module, "render_issue", counting)
    build_site(Context.load(settings), SENT, NOW)
    assert renders == []

    # A page edited by hand in public/ is rendered again and put right.
    page = settings.public_dir / "issues" / "calf-stretch" / "index.html"
    good = page.read_bytes()
    page.write_bytes(good.replace(b"calf", b"CALF"))
    report = build_site(Context.load(settings), SENT, NOW)
    assert renders == ["calf-stretch"]
    assert report.written == ("issues/calf-stretch/index.html",)
    assert page.read_bytes() == good

    # A template change renders every page again.
    template = settings.templates_dir / "web" / "issue.html.j2"
    template.write_text(template.read_text() + "\n")
    renders.clear()
    build_site(Context.load(settings), SENT, NOW)
    assert sorted(renders) == ["calf-stretch", "desk-wrist-routine"]


def test_delivery_settings_never_render_a_page_again_and_the_site_title_does(settings, monkeypatch):
    build_site(Context.load(settings), SENT, NOW)
    renders = []
    real = site_module.render_issue

    def counting(issue, config, *args):
        renders.append(issue.slug)
        return real(issue, config, *args)

    monkeypatch.setattr(site_module, "render_issue", counting)

    # How and where mail goes out, and the secrets, are no part of a page.
    delivery = with_overrides(
        settings,
        rate=14,
        transport="smtp",
        smtp_host="mail.example.net",
        database_url="postgresql://pipeline:hunter2@db.example.net/newsletter",
        token_secret="another secret",
    )
    report = build_site(Context.load(delivery), SENT, NOW)
    assert renders == []
    assert report.written == () and report.removed == ()

    renamed = with_overrides(delivery, name="Pain Free Living Weekly")
    report = build_site(Context.load(renamed), SENT, NOW)
    assert sorted(renders) == ["calf-stretch", "desk-wrist-routine"]
    assert {"issues/calf-stretch/index.html", "index.html", "feed.xml"} <= set(report.written)
    page = settings.public_dir / "issues" / "calf-stretch" / "index.html"
    assert "Pain Free Living Weekly" in page.read_text()


def test_no_setting_outside_the_fingerprint_changes_an_issue_page(newsletter, settings):
    # A template may show anything rendering hands it: this one shows it all.
    template = settings.templates_dir / "web" / "issue.html.j2"
    shown = "{{ signup_form }}"
    assert shown in template.read_text()
    template.write_text(
        template.read_text().replace(
            shown, shown + "\n<p>{{ newsletter }} {{ urls }} {{ issue }} {{ tags }} {{ picture }}</p>"
        )
    )
    calf = load_issue(find_issue("calf-stretch", settings.issues_dir))
    knees = load_issue(write_issue(newsletter, "2027-01-05-knees.md", "Knees", "2027-01-05"))
    assert not knees.author  # so the newsletter's author is shown
    pages = [render_issue(issue, Context.load(settings)).web_html for issue in (calf, knees)]
    checked = []
    for item in fields(Settings):
        if item.name == "templates_dir":
            continue  # the fingerprint has the templates' own digest
        other = replace(settings, **{item.name: _another(getattr(settings, item.name))})
        if page_settings(other) == page_settings(settings):
            again = [render_issue(issue, Context.load(other)).web_html for issue in (calf, knees)]
            assert again == pages, item.name
            checked.append(item.name)
    assert {"transport", "rate", "smtp_host", "database_url", "token_secret"} <= set(checked)


def _another(value):
    """A different value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, Path):
        return value / "other"
    if isinstance(value, Address):
        return Address(f"other@{value.domain}", f"{value.name} Other")
    assert isinstance(value, tuple), value
    return (*value, "192.0.2.0/24")


def test_planning_takes_the_last_build_as_data_and_never_reads_public(settings, monkeypatch):
    build_site(Context.load(settings), SENT, NOW)
    last = read_last_build(settings.public_dir)
    assert set(last.pages) == {"calf-stretch", "desk-wrist-routine"}
    shutil.rmtree(settings.public_dir)
    monkeypatch.setattr(site_module, "render_issue", None)  # reusing renders nothing

    site = plan_site(Context.load(settings), SENT, NOW, last)

    assert site.files["issues/calf-stretch/index.html"] == last.pages["calf-stretch"]
    assert not settings.public_dir.exists()


def test_a_page_is_rendered_again_when_an_issue_it_links_to_changes_its_slug(
    newsletter, settings
):
    write_issue(newsletter, "2027-01-05-knees.md", "Knees", "2027-01-05",
                body="See [the calf stretch](2026-12-01-calf-stretch.md).",
                publish_at="2027-01-05T07:00:00+00:00")
    build_site(Context.load(settings), SENT, NOW)
    knees_page = settings.public_dir / "issues" / "knees" / "index.html"
    assert "https://painfreeliving.example.com/issues/calf-stretch/" in knees_page.read_text()

    calf = find_issue("calf-stretch", settings.issues_dir)
    calf.write_text(calf.read_text().replace("tags:", "slug: calves\ntags:", 1))
    build_site(Context.load(settings), {"calves": SENT["calf-stretch"]}, NOW)

    assert "https://painfreeliving.example.com/issues/calves/" in knees_page.read_text()


def test_an_unpublished_issue_is_removed_and_files_we_did_not_write_are_kept(settings):
    build_site(Context.load(settings), SENT, NOW)
    public = settings.public_dir
    (public / "CNAME").write_text("painfreeliving.example.com\n")

    report = build_site(Context.load(settings), {"desk-wrist-routine": SENT["desk-wrist-routine"]}, NOW)

    assert set(report.removed) == {
        "issues/calf-stretch/index.html",
        "media/images/calf-stretch.png",
        # its tags, which no published issue has any more
        "tags/calves/index.html",
        "tags/self-treatment/index.html",
        "tags/stretching/index.html",
    }
    assert not (public / "issues" / "calf-stretch").exists()
    assert not (public / "media").exists()
    assert (public / "CNAME").read_text() == "painfreeliving.example.com\n"


def test_a_relative_image_without_a_file_stops_the_build_before_anything_is_written(
    newsletter, settings
):
    write_issue(newsletter, "2027-01-05-knees.md", "Knees", "2027-01-05",
                body="Before.\n\n![A knee](images/knee.png)\n",
                publish_at="2027-01-05T07:00:00+00:00")
    with pytest.raises(IssueError, match=r"2027-01-05-knees\.md:8: image 'images/knee\.png' not found"):
        build_site(Context.load(settings), SENT, NOW)
    assert not settings.public_dir.exists()

    images = newsletter / "issues" / "images"
    (images / "knee.png").write_bytes((images / "calf-stretch.png").read_bytes())
    build_site(Context.load(settings), SENT, NOW)
    before = snapshot(settings.public_dir)
    (newsletter / "issues" / "images" / "knee.png").unlink()
    with pytest.raises(IssueError, match="not found"):
        build_site(Context.load(settings), SENT, NOW)
    assert snapshot(settings.public_dir) == before


def test_a_site_url_without_a_scheme_is_refused_before_anything_is_written(
    newsletter, settings, monkeypatch
):
    monkeypatch.setenv("NEWSLETTER_SITE_URL", "painfreeliving.example.com")
    with pytest.raises(ConfigError, match=r"^newsletter\.site_url: 'painfreeliving\.example\.com' "
                                          r"is not an absolute http\(s\) URL$"):
        load_settings(newsletter)
    with pytest.raises(ConfigError, match=r"newsletter\.site_url"):
        with_overrides(settings, site_url="//painfreeliving.example.com")

    result = CliRunner().invoke(app, ["site"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: newsletter.site_url:")
    assert not settings.public_dir.exists()


def test_a_broken_draft_is_left_out_with_a_warning(newsletter, settings):
    (newsletter / "issues" / "2027-02-01-half-written.md").write_text("---\ntitle: [oops\n---\n")
    report = build_site(Context.load(settings), SENT, NOW)
    assert report.issues == ("desk-wrist-routine", "calf-stretch")
    assert len(report.warnings) == 1
    assert "2027-02-01-half-written.md:2: error:" in report.warnings[0]
    assert report.warnings[0].endswith("left off the site until fixed")


def test_a_broken_issue_that_was_sent_is_an_error(newsletter, settings):
    path = find_issue("calf-stretch", settings.issues_dir)
    path.write_text(path.read_text().replace("date: 2026-12-01", "date: someday"))
    with pytest.raises(IssueError, match=r"2026-12-01-calf-stretch\.md:3: date:"):
        build_site(Context.load(settings), SENT, NOW)


def test_two_published_issues_cannot_share_a_slug(newsletter, settings):
    write_issue(newsletter, "2027-01-05-other.md", "Other", "2027-01-05", slug="calf-stretch")
    with pytest.raises(SiteError, match="slug 'calf-stretch' is also used by"):
        build_site(Context.load(settings), SENT, NOW)


def test_a_sent_issue_without_a_file_is_reported(settings):
    report = build_site(Context.load(settings), {**SENT, "lost-issue": NOW}, NOW)
    assert report.warnings == (f"issue 'lost-issue' was sent but has no file in {settings.issues_dir}",)


def test_site_files_are_readable_by_everyone(settings):
    build_site(Context.load(settings), SENT, NOW)
    for path in settings.public_dir.rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044 & ~_umask(), path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_the_issue_about_to_be_sent_is_published_with_the_ledger(settings):
    from subscribers.db import connect

    engine = connect(settings.database_url, settings.root)
    try:
        report = build_site_from_ledger(
            Context.load(settings), engine, NOW, sending={"calf-stretch": NOW}
        )
    finally:
        engine.dispose()
    assert report.issues == ("calf-stretch",)
    assert report.drafts == ("desk-wrist-routine",)


def test_cli_site_publishes_what_the_ledger_says_was_sent(settings):
    from sqlalchemy import insert

    from subscribers.db import connect
    from subscribers.schema import sends

    runner = CliRunner()
    first = runner.invoke(app, ["site"])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("0 issues published, 2 drafts left out; 9 files written")

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
                    created_at=SENT["calf-stretch"],
                )
            )
    finally:
        engine.dispose()

    second = runner.invoke(app, ["site"])
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == (
        "1 issue published, 1 draft left out; 9 files written, 5 unchanged, 0 removed in public"
    )
    feed = (settings.public_dir / "feed.xml").read_text()
    assert "<pubDate>Tue, 01 Dec 2026 07:00:00 GMT</pubDate>" in feed
