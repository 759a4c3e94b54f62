"""An issue's body as its web page shows it: semantic HTML5, nothing of the email.

The email's HTML of the body carries what mail clients need: inline styles
on every link, table and quote, boxes around tables for Outlook. The web
page renders the same markdown tokens (the :class:`~pipeline.body.Body`'s
article, sign-off and P.S.) with a renderer of its own, so none of that
reaches the page:

* an element keeps only the attributes markdown gives it (``href``,
  ``title``, ``src``, ``alt``, ``start``, a code block's ``class``), whatever
  the email's renderer added to the tokens;
* links and images get absolute URLs from the issue's resolver, as in the email;
* an image alone in its paragraph is a ``<figure>``, its title the ``<figcaption>``;
* a table stands in a labelled region that scrolls sideways (and can be
  scrolled from the keyboard), so a wide table never widens the page; its
  header cells are column headers, a column's alignment is ``text-align``;
* headings move so that the body's highest is ``<h2>``, right under the
  page's ``<h1>``, the issue's title.

    Body + Resolver ─ web_article ─▶ WebArticle (article, sign-off and P.S. as HTML;
                                                 the first picture's URL, for sharing)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict, OptionsType

# _lone_image: the body's own rule for what becomes a Figure, so page and email agree.
from pipeline.body import Body, _lone_image, markdown
from pipeline.links import Resolver

_KEPT_ATTRIBUTES = frozenset(("title", "alt", "start", "class"))
_TEXT_ALIGN = re.compile(r"text-align\s*:\s*(left|right|center)", re.IGNORECASE)
_TOP_HEADING = 2


@dataclass(frozen=True)
class WebArticle:
    """An issue's body for its web page."""

    article: str
    sign_off: str
    postscript: str
    picture: str = ""
    """The absolute URL of the body's first image, or "" when it has none."""
    picture_alt: str = ""


def web_article(body: Body, resolver: Resolver) -> WebArticle:
    """``body`` rendered for the web, its URLs made absolute by ``resolver``."""
    parts = (body.article_tokens, body.sign_off_tokens, body.postscript_tokens)
    levels = [int(t.tag[1]) for part in parts for t in part if t.type == "heading_open"]
    renderer = _WebRenderer(resolver, shift=_TOP_HEADING - min(levels, default=_TOP_HEADING))
    options = OptionsDict(cast(OptionsType, dict(markdown().options)))
    options["xhtmlOut"] = False  # HTML5: <br>, not <br />
    article, sign_off, postscript = (renderer.render(part, options, {}) for part in parts)
    return WebArticle(article, sign_off, postscript, renderer.picture, renderer.picture_alt)


class _WebRenderer(RendererHTML):
    """markdown-it's HTML renderer, with the page's rules for the elements
    the email styles. It reads the tokens and never changes them."""

    def __init__(self, resolver: Resolver, shift: int) -> None:
        super().__init__()
        self._resolver = resolver
        self._shift = shift
        self._tables = 0
        self.picture = ""
        self.picture_alt = ""

    def render(self, tokens: Sequence[Token], options: OptionsDict, env: EnvType) -> str:
        out: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            # An image alone in a top-level paragraph: a figure, as in the email.
            image = _lone_image(list(tokens[i : i + 3])) if token.level == 0 else None
            if image is not None:
                out.append(self._figure(image, options, env))
                i += 3
                continue
            if token.type == "inline":
                out.append(self.renderInline(token.children or [], options, env))
            elif token.type in self.rules:
                out.append(self.rules[token.type](tokens, i, options, env))
            else:
                out.append(self.renderToken(tokens, i, options, env))
            i += 1
        return "".join(out)

    @staticmethod
    def renderAttrs(token: Token) -> str:
        return "".join(
            f' {name}="{escapeHtml(str(value))}"'
            for name, value in token.attrItems()
            if name in _KEPT_ATTRIBUTES
        )

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        href = self._resolver.url(str(tokens[idx].attrGet("href") or ""))
        return f'<a href="{escapeHtml(href)}"{_title(tokens[idx])}>'

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return self._img(tokens[idx], options, env) + _title(tokens[idx]) + ">"

    def _figure(self, token: Token, options: OptionsDict, env: EnvType) -> str:
        # The title is the caption, shown: the image itself carries none.
        caption = str(token.attrGet("title") or "")
        shown = f"<figcaption>{escapeHtml(caption)}</figcaption>" if caption else ""
        return f"<figure>{self._img(token, options, env)}>{shown}</figure>\n"

    def _img(self, token: Token, options: OptionsDict, env: EnvType) -> str:
        """An image token's ``<img``, unclosed. The first image is the page's
        picture; the others load as the reader scrolls to them."""
        target = str(token.attrGet("src") or "")
        src = self._resolver.url(target)
        alt = self.renderInlineAsText(token.children or [], options, env)
        lazy = ' loading="lazy"' if self.picture else ""
        if not self.picture:
            self.picture, self.picture_alt = src, alt
        made = self._resolver.picture(target)
        # The size it is shown at, so the page does not jump as it loads.
        size = f' width="{made.shown_width}" height="{made.shown_height}"' if made else ""
        return f'<img src="{escapeHtml(src)}" alt="{escapeHtml(alt)}"{size}{lazy}'

    def heading_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f"<{self._heading(tokens[idx])}>"

    def heading_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f"</{self._heading(tokens[idx])}>\n"

    def _heading(self, token: Token) -> str:
        return f"h{min(6, int(token.tag[1]) + self._shift)}"

    def table_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        self._tables += 1
        label = f"Table {self._tables}"
        return (
            f'<div class="table-scroll" role="region" tabindex="0" aria-label="{label}">\n<table>\n'
        )

    def table_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return "</table>\n</div>\n"

    def th_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f'<th scope="col"{self._align(tokens[idx])}>'

    def td_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f"<td{self._align(tokens[idx])}>"

    @staticmethod
    def _align(token: Token) -> str:
        match = _TEXT_ALIGN.search(str(token.attrGet("style") or ""))
        return f' style="text-align:{match.group(1).lower()}"' if match else ""

    def html_block(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        # Issues are parsed with raw HTML off, so markup here can only be the
        # email's own layout around a block: the page has none of it.
        return ""

    html_inline = html_block


def _title(token: Token) -> str:
    title = token.attrGet("title")
    return f' title="{escapeHtml(str(title))}"' if title else ""
