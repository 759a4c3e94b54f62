"""The report page in headless Chromium, opened from the disk as an editor
opens it: at 375 px in dark mode and at 1280 px in light mode every chart
draws, nothing is wider than the screen (wide tables scroll in their own
box), nothing is fetched, and axe-core finds no violation."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from tests.support.report_samples import build_history

SCREENS = {
    "phone, dark": {"viewport": {"width": 375, "height": 740}, "color_scheme": "dark"},
    "desktop, light": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
}
LAYOUT = """() => ({
  charts: [...document.querySelectorAll('svg')].map(svg => {
    const box = svg.getBoundingClientRect();
    const drawn = svg.getBBox();
    return {id: svg.id, width: box.width, height: box.height, left: box.left,
            right: box.right, drawnWidth: drawn.width, drawnHeight: drawn.height,
            marks: svg.querySelectorAll('rect, polyline').length};
  }),
  scrollWidth: document.documentElement.scrollWidth,
  viewport: window.innerWidth,
})"""


@pytest.fixture
def report_file(newsletter, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    build_history(load_settings(newsletter))
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    return newsletter / "preview" / "report.html"


@pytest.mark.browser
@pytest.mark.parametrize("screen", SCREENS)
def test_every_chart_draws_nothing_overflows_and_axe_finds_nothing(report_file, browser, screen):
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(**SCREENS[screen])
    try:
        page = context.new_page()
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        url = report_file.as_uri()
        page.goto(url)
        layout = page.evaluate(LAYOUT)
        assert len(layout["charts"]) == 11
        for chart in layout["charts"]:
            assert chart["width"] > 0 and chart["height"] > 0, chart
            assert chart["drawnWidth"] > 0 and chart["drawnHeight"] > 0, chart
            assert chart["marks"] > 0, chart
            assert chart["left"] >= 0 and chart["right"] <= layout["viewport"], chart
        assert layout["scrollWidth"] <= layout["viewport"], "the page scrolls sideways"
        assert fetched == [url], "the page fetched something besides itself"
        violations = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in Axe().run(page).response["violations"]
        ]
        assert violations == []
    finally:
        context.close()
