"""`publish check`: everything that can be wrong with an issue before it goes out.

:func:`check_issue` parses and renders an issue and returns its findings,
each ``path:line: error|warning: message``. Errors stop a send; warnings are
for the editor's judgement. It works from the command's context alone (the
issue's text, the other issues' slugs, the templates and the index of
issues/ were all read when the context was built), so checking reads no file.

    path + Context ─ parse ─ front matter, body, links, raw HTML, pictures ─┐
                   └ render ─ size as sent, footer parts ────────────────────┴─▶ CheckResult
"""

from __future__ import annotations

import email
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from markupsafe import escape

from pipeline.body import Body, Reference, raw_html
from pipeline.config import CONFIG_FILE, Settings
from pipeline.context import Context
from pipeline.errors import ImageError, LocatedError, PublishError
from pipeline.greeting import opening_greeting
from pipeline.issue import Finding, Issue, IssueBody, default_slug, expected_file_name
from pipeline.links import Resolver
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import (
    RenderedIssue,
    issue_greeting,
    parse_issue_body,
    render_issue,
    sample_values,
)
from pipeline.templates import EMAIL_TEMPLATE
from subscribers.tokens import Signer

SUBJECT_MAX = 78
PREHEADER_RANGE = (40, 130)
GMAIL_CLIP_BYTES = 102 * 1024
PICTURES_BYTES = 1024 * 1024
"""What an issue's pictures may weigh together, made ready for email,
before a warning: every reader who opens it downloads them all."""
SAMPLE_READER_ID = 1_000_000
"""The sample reader whose message is measured (the id is in its unsubscribe link)."""

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


def check_issue(path: Path, context: Context) -> CheckResult:
    """Lint the issue file at ``path`` (read into ``context`` when it was
    built); never raises for a problem in the issue.

    The body is checked even when the front matter is broken, and the email
    template whatever the issue, so that one run reports everything; the
    email is rendered and measured only once nothing else is wrong.
    """
    settings = context.settings
    read = context.issues.read(path)
    issue = read.issue
    findings = list(read.findings)
    findings.extend(_check_file_name(path, issue))
    findings.extend(_check_shared_slug(path, issue, context))
    findings.extend(_check_template_elements(context))
    if issue is not None:
        findings.extend(_check_front_matter(issue))

    parsed = None
    if read.body is not None:
        body, resolver = parsed = parse_issue_body(read.body, context)
        findings.extend(_check_references(path, body.references, resolver))
        findings.extend(_check_pictures(path, body.references, resolver))
        findings.extend(_check_dangling_brackets(read.body))
        findings.extend(_check_raw_html(read.body))
        greeting = settings.greeting if issue is None else issue_greeting(issue, settings)
        findings.extend(_check_own_greeting(read.body, body, greeting))

    rendered: RenderedIssue | None = None
    if issue is not None and parsed is not None and not _has_errors(findings):
        try:
            rendered = render_issue(issue, context, parsed)
        except LocatedError as exc:
            findings.append(Finding(exc.path, exc.line or 1, "error", exc.message))
    if rendered is not None:
        findings.extend(_check_rendered(rendered, settings, context.templates.folder))

    unique = list(dict.fromkeys(findings))
    unique.sort(key=lambda f: (str(f.path), f.line, f.severity != "error"))
    return CheckResult(path, issue, rendered, tuple(unique))


def _has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def _check_shared_slug(path: Path, issue: Issue | None, context: Context) -> list[Finding]:
    """Two files with one slug would be one page on the site and one send in
    the ledger: the second would resume the first's send and mail nobody."""
    slug = issue.slug if issue is not None else default_slug(path)
    files = context.issues.files
    here = files.resolve(path)
    slugs = context.issues.issue_slugs()
    others = sorted(p for p, s in slugs.items() if s == slug and p != here)
    root = files.resolve(context.settings.root)
    return [
        Finding(
            path,
            1,
            "error",
            f"the slug {slug!r} is also the slug of {_shown(other, root)}: "
            "give one of them its own slug (a slug: line in its front matter)",
        )
        for other in others
    ]


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_file_name(path: Path, issue: Issue | None) -> list[Finding]:
    """An issue file is named ``YYYY-MM-DD-slug.md``, so that issues/ lists
    them by date."""
    name = expected_file_name(path, issue.date if issue else None)
    if name is None:
        return []
    message = f"the file name should start with the issue's date: {name}"
    return [Finding(path, 1, "warning", message)]


def _check_template_elements(context: Context) -> list[Finding]:
    """The email template's tags that name no MJML element."""
    try:
        return list(context.templates.unknown_mjml)
    except LocatedError as exc:
        return [Finding(exc.path, exc.line or 1, "error", exc.message)]


def _check_raw_html(markdown: IssueBody) -> list[Finding]:
    """HTML typed into an issue reaches the reader as text, tags and all."""
    out: list[Finding] = []
    for line, html in raw_html(markdown.text, markdown.first_line):
        shown = html if len(html) <= 40 else html[:39] + "…"
        if html.startswith("<!--"):
            message = f"the HTML comment {shown!r} is shown as text: readers would see it"
        else:
            message = f"raw HTML {shown!r} is shown as text, not as HTML: write markdown instead"
        out.append(Finding(markdown.path, line, "warning", message))
    return out


def _check_own_greeting(markdown: IssueBody, body: Body, greeting: str) -> list[Finding]:
    """An issue that opens with a greeting of its own, under the one the
    template adds (``greeting``, "" when off), would greet the reader twice."""
    found = opening_greeting(body.article_tokens) if greeting else None
    if found is None:
        return []
    offset, words = found
    message = (
        f'the issue starts with its own greeting ("{words}") and the template adds '
        f'"{greeting}": set greeting: "" in its front matter or drop the line'
    )
    return [Finding(markdown.path, markdown.first_line + offset, "warning", message)]


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
    path: Path, references: tuple[Reference, ...], resolver: Resolver
) -> list[Finding]:
    out: list[Finding] = []

    def error(line: int, message: str) -> None:
        out.append(Finding(path, line, "error", message))

    for ref in references:
        target = ref.target.strip()
        label = f"[{ref.text}]" if ref.text else "link"
        missing = resolver.is_relative(target) and resolver.local_file(target) is None
        problem = resolver.problem(target) if missing else None
        if ref.kind == "image":
            if not ref.text.strip():
                error(ref.line, f"image {target or '(no source)'!r} has no alt text")
            if not target:
                error(ref.line, "image has no source")
            elif problem:
                error(ref.line, f"image {target!r} is not a file name: {problem}")
            elif missing:
                error(ref.line, f"image {target!r} not found next to the issue or in images/")
            elif target.startswith("http://"):
                out.append(Finding(path, ref.line, "warning", f"image {target!r} is not https"))
            continue
        if not target:
            error(ref.line, f"link {label} has an empty target")
        elif target == "#":
            error(ref.line, f"link {label} points at '#', which goes nowhere in an email")
        elif target.startswith("#"):
            error(ref.line, f"link {label} points at {target!r}: anchors do not work in email")
        elif problem:
            error(ref.line, f"link {label} {target!r} is not a file name: {problem}")
        elif missing:
            if _looks_like_domain(target):
                error(ref.line, f"link {label} {target!r} has no scheme; write https://{target}")
            else:
                error(ref.line, f"link {label} {target!r} resolves to no file")
    return out


def _check_pictures(
    path: Path, references: tuple[Reference, ...], resolver: Resolver
) -> list[Finding]:
    """A picture that cannot be made ready for email is an error where the
    issue uses it; pictures shown that weigh over PICTURES_BYTES together,
    a warning."""
    out: list[Finding] = []
    weights: dict[Path, int] = {}
    first_line = 0
    for ref in references:
        target = ref.target.strip()
        local = resolver.local_file(target) if resolver.is_relative(target) else None
        picture = resolver.files.pictures.get(local) if local is not None else None
        if isinstance(picture, ImageError):
            out.append(Finding(path, ref.line, "error", str(picture)))
        elif picture is not None and local is not None and ref.kind == "image":
            weights[local] = len(picture.data)
            first_line = first_line or ref.line
    total = sum(weights.values())
    if total > PICTURES_BYTES:
        count = f"{len(weights)} picture{'s' if len(weights) != 1 else ''}"
        out.append(
            Finding(
                path,
                first_line,
                "warning",
                f"the {count} weigh {total / 2**20:.1f} MB together, made ready for email; "
                "every reader who opens it downloads them all: aim for under "
                f"{PICTURES_BYTES // 2**20} MB",
            )
        )
    return out


_BARE_DOMAIN = re.compile(
    r"^(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:[/:?#].*)?$", re.IGNORECASE
)
_FILE_SUFFIX = re.compile(r"\.(md|html?|pdf|png|jpe?g|gif|svg|webp|txt|csv)$", re.I)


def _looks_like_domain(target: str) -> bool:
    """``www.example.com`` or ``example.com/page``, not ``other-issue.md``."""
    return bool(_BARE_DOMAIN.match(target)) and not _FILE_SUFFIX.search(target.split("?")[0])


def _check_dangling_brackets(markdown: IssueBody) -> list[Finding]:
    """``[the forum]`` without a target is usually a forgotten link."""
    out: list[Finding] = []
    in_fence = False
    for offset, line in enumerate(markdown.text.split("\n")):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence or line.startswith("    "):
            continue
        for match in _DANGLING_LINK.finditer(line):
            text = match.group(1)
            if re.fullmatch(r"[ xX]|\d+|sic|\.\.\.|…", text.strip()):
                continue
            if re.search(rf"^\s*\[{re.escape(text)}\]:", markdown.text, re.M | re.I):
                continue
            out.append(
                Finding(
                    markdown.path,
                    markdown.first_line + offset,
                    "error",
                    f"link [{text}] has no target: write [{text}](https://...)",
                )
            )
    return out


def _check_rendered(rendered: RenderedIssue, settings: Settings, folder: Path) -> list[Finding]:
    out: list[Finding] = []
    issue = rendered.issue
    template = folder / EMAIL_TEMPLATE
    _, text = rendered.fill(sample_values(settings))
    try:
        size, encoding = sent_html_size(rendered, settings)
    except PublishError as exc:  # a sender address no message can carry
        out.append(Finding(settings.root / CONFIG_FILE, 1, "error", str(exc)))
        size, encoding = 0, ""
    if size > GMAIL_CLIP_BYTES:
        out.append(
            Finding(
                issue.path,
                issue.body_line,
                "error",
                f"email HTML is {size / 1024:.1f} KB as sent ({encoding}); "
                "Gmail clips messages over 102 KB",
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


def sent_html_size(rendered: RenderedIssue, settings: Settings) -> tuple[int, str]:
    """(bytes, transfer encoding) of the HTML part as a sample reader's
    message carries it, encoded: the message is built by the personalizer
    that builds every message sent, so the measure follows how it encodes."""
    signer = Signer(secrets.token_hex(16))  # a real token's length; never sent
    personalizer = Personalizer(rendered, settings, signer.unsubscribe)
    values = sample_values(settings)
    reader = Recipient(SAMPLE_READER_ID, "reader@example.com", values["first_name"])
    message = email.message_from_bytes(personalizer(reader).raw)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            encoding = str(part.get("Content-Transfer-Encoding", "8bit")).lower()
            return len(str(part.get_payload()).encode("ascii", "surrogateescape")), encoding
    return 0, "none"  # pragma: no cover - every message has an HTML part
