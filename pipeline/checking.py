"""`publish check`: every issue given (or in issues/), the reader-facing
pages and the confirm and welcome emails linted, and the findings kept, so
that a run over files unchanged since says them again without reading,
parsing or rendering a thing, and a run after one edit lints only what the
edit can change.

Checking is a function of the settings but the secrets, the working
folder, Python and the installed packages (:func:`pipeline.inputs.settings_key`),
the issues named, and the files under issues/, the templates and the code
(:func:`pipeline.inputs.input_files`). Each run's findings are kept in
``.cache/check.json`` under the newsletter's root with the stats and
SHA-256 digests of those files, taken before a byte was read::

    settings, names ─ key ─ a run recorded under it?
    issues/, templates/, code ─ stats (else digests) ─ as recorded?  ─ yes: its findings
                                                                    ─ no: lint the parts

A run that cannot be said again is made of parts, each kept under a key
of what it depends on, so that editing one issue lints that issue alone::

    the pages and emails   settings, every file but the issues' texts
    each issue             the same, every issue's slug, and the text it was read as

An issue's findings depend on the other issues only through their slugs
(a slug shared, a link to another issue), and on the rest of issues/ (its
pictures, the files it links to) through the digests. Nothing is kept
from a run during which a file changed (its findings could be of bytes
newer than its digest), no part from one that could not digest every
file, and a stat too fresh to trust is never trusted
(:mod:`pipeline.filestate`). A folder that cannot be written only means
checking everything next time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.filestate import Entry, unchanged, with_digests
from pipeline.finding import Finding, Severity
from pipeline.inputs import any_racy, input_files, read_record, settings_key, write_record

if TYPE_CHECKING:
    from pipeline.context import Context

RECORD = Path(".cache") / "check.json"
"""Where, under the newsletter's root, the last runs' findings are kept."""
VERSION = 2
KEPT = 8
"""Runs kept, newest first: one for each set of issues an editor checks in turn."""


@dataclass(frozen=True)
class CheckReport:
    """What a run found: how many issues it checked and each finding once,
    in the order printed (each issue's, then the pages', then the emails')."""

    issues: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors


def check_newsletter(settings: Settings, names: Sequence[str] = ()) -> CheckReport:
    """Lint the issues ``names`` (files or slugs; none: every issue in
    issues/), the pages and the emails, or say the last run's findings
    again when nothing it read has changed."""
    taken = time.time_ns()
    base = settings_key(settings, f"version={VERSION}")
    key = hashlib.sha256("\n".join((base, *(f"issue={n}" for n in names))).encode()).hexdigest()
    found = checked_files(settings, names)
    record = settings.root / RECORD
    runs, parts = _stored(record)
    last = runs.get(key)
    if last is not None:
        try:
            files = unchanged(last["files"], found, last["taken_ns"])
            report = _report(last) if files is not None else None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            files = report = None  # a record this code did not write: check
        if files is not None and report is not None:
            if files != last["files"] or any_racy(last["files"], last["taken_ns"]):
                # Stats taken again (a file touched): the next run reads nothing.
                _keep(record, runs, parts, key, {**last, "taken_ns": taken, "files": files})
            return report
    digested = _digests(found, taken, runs)  # before reading: a change meanwhile shows
    made = Parts(base, digested, parts)
    report = lint(settings, names, made)
    # Findings of files that changed during the run would be kept under
    # digests from before: edited back, they would be said again. Kept only
    # from a run during which no stat changed (digests alike are not enough).
    if checked_files(settings, names) == found:
        run = {"taken_ns": taken, "files": digested, **_as_record(report), "parts": made.used}
        _keep(record, runs, made.kept(), key, run)
    return report


def checked_files(settings: Settings, names: Sequence[str] = ()) -> dict[str, Entry]:
    """Every file a check of the issues ``names`` may read, by path, as
    :func:`pipeline.inputs.input_files` lists them: issues/, the templates,
    the code, and each issue named by its file."""
    return input_files(settings, [Path(name) for name in names if Path(name).exists()])


class Parts:
    """The parts of one run (see the module's docstring): what earlier runs
    kept that still holds, and what this run linted."""

    def __init__(
        self, base: str, digested: Mapping[str, Entry], known: Mapping[str, list[Any]]
    ) -> None:
        self.base = base
        self.digested = digested
        self.known = known
        self.made: dict[str, list[Any]] = {}
        self.used: list[str] = []

    def findings(
        self, what: tuple[str, ...] | None, lint_part: Callable[[], Sequence[Finding]]
    ) -> Sequence[Finding]:
        """The findings of the part that depends on ``what``: kept, or
        ``lint_part()`` now (and kept); ``what`` None: a part that cannot be
        kept (a file not digested, an issue not read), linted now."""
        if what is None:
            return lint_part()
        key = hashlib.sha256(
            "\n".join((self.base, *what)).encode("utf-8", "surrogateescape")
        ).hexdigest()
        self.used.append(key)
        known = self.known.get(key)
        if known is not None:
            try:
                return _findings(known)
            except (TypeError, ValueError):  # a part this code did not write
                pass
        found = lint_part()
        self.made[key] = _as_rows(found)
        return found

    def kept(self) -> dict[str, list[Any]]:
        """The parts this run used, to keep for the next."""
        used = dict.fromkeys(self.used)
        return {k: self.made[k] if k in self.made else self.known[k] for k in used}

    def others(self, issue_texts: Collection[str]) -> str | None:
        """A digest of every file but the issues' texts (resolved paths), or
        None where a file could not be digested (a stat too fresh to trust):
        then no part can be said to hold."""
        rows = []
        for path, entry in self.digested.items():
            if "stat" in entry and os.path.realpath(path) in issue_texts:
                continue
            if "stat" in entry and not entry.get("sha256"):
                return None
            rows.append(f"{path}\0{sorted(entry.items())!r}")
        return hashlib.sha256("\n".join(rows).encode("utf-8", "surrogateescape")).hexdigest()


def lint(settings: Settings, names: Sequence[str] = (), parts: Parts | None = None) -> CheckReport:
    """Every finding of the issues ``names`` (none: all of issues/), the
    pages and the emails, each once; the parts ``parts`` kept that still
    hold are taken from it, the rest (all, without ``parts``) are linted now."""
    from pipeline.context import Context
    from pipeline.issue import find_issue

    given = [find_issue(name, settings.issues_dir) for name in names]
    context = Context.load(settings, given)
    paths = given or list(context.issues.paths)
    texts = context.issues.texts
    parts = parts or Parts("", {}, {})
    others = parts.others({str(path) for path in texts})
    slugs = "\0".join(f"{p}={s}" for p, s in sorted(context.issues.issue_slugs().items()))
    findings: dict[Finding, None] = {}
    for path in paths:
        # A template's findings come with every issue; each is shown once.
        text = texts.get(context.issues.files.resolve(path))
        what = None
        if others is not None and isinstance(text, str):
            digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
            what = ("issue", others, slugs, str(path), digest)
        findings.update(dict.fromkeys(parts.findings(what, partial(lint_issue, path, context))))
    service = ("service", others) if others is not None else None
    findings.update(dict.fromkeys(parts.findings(service, partial(lint_service, settings))))
    return CheckReport(len(paths), tuple(findings))


def lint_issue(path: Path, context: Context) -> list[Finding]:
    """The findings of the issue file at ``path``, read into ``context``."""
    from pipeline.lint import check_issue

    return [_with_path(finding) for finding in check_issue(path, context).findings]


def lint_service(settings: Settings) -> list[Finding]:
    """The findings of the reader-facing pages and the confirm and welcome
    emails, which no issue changes."""
    from pipeline.mailcheck import check_mail_templates
    from pipeline.reader_pages import check_pages

    return [_with_path(f) for f in (*check_pages(settings), *check_mail_templates(settings))]


def _with_path(finding: Finding) -> Finding:
    """``finding`` with its path a Path, however it was spelled (the same
    finding, once, whichever stage made it)."""
    return replace(finding, path=Path(finding.path))


def _digests(found: dict[str, Entry], taken: int, runs: dict[str, Any]) -> dict[str, Entry]:
    """``found`` with its files' digests: read now, or the newest run's for
    a file whose stat it recorded."""
    newest: dict[str, Any] = next(iter(runs.values()), {})
    known, known_ns = newest.get("files"), newest.get("taken_ns")
    if isinstance(known, dict) and isinstance(known_ns, int):
        try:
            return with_digests(found, taken, known, known_ns)
        except (TypeError, AttributeError):  # a run this code did not write
            pass
    return with_digests(found, taken)


def _as_record(report: CheckReport) -> dict[str, Any]:
    return {"issues": report.issues, "findings": _as_rows(report.findings)}


def _as_rows(findings: Sequence[Finding]) -> list[Any]:
    return [[str(f.path), f.line, f.severity, f.message] for f in findings]


def _report(record: dict[str, Any]) -> CheckReport:
    return CheckReport(int(record["issues"]), _findings(record["findings"]))


def _findings(rows: list[Any]) -> tuple[Finding, ...]:
    return tuple(
        Finding(Path(path), int(line), _severity(severity), str(message))
        for path, line, severity, message in rows
    )


def _severity(recorded: object) -> Severity:
    if recorded == "error":
        return "error"
    if recorded == "warning":
        return "warning"
    raise ValueError(f"not a severity: {recorded!r}")


def _stored(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The runs and the parts kept at ``path`` (none of either if damaged)."""
    record = read_record(path, VERSION)
    runs = record.get("runs") if record is not None else None
    parts = record.get("parts") if record is not None else None
    if not isinstance(runs, dict):
        return {}, {}
    if not isinstance(parts, dict):
        parts = {}
    return (
        {key: run for key, run in runs.items() if isinstance(run, dict)},
        {key: rows for key, rows in parts.items() if isinstance(rows, list)},
    )


def _keep(
    path: Path,
    runs: dict[str, Any],
    parts: Mapping[str, list[Any]],
    key: str,
    run: dict[str, Any],
) -> None:
    """Record ``run`` under ``key`` as the newest, keeping the :data:`KEPT`
    newest, and the parts they used that ``parts`` holds."""
    newest = {key: run, **{k: v for k, v in runs.items() if k != key}}
    kept = dict(list(newest.items())[:KEPT])
    used = {
        part
        for one in kept.values()
        for part in (one.get("parts") if isinstance(one.get("parts"), list) else ())
        if isinstance(part, str)
    }
    write_record(
        path,
        {
            "version": VERSION,
            "runs": kept,
            "parts": {part: rows for part, rows in parts.items() if part in used},
        },
    )
