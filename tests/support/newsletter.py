"""A newsletter folder to run commands in: a copy of the repository's own
settings, templates and sample issues, in a temporary directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def newsletter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh newsletter root with the sample issues; the working directory."""
    root = tmp_path / "newsletter"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "issues", root / "issues")
    for name in list(__import__("os").environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def settings(newsletter: Path):  # type: ignore[no-untyped-def]
    from pipeline.config import load_settings

    return load_settings(newsletter)
