"""`publish check`: everything that can be wrong with an issue before it goes out.

:func:`check_issue` parses and renders an issue and returns its findings,
each ``path:line: error|warning: message``. Errors stop a send; warnings are
for the editor's judgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import escape

from pipeline.body import Reference, Resolver
from pipeline.config import Settings
from pipeline.errors import LocatedError
from pipeline.issue import Finding, Issue, read_issue
from pipeline.render import (
    EMAIL_TEMPLATE,
    RenderedIssue,
    parse_issue_body,
    render_issue,
    sample_values,
    templates_dir,
)

SUBJECT_MAX = 78
PREHEADER_RANGE = (40, 130)
GMAIL_CLIP_BYTES = 102 * 1024

_DANGLING_LINK = re.compile(r"(?<![!\]\\])\[([^\[\]\n]{1,80})\](?![(\[:])")


@dataclass(frozen=True)
class CheckResult:
    path: Path
    issue: Issue | None
    rendered: RenderedIssue | None
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors


def check_issue(path: Path, settings: Settings) -> CheckResult:
    """Lint one issue file; never raises for a problem in the issue."""
    issue, findings = read_issue(path)
    if issue is None:
        return CheckResult(path, None, None, tuple(findings))

    findings.extend(_check_front_matter(issue))
    body, resolver = parsed = parse_issue_body(issue, settings)
    findings.extend(_check_references(issue, body.references, resolver))
    findings.extend(_check_dangling_brackets(issue))

    rendered: RenderedIssue | None = None
    if not any(f.severity == "error" for f in findings):
        try:
            rendered = render_issue(issue, settings, parsed)
        except LocatedError as exc:
            findings.append(Finding(exc.path, exc.line or 1, "error", exc.message))
    if rendered is not None:
        findings.extend(_check_rendered(rendered, settings))

    findings.sort(key=lambda f: (str(f.path), f.line, f.severity != "error"))
    return CheckResult(path, issue, rendered, tuple(findings))


def _check_front_matter(issue: Issue) -> list[Finding]:
    out: list[Finding] = []
    line = issue.key_lines.get("subject", issue.key_lines.get("title", 2))
    if len(issue.subject) > SUBJECT_MAX:
        out.append(
            Finding(
                issue.path,
                line,
                "warning",
                f"subject is {len(issue.subject)} characters; inboxes cut it after about "
                f"{SUBJECT_MAX}",
            )
        )
    low, high = PREHEADER_RANGE
    if not issue.preheader:
        out.append(
            Finding(
                issue.path,
                issue.key_lines.get("title", 2),
                "warning",
                "no preheader: inboxes will preview the first words of the email instead",
            )
        )
    elif not low <= len(issue.preheader) <= high:
        out.append(
            Finding(
                issue.path,
                issue.key_lines["preheader"],
                "warning",
                f"preheader is {len(issue.preheader)} characters; aim for {low} to {high}",
            )
        )
    return out


def _check_references(
    issue: Issue, references: tuple[Reference, ...], resolver: Resolver
) -> list[Finding]:
    out: list[Finding] = []

    def error(line: int, message: str) -> None:
        out.append(Finding(issue.path, line, "error", message))

    for ref in references:
        target = ref.target.strip()
        label = f"[{ref.text}]" if ref.text else "link"
        if ref.kind == "image":
            if not ref.text.strip():
                error(ref.line, f"image {target or '(no source)'!r} has no alt text")
            if not target:
                error(ref.line, "image has no source")
            elif resolver.is_relative(target) and resolver.local_file(target) is None:
                error(ref.line, f"image {target!r} not found next to the issue or in images/")
            elif target.startswith("http://"):
                out.append(
                    Finding(issue.path, ref.line, "warning", f"image {target!r} is not https")
                )
            continue
        if not target:
            error(ref.line, f"link {label} has an empty target")
        elif target == "#":
            error(ref.line, f"link {label} points at '#', which goes nowhere in an email")
        elif target.startswith("#"):
            error(ref.line, f"link {label} points at {target!r}: anchors do not work in email")
        elif resolver.is_relative(target) and resolver.local_file(target) is None:
            if _looks_like_domain(target):
                error(ref.line, f"link {label} {target!r} has no scheme; write https://{target}")
            else:
                error(ref.line, f"link {label} {target!r} resolves to no file")
    return out


_BARE_DOMAIN = re.compile(
    r"^(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:[/:?#].*)?$", re.IGNORECASE
)
_FILE_SUFFIX = re.compile(r"\.(md|html?|pdf|png|jpe?g|gif|svg|webp|txt|csv)$", re.I)


def _looks_like_domain(target: str) -> bool:
    """``www.example.com`` or ``example.com/page``, not ``other-issue.md``."""
    return bool(_BARE_DOMAIN.match(target)) and not _FILE_SUFFIX.search(target.split("?")[0])


def _check_dangling_brackets(issue: Issue) -> list[Finding]:
    """``[the forum]`` without a target is usually a forgotten link."""
    out: list[Finding] = []
    in_fence = False
    for offset, line in enumerate(issue.body.split("\n")):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence or line.startswith("    "):
            continue
        for match in _DANGLING_LINK.finditer(line):
            text = match.group(1)
            if re.fullmatch(r"[ xX]|\d+|sic|\.\.\.|…", text.strip()):
                continue
            if re.search(rf"^\s*\[{re.escape(text)}\]:", issue.body, re.M | re.I):
                continue
            out.append(
                Finding(
                    issue.path,
                    issue.body_line + offset,
                    "error",
                    f"link [{text}] has no target: write [{text}](https://...)",
                )
            )
    return out


def _check_rendered(rendered: RenderedIssue, settings: Settings) -> list[Finding]:
    out: list[Finding] = []
    issue = rendered.issue
    template = templates_dir(settings) / EMAIL_TEMPLATE
    html, text = rendered.fill(sample_values(settings))
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        out.append(
            Finding(
                issue.path,
                issue.body_line,
                "error",
                f"email HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB",
            )
        )
    unsubscribe = rendered.slot("unsubscribe_url")
    if f'href="{unsubscribe}"' not in rendered.html or unsubscribe not in rendered.text:
        out.append(
            Finding(
                template,
                1,
                "error",
                "template has no unsubscribe link ({{ slots.unsubscribe_url }})",
            )
        )
    if f'href="{rendered.web_url}"' not in rendered.html or rendered.web_url not in rendered.text:
        out.append(
            Finding(template, 1, "error", "template has no view-in-browser link ({{ urls.web }})")
        )
    first_line = settings.postal_address.splitlines()[0]
    if str(escape(first_line)) not in rendered.html or first_line not in text:
        out.append(
            Finding(
                template,
                1,
                "error",
                "template has no postal address ({{ newsletter.postal_address }}); "
                "CAN-SPAM requires one in every issue",
            )
        )
    return out
