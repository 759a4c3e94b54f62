"""Reading a CSV file once, a row at a time, without ever merging rows.

``open_table(path)`` reads the first 64 KB to check the encoding and to find
the separator (``,``, ``;``, tab or ``|``, with ``csv.Sniffer``; a comma if
in doubt), reads the header row, and then streams the data rows: each one a
:class:`Row` with the line it starts on, or a :class:`Problem` naming the
line at fault. What makes a row a problem:

    unclosed quote   a quoted cell that opens on a line and runs into the
                     rows below it (csv would quietly make one cell of
                     them); the rows after that line are read on their own
    field too long   a cell longer than csv's field limit (128 KB)
    bad quoting      text after a closing quote, and the like
    not UTF-8 text   a line that does not decode (past the first 64 KB;
                     earlier, the whole file is refused)

A quoted cell may still span lines (notes, addresses): it is taken as
intended unless one of the lines it swallowed reads as a row of the file
on its own (as many cells as the header, an address in the email column).

The same things wrong in the header row, a file that is not text in its
encoding from the start, an unknown ``--encoding`` or a ``--delimiter``
that cannot be one raise :class:`SubscriberError`: nothing is imported.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from subscribers.errors import SubscriberError
from subscribers.models import Problem

SAMPLE = 64 * 1024
"""Bytes read ahead to check the encoding; the separator is sniffed from
the first ``SNIFF`` characters of them."""
SNIFF = 8 * 1024
SEPARATORS = ",;\t|"
NAMED_SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
QUOTE = '"'

UNDECODABLE = "subscribers.undecodable"
"""The codec error handler that reads bytes that do not decode as a lone
surrogate, which decoded text never holds otherwise (``surrogateescape``
cannot do it for UTF-16)."""
_UNDECODABLE = re.compile("[\ud800-\udfff]")
_EMAIL_LIKE = re.compile(r'^\s*"?[^@\s",;]+@[^@\s",;]+\.[^@\s",;]+"?\s*$')


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\udcff", error.end


codecs.register_error(UNDECODABLE, _mark_undecodable)


class Row(NamedTuple):
    line: int
    """The line the row starts on (a quoted cell may span lines)."""
    values: list[str]


class Table:
    """A CSV file open for reading: its header, then its rows (once)."""

    def __init__(self, path: Path, handle: io.TextIOBase, encoding: str, delimiter: str) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self._lines = _Lines(handle)
        self._reader = csv.reader(
            self._lines, delimiter=delimiter, quotechar=QUOTE, doublequote=True, strict=True
        )
        self._width = 0
        self._key = -1
        self._rows = self._read()
        self.header = self._header()

    @property
    def lines_read(self) -> int:
        return self._lines.number

    def rows(self, key: int) -> Iterator[Row | Problem]:
        """The data rows, streamed. ``key`` is the email column: a line
        swallowed by a quoted cell that has an address there is a row."""
        self._width, self._key = len(self.header.values), key
        return self._rows

    def _header(self) -> Row:
        header = next(self._rows, None)
        if header is None:
            raise SubscriberError(f"{self.path}: empty; expected a header row with an email column")
        if isinstance(header, Problem):
            raise SubscriberError(f"{self.path}:{header.line}: {header.reason}")
        header.values[0] = header.values[0].lstrip("\ufeff")
        return header

    def _read(self) -> Iterator[Row | Problem]:
        lines, reader, undecodable = self._lines, self._reader, _UNDECODABLE.search
        while True:
            kept: list[tuple[int, str]] = []
            lines.row = kept
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield self._broken(str(exc))
                continue
            if not values or not (values[0].strip() or any(value.strip() for value in values)):
                continue
            if len(kept) > 1:
                merged = self._merged(kept, len(values))
                if merged is not None:
                    yield merged
                    continue
                bad = next((n for n, text in kept if undecodable(text)), 0)
            else:
                text = kept[0][1]
                bad = 0 if text.isascii() or not undecodable(text) else kept[0][0]
            if bad:
                yield Problem(bad, not_text(self.encoding))
            else:
                yield Row(kept[0][0], values)

    def _broken(self, error: str) -> Problem:
        """The row csv gave up on, reported; where a quote ran on, the lines
        after the one it opened on are read again as rows."""
        kept = self._lines.row
        start = kept[0][0] if kept else self._lines.number
        opened = _unclosed(kept, self.delimiter)
        if opened is not None:
            return self._unclosed_quote(kept, opened)
        if "field limit" in error:
            return Problem(start, f"field too long (over {csv.field_size_limit():,} characters)")
        return Problem(start, f"bad quoting: {error}")

    def _merged(self, kept: list[tuple[int, str]], width: int) -> Problem | None:
        """A quoted cell spanning lines that swallowed rows, reported; None
        when none of its lines reads as a row of its own.

        A line reads as a row when it has an address in the email column
        (split at each separator, or read as CSV on its own) and about as
        many cells as the header, or, when the row as read does not have as
        many cells as the header (a stray quote cut it short), any two."""
        opened = _unclosed(kept, self.delimiter)
        if opened is None:
            return None
        if self._width == 0:  # the header: no column name spans lines
            return self._unclosed_quote(kept, opened)
        enough = 2 if width != self._width else max(2, self._width - 1)
        key = self._key
        for _, text in kept[opened + 1 :]:
            line = text.rstrip("\r\n")
            for values in (
                line.split(self.delimiter),
                next(csv.reader([line], delimiter=self.delimiter, quotechar=QUOTE), []),
            ):
                if len(values) >= enough and key < len(values) and _EMAIL_LIKE.match(values[key]):
                    return self._unclosed_quote(kept, opened)
        return None

    def _unclosed_quote(self, kept: list[tuple[int, str]], opened: int) -> Problem:
        self._lines.replay(kept[opened + 1 :])
        line, start = kept[opened][0], kept[0][0]
        reason = "unclosed quote: the quoted cell that opens on this line runs into the next rows"
        if start != line:
            reason += f" (the row from line {start} is not imported)"
        return Problem(line, reason)


class _Lines:
    """The file's lines as csv reads them, numbered; the lines of the row
    being read are kept, so that lines a row swallowed can be read again."""

    def __init__(self, handle: io.TextIOBase) -> None:
        self._handle = iter(handle)
        self._again: deque[tuple[int, str]] = deque()
        self.number = 0
        self.row: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            kept = self._again.popleft()
        else:
            self.number += 1
            kept = (self.number, next(self._handle))
        self.row.append(kept)
        return kept[1]

    def replay(self, lines: list[tuple[int, str]]) -> None:
        self._again.extendleft(reversed(lines))


def _unclosed(lines: list[tuple[int, str]], delimiter: str) -> int | None:
    """Index of the line on which the first quoted cell that does not close
    on that line opens, or None."""
    quoted, opened = False, 0
    for index, (_, text) in enumerate(lines):
        at = 0
        while at < len(text):
            if quoted:
                close = text.find(QUOTE, at)
                if close < 0:
                    break
                if text.startswith(QUOTE, close + 1):  # "" inside a quoted cell
                    at = close + 2
                    continue
                quoted = False
                at = text.find(delimiter, close + 1)
            elif text.startswith(QUOTE, at):
                quoted, opened = True, index
                at += 1
                continue
            else:
                at = text.find(delimiter, at)
            if at < 0:
                break
            at += 1
        if quoted:
            return opened
    return None


@contextmanager
def open_table(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> Iterator[Table]:
    """``path`` open as a :class:`Table`; ``encoding`` and ``delimiter``
    override what is detected (UTF-8, or UTF-16 with a byte order mark; the
    sniffed separator). Raises :class:`SubscriberError`."""
    separator = _separator(delimiter)
    codec = _codec(encoding)
    try:
        buffered = io.BufferedReader(io.FileIO(path), SAMPLE)  # closed with its text wrapper
    except OSError as exc:
        raise SubscriberError(f"{path}: {exc.strerror}") from None
    try:
        head = buffered.peek(SAMPLE)[:SAMPLE]  # read once: the stream goes on from here
        if codec is None:
            utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            codec = "utf-16" if utf16 else "utf-8-sig"
        decoder = codecs.getincrementaldecoder(codec)(errors=UNDECODABLE)
        try:
            sample = decoder.decode(head, final=False)
        except UnicodeError:  # UTF-16 without a byte order mark, and the like
            raise SubscriberError(f"{path}:1: {not_text(codec)}") from None
        bad = _UNDECODABLE.search(sample)
        if bad:
            line = sample.count("\n", 0, bad.start()) + 1
            raise SubscriberError(f"{path}:{line}: {not_text(codec)}")
        handle = io.TextIOWrapper(buffered, encoding=codec, errors=UNDECODABLE, newline="")
    except OSError as exc:
        buffered.close()
        raise SubscriberError(f"{path}: {exc.strerror}") from None
    except BaseException:
        buffered.close()
        raise
    with handle:
        table = None
        try:
            table = Table(path, handle, codec, separator or sniff(sample))
            yield table
        except OSError as exc:
            raise SubscriberError(f"{path}: {exc.strerror}") from None
        except UnicodeError:
            line = table.lines_read + 1 if table else 1
            raise SubscriberError(f"{path}:{line}: {not_text(codec)}") from None


def sniff(sample: str) -> str:
    """The separator of the CSV text that begins with ``sample``: what
    ``csv.Sniffer`` finds among ``SEPARATORS`` if the header row has it,
    else the one the header row has most of, else a comma."""
    text = sample[:SNIFF]
    end = max(text.rfind("\n"), text.rfind("\r"))
    if end > 0:
        text = text[: end + 1]
    header = next((line for line in text.splitlines() if line.strip()), "")
    try:
        found = csv.Sniffer().sniff(text, delimiters=SEPARATORS).delimiter
    except csv.Error:
        found = ""
    if found and found in header:
        return found
    counts = {separator: header.count(separator) for separator in SEPARATORS}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def not_text(encoding: str) -> str:
    if encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
        return (
            "not UTF-8 text; save the file as UTF-8, or name its encoding with --encoding "
            "(cp1252 for most spreadsheets saved on Windows)"
        )
    return f"not {encoding} text; name the file's encoding with --encoding"


def _separator(text: str | None) -> str | None:
    if text is None:
        return None
    separator = NAMED_SEPARATORS.get(text.lower(), text)
    if len(separator) != 1:
        raise SubscriberError(
            f"--delimiter: {text!r} is not one character (try , ; | or tab)"
        )
    if separator in (QUOTE, "\r", "\n") or separator.isalnum():
        raise SubscriberError(f"--delimiter: {text!r} cannot separate columns (try , ; | or tab)")
    return separator


def _codec(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=name)  # refuses base64 and the like, too
    except LookupError:
        raise SubscriberError(
            f"--encoding: {name!r} is not an encoding Python knows (try cp1252, latin-1 or utf-16)"
        ) from None
    return name
