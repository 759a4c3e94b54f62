"""Parsing, linting, rendering and personalizing touch no file and no network.

A command reads everything once into its context (pipeline.context); the
stages after it work from the context alone. Here they run inside a guard
that forbids opening, listing and stat-ing files and resolving or connecting
to hosts, and what they make must equal what the unguarded path makes.

And a command renders each issue once: ``publish issue`` lints the issue
(which renders it) and builds the site with the same rendering.
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.context import Context
from pipeline.issue import load_issue, parse_issue_file, read_issue_text
from pipeline.lint import check_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue
from subscribers.tokens import Signer

SAMPLE = "2026-12-01-calf-stretch.md"
LINKING = "2027-01-05-knees.md"
LINKING_TEXT = """---
title: Knees that ache on the stairs
date: 2027-01-05
preheader: A gentle quad stretch for knees that complain on every step, done at the counter.
---
Last time we stretched [the calves](2026-12-01-calf-stretch.md#the-wall-stretch);
the knees come next.

![A woman holding her ankle behind her, one hand on a kitchen counter](images/calf-stretch.png)

---

Warmly,
Dana
"""

FORBIDDEN_EVENTS = frozenset(
    {"open", "os.listdir", "os.scandir", "socket.connect", "socket.getaddrinfo"}
)


class ForbiddenIO(RuntimeError):
    """A file-system or network call made while the guard was on."""


_guarded: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("guarded", default=None)
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    calls = _guarded.get()
    if calls is not None and event in FORBIDDEN_EVENTS:
        calls.append(f"{event}{args!r}")
        raise ForbiddenIO(f"{event} {args!r}")


def _forbidding(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls = _guarded.get()
        if calls is not None:
            calls.append(f"os.{name}{args!r}")
            raise ForbiddenIO(f"os.{name} {args!r}")
        return real(*args, **kwargs)

    return call


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    """A context manager that forbids file-system and network calls inside it
    (and records each one tried, in case the code swallowed the error)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # for the rest of the process; off unless guarded
        _hook_installed = True
    for name in ("stat", "lstat", "getcwd"):
        monkeypatch.setattr(os, name, _forbidding(name, getattr(os, name)))

    @contextmanager
    def guard() -> Iterator[list[str]]:
        calls: list[str] = []
        token = _guarded.set(calls)
        try:
            yield calls
        finally:
            _guarded.reset(token)
        assert calls == [], calls

    return guard


def test_the_guard_catches_files_stats_and_hosts(no_io, newsletter):
    import socket

    with pytest.raises(ForbiddenIO), no_io():
        (newsletter / "newsletter.toml").read_bytes()
    with pytest.raises(ForbiddenIO), no_io():
        (newsletter / "newsletter.toml").is_file()
    with pytest.raises(ForbiddenIO), no_io():
        os.listdir(newsletter)
    with pytest.raises(ForbiddenIO), no_io():
        socket.getaddrinfo("localhost", 80)
    assert (newsletter / "newsletter.toml").is_file()  # and off again outside it


def _stable(raw: bytes) -> bytes:
    """A message without what differs from one build to the next: its date
    and its MIME boundary (random, so no text can forge one)."""
    raw = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", raw)
    return re.sub(rb"=_pfl_[0-9a-f]{24}", b"=_pfl_boundary", raw)


def _stages(context: Context, path: Path, text: str) -> tuple[Any, ...]:
    """Parse ``text`` (the file's), lint, render and personalize the issue."""
    parsed = parse_issue_file(path, text)
    assert parsed.issue is not None, parsed.findings
    checked = check_issue(path, context)
    rendered = render_issue(parsed.issue, context)
    personalizer = Personalizer(
        rendered, context.settings, Signer("a" * 32).unsubscribe, message_id_seed="pure.1"
    )
    message = personalizer(Recipient(7, "reader@example.com", "Zoë Reader"))
    return parsed, checked, rendered, rendered.web_html, _stable(message.raw)


@pytest.mark.parametrize("name", [SAMPLE, LINKING])
def test_parse_lint_render_and_personalize_read_no_file(no_io, newsletter, settings, name):
    path = newsletter / "issues" / name
    if name == LINKING:
        path.write_text(LINKING_TEXT, encoding="utf-8")
    text = read_issue_text(path)
    context = Context.load(settings)

    unguarded = _stages(context, path, text)
    with no_io():
        guarded = _stages(context, path, text)

    assert guarded == unguarded
    parsed, checked, rendered, _, _ = guarded
    assert checked.findings == ()
    assert checked.rendered == rendered
    # The same as reading the file and rendering it with a context of its own.
    assert parsed.issue == load_issue(path)
    assert render_issue(load_issue(path), Context.load(settings)) == rendered
    if name == LINKING:
        site = "https://painfreeliving.example.com"
        assert f'href="{site}/issues/calf-stretch/#the-wall-stretch"' in rendered.html
        assert f'src="{site}/media/images/calf-stretch.png"' in rendered.html
        assert [asset.public_path for asset in rendered.assets] == ["media/images/calf-stretch.png"]


def test_an_issue_linking_to_a_missing_file_is_found_without_looking(no_io, newsletter, settings):
    path = newsletter / "issues" / LINKING
    path.write_text(LINKING_TEXT.replace("images/calf-stretch.png", "images/knee.png"))
    context = Context.load(settings)
    with no_io():
        result = check_issue(path, context)
    assert [(f.line, f.message) for f in result.errors] == [
        (9, "image 'images/knee.png' not found next to the issue or in images/")
    ]


def test_publish_issue_renders_the_issue_once(newsletter, settings, monkeypatch):
    from subscribers.store import Store

    with Store.open(settings.database_url, settings.root) as store:
        for i in range(3):
            store.add(f"reader{i}@example.com", name=f"Reader {i}")

    import pipeline.render

    real = pipeline.render.render_issue
    renders: list[str] = []

    def counting(issue, *args, **kwargs):
        renders.append(issue.slug)
        return real(issue, *args, **kwargs)

    # Wherever a module took the function by name, it counts.
    for module in list(sys.modules.values()):
        if getattr(module, "render_issue", None) is real:
            monkeypatch.setattr(module, "render_issue", counting)

    result = CliRunner().invoke(
        app, ["issue", f"issues/{SAMPLE}", "--yes", "--transport", "outbox"]
    )

    assert result.exit_code == 0, result.output
    assert "calf-stretch: sent 3, failed 0, skipped 0" in result.stdout
    assert renders == ["calf-stretch"]
    page = settings.public_dir / "issues" / "calf-stretch" / "index.html"
    assert (
        page.read_text()
        == render_issue(load_issue(newsletter / "issues" / SAMPLE), Context.load(settings)).web_html
    )
