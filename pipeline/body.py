"""An issue's markdown body, parsed once into the parts every output needs.

The body is CommonMark plus tables and strikethrough; raw HTML is not
allowed and shows as text, so nothing in an issue can break the template.
An issue ends the way the newsletter's issues do:

    ...the article...

    ---

    Warmly,
    Anna

    P.S. Know someone with sore calves? Forward this to them.

Everything after the last thematic break (``---``) is the sign-off, and the
paragraphs from the first one starting with "P.S." to the end are the P.S.
Both are optional.

Relative link and image targets are files in the newsletter: images next to
the issue or in ``issues/images/``, other issues by their ``.md`` file. The
:class:`~pipeline.links.Resolver` makes them absolute URLs on the site, and
the files :class:`~pipeline.links.Asset` s that the site writer copies, so an
email never carries a relative URL. Parsing reads no file: the resolver
answers from the index the command built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from pipeline.links import SCHEME, Asset, Resolver

# A paragraph opening the P.S.: "P.S.", "P.P.S.", "PS:".
POSTSCRIPT = re.compile(r"^\s*(?:P\.\s*)+S\b\.?|^\s*PS\b[:.]?", re.IGNORECASE)
SAFE_SCHEMES = ("http", "https", "mailto")

LINK_STYLE = "color:#1f5f8b;text-decoration:underline;"
# The box a table scrolls in (see _boxed_tables). width:0 keeps the table's
# own width out of the sizing of the layout tables around it, which would
# otherwise widen the whole text column to fit the table; min-width:100%
# then stretches the box back to the column's width.
TABLE_BOX_STYLE = "overflow-x:auto;width:0;min-width:100%;"


@cache
def markdown(*, html: bool = False) -> MarkdownIt:
    """The one markdown dialect issues and drafts are written in (one parser,
    built once: parsing and rendering leave it unchanged). ``html=True`` is
    the same dialect recognizing raw HTML, only to find what :func:`raw_html`
    reports: issues are never rendered with it."""
    md = MarkdownIt("commonmark", {"html": html, "typographer": True})
    md.enable(["table", "strikethrough", "replacements", "smartquotes"])
    md.validateLink = _valid_link  # type: ignore[method-assign]
    return md


def _valid_link(url: str) -> bool:
    scheme = url.split(":", 1)[0].strip().lower() if SCHEME.match(url.strip()) else ""
    return scheme in ("", *SAFE_SCHEMES)


@dataclass(frozen=True)
class Reference:
    """A link or image target as written, with where it stands."""

    kind: str  # "link" or "image"
    target: str
    text: str
    title: str
    line: int


@dataclass(frozen=True)
class Figure:
    """An image standing alone in its paragraph, shown full width."""

    src: str
    alt: str
    caption: str
    line: int
    width: int | None = None
    """The CSS size it is shown at, for a picture of the newsletter's own
    (see :attr:`pipeline.images.Picture.shown_width`); None for a remote one."""
    height: int | None = None


@dataclass(frozen=True)
class Html:
    """A run of article blocks as email-safe HTML."""

    html: str


Block = Figure | Html


@dataclass(frozen=True)
class Body:
    """The body, ready for the templates."""

    article: tuple[Block, ...]
    sign_off: str
    postscript: str
    article_tokens: tuple[Token, ...]
    sign_off_tokens: tuple[Token, ...]
    postscript_tokens: tuple[Token, ...]
    references: tuple[Reference, ...]
    assets: tuple[Asset, ...]
    excerpt: str


_MULTILINE_INLINE = ("code_inline", "html_inline")


def _inline_lines(token: Token, base: int) -> list[tuple[Token, int]]:
    """Each child of an inline token with the file line it stands on."""
    start = (token.map[0] if token.map else 0) + base
    out: list[tuple[Token, int]] = []
    offset = 0
    for child in token.children or ():
        out.append((child, start + offset))
        if child.type in ("softbreak", "hardbreak"):
            offset += 1
        offset += child.content.count("\n") if child.type in _MULTILINE_INLINE else 0
    return out


def _text_of(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.type == "image":
            parts.append(token.content)
    return "".join(parts)


def _blocks(tokens: Sequence[Token]) -> list[list[Token]]:
    """Group a token stream into its top-level blocks."""
    blocks: list[list[Token]] = []
    depth = 0
    for token in tokens:
        if depth == 0:
            blocks.append([])
        blocks[-1].append(token)
        depth += token.nesting
    return blocks


def _is_postscript(block: list[Token]) -> bool:
    if block[0].type != "paragraph_open" or len(block) < 2:
        return False
    return bool(POSTSCRIPT.match(block[1].content))


def _lone_image(block: list[Token]) -> Token | None:
    if block[0].type != "paragraph_open" or len(block) != 3:
        return None
    children = [
        c for c in (block[1].children or ()) if not (c.type == "text" and not c.content.strip())
    ]
    if len(children) == 1 and children[0].type == "image":
        return children[0]
    return None


def parse_body(source: str, resolver: Resolver, first_line: int = 1) -> Body:
    """Parse ``source`` (the markdown body) into a :class:`Body`.

    ``first_line`` is the file line of the body's first line, so that
    references point into the issue file.
    """
    md = markdown()
    env: dict[str, object] = {}
    tokens = md.parse(source, env)

    references: list[Reference] = []
    for token in tokens:
        if token.type != "inline":
            continue
        open_link: list[Token] = []
        link_children: list[Token] = []
        for child, line in _inline_lines(token, first_line):
            if child.type == "link_open":
                open_link.append(child)
                link_children = []
                link_line = line
            elif child.type == "link_close" and open_link:
                link = open_link.pop()
                references.append(
                    Reference(
                        "link",
                        str(link.attrGet("href") or ""),
                        _text_of(link_children),
                        str(link.attrGet("title") or ""),
                        link_line,
                    )
                )
            elif child.type == "image":
                references.append(
                    Reference(
                        "image",
                        str(child.attrGet("src") or ""),
                        child.content,
                        str(child.attrGet("title") or ""),
                        line,
                    )
                )
            elif open_link:
                link_children.append(child)

    blocks = _blocks(tokens)
    ps_start = next((i for i, b in enumerate(blocks) if _is_postscript(b)), len(blocks))
    article_blocks, postscript_blocks = blocks[:ps_start], blocks[ps_start:]
    hr_index = max((i for i, b in enumerate(article_blocks) if b[0].type == "hr"), default=None)
    sign_off_blocks: list[list[Token]] = []
    if hr_index is not None:
        sign_off_blocks = article_blocks[hr_index + 1 :]
        article_blocks = article_blocks[:hr_index]

    renderer = _EmailRenderer(md, resolver)
    article: list[Block] = []
    pending: list[Token] = []
    for block in article_blocks:
        image = _lone_image(block)
        if image is None:
            pending.extend(block)
            continue
        if pending:
            article.append(Html(renderer.render(pending, env)))
            pending = []
        line = first_line + (block[0].map[0] if block[0].map else 0)
        src = str(image.attrGet("src") or "")
        picture = resolver.picture(src)
        article.append(
            Figure(
                src=resolver.url(src),
                alt=image.content,
                caption=str(image.attrGet("title") or ""),
                line=line,
                width=picture.shown_width if picture else None,
                height=picture.shown_height if picture else None,
            )
        )
    if pending:
        article.append(Html(renderer.render(pending, env)))

    sign_off_tokens = _flat(sign_off_blocks)
    for token in sign_off_tokens:
        # A sign-off is written line by line, like a letter's.
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"
                child.tag = "br"
    postscript_tokens = _flat(postscript_blocks)
    return Body(
        article=tuple(article),
        sign_off=renderer.render(list(sign_off_tokens), env),
        postscript=renderer.render(list(postscript_tokens), env),
        article_tokens=_flat(article_blocks),
        sign_off_tokens=sign_off_tokens,
        postscript_tokens=postscript_tokens,
        references=tuple(references),
        assets=tuple(resolver.assets.values()),
        excerpt=_excerpt(article_blocks),
    )


def raw_html(source: str, first_line: int = 1) -> tuple[tuple[int, str], ...]:
    """The raw HTML typed into ``source`` (which issues show as text): one
    (file line, the HTML's first line) a line, in order. Code spans, code
    blocks and autolinks (``<https://...>``) are not HTML."""
    found: dict[int, str] = {}
    for token in markdown(html=True).parse(source):
        if token.type == "html_block":
            line = first_line + (token.map[0] if token.map else 0)
            found.setdefault(line, token.content)
        elif token.type == "inline":
            for child, line in _inline_lines(token, first_line):
                if child.type == "html_inline":
                    found.setdefault(line, child.content)
    return tuple((line, html.strip().split("\n", 1)[0]) for line, html in sorted(found.items()))


def _flat(blocks: list[list[Token]]) -> tuple[Token, ...]:
    return tuple(token for block in blocks for token in block)


def _excerpt(blocks: list[list[Token]], limit: int = 280) -> str:
    """The first paragraphs as plain text, cut at a word near ``limit``."""
    words: list[str] = []
    for block in blocks:
        if block[0].type != "paragraph_open" or _lone_image(block):
            continue
        words.extend(_text_of(block[1].children or ()).split())
        if sum(len(w) + 1 for w in words) >= limit:
            break
    text = " ".join(words)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


class _EmailRenderer:
    """markdown-it's HTML renderer with absolute URLs and inline styles, each
    table in a box of its own that scrolls sideways on a narrow screen."""

    def __init__(self, md: MarkdownIt, resolver: Resolver) -> None:
        self.md = md
        self.resolver = resolver

    def render(self, tokens: Sequence[Token], env: dict[str, object]) -> str:
        if not tokens:
            return ""
        for token in tokens:
            self._rewrite(token)
        return str(self.md.renderer.render(_boxed_tables(tokens), self.md.options, env))

    def _rewrite(self, token: Token) -> None:
        if token.type == "link_open":
            href = self.resolver.url(str(token.attrGet("href") or ""))
            token.attrSet("href", href)
            token.attrSet("style", LINK_STYLE)
        elif token.type == "image":
            src = str(token.attrGet("src") or "")
            token.attrSet("src", self.resolver.url(src))
            picture = self.resolver.picture(src)
            if picture is not None:
                # The size it is shown at; the style lets it shrink with a narrow screen.
                token.attrSet("width", str(picture.shown_width))
                token.attrSet("height", str(picture.shown_height))
            token.attrSet("style", "max-width:100%;height:auto;")
        elif token.type == "table_open":
            # A data table: no role="presentation", so screen readers read
            # it as a table, its header row as column headers.
            token.attrSet("width", "100%")
            token.attrSet("style", "border-collapse:collapse;width:100%;")
        elif token.type in ("th_open", "td_open"):
            if token.type == "th_open":
                token.attrSet("scope", "col")
            align = token.attrGet("style") or ""
            token.attrSet(
                "style",
                f"{align};border:1px solid #d8d2c4;padding:6px 8px;font-size:15px;"
                "word-break:normal;overflow-wrap:normal;".lstrip(";"),
            )
        elif token.type == "blockquote_open":
            token.attrSet("style", "margin:16px 0;padding:4px 16px;border-left:4px solid #8aa48c;")
        for child in token.children or ():
            self._rewrite(child)


def _boxed_tables(tokens: Sequence[Token]) -> list[Token]:
    """``tokens`` with each table inside a box of the text column's width
    that scrolls sideways, so a table wider than a phone scrolls on its own
    and the text around it keeps to the screen. Outlook's Word engine
    ignores the box's ``width`` and ``overflow`` and shows the table at its
    own width, as it would without the box."""
    out: list[Token] = []
    for token in tokens:
        if token.type == "table_open":
            out.append(Token("html_block", "", 0, content=f'<div style="{TABLE_BOX_STYLE}">\n'))
        out.append(token)
        if token.type == "table_close":
            out.append(Token("html_block", "", 0, content="</div>\n"))
    return out
