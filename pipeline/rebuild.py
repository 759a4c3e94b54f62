"""`publish site`: the site built, or, when nothing it is made from changed
since the last build, that build's report again with nothing read, parsed
or rendered.

A build is a function of what it is made from: the code (every file of
pipeline/ and subscribers/, and the installed packages), the settings but
the secrets, the working folder, everything under issues/ (following its
links), the newsletter's templates and the repository's, the sent issues in
the ledger, and the clock only through the next ``publish_at`` to pass.
After each build, :func:`publish_site` records all of them in
``.cache/site.json`` under the newsletter's root, with the build's report
and every file it left in public/ (:mod:`pipeline.filestate`: stats and
SHA-256 digests). The next run lists the same files again, which costs a
``stat`` each, and compares:

    settings, code, packages, folder ─ digest ─ as recorded?
    issues/, templates/ ─ stats (else digests) ─ as recorded?  ─┐
    public/ ─ the files the build left ─ as it left them?        ├─ all yes: the last report,
    the clock ─ before the next publish_at?                      │  0 files written
    the ledger ─ SQLite file's stat as recorded, or the sent ────┘
                 issues read from it as recorded?                 any no: build (pipeline.site),
                                                                  which reuses what it can
A file touched or copied back unchanged is still unchanged: its digest
decides when its stat differs. A file changed within a tick of the clock of
its last change can keep its stat; one whose stat was that fresh when it was
recorded is never trusted by stat (see :mod:`pipeline.filestate`), so the
next run builds. An SQLite database is trusted by the stat of its files,
which every committed write changes; any other database is read each run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.filestate import Entry, is_racy, sha256_of, stat_entry, unchanged
from pipeline.filestate import with_digests as digested
from pipeline.inputs import any_racy, input_files, read_record, settings_key, write_record
from pipeline.site_report import SiteReport

if TYPE_CHECKING:
    from pipeline.context import Context

log = logging.getLogger(__name__)

RECORD = Path(".cache") / "site.json"
"""Where, under the newsletter's root, the last build's inputs are kept."""
VERSION = 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def publish_site(settings: Settings, now: dt.datetime) -> SiteReport:
    """Build public/ from the ledger as `publish site` does, unless nothing
    it is made from changed since the last build: then report that build
    again (nothing written, every file unchanged)."""
    taken = time.time_ns()
    key = settings_key(settings, f"version={VERSION}")
    found = input_files(settings)
    database = _database(settings)
    record = _read(settings.root / RECORD)
    if record is not None and record.get("key") == key:
        try:
            report = _reuse(settings, record, found, database, taken, now)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            report = None  # a record this code did not write: build
        if report is not None:
            return report
    return _build(settings, key, found, taken, now)


def _reuse(
    settings: Settings,
    record: Mapping[str, Any],
    found: Mapping[str, Entry],
    database: dict[str, Any] | None,
    taken: int,
    now: dt.datetime,
) -> SiteReport | None:
    """The recorded report if nothing differs from the record; else None."""
    files = unchanged(record["files"], found, record["taken_ns"])
    if files is None:
        return None
    outputs_now = {path: stat_entry(Path(path)) for path in record["outputs"]}
    if None in outputs_now.values():
        return None  # a file the build left was removed
    outputs = unchanged(record["outputs"], _present(outputs_now), record["outputs_taken_ns"])
    if outputs is None:
        return None
    upcoming = record["next_change_ns"]
    if upcoming is not None and _ns(now) >= upcoming:
        return None
    trusted = _trusted(record["database"], database)
    if not trusted and _sent_record(_sent(settings)) != record["sent"]:
        return None
    refreshed = not trusted or files != record["files"] or outputs != record["outputs"]
    if refreshed or any_racy(record["files"], record["taken_ns"]):
        # Stats taken again (a file touched, the ledger read): the next run
        # trusts them and reads nothing.
        write_record(
            settings.root / RECORD,
            {
                **record,
                "taken_ns": taken,
                "files": files,
                "outputs_taken_ns": taken,
                "outputs": outputs,
                "database": {**database, "taken_ns": taken} if database else None,
            },
        )
    last = record["report"]
    for message in last["warnings"]:
        log.warning("%s", message)  # as the writer logs them on a build
    return SiteReport(
        public_dir=settings.public_dir,
        issues=tuple(last["issues"]),
        drafts=tuple(last["drafts"]),
        written=(),
        unchanged=len(last["files"]),
        removed=(),
        warnings=tuple(last["warnings"]),
        files=tuple(last["files"]),
    )


def _build(
    settings: Settings, key: str, found: Mapping[str, Entry], taken: int, now: dt.datetime
) -> SiteReport:
    """Build the site (see :func:`pipeline.site.build_site`) and record what
    it was made from, unless an input changed while it was built."""
    from pipeline.context import Context
    from pipeline.site import build_site
    from subscribers.db import connect
    from subscribers.ledger import sent_issue_times

    context = Context.load(settings)
    database_taken = time.time_ns()
    database = _database(settings)  # closed, as the next run will find it
    engine = connect(settings.database_url, settings.root)
    try:
        sent = dict(sent_issue_times(engine))
        report = build_site(context, sent, now)
    finally:
        engine.dispose()

    if input_files(settings) != found:
        return report  # changed while being read: the next run builds again
    outputs_taken = time.time_ns()
    outputs: dict[str, Entry] = {}
    for public_path in (*report.files, _manifest_name()):
        path = settings.public_dir / public_path
        entry = stat_entry(path)
        if entry is None or "stat" not in entry:
            return report
        outputs[str(path)] = {**entry, "sha256": sha256_of(path)}
    database_record = _database_record(settings, database, database_taken, sent)
    write_record(
        settings.root / RECORD,
        {
            "version": VERSION,
            "key": key,
            "taken_ns": taken,
            "files": digested(found, taken),
            "outputs_taken_ns": outputs_taken,
            "outputs": outputs,
            "database": database_record,
            "sent": _sent_record(sent),
            "next_change_ns": _next_change(context, sent, now),
            "report": {
                "issues": list(report.issues),
                "drafts": list(report.drafts),
                "warnings": list(report.warnings),
                "files": list(report.files),
            },
        },
    )
    return report


def _database_record(
    settings: Settings,
    before: dict[str, Any] | None,
    taken: int,
    sent: Mapping[str, dt.datetime],
) -> dict[str, Any] | None:
    """The database's files as the build's ``sent`` issues were read from
    them, for the next run to trust; None if that cannot be told.

    Unless connecting created or migrated it, or another process wrote to it
    meanwhile, the database is closed as it was ``before`` it was opened.
    Otherwise it is read again, closed before and after, and must give the
    same sent issues."""
    if before is not None and before == _database(settings):
        return {**before, "taken_ns": taken}
    taken = time.time_ns()
    closed = _database(settings)
    if closed is None or _sent_record(_sent(settings)) != _sent_record(sent):
        return None
    return {**closed, "taken_ns": taken} if closed == _database(settings) else None


def _database(settings: Settings) -> dict[str, Any] | None:
    """The files of an SQLite database (``sqlite:///path``) as they are now:
    the database, its write-ahead log and its journal; None for another
    database, or a URL this does not take apart as SQLAlchemy would."""
    url = settings.database_url.strip()
    scheme, separator, rest = url.partition(":///")
    if not separator or scheme.partition("+")[0] != "sqlite" or "?" in rest or "%" in rest:
        return None
    if not rest or rest == ":memory:" or rest.startswith("file:"):
        return None
    path = Path(rest).expanduser()
    if not path.is_absolute():
        path = settings.root / path
    if not path.is_file():
        return None
    paths = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return {
        "paths": [str(p) for p in paths],
        "entries": {str(p): stat_entry(p) for p in paths},
    }


def _trusted(recorded: Mapping[str, Any] | None, database: Mapping[str, Any] | None) -> bool:
    """Whether the SQLite database's files are as recorded, stat for stat
    (and not recorded too fresh to trust)."""
    if recorded is None or database is None or recorded["paths"] != database["paths"]:
        return False
    was, now = recorded["entries"], database["entries"]
    for path in recorded["paths"]:
        if was[path] != now[path]:
            return False
        if was[path] is not None and is_racy(was[path]["stat"], recorded["taken_ns"]):
            return False
    return True


def _sent(settings: Settings) -> dict[str, dt.datetime]:
    from subscribers.db import connect
    from subscribers.ledger import sent_issue_times

    engine = connect(settings.database_url, settings.root)
    try:
        return dict(sent_issue_times(engine))
    finally:
        engine.dispose()


def _sent_record(sent: Mapping[str, dt.datetime]) -> dict[str, str]:
    return {slug: moment.isoformat() for slug, moment in sorted(sent.items())}


def _next_change(context: Context, sent: Mapping[str, dt.datetime], now: dt.datetime) -> int | None:
    """When the next draft's publish_at passes (it joins the site then), in
    nanoseconds since the epoch; None if no draft has one."""
    from pipeline.site.selection import aware, published_at

    moments = []
    for path in context.issues.paths:
        issue = context.issues.read(path).issue
        if issue is None or issue.publish_at is None:
            continue
        if published_at(issue, sent, now) is None:  # a draft until then
            moments.append(_ns(aware(issue.publish_at)))
    return min(moments, default=None)


def _ns(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def _manifest_name() -> str:
    from pipeline.site.cache import MANIFEST

    return MANIFEST


def _present(entries: Mapping[str, Entry | None]) -> dict[str, Entry]:
    return {path: entry for path, entry in entries.items() if entry is not None}


def _read(path: Path) -> dict[str, Any] | None:
    """The record, or None if there is none this version can use."""
    record = read_record(path, VERSION)
    if record is None:
        return None
    needed = ("taken_ns", "files", "outputs_taken_ns", "outputs", "database", "sent")
    if any(name not in record for name in (*needed, "next_change_ns", "report")):
        return None
    return record
