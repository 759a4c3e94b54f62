"""The local demo: `publish serve` on a loopback address can be clicked through.

The real command, as a process on a free loopback port: it builds the site
for its own address into preview/site, so the archive, an issue page and
its picture load from it, and the confirmation it mails links back to it
and confirms. The production site in public/ keeps newsletter.site_url, and
so does `publish serve` on any other address."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, load_settings
from pipeline.demo import demo_settings, is_demo, local_site_url
from subscribers.models import Status
from subscribers.store import Store
from subscribers.webconfig import WebConfig
from tests.support.aws import free_port

SITE_URL = "https://painfreeliving.example.com"
ISSUE = "issues/2026-12-01-calf-stretch.md"
runner = CliRunner()


@contextmanager
def publish_serve(root: Path) -> Iterator[str]:
    """The real `publish serve` on a free loopback port (web.host of the test
    newsletter: 127.0.0.1), answering; its base URL. Stopped with SIGTERM at
    the end, and its process group killed should it outlive that."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pipeline.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                assert process.stdout is not None
                raise AssertionError(process.stdout.read().decode("utf-8", "replace"))
            try:
                httpx.get(f"{url}/subscribe", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def outbox_message(outbox: Path, subject: str, timeout: float = 30) -> EmailMessage:
    """The first message in ``outbox`` whose subject starts with ``subject``,
    waiting for it to arrive."""
    deadline = time.monotonic() + timeout
    while True:
        for path in sorted(outbox.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if str(message["Subject"]).startswith(subject):
                return message  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no message {subject!r} in {outbox}")
        time.sleep(0.05)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def sent(newsletter: Path) -> Path:
    """The test newsletter with one reader and the calf-stretch issue sent to
    them through the outbox (which also built public/ for the site URL)."""
    settings = load_settings(newsletter)
    with Store.open(settings.database_url, settings.root) as store:
        store.add("reader@example.com", name="Sam Reader")
    result = runner.invoke(app, ["issue", ISSUE, "--yes"])
    assert result.exit_code == 0, result.output
    return newsletter


def test_the_demo_site_and_its_mail_work_from_the_servers_own_address(sent: Path):
    with publish_serve(sent) as url, httpx.Client(base_url=url, timeout=10) as client:
        archive = client.get("/")
        assert archive.status_code == 200
        assert f'href="{url}/issues/calf-stretch/"' in archive.text
        assert f'href="{url}/subscribe"' in archive.text

        page = client.get("/issues/calf-stretch/")
        assert page.status_code == 200 and "An easy stretch for chronic calf pain" in page.text
        pictures = re.findall(r'<img [^>]*src="([^"]+)"', page.text)
        assert pictures and all(src.startswith(f"{url}/") for src in pictures), pictures
        picture = client.get(pictures[0].removeprefix(url))
        assert picture.status_code == 200
        assert picture.headers["content-type"].startswith("image/") and picture.content

        signup = client.post("/subscribe", data={"email": "new@example.com", "name": "Neu"})
        assert signup.status_code == 200
        confirmation = outbox_message(sent / "outbox", "Please confirm")
        link = re.search(r"(\S+/confirm/\S+)", text_of(confirmation))
        assert link and link.group(1).startswith(f"{url}/confirm/"), text_of(confirmation)
        path = link.group(1).removeprefix(url)
        assert client.get(path).status_code == 200  # the page with the button
        confirmed = client.post(path)
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text

        welcome = outbox_message(sent / "outbox", "Welcome to")
        assert f"{url}/unsubscribe/" in text_of(welcome)
        assert re.search(rf"in the archive: {re.escape(url)}/\s", text_of(welcome))

    settings = load_settings(sent)
    with Store.open(settings.database_url, settings.root) as store:
        subscriber = store.find("new@example.com")
        assert subscriber is not None and subscriber.status == Status.ACTIVE
    # The demo went to preview/site; the production site was left as it was.
    public = (sent / "public" / "index.html").read_text(encoding="utf-8")
    assert f'href="{SITE_URL}/issues/calf-stretch/"' in public and "127.0.0.1" not in public
    assert (sent / "preview" / "site" / "issues" / "calf-stretch" / "index.html").is_file()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, WebConfig]]:
    """What `publish serve` would serve, caught instead of served: nothing
    is bound."""
    import pipeline.cli.serve

    caught: list[tuple[Settings, WebConfig]] = []
    monkeypatch.setattr(
        pipeline.cli.serve, "run_service", lambda config, web: caught.append((config, web))
    )
    return caught


def test_publish_site_after_the_demo_keeps_the_site_url(sent: Path, served):
    result = runner.invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "the demo site (1 issue) for http://127.0.0.1:8123 in preview/site" in result.stderr
    demo_page = sent / "preview" / "site" / "issues" / "calf-stretch" / "index.html"
    before = demo_page.read_bytes()
    assert b"http://127.0.0.1:8123/" in before
    result = runner.invoke(app, ["site"])
    assert result.exit_code == 0, result.output
    for page in (sent / "public").rglob("*.html"):
        assert "127.0.0.1" not in page.read_text(encoding="utf-8"), page
    assert f"{SITE_URL}/issues/calf-stretch/" in (sent / "public" / "index.html").read_text()
    assert demo_page.read_bytes() == before


def test_serve_on_another_address_serves_public_for_the_site_url(newsletter, served, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_TOKEN_SECRET", "demo-test-secret-0123456789abcdef")
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    ((config, web),) = served
    assert config.site_url == web.site_url == SITE_URL
    assert config.public_dir == newsletter / "public"
    assert not (newsletter / "preview").exists()


def test_a_demo_site_that_cannot_be_built_still_serves_the_signup_pages(newsletter, served):
    (newsletter / "templates" / "web" / "index.html.j2").write_text("{% if %}\n")
    result = runner.invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "warning: the demo site was not built: " in result.stderr
    assert "index.html.j2:1:" in result.stderr
    ((config, web),) = served
    assert config.site_url == web.site_url == "http://127.0.0.1:8123"
    assert config.public_dir == newsletter / "preview" / "site"


@pytest.mark.parametrize(
    ("host", "demo", "url"),
    [
        ("127.0.0.1", True, "http://127.0.0.1:8000"),
        ("localhost", True, "http://localhost:8000"),
        ("::1", True, "http://[::1]:8000"),
        ("[::1]", True, "http://[::1]:8000"),
        ("0.0.0.0", False, "http://0.0.0.0:8000"),
        ("192.0.2.10", False, "http://192.0.2.10:8000"),
    ],
)
def test_only_a_loopback_address_is_the_demo(settings, host, demo, url):
    from pipeline.config import with_overrides

    on_host = with_overrides(settings, web_host=host)
    assert is_demo(on_host) is demo
    assert local_site_url(host, 8000) == url
    if demo:
        assert demo_settings(on_host).site_url == url
        assert demo_settings(on_host).public_dir == settings.preview_dir / "site"
