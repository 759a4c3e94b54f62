"""The report's charts, as inline SVG made here: no library, no script, no font.

    bar_chart(key, title, desc, bars, fmt=..., lines=...)   columns, one per
        label; a bar near a limit is drawn ``near``, one at or over it
        ``over`` (and says so above it in words); a limit is a dashed line,
        drawn ``crossed`` (red) with "crossed" in its label once a bar
        reaches it
    line_chart(key, title, desc, points, fmt=...)           a line with dots

Each chart is one ``<svg role="img">`` named by its ``<title>`` and
described by its ``<desc>`` (``aria-labelledby``), with a ``viewBox`` and no
fixed size, so that the page's stylesheet makes it as wide as its column;
its colours are classes the page's stylesheet gives (light and dark).
Colour is never the only signal: what is near or over a limit says so in
text, in the chart and in the table the page puts under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 480
"""Units across: at 14 units a letter, text is 10 px on a 375 px phone."""
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 26, 30
MAX_LABELS = 6
"""Labels under the axis at most; the table under the chart has them all."""
MAX_BAR = 56
LABEL_HALF = 24
"""About half the width of a label under the axis (``30 Nov``)."""
LEGEND_ROW = 18
"""Units of height of a limit's label, in the legend above the plot."""


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    level: str = "ok"
    """ok, near or over: the class it is drawn with, and the word above it."""


@dataclass(frozen=True)
class Limit:
    """A horizontal line at a limit."""

    value: float
    label: str
    crossed: bool = False


def nice_step(raw: float, *, whole: bool) -> float:
    """The smallest of 1, 2, 2.5 and 5 times a power of ten not below
    ``raw`` (no 2.5 for whole numbers, and never under 1 for them)."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10):
        step = factor * power
        if step >= raw * (1 - 1e-9):
            return max(step, 1.0) if whole else step
    return 10 * power  # pragma: no cover: the loop always returns


def axis(top_value: float, *, whole: bool, steps: int = 4) -> list[float]:
    """Tick values from 0 to at least ``top_value``, ``steps`` or fewer apart."""
    step = nice_step(top_value / steps, whole=whole)
    count = max(1, math.ceil(top_value / step - 1e-9))
    return [step * i for i in range(count + 1)]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


class _Frame:
    """The plot area, its scale, and the axes' markup."""

    def __init__(
        self, count: int, top_value: float, whole: bool, height: int, top: int = TOP
    ) -> None:
        self.count = count
        self.height = height
        self.ticks = axis(top_value, whole=whole)
        self.top = self.ticks[-1] or 1.0
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = top, height - BOTTOM

    @property
    def slot(self) -> float:
        return (self.x1 - self.x0) / max(self.count, 1)

    def y(self, value: float) -> float:
        return self.y1 - (min(value, self.top) / self.top) * (self.y1 - self.y0)

    def centre(self, index: int) -> float:
        return self.x0 + (index + 0.5) * self.slot

    def axes(self, labels: Sequence[str], fmt: Callable[[float], str]) -> list[str]:
        parts = ['<g class="axis">']
        for tick in self.ticks:
            y = _num(self.y(tick))
            parts.append(
                f'<line class="grid" x1="{self.x0}" x2="{self.x1}" y1="{y}" y2="{y}"/>'
                f'<text class="tick" x="{self.x0 - 6}" y="{y}" text-anchor="end" '
                f'dominant-baseline="middle">{escape(fmt(tick))}</text>'
            )
        every = max(1, math.ceil(len(labels) / MAX_LABELS))
        last = len(labels) - 1
        for index, label in enumerate(labels):
            if (last - index) % every:
                continue  # the newest is always labelled, and every ``every``-th before it
            x, anchor = self.centre(index), "middle"
            if x + LABEL_HALF > WIDTH:  # it would be cut off at the right edge
                x, anchor = WIDTH - 2, "end"
            parts.append(
                f'<text class="tick" x="{_num(x)}" y="{self.y1 + 20}" '
                f'text-anchor="{anchor}">{escape(label)}</text>'
            )
        parts.append(
            f'<line class="baseline" x1="{self.x0}" x2="{self.x1}" '
            f'y1="{self.y1}" y2="{self.y1}"/></g>'
        )
        return parts


def _svg(key: str, title: str, desc: str, height: int, body: list[str]) -> Markup:
    key = escape(key)
    # Every text in ``body`` went through escape() where it was made.
    return Markup(  # noqa: S704
        f'<svg class="chart" id="{key}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{key}-title {key}-desc" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def bar_chart(
    key: str,
    title: str,
    desc: str,
    bars: Sequence[Bar],
    *,
    fmt: Callable[[float], str] = _num,
    lines: Sequence[Limit] = (),
    whole: bool = False,
    height: int = HEIGHT,
) -> Markup:
    """Columns for ``bars`` against ``lines``; ``whole``: counts, not rates.
    The lines' labels are a legend above the plot, highest line first, so
    that no bar or flag hides them."""
    highest = max([bar.value for bar in bars] + [line.value * 1.15 for line in lines] + [0.0])
    band = LEGEND_ROW * len(lines)
    height += band
    frame = _Frame(len(bars), highest, whole, height, TOP + band)
    body = frame.axes([bar.label for bar in bars], fmt)
    width = min(frame.slot * 0.7, MAX_BAR)
    body.append('<g class="bars">')
    for index, bar in enumerate(bars):
        x = frame.centre(index) - width / 2
        y = frame.y(bar.value)
        body.append(
            f'<rect class="bar {escape(bar.level)}" x="{_num(x)}" y="{_num(y)}" '
            f'width="{_num(width)}" height="{_num(frame.y1 - y)}"/>'
        )
        if bar.level != "ok":
            body.append(
                _haloed(
                    f"flag {escape(bar.level)}", frame.centre(index), y - 5, "middle", bar.level
                )
            )
    body.append("</g>")
    for index, line in enumerate(sorted(lines, key=lambda line: -line.value)):
        at = _num(frame.y(line.value))
        row = 16 + LEGEND_ROW * index
        state = " crossed" if line.crossed else ""
        words = f"{line.label}{': crossed' if line.crossed else ''}"
        body.append(
            f'<g class="limit{state}"><line x1="{frame.x0}" x2="{frame.x1}" y1="{at}" y2="{at}"/>'
            f'<line x1="{frame.x0}" x2="{frame.x0 + 28}" y1="{row - 5}" y2="{row - 5}"/>'
            f'<text class="label" x="{frame.x0 + 36}" y="{row}">{escape(words)}</text></g>'
        )
    return _svg(key, title, desc, height, body)


def _haloed(classes: str, x: float, y: float, anchor: str, words: str) -> str:
    """A text twice: first in the page's background colour, stroked wide
    (``halo``), then itself on top, readable over a bar or a line."""
    at = f'x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"'
    text = escape(words)
    return f'<text class="halo" {at}>{text}</text><text class="{classes}" {at}>{text}</text>'


def line_chart(
    key: str,
    title: str,
    desc: str,
    points: Sequence[tuple[str, float]],
    *,
    fmt: Callable[[float], str] = _num,
    whole: bool = True,
    height: int = HEIGHT,
) -> Markup:
    """A line through ``(label, value)`` points, from a zero baseline."""
    frame = _Frame(len(points), max([value for _, value in points] + [0.0]), whole, height)
    body = frame.axes([label for label, _ in points], fmt)
    coords = [(frame.centre(i), frame.y(value)) for i, (_, value) in enumerate(points)]
    path = " ".join(f"{_num(x)},{_num(y)}" for x, y in coords)
    body.append(f'<polyline class="trend" points="{path}"/>')
    body.extend(f'<circle class="dot" cx="{_num(x)}" cy="{_num(y)}" r="3.5"/>' for x, y in coords)
    return _svg(key, title, desc, height, body)


ROW = 30
LABEL_WIDTH = 180
MAX_LABEL = 20
"""Characters of a row's label drawn; the table has it whole."""


def row_chart(
    key: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, float]],
    *,
    fmt: Callable[[float], str] = _num,
) -> Markup:
    """Horizontal bars, one row per ``(label, value)``, the value at the end."""
    height = TOP + ROW * len(rows) + 8
    highest = max([value for _, value in rows] + [1.0])
    x0, x1 = LABEL_WIDTH, WIDTH - RIGHT - 40
    body = ['<g class="bars">']
    for index, (label, value) in enumerate(rows):
        y = TOP + index * ROW
        width = (value / highest) * (x1 - x0)
        shown = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"
        body.append(
            f'<text class="tick" x="{x0 - 8}" y="{y + ROW / 2 - 2}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(shown)}</text>'
            f'<rect class="bar ok" x="{x0}" y="{y + 4}" width="{_num(width)}" '
            f'height="{ROW - 12}"/>'
            f'<text class="tick" x="{_num(x0 + width + 6)}" y="{y + ROW / 2 - 2}" '
            f'dominant-baseline="middle">{escape(fmt(value))}</text>'
        )
    body.append("</g>")
    return _svg(key, title, desc, height, body)
