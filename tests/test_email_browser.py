"""The rendered email in real headless Chromium, at phone and desktop widths."""

from __future__ import annotations

import pytest

from pipeline.authoring import write_preview
from pipeline.context import Context

pytestmark = pytest.mark.browser

LAYOUT = """() => {
  const unsubscribe = [...document.querySelectorAll('a')]
      .find(a => a.textContent.trim() === 'Unsubscribe');
  const box = unsubscribe ? unsubscribe.getBoundingClientRect() : null;
  const style = unsubscribe ? getComputedStyle(unsubscribe) : null;
  return {
    viewport: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    images: [...document.images].map(img => ({
      src: img.currentSrc, alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
      right: img.getBoundingClientRect().right,
    })),
    unsubscribe: box && {left: box.left, right: box.right, width: box.width, height: box.height,
                         visibility: style.visibility, display: style.display,
                         color: style.color, href: unsubscribe.href},
  };
}"""


@pytest.mark.parametrize("width", [320, 375, 600])
@pytest.mark.parametrize("slug", ["calf-stretch", "desk-wrist-routine"])
def test_email_fits_and_keeps_its_footer(browser, newsletter, settings, tmp_path, width, slug):
    issue = next((newsletter / "issues").glob(f"*-{slug}.md"))
    html_path, _ = write_preview(Context.load(settings), issue, tmp_path)
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(html_path.as_uri())
        layout = page.evaluate(LAYOUT)
    finally:
        page.close()
    assert layout["scrollWidth"] <= layout["viewport"], "horizontal overflow"
    for image in layout["images"]:
        assert image["loaded"] or image["alt"], image
        assert image["right"] <= width
    unsubscribe = layout["unsubscribe"]
    assert unsubscribe is not None, "no unsubscribe link"
    assert unsubscribe["width"] > 0 and unsubscribe["height"] > 0
    assert unsubscribe["visibility"] == "visible" and unsubscribe["display"] != "none"
    assert unsubscribe["left"] >= 0 and unsubscribe["right"] <= width
    assert unsubscribe["href"] == settings.url("unsubscribe/preview")


def test_sample_image_loads_in_preview(browser, newsletter, settings, tmp_path):
    issue = next((newsletter / "issues").glob("*-calf-stretch.md"))
    html_path, _ = write_preview(Context.load(settings), issue, tmp_path)
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(html_path.as_uri())
        images = page.evaluate(LAYOUT)["images"]
    finally:
        page.close()
    assert any(i["loaded"] and i["src"].endswith("calf-stretch.png") for i in images)


CONTRAST = """() => {
  const luminance = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      if (bg && !bg.startsWith('rgba(0, 0, 0, 0)') && bg !== 'transparent') return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const ratio = (el) => {
    const fg = luminance(getComputedStyle(el).color);
    const bg = luminance(background(el));
    const [hi, lo] = fg > bg ? [fg, bg] : [bg, fg];
    return (hi + 0.05) / (lo + 0.05);
  };
  const paragraph = [...document.querySelectorAll('p')]
      .find(p => p.textContent.includes('calves ache'));
  const links = [...document.querySelectorAll('a')]
      .map(a => ({text: a.textContent.trim(), ratio: ratio(a)}));
  return {ratio: ratio(paragraph), backgroundLuminance: luminance(background(paragraph)), links};
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_article_text_stays_readable_in_both_colour_schemes(browser, newsletter, settings, tmp_path, scheme):
    issue = next((newsletter / "issues").glob("*-calf-stretch.md"))
    html_path, _ = write_preview(Context.load(settings), issue, tmp_path)
    page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
    try:
        page.goto(html_path.as_uri())
        contrast = page.evaluate(CONTRAST)
    finally:
        page.close()
    assert contrast["ratio"] >= 7, contrast  # WCAG AAA for body text
    for link in contrast["links"]:
        assert link["ratio"] >= 4.5, link  # WCAG AA for every link, footer included
    if scheme == "dark":
        assert contrast["backgroundLuminance"] < 0.05, "card stays light in dark mode"
    else:
        assert contrast["backgroundLuminance"] > 0.9
