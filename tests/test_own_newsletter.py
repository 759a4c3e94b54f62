"""The repository's own newsletter: its settings and every issue in issues/,
checked as `publish check` checks them before a send.

This is the one test that reads the editor's newsletter.toml and issues/;
every other test runs on the copy in tests/fixtures/newsletter. An issue the
editor is still writing may have warnings, but an error here is an error
`publish issue` would stop on.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings

REPO = Path(__file__).resolve().parent.parent


def test_the_newsletters_settings_and_issues_pass_publish_check():
    settings = load_settings(REPO, environ={})
    assert settings.name and settings.postal_address
    issues = sorted(settings.issues_dir.glob("*.md"))
    assert issues, f"no issues in {settings.issues_dir}"

    result = CliRunner().invoke(app, ["--root", str(REPO), "check"], env={"NO_COLOR": "1"})

    assert result.exit_code == 0, result.output
    assert f"{len(issues)} issues checked: 0 errors" in result.output, result.output
