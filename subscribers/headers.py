"""Header values as a message's bytes carry them: RFC 2047 encoded-words,
quoted display names, and lines folded within 78 columns (RFC 5322 2.1.1).

    encode_unstructured("Subject", text)        Subject: =?utf-8?q?...?=
    encode_mailbox("To", name, address)         To: "Name" <address>
    display_name(text, room)                    a name shortened to one encoded-word

A CR, LF or other control character in a value becomes a space first
(:func:`subscribers.text.one_line`): it can never start a header of its own.
"""

from __future__ import annotations

import binascii

from subscribers.text import one_line

MAX_LINE = 78
"""Header lines are folded to this many characters (RFC 5322 2.1.1)."""

_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE = tuple(
    "_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)
)
_WORD_OVERHEAD = len("=?utf-8?q?") + len("?=")
_WORD_MAX = 75


def _q_words(text: str, first_room: int) -> list[str]:
    """``text`` as RFC 2047 Q encoded-words, none splitting a character; the
    first fits in ``first_room`` columns, the rest in a folded line's."""
    words: list[str] = []
    room = max(first_room, 12 + _WORD_OVERHEAD) - _WORD_OVERHEAD
    current: list[str] = []
    used = 0
    for char in text:
        encoded = _Q_BYTE[ord(char)] if char < "\x80" else "".join(
            _Q_BYTE[b] for b in char.encode("utf-8")
        )
        if used + len(encoded) > room and current:
            words.append("=?utf-8?q?" + "".join(current) + "?=")
            current, used = [], 0
            room = min(_WORD_MAX, MAX_LINE - 1) - _WORD_OVERHEAD
        current.append(encoded)
        used += len(encoded)
    if current:
        words.append("=?utf-8?q?" + "".join(current) + "?=")
    return words


def _fold(name: str, words: list[str]) -> str:
    """``Name: word word ...`` folded between words within MAX_LINE columns."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {word}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text or not text.isprintable()


def encode_unstructured(name: str, text: str) -> bytes:
    """An unstructured header (Subject) for ``text``, encoded and folded."""
    text = one_line(text)
    if not _needs_encoding(text):
        words = text.split(" ")
        if all(len(w) <= MAX_LINE - 1 - (len(name) + 1) for w in words):
            return _fold(name, words).encode("ascii")
    return _fold(name, _q_words(text, MAX_LINE - len(name) - 2)).encode("ascii")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encoded_word(text: str) -> str:
    """``text`` as one RFC 2047 encoded-word, Q or B, whichever is shorter."""
    data = text.encode("utf-8")
    q = "".join(_Q_BYTE[b] for b in data)
    if len(q) <= 4 * ((len(data) + 2) // 3):
        return f"=?utf-8?q?{q}?="
    return f"=?utf-8?b?{binascii.b2a_base64(data, newline=False).decode('ascii')}?="


def display_name(text: str, room: int = _WORD_MAX) -> str:
    """The display name as an address header will carry it: cleaned of
    control characters and, if it needs encoding, shortened to fit in one
    encoded-word of ``room`` characters (ending with "…").

    One encoded-word, because readers disagree about the space between two
    adjacent ones: RFC 2047 says to drop it, Python's email package keeps it.
    """
    text = one_line(text)
    if not _needs_encoding(text) or len(_encoded_word(text)) <= room:
        return text
    text = text[: room - _WORD_OVERHEAD]
    while text and len(_encoded_word(text + "…")) > room:
        text = text[:-1]
    return text.rstrip() + "…"


def encode_mailbox(name: str, display: str, address: str) -> bytes:
    """An address header (From, To, Reply-To): ``"Name" <address>``; the
    name quoted when it is plain ASCII, one encoded-word otherwise."""
    room = min(_WORD_MAX, MAX_LINE - len(name) - 2)
    display = display_name(display, room)
    if not display:
        return f"{name}: {address}\r\n".encode("ascii")
    if not _needs_encoding(display):
        phrase = _quoted(display)
        if len(name) + len(phrase) + len(address) + 5 > MAX_LINE:
            return _fold(name, [*phrase.split(" "), f"<{address}>"]).encode("ascii")
        return f"{name}: {phrase} <{address}>\r\n".encode("ascii")
    return _fold(name, [_encoded_word(display), f"<{address}>"]).encode("ascii")
