"""The static site: the archive readers browse and the feeds they follow.

This is the only module that writes ``public/``. A build has two phases, as
in Pelican: :func:`plan_site` decides every file's bytes in memory (it
writes nothing, so a bad issue stops the build before anything is written),
then :func:`write_site` writes the files whose bytes changed and
removes the ones a previous build wrote that are gone. An unchanged rebuild
writes nothing: same bytes, same timestamps.

    public/index.html                 the archive, newest first
    public/issues/<slug>/index.html   an issue's page (the email's web version)
    public/subscribe/index.html       the signup form
    public/feed.xml, public/feed.atom the newest issues as RSS 2.0 and Atom
    public/media/...                  the issues' images and files
    public/static/...                 the site's own files (the logo)
    public/404.html                   for the host's missing pages

A published issue is one that was sent (``sent`` maps its slug to when) or
whose ``publish_at`` has passed. Every other issue is a draft and stays off
the site, including one whose date is past but that was never sent.

Rendering an issue costs a few milliseconds, so a rebuild reuses the page of
every issue whose inputs (its file, the templates, the settings, this
package's code, the issues it links to) are unchanged since the last build,
as recorded in ``public/.publish-site.json`` and checked against the page's
hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.body import Asset
from pipeline.config import Settings
from pipeline.errors import IssueError, SiteError, TemplateError
from pipeline.feeds import (
    FILTERS,
    FeedChannel,
    FeedItem,
    feed_guid,
    feed_item_html,
    issue_guid,
    render_feeds,
)
from pipeline.files import write_atomic
from pipeline.issue import Issue, default_slug, find_issue_files, read_issue
from pipeline.render import (
    PACKAGED_TEMPLATES,
    date_text,
    issue_author,
    issue_path_url,
    jinja_environment,
    parse_issue_body,
    render_issue,
    template_errors,
)
from pipeline.render import templates as email_templates

log = logging.getLogger(__name__)

MANIFEST = ".publish-site.json"
MANIFEST_VERSION = 1
FEED_SIZE = 20
"""How many of the newest issues the feeds carry."""
LOGO = "static/logo.png"
LOGO_SIZE = 144
WEB_TEMPLATES = "web"


# ---------------------------------------------------------------------------
# Which issues are published
# ---------------------------------------------------------------------------


def published_at(issue: Issue, sent: Mapping[str, datetime], now: datetime) -> datetime | None:
    """When ``issue`` was published, or None while it is a draft."""
    if issue.slug in sent:
        return _aware(sent[issue.slug])
    if issue.publish_at is not None and _aware(issue.publish_at) <= _aware(now):
        return _aware(issue.publish_at)
    return None


def _aware(moment: datetime) -> datetime:
    """Naive times (SQLite hands them back so) are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Selection:
    """The issues found in issues/, split into published ones and drafts."""

    published: tuple[tuple[Issue, datetime], ...]
    drafts: tuple[Issue, ...]
    all_issues: Mapping[Path, Issue]
    warnings: tuple[str, ...]


def select_issues(settings: Settings, sent: Mapping[str, datetime], now: datetime) -> Selection:
    """Read every issue file and decide which ones the site shows.

    A file that does not parse is left out with a warning while it is a
    draft; if it was sent, its page would vanish, so that is an error.
    """
    published: list[tuple[Issue, datetime]] = []
    drafts: list[Issue] = []
    everything: dict[Path, Issue] = {}
    warnings: list[str] = []
    for path in find_issue_files(settings.issues_dir):
        issue, findings = read_issue(path)
        if issue is None:
            first = next(f for f in findings if f.severity == "error")
            if default_slug(path) in sent:
                raise IssueError(first.path, first.line, first.message)
            warnings.append(f"{first}: left off the site until fixed")
            continue
        everything[path.resolve()] = issue
        moment = published_at(issue, sent, now)
        if moment is None:
            drafts.append(issue)
        else:
            published.append((issue, moment))

    seen: dict[str, Path] = {}
    for issue, _ in published:
        if issue.slug in seen:
            raise SiteError(
                f"{issue.path}: slug {issue.slug!r} is also used by {seen[issue.slug]}; "
                "two issues cannot share a page"
            )
        seen[issue.slug] = issue.path
    missing = sorted(set(sent) - {issue.slug for issue in everything.values()})
    for slug in missing:
        warnings.append(f"issue {slug!r} was sent but has no file in {settings.issues_dir}")
    published.sort(key=lambda pair: (pair[0].date, pair[1], pair[0].slug), reverse=True)
    return Selection(tuple(published), tuple(drafts), everything, tuple(warnings))


# ---------------------------------------------------------------------------
# Phase one: every file in memory
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveEntry:
    """A published issue as the archive and the feeds show it."""

    issue: Issue
    url: str
    published: datetime
    summary: str
    content_html: str | None
    """The feed item's HTML: only for the FEED_SIZE newest, the ones the feeds carry."""


@dataclass(frozen=True)
class Site:
    """The whole site, decided: public path to bytes, or to a file to copy."""

    files: Mapping[str, bytes | Path]
    entries: tuple[ArchiveEntry, ...]
    drafts: tuple[str, ...]
    warnings: tuple[str, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    previous_files: tuple[str, ...] = ()
    """The files the last build wrote, as its manifest lists them."""


@dataclass(frozen=True)
class _Page:
    """One issue rendered for the site, as remembered in the manifest."""

    key: str
    page: bytes
    excerpt: str
    content_html: str | None
    """The feed item's HTML, for an issue in the feeds only."""
    assets: tuple[Asset, ...]
    links: Mapping[str, str]

    def record(self) -> dict[str, Any]:
        record = {
            "key": self.key,
            "sha256": hashlib.sha256(self.page).hexdigest(),
            "excerpt": self.excerpt,
            "assets": [[a.public_path, str(a.source)] for a in self.assets],
            "links": dict(sorted(self.links.items())),
        }
        if self.content_html is not None:
            record["content"] = self.content_html
        return record


def plan_site(settings: Settings, sent: Mapping[str, datetime], now: datetime) -> Site:
    """Decide every file of the site without writing any.

    Raises :class:`IssueError` for a published issue that cannot be rendered
    (a relative image with no file behind it, say) and :class:`TemplateError`
    for a broken template.
    """
    selection = select_issues(settings, sent, now)
    previous = _read_manifest(settings.public_dir)
    fingerprint = _fingerprint(settings)
    remembered: Mapping[str, Any] = (
        previous.get("issues", {}) if previous.get("fingerprint") == fingerprint else {}
    )

    files: dict[str, bytes | Path] = {}
    entries: list[ArchiveEntry] = []
    records: dict[str, Any] = {}
    for issue, moment in selection.published:
        in_feed = len(entries) < FEED_SIZE  # newest first, as the feeds list them
        page = _page(settings, issue, fingerprint, remembered.get(issue.slug), selection, in_feed)
        page_path = f"issues/{issue.slug}/index.html"
        files[page_path] = page.page
        # Every asset's file was there a moment ago: a rendered page's when
        # render_issue resolved it, a reused page's when _reuse checked it.
        for asset in page.assets:
            files[asset.public_path] = asset.source
        records[issue.slug] = page.record()
        entries.append(
            ArchiveEntry(
                issue=issue,
                url=issue_path_url(settings, issue.slug),
                published=moment,
                summary=issue.preheader or page.excerpt,
                content_html=page.content_html,
            )
        )

    env = web_environment(settings)
    context = _site_context(settings)
    archive = [
        {
            "title": entry.issue.title,
            "url": entry.url,
            "date": entry.issue.date,
            "date_text": date_text(entry.issue.date),
            "author": issue_author(entry.issue, settings),
            "summary": entry.summary,
        }
        for entry in entries
    ]
    files["index.html"] = _fill(env, "index.html.j2", context | {"issues": archive}).encode()
    files["subscribe/index.html"] = _fill(
        env, "subscribe.html.j2", context | {"signup_form": signup_form(settings)}
    ).encode()
    files["404.html"] = _fill(env, "404.html.j2", context).encode()
    rss, atom = _feeds(settings, env, entries[:FEED_SIZE])
    files["feed.xml"] = rss.encode()
    files["feed.atom"] = atom.encode()
    for public_path, source in static_files(settings).items():
        files.setdefault(public_path, source)

    manifest = {
        "version": MANIFEST_VERSION,
        "fingerprint": fingerprint,
        "files": sorted(files),
        "issues": records,
    }
    return Site(
        files=files,
        entries=tuple(entries),
        drafts=tuple(sorted(issue.slug for issue in selection.drafts)),
        warnings=selection.warnings,
        manifest=manifest,
        previous_files=tuple(str(path) for path in previous.get("files", ())),
    )


def _page(
    settings: Settings,
    issue: Issue,
    fingerprint: str,
    record: Mapping[str, Any] | None,
    selection: Selection,
    in_feed: bool,
) -> _Page:
    key = hashlib.sha256(
        "\0".join((fingerprint, str(issue.path.resolve()), issue.source)).encode()
    ).hexdigest()
    reused = _reuse(settings, issue, key, record, selection, in_feed)
    if reused is not None:
        return reused
    body, resolver = parsed = parse_issue_body(issue, settings)
    rendered = render_issue(issue, settings, parsed)
    links = {}
    for ref in rendered.references:
        target = resolver.local_file(ref.target) if resolver.is_relative(ref.target) else None
        if target is not None and target.suffix == ".md":
            links[str(target)] = _slug_of(target, selection)
    return _Page(
        key=key,
        page=rendered.web_html.encode(),
        excerpt=rendered.excerpt,
        content_html=feed_item_html(body, rendered.web_url) if in_feed else None,
        assets=rendered.assets,
        links=links,
    )


def _reuse(
    settings: Settings,
    issue: Issue,
    key: str,
    record: Mapping[str, Any] | None,
    selection: Selection,
    in_feed: bool,
) -> _Page | None:
    """The page from the last build, if nothing it was made from changed (and,
    for an issue in the feeds, with its feed HTML: an issue that just came
    into the feeds is rendered again)."""
    if not record or record.get("key") != key:
        return None
    try:
        for path, slug in record["links"].items():
            if _slug_of(Path(path), selection) != slug:
                return None
        assets = tuple(Asset(Path(source), public) for public, source in record["assets"])
        if not all(asset.source.is_file() for asset in assets):
            return None
        page = (settings.public_dir / "issues" / issue.slug / "index.html").read_bytes()
        if hashlib.sha256(page).hexdigest() != record["sha256"]:
            return None
        return _Page(
            key=key,
            page=page,
            excerpt=str(record["excerpt"]),
            content_html=str(record["content"]) if in_feed else None,
            assets=assets,
            links=dict(record["links"]),
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _slug_of(path: Path, selection: Selection) -> str:
    """The slug a link to another issue's file points at, as rendering sees it."""
    other = selection.all_issues.get(path)
    return other.slug if other else default_slug(path)


@cache
def _code_fingerprint() -> str:
    """This package's source and the renderers' versions: a change to either
    invalidates every remembered page."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in ("mjml-python", "markdown-it-py", "mdit-py-plugins", "jinja2"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:  # pragma: no cover
            digest.update(package.encode())
    return digest.hexdigest()


def _fingerprint(settings: Settings) -> str:
    """Everything besides the issue file that shapes an issue's page."""
    digest = hashlib.sha256(f"{MANIFEST_VERSION}\0{_code_fingerprint()}\0{settings!r}".encode())
    digest.update(email_templates(settings).digest)
    return digest.hexdigest()


def _read_manifest(public_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((public_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {}
    return data


# ---------------------------------------------------------------------------
# Templates, pages and feeds
# ---------------------------------------------------------------------------


def web_template_dirs(settings: Settings) -> list[Path]:
    """templates/web/ of the newsletter, then the copy shipped with the package:
    an editor may override any one web template and keep the others."""
    candidates = [
        settings.templates_dir / WEB_TEMPLATES,
        PACKAGED_TEMPLATES / WEB_TEMPLATES,
        Path(__file__).parent.parent / "templates" / WEB_TEMPLATES,
    ]
    folders: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and folder.resolve() not in {f.resolve() for f in folders}:
            folders.append(folder)
    if not folders:
        raise TemplateError(candidates[0], None, "web templates not found")
    return folders


def web_environment(settings: Settings) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(f) for f in web_template_dirs(settings)])
    return jinja_environment(loader, autoescape=True, filters=FILTERS)


def _fill(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    with template_errors(Path(WEB_TEMPLATES), name):
        return env.get_template(name).render(context)


def _site_context(settings: Settings) -> dict[str, Any]:
    return {
        "newsletter": {
            "name": settings.name,
            "description": settings.description,
            "language": settings.language,
            "postal_address": settings.postal_address,
            "site_url": settings.site_url,
        },
        "urls": {
            "archive": settings.url(""),
            "subscribe": settings.url("subscribe"),
            "feed": settings.url("feed.xml"),
            "atom": settings.url("feed.atom"),
            "logo": settings.url(LOGO),
            "forum": settings.forum_url,
            "blog": settings.blog_url,
        },
    }


def signup_form(settings: Settings) -> Markup:
    """The signup form's markup, as the subscribers package writes it, with the
    consent wording the signup service records."""
    from subscribers.models import consent_wording
    from subscribers.web import signup_form_html

    form = signup_form_html(
        action_url=settings.url("subscribe"),
        consent_text=consent_wording(settings.name, settings.consent_text),
    )
    return Markup(form)  # noqa: S704 - built and escaped by subscribers.web


def _feeds(
    settings: Settings, env: jinja2.Environment, entries: Iterable[ArchiveEntry]
) -> tuple[str, str]:
    items = [_feed_item(settings, entry) for entry in entries]
    channel = FeedChannel(
        title=settings.name,
        link=settings.url(""),
        description=settings.description or settings.name,
        language=settings.language,
        rss_url=settings.url("feed.xml"),
        atom_url=settings.url("feed.atom"),
        logo_url=settings.url(LOGO),
        logo_size=LOGO_SIZE,
        id=feed_guid(settings.name),
        author=settings.author or settings.name,
        author_email=settings.author_email,
        updated=max((item.published for item in items), default=None),
    )
    with template_errors(Path(WEB_TEMPLATES), "feed templates"):
        return render_feeds(env, channel, items)


def _feed_item(settings: Settings, entry: ArchiveEntry) -> FeedItem:
    issue = entry.issue
    assert entry.content_html is not None, "plan_site makes it for every issue in the feeds"
    author = issue_author(issue, settings)
    # An address is only the newsletter author's; anyone else is named without one.
    email = settings.author_email if author and author == settings.author else ""
    return FeedItem(
        title=issue.title,
        url=entry.url,
        guid=issue_guid(issue.date, issue.slug),
        published=entry.published,
        summary=entry.summary,
        content_html=entry.content_html,
        author=author,
        author_email=email,
        tags=issue.tags,
    )


def static_files(settings: Settings) -> dict[str, Path]:
    """templates/web/static/* as public paths under static/; the newsletter's
    own files win over the packaged ones."""
    found: dict[str, Path] = {}
    for folder in web_template_dirs(settings):
        static = folder / "static"
        if not static.is_dir():
            continue
        for path in sorted(static.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                found.setdefault("static/" + path.relative_to(static).as_posix(), path)
    return found


# ---------------------------------------------------------------------------
# Phase two: the one writer
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteReport:
    """What a build published and what it changed on disk."""

    public_dir: Path
    issues: tuple[str, ...]
    drafts: tuple[str, ...]
    written: tuple[str, ...]
    unchanged: int
    removed: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def write_site(public_dir: Path, site: Site) -> SiteReport:
    """Write the files whose bytes differ; remove files the last build wrote
    that this one does not have. Files are replaced atomically."""
    written: list[str] = []
    unchanged = 0
    for public_path in sorted(site.files):
        target = _inside(public_dir, public_path)
        content = site.files[public_path]
        changed = (
            _copy_if_changed(content, target)
            if isinstance(content, Path)
            else _write_if_changed(target, content)
        )
        if changed:
            written.append(public_path)
        else:
            unchanged += 1

    removed: list[str] = []
    for public_path in sorted(set(site.previous_files) - set(site.files)):
        try:
            target = _inside(public_dir, public_path)
        except SiteError:
            continue  # a hand-edited manifest never makes us delete outside public/
        if target.is_file():
            target.unlink()
            removed.append(public_path)
            _prune(target.parent, public_dir)

    manifest = json.dumps(site.manifest, sort_keys=True, ensure_ascii=False).encode()
    _write_if_changed(public_dir / MANIFEST, manifest)
    for message in site.warnings:
        log.warning("%s", message)
    return SiteReport(
        public_dir=public_dir,
        issues=tuple(entry.issue.slug for entry in site.entries),
        drafts=site.drafts,
        written=tuple(written),
        unchanged=unchanged,
        removed=tuple(removed),
        warnings=site.warnings,
    )


def _inside(public_dir: Path, public_path: str) -> Path:
    root = public_dir.resolve()
    target = (public_dir / public_path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise SiteError(f"{public_path}: not a path inside {public_dir}")
    return public_dir / public_path


def _write_if_changed(target: Path, content: bytes) -> bool:
    try:
        if target.stat().st_size == len(content) and target.read_bytes() == content:
            return False
    except OSError:
        pass
    write_atomic(target, content)
    return True


def _copy_if_changed(source: Path, target: Path) -> bool:
    """Copy a media file, keeping its modification time, so the next build can
    tell it is unchanged from size and time alone."""
    try:
        original = source.stat()
        data: bytes | None = None
        try:
            current = target.stat()
            if current.st_size == original.st_size:
                if current.st_mtime_ns == original.st_mtime_ns:
                    return False
                data = source.read_bytes()
                if target.read_bytes() == data:
                    return False
        except FileNotFoundError:
            pass
        write_atomic(target, data if data is not None else source.read_bytes())
        os.utime(target, ns=(original.st_atime_ns, original.st_mtime_ns))
    except OSError as exc:
        raise SiteError(f"{source}: cannot copy to {target}: {exc.strerror or exc}") from None
    return True


def _prune(folder: Path, public_dir: Path) -> None:
    root = public_dir.resolve()
    while folder.resolve() != root and folder.resolve().is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# ---------------------------------------------------------------------------
# The entry points
# ---------------------------------------------------------------------------


def build_site(
    settings: Settings, sent: Mapping[str, datetime], now: datetime | None = None
) -> SiteReport:
    """Build public/ for ``settings``: plan everything, then write.

    ``sent`` maps each sent issue's slug to when it was sent. To publish an
    issue that is about to be sent, so that its view-in-browser link works
    from the first email, include it with the send's start time.
    """
    moment = _aware(now or datetime.now(UTC))
    site = plan_site(settings, sent, moment)
    return write_site(settings.public_dir, site)


def build_site_from_ledger(
    settings: Settings,
    engine: Any,
    now: datetime | None = None,
    *,
    sending: Mapping[str, datetime] | None = None,
) -> SiteReport:
    """:func:`build_site` with the sent issues read from the send ledger, plus
    ``sending`` (slug to start time) for an issue about to go out."""
    from subscribers.ledger import sent_issue_times

    sent = dict(sent_issue_times(engine))
    sent.update(sending or {})
    return build_site(settings, sent, now)
