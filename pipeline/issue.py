"""An issue file: YAML front matter, then a markdown body.

    ---
    title: An easy stretch for chronic calf pain
    date: 2026-12-01
    ---
    Body in CommonMark with tables...

:func:`parse_issue_file` turns a file's text into the :class:`Issue`, its
body (also when the front matter is broken, so that the body's problems are
reported too) and every front-matter problem found, each located at its
line; it reads nothing. Reading is the edge's: :func:`read_issue_text` reads
and decodes a file, and :func:`read_issue_file`, :func:`read_issue` and
:func:`load_issue` (the strict form that raises the first error) read and
parse one. A command reads its issues once, into its context
(:mod:`pipeline.context`), and parses from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import IssueError
from pipeline.finding import Finding as Finding
from pipeline.finding import Severity as Severity
from pipeline.greeting import check_greeting
from subscribers.text import one_line

REQUIRED_KEYS = ("title", "date")
OPTIONAL_KEYS = ("subject", "preheader", "slug", "author", "tags", "publish_at", "greeting")
KNOWN_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
_SLUG_OK = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NUL_BYTE = "a NUL byte, which no text can contain and no editor shows: delete it"

@dataclass(frozen=True)
class Issue:
    """One newsletter issue as the editor wrote it, validated."""

    path: Path
    title: str
    date: date
    subject: str
    slug: str
    body: str
    body_line: int
    """The file line on which the body's first line stands."""
    preheader: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    publish_at: datetime | None = None
    greeting: str | None = None  # this issue's greeting format; None: newsletter.greeting
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    """Line of each front-matter key, for findings that point at one."""
    source: str = field(default="", repr=False, compare=False)

    @property
    def markdown(self) -> IssueBody:
        """The body and where it stands in the file."""
        return IssueBody(self.path, self.body, self.body_line)


@dataclass(frozen=True)
class IssueBody:
    """An issue file's markdown body, readable even when its front matter is not."""

    path: Path
    text: str
    first_line: int
    """The file line on which the body's first line stands."""


@dataclass(frozen=True)
class IssueFile:
    """What :func:`read_issue_file` found: the issue (None if its front matter
    is unusable), the body (None if the file has no front matter to end), and
    every finding about the front matter and the file."""

    issue: Issue | None
    body: IssueBody | None
    findings: tuple[Finding, ...]


def slugify(text: str) -> str:
    """A URL slug: lowercase ASCII words joined by hyphens."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)[:80].strip("-") or "issue"


def default_slug(path: Path) -> str:
    """The file name without its ``YYYY-MM-DD-`` prefix and extension."""
    return slugify(_DATE_PREFIX.sub("", path.stem))


def read_issue_text(path: Path) -> str:
    """The file as text with LF line ends, control characters and all;
    unreadable or non-UTF-8 files are an IssueError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IssueError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IssueError(path, line, "not valid UTF-8 text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def expected_file_name(path: Path, day: date | None) -> str | None:
    """The name an issue file should have (``YYYY-MM-DD-slug.md``, with the
    issue's date when known), or None when its name is right."""
    if _DATE_PREFIX.match(path.name):
        return None
    return f"{day.isoformat() if day else 'YYYY-MM-DD'}-{path.name}"


def _split(path: Path, text: str) -> tuple[str, int, str, int]:
    """(front matter, its first line, body, the body's first line)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise IssueError(path, 1, "missing front matter: the file must start with a '---' line")
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            front = "\n".join(lines[1:index])
            body = "\n".join(lines[index + 1 :])
            return front, 2, body, index + 2
    raise IssueError(path, 1, "front matter is not closed by a '---' line")


def read_issue(path: Path) -> tuple[Issue | None, list[Finding]]:
    """Read and parse ``path``: the issue (None if unusable) and every finding
    about its front matter (:mod:`pipeline.lint` checks the rest)."""
    read = read_issue_file(path)
    return read.issue, list(read.findings)


def read_issue_file(path: Path) -> IssueFile:
    """Read and parse ``path`` into the issue, its body and the findings about them."""
    try:
        raw = read_issue_text(path)
    except IssueError as exc:
        return unreadable(path, exc)
    return parse_issue_file(path, raw)


def unreadable(path: Path, error: IssueError) -> IssueFile:
    """What :func:`read_issue_file` found of a file it could not read as text."""
    return IssueFile(None, None, (Finding(path, error.line or 1, "error", error.message),))


def parse_issue_file(path: Path, raw: str) -> IssueFile:
    """Parse ``raw``, the text of the file at ``path`` (as :func:`read_issue_text`
    gives it), into the issue, its body and the findings; reads nothing."""
    # Control characters are invisible in an editor and break MJML's parser.
    text = _CONTROL.sub("", raw)
    try:
        front, front_line, body, body_line = _split(path, text)
    except IssueError as exc:
        return unreadable(path, exc)
    markdown = IssueBody(path, body, body_line)
    nul = [Finding(path, line, "error", NUL_BYTE) for line in _nul_lines(raw)]
    issue, findings = _read_front(path, text, front, front_line, markdown)
    return IssueFile(None if nul else issue, markdown, tuple(nul + findings))


def _nul_lines(text: str) -> list[int]:
    """The lines holding a NUL byte (a control character parsing drops,
    which would silently change a file name written around it)."""
    if "\x00" not in text:
        return []
    return [n for n, line in enumerate(text.split("\n"), 1) if "\x00" in line]


def _read_front(
    path: Path, text: str, front: str, front_line: int, markdown: IssueBody
) -> tuple[Issue | None, list[Finding]]:
    findings: list[Finding] = []

    def error(line: int, message: str) -> None:
        findings.append(Finding(path, line, "error", message))

    try:
        try:
            node = yaml.compose(front, Loader=_LOADER)
        except yaml.YAMLError:
            # The C loader is fast; the pure-Python one locates errors better.
            node = yaml.compose(front, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        from pipeline.yaml_errors import explain  # only for front matter that does not parse

        offset, message = explain(exc, front)
        return None, [Finding(path, front_line + offset, "error", f"front matter: {message}")]
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(node, yaml.MappingNode):
        return None, [Finding(path, front_line, "error", "front matter must be 'key: value' lines")]

    constructor = yaml.SafeLoader("")
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = front_line + key_node.start_mark.line
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            error(line, "front matter keys must be plain words")
            continue
        if key in lines:
            error(line, f"duplicate key {key!r} (first on line {lines[key]})")
            continue
        lines[key] = line
        if key not in KNOWN_KEYS:
            close = _closest(key)
            hint = f" (did you mean {close!r}?)" if close else ""
            error(line, f"unknown key {key!r}{hint}")
            continue
        try:
            values[key] = constructor.construct_object(value_node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            if isinstance(value_node, yaml.ScalarNode):
                values[key] = value_node.value  # e.g. 2026-13-45: validated as text below
            else:
                error(line, f"{key}: {getattr(exc, 'problem', None) or exc}")

    for key in REQUIRED_KEYS:
        if key not in lines:
            error(front_line, f"missing required key {key!r}")

    fields_ok: dict[str, Any] = {}
    for key, value in values.items():
        if value is None and key in OPTIONAL_KEYS:
            continue  # "publish_at:" left empty means not set
        try:
            fields_ok[key] = _validate(key, value, path)
        except ValueError as exc:
            error(lines[key], f"{key}: {exc}")

    if any(f.severity == "error" for f in findings) or not {"title", "date"} <= fields_ok.keys():
        return None, findings

    slug = fields_ok.get("slug") or default_slug(path)
    issue = Issue(
        path=path,
        title=fields_ok["title"],
        date=fields_ok["date"],
        subject=fields_ok.get("subject") or fields_ok["title"],
        slug=slug,
        body=markdown.text,
        body_line=markdown.first_line,
        preheader=fields_ok.get("preheader", ""),
        author=fields_ok.get("author", ""),
        tags=fields_ok.get("tags", ()),
        publish_at=fields_ok.get("publish_at"),
        greeting=fields_ok.get("greeting"),
        key_lines=lines,
        source=text,
    )
    return issue, findings


def load_issue(path: Path) -> Issue:
    """Read and parse ``path`` or raise :class:`IssueError` for the first error."""
    return strict(read_issue_file(path))


def strict(read: IssueFile) -> Issue:
    """The issue of ``read``, or :class:`IssueError` for its first error."""
    for finding in read.findings:
        if finding.severity == "error":
            raise IssueError(finding.path, finding.line, finding.message)
    assert read.issue is not None
    return read.issue


def _single_line(value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_type_name(value)}")
    text = one_line(value)
    if not text and not allow_empty:
        raise ValueError("must not be empty")
    return text


def _validate(key: str, value: Any, path: Path) -> Any:
    if key in ("title", "subject", "author"):
        return _single_line(value)
    if key in ("preheader", "greeting"):
        text = _single_line(value, allow_empty=True)
        return check_greeting(text) if key == "greeting" else text
    if key == "slug":
        text = _single_line(value)
        if not _SLUG_OK.match(text):
            raise ValueError(f"{text!r} must be lowercase letters, digits and hyphens")
        return text
    if key == "date":
        if isinstance(value, datetime):
            raise ValueError("expected a date like 2026-12-01, without a time")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not an ISO date like 2026-12-01")
    if key == "publish_at":
        moment = value
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an ISO date-time like 2026-12-01T07:00:00+00:00"
                ) from None
        if not isinstance(moment, datetime):
            raise ValueError(f"expected a date-time like 2026-12-01T07:00:00+00:00, got {value!r}")
        if moment.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-12-01T07:00:00+00:00 or ...Z")
        return moment
    if key == "tags":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"expected a list of words, got {_type_name(value)}")
        tags: list[str] = []
        for item in value:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ValueError(f"each tag must be text, got {_type_name(item)}")
            tag = _single_line(str(item))
            if tag not in tags:
                tags.append(tag)
        return tuple(tags)
    raise ValueError("unknown key")  # pragma: no cover - filtered before


def _type_name(value: Any) -> str:
    return {
        "NoneType": "nothing",
        "str": "text",
        "int": "a number",
        "float": "a number",
        "bool": "true/false",
        "list": "a list",
        "dict": "a mapping",
        "date": "a date",
        "datetime": "a date-time",
    }.get(type(value).__name__, type(value).__name__)


def _closest(key: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return matches[0] if matches else None


def find_issue_files(issues_dir: Path) -> list[Path]:
    """Every issue file under ``issues_dir``, sorted by name (so by date)."""
    if not issues_dir.is_dir():
        return []
    return sorted(p for p in issues_dir.glob("*.md") if p.is_file())


def find_issue(name: str, issues_dir: Path) -> Path:
    """The issue file ``name`` stands for: a path, a file in issues/, or a slug."""
    given = Path(name)
    if given.is_file():
        return given
    for candidate in (issues_dir / name, issues_dir / f"{name}.md"):
        if candidate.is_file():
            return candidate
    matches = [p for p in find_issue_files(issues_dir) if default_slug(p) == name]
    if len(matches) == 1:
        return matches[0]
    raise IssueError(given, None, "no such issue file")
