"""The plain-text part, written from the markdown tokens (not stripped HTML).

Headings are underlined, lists keep their bullets and numbers, quotes keep
their ``>``, images become ``[Image: alt]`` with the caption under them, and
links become numbered references listed together after the text::

    Ask on the forum [1] if it still hurts after a week.

    [1] https://forum.example.com/
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it.token import Token

WIDTH = 72


class TextWriter:
    """Renders token runs to text, numbering links across all of them."""

    def __init__(self, width: int = WIDTH) -> None:
        self.width = width
        self.links: list[str] = []

    def render(self, tokens: Sequence[Token]) -> str:
        out: list[str] = []
        self._blocks(list(tokens), 0, len(tokens), out)
        return "\n".join(out).strip("\n")

    def references(self) -> str:
        return "\n".join(f"[{n}] {url}" for n, url in enumerate(self.links, 1))

    # -- blocks -----------------------------------------------------------

    def _blocks(self, tokens: list[Token], start: int, end: int, out: list[str]) -> None:
        """Append the blocks in ``tokens[start:end]`` to ``out``, wrapped to
        ``self.width``; callers indent nested blocks themselves."""
        i = start
        while i < end:
            token = tokens[i]
            close = self._close_of(tokens, i)
            kind = token.type
            if kind == "heading_open":
                text = self._inline(tokens[i + 1])
                underline = "=" if token.tag == "h1" else "-"
                self._gap(out)
                out.append(text)
                out.append(underline * min(len(text), self.width))
            elif kind == "paragraph_open":
                text = self._inline(tokens[i + 1])
                if not token.hidden:
                    self._gap(out)
                out.extend(self._wrap(text))
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self._gap(out)
                number = int(token.attrGet("start") or 1) if kind == "ordered_list_open" else 0
                self._list(tokens, i + 1, close, out, number)
            elif kind == "blockquote_open":
                self._gap(out)
                inner: list[str] = []
                self._narrowed(2, tokens, i + 1, close, inner)
                for line in "\n".join(inner).strip("\n").split("\n"):
                    out.append(("> " + line).rstrip())
            elif kind in ("fence", "code_block"):
                self._gap(out)
                for line in token.content.rstrip("\n").split("\n"):
                    out.append(("    " + line).rstrip())
            elif kind == "hr":
                self._gap(out)
                out.append("-" * 20)
            elif kind == "table_open":
                self._gap(out)
                out.extend(self._table(tokens, i, close))
            i = close + 1

    def _list(
        self, tokens: list[Token], start: int, end: int, out: list[str], number: int
    ) -> None:
        i = start
        while i < end:
            close = self._close_of(tokens, i)
            if tokens[i].type == "list_item_open":
                marker = f"{number}. " if number else "- "
                inner: list[str] = []
                self._narrowed(len(marker), tokens, i + 1, close, inner)
                lines = "\n".join(inner).strip("\n").split("\n")
                pad = " " * len(marker)
                for n, line in enumerate(lines):
                    lead = marker if n == 0 else pad
                    out.append((lead + line).rstrip() if line else "")
                if number:
                    number += 1
            i = close + 1

    def _narrowed(self, by: int, tokens: list[Token], start: int, end: int, out: list[str]) -> None:
        """Render nested blocks that will be indented by ``by`` characters."""
        saved = self.width
        self.width = max(20, self.width - by)
        try:
            self._blocks(tokens, start, end, out)
        finally:
            self.width = saved

    def _table(self, tokens: list[Token], start: int, end: int) -> list[str]:
        rows: list[list[str]] = []
        for token in tokens[start:end]:
            if token.type == "tr_open":
                rows.append([])
            elif token.type == "inline" and rows:
                rows[-1].append(self._inline(token))
        if not rows:
            return []
        columns = max(len(r) for r in rows)
        widths = [max(len(r[c]) if c < len(r) else 0 for r in rows) for c in range(columns)]
        lines = []
        for n, row in enumerate(rows):
            cells = [(row[c] if c < len(row) else "").ljust(widths[c]) for c in range(columns)]
            lines.append(" | ".join(cells).rstrip())
            if n == 0:
                lines.append("-+-".join("-" * w for w in widths))
        return lines

    # -- inline -----------------------------------------------------------

    def _inline(self, token: Token) -> str:
        parts: list[str] = []
        hrefs: list[str] = []
        for child in token.children or ():
            kind = child.type
            if kind == "text" or kind == "code_inline":
                parts.append(child.content)
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("\n")
            elif kind == "link_open":
                hrefs.append(str(child.attrGet("href") or ""))
                parts.append("\x00")
            elif kind == "link_close" and hrefs:
                href = hrefs.pop()
                start = len(parts) - 1 - parts[::-1].index("\x00")
                text = "".join(parts[start + 1 :])
                del parts[start:]
                parts.append(self._link(text, href))
            elif kind == "image":
                alt = child.content or "image"
                parts.append(f"[Image: {alt}]")
                title = str(child.attrGet("title") or "")
                if title:
                    parts.append(f"\n{title}")
        return "".join(p for p in parts if p != "\x00")

    def _link(self, text: str, href: str) -> str:
        if not href:
            return text
        bare = href.removeprefix("mailto:")
        if text.strip() in (href, bare):
            return href if not href.startswith("mailto:") else bare
        if href not in self.links:
            self.links.append(href)
        return f"{text} [{self.links.index(href) + 1}]"

    def _wrap(self, text: str) -> list[str]:
        lines: list[str] = []
        for piece in text.split("\n"):
            lines.extend(
                textwrap.wrap(
                    piece, width=self.width, break_long_words=False, break_on_hyphens=False
                )
                or [""]
            )
        return lines

    @staticmethod
    def _close_of(tokens: list[Token], start: int) -> int:
        depth = 0
        for i in range(start, len(tokens)):
            depth += tokens[i].nesting
            if depth <= 0:
                return i
        return len(tokens) - 1

    @staticmethod
    def _gap(out: list[str]) -> None:
        if out and out[-1] != "":
            out.append("")


def underline(text: str, char: str = "=") -> str:
    return f"{text}\n{char * min(len(text), WIDTH)}"
