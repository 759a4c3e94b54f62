"""`publish check`: every issue given (or in issues/), the reader-facing
pages and the confirm and welcome emails linted, and the findings kept, so
that a run over files unchanged since says them again without reading,
parsing or rendering a thing.

Checking is a function of the settings but the secrets, the working
folder, Python and the installed packages (:func:`pipeline.inputs.settings_key`),
the issues named, and the files under issues/, the templates and the code
(:func:`pipeline.inputs.input_files`). Each run's findings are kept in
``.cache/check.json`` under the newsletter's root with the stats and
SHA-256 digests of those files, taken before a byte was read::

    settings, names ─ key ─ a run recorded under it?
    issues/, templates/, code ─ stats (else digests) ─ as recorded?  ─ yes: its findings
                                                                    ─ no: lint, then record

A file changed while it was being checked has a digest from before, so
the next run checks again; a stat too fresh to trust is never trusted
(:mod:`pipeline.filestate`). A folder that cannot be written only means
checking everything next time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.filestate import Entry, unchanged, with_digests
from pipeline.finding import Finding, Severity
from pipeline.inputs import any_racy, input_files, read_record, settings_key, write_record

RECORD = Path(".cache") / "check.json"
"""Where, under the newsletter's root, the last runs' findings are kept."""
VERSION = 1
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
    key = settings_key(settings, f"version={VERSION}", *(f"issue={name}" for name in names))
    found = input_files(settings, [Path(name) for name in names if Path(name).exists()])
    record = settings.root / RECORD
    runs = _runs(record)
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
                _keep(record, runs, key, {**last, "taken_ns": taken, "files": files})
            return report
    digested = _digests(found, taken, runs)  # before reading: a change meanwhile shows
    report = lint(settings, names)
    _keep(record, runs, key, {"taken_ns": taken, "files": digested, **_as_record(report)})
    return report


def lint(settings: Settings, names: Sequence[str] = ()) -> CheckReport:
    """Every finding of the issues ``names`` (none: all of issues/), the
    pages and the emails, each once, reading everything now."""
    from pipeline.context import Context
    from pipeline.issue import find_issue
    from pipeline.lint import check_issue
    from pipeline.mailcheck import check_mail_templates
    from pipeline.reader_pages import check_pages

    given = [find_issue(name, settings.issues_dir) for name in names]
    context = Context.load(settings, given)
    paths = given or list(context.issues.paths)
    findings: dict[Finding, None] = {}
    for path in paths:
        # A template's findings come with every issue; each is shown once.
        for finding in check_issue(path, context).findings:
            findings.setdefault(_with_path(finding), None)
    for finding in (*check_pages(settings), *check_mail_templates(settings)):
        findings.setdefault(_with_path(finding), None)
    return CheckReport(len(paths), tuple(findings))


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
    return {
        "issues": report.issues,
        "findings": [[str(f.path), f.line, f.severity, f.message] for f in report.findings],
    }


def _report(record: dict[str, Any]) -> CheckReport:
    findings = tuple(
        Finding(Path(path), int(line), _severity(severity), str(message))
        for path, line, severity, message in record["findings"]
    )
    return CheckReport(int(record["issues"]), findings)


def _severity(recorded: object) -> Severity:
    if recorded == "error":
        return "error"
    if recorded == "warning":
        return "warning"
    raise ValueError(f"not a severity: {recorded!r}")


def _runs(path: Path) -> dict[str, Any]:
    record = read_record(path, VERSION)
    runs = record.get("runs") if record is not None else None
    if not isinstance(runs, dict):
        return {}
    return {key: run for key, run in runs.items() if isinstance(run, dict)}


def _keep(path: Path, runs: dict[str, Any], key: str, run: dict[str, Any]) -> None:
    """Record ``run`` under ``key`` as the newest, keeping the :data:`KEPT` newest."""
    newest = {key: run, **{k: v for k, v in runs.items() if k != key}}
    kept = dict(list(newest.items())[:KEPT])
    write_record(path, {"version": VERSION, "runs": kept})
