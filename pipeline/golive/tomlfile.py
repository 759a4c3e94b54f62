"""Setting keys in newsletter.toml by hand's rules: the editor's comments,
order and alignment stay as they were.

    set_keys(path, {"events.queue_url": "https://...", "events.sns_topic_arns": [...]})

    [events]
    queue_url = ""                   # NEWSLETTER_EVENTS_QUEUE_URL
      └ queue_url = "https://..."    # NEWSLETTER_EVENTS_QUEUE_URL
                                       the value replaced in its line, the
                                       comment kept (in its column if it fits)
    a key missing from its table      added after the table's last key
    a table missing from the file     added at the end

Values are written as TOML basic strings (escaped) or lists of them. The
new text is parsed again (tomllib) and read as settings
(:func:`pipeline.config.load_settings`, without the environment) before it
replaces the file, in one atomic rename: a write that would break the file
raises ConfigError and leaves it as it was.
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from subscribers.files import atomic_text

Value = str | Sequence[str]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\f": "\\f", "\r": "\\r"}


def toml_value(value: Value) -> str:
    """``"text"`` (escaped) or ``["a", "b"]``."""
    if isinstance(value, str):
        return '"' + "".join(_escape(char) for char in value) + '"'
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char


def set_keys(path: Path, values: Mapping[str, Value]) -> list[str]:
    """Write each ``table.key`` whose value in the file differs; the keys
    written, in the order given (none: the file is not touched)."""
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
        current = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read to write settings in ({exc})") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    written = []
    for dotted, value in values.items():
        table, _, key = dotted.partition(".")
        if _normalised(current.get(table, {}).get(key)) == _normalised(value):
            continue
        text = set_key(text, table, key, value, newline)
        written.append(dotted)
    if not written:
        return []
    _check(path, text, {k: values[k] for k in written})
    mode = path.stat().st_mode & 0o777
    with atomic_text(path, mode=mode, newline="", encoding="utf-8-sig" if bom else "utf-8") as out:
        out.write(text)
    return written


def _normalised(value: object) -> object:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return value


def set_key(text: str, table: str, key: str, value: Value, newline: str = "\n") -> str:
    """``text`` with ``key`` in ``[table]`` set to ``value`` (see the module's table)."""
    rendered = toml_value(value)
    entries = _entries(text)
    in_table = [e for e in entries if e.table == table]
    for entry in in_table:
        if entry.key == key:
            tail = text[entry.value_end:entry.line_end]
            comment = tail.lstrip(" \t")
            if comment.startswith("#"):  # kept in its column, if the value leaves room
                old = text[entry.value_start:entry.value_end]
                column = len(old) + len(tail) - len(comment) if "\n" not in old else 0
                tail = " " * max(1, column - len(rendered)) + comment
            return f"{text[:entry.value_start]}{rendered}{tail}{text[entry.line_end:]}"
    line = f"{key} = {rendered}{newline}"
    if in_table:
        at = _next_line(text, in_table[-1].line_end)
        return f"{text[:at]}{line}{text[at:]}"
    body = text if not text or text.endswith("\n") else text + newline
    gap = newline if body.strip() else ""
    return f"{body}{gap}[{table}]{newline}{line}"


@dataclass(frozen=True)
class _Entry:
    """A table header (``key`` empty) or a ``key = value`` line at the top
    level, with where its value is."""

    table: str
    key: str
    value_start: int
    value_end: int
    line_end: int


_HEADER = re.compile(r"[ \t]*\[[ \t]*([A-Za-z0-9_.\"' -]+?)[ \t]*\]")
_KEY_LINE = re.compile(r"[ \t]*([A-Za-z0-9_-]+|\"[^\"\n]*\"|'[^'\n]*')[ \t]*=[ \t]*")


def _entries(text: str) -> list[_Entry]:
    """The file's headers and key lines, in order, values skipped whole
    (a list may span lines), so that nothing inside a value is taken for
    a header. Dotted keys and array tables (``[[x]]``) are kept as they
    are, under no table of ours."""
    found = []
    table = ""
    position = 0
    while position < len(text):
        line_end = _line_end(text, position)
        header = _HEADER.match(text, position, line_end)
        key = _KEY_LINE.match(text, position, line_end)
        if text[position:line_end].lstrip().startswith("[["):
            table = "[[array]]"
        elif header:
            table = header.group(1).strip()
            found.append(_Entry(table, "", header.end(), header.end(), line_end))
        elif key:
            value_end = _value_end(text, key.end())
            line_end = _line_end(text, value_end)
            found.append(_Entry(table, key.group(1).strip("\"'"), key.end(), value_end,
                                line_end))
        position = _next_line(text, line_end)
    return found


def _line_end(text: str, position: int) -> int:
    """The position of the newline ending the line (before ``\r\n``'s ``\r``)."""
    end = text.find("\n", position)
    end = len(text) if end == -1 else end
    return end - 1 if end > position and text[end - 1] == "\r" else end


def _next_line(text: str, line_end: int) -> int:
    if text.startswith("\r\n", line_end):
        return line_end + 2
    return line_end + 1 if text.startswith("\n", line_end) else len(text)


def _value_end(text: str, position: int) -> int:
    """Where the TOML value at ``position`` ends: a string with its escapes,
    an array or inline table with all it holds, or a bare scalar."""
    if text.startswith(('"""', "'''"), position):
        return _multiline_end(text, position)
    char = text[position:position + 1]
    if char in ("\"", "'"):
        return _string_end(text, position)
    if char in ("[", "{"):
        return _bracket_end(text, position)
    bare = re.compile(r"[^\s#,\]}]*").match(text, position)
    return bare.end() if bare else position


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text) and text[i] != "\n":
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def _multiline_end(text: str, start: int) -> int:
    quote = text[start:start + 3]
    i = start + 3
    while i < len(text):
        if quote == '"""' and text[i] == "\\":
            i += 2
            continue
        if text.startswith(quote, i):
            i += 3
            for _ in range(2):  # a string may end in up to two quotes of its own
                if text.startswith(quote[0], i):
                    i += 1
            return i
        i += 1
    return i


def _bracket_end(text: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(text):
        if text.startswith(('"""', "'''"), i):
            i = _multiline_end(text, i)
            continue
        char = text[i]
        if char in ("\"", "'"):
            i = _string_end(text, i)
            continue
        if char == "#":
            i = _line_end(text, i)
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _check(path: Path, text: str, wanted: Mapping[str, Value]) -> None:
    """The new text parses, holds the values, and reads as settings."""
    from pipeline.config import CONFIG_FILE, load_settings

    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: the settings could not be written in ({exc}); "
                          f"set {', '.join(wanted)} by hand") from None
    for dotted, value in wanted.items():
        table, _, key = dotted.partition(".")
        if _normalised(parsed.get(table, {}).get(key)) != _normalised(value):
            raise ConfigError(f"{path}: {dotted} could not be written in; set it by hand")
    with tempfile.TemporaryDirectory(prefix="newsletter-toml-") as folder:
        (Path(folder) / CONFIG_FILE).write_text(text, encoding="utf-8")
        try:
            load_settings(Path(folder), environ={})
        except ConfigError as exc:
            message = str(exc).replace(str(Path(folder) / CONFIG_FILE), str(path))
            raise ConfigError(f"{message} (newsletter.toml left as it was)") from None


__all__ = ["set_key", "set_keys", "toml_value"]
