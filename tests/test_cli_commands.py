"""Each command imports its own module only: the map of commands to modules
matches what the modules register, and `publish check` starts without the
store, the web service, the send loop or Pillow, and lints an edited issue
without the feeds, the transports or the service's pages."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import typer.main

from pipeline.cli import app
from pipeline.cli.commands import COMMANDS

CLI = Path(__file__).resolve().parent.parent / "pipeline" / "cli"


def registered() -> dict[str, str]:
    """Every top-level command the modules of pipeline/cli/ register, with
    the module that registers it."""
    for path in sorted(CLI.glob("*.py")):
        importlib.import_module(f"pipeline.cli.{path.stem}")
    found = {}
    for info in app.registered_commands:
        command = typer.main.get_command_from_info(
            info, pretty_exceptions_short=True, rich_markup_mode=None
        )
        assert info.callback is not None
        found[str(command.name)] = info.callback.__module__
    for group_info in app.registered_groups:
        group = typer.main.get_group_from_info(
            group_info, pretty_exceptions_short=True, rich_markup_mode=None, suggest_commands=True
        )
        assert group_info.typer_instance is not None
        first = group_info.typer_instance.registered_commands[0].callback
        found[str(group.name)] = first.__module__ if first else ""
    return found


def test_the_map_names_every_command_and_the_module_that_registers_it():
    assert registered() == dict(COMMANDS)


def test_help_lists_every_command_in_the_maps_order_and_a_typo_is_still_suggested():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--help"])
    rows = result.output.split("Commands:", 1)[1].splitlines()
    listed = [row.split()[0] for row in rows if row.startswith("  ") and row.split()]
    assert listed == list(COMMANDS)
    typo = CliRunner().invoke(app, ["chek"])
    assert typo.exit_code == 2 and "Did you mean 'check'?" in typo.output


WATCHED = (
    "pipeline.cli.sending", "pipeline.cli.serve", "pipeline.cli.subscribers",
    "pipeline.cli.events", "pipeline.cli.golive", "pipeline.cli.doctor", "pipeline.cli.embed",
    "pipeline.cli.site", "pipeline.site", "sqlalchemy", "alembic", "boto3", "fastapi",
    "email_validator", "PIL.Image",
)


def loaded_by(
    args: list[str], root: Path, watched: tuple[str, ...] = WATCHED
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `publish ARGS` in a fresh interpreter; which of ``watched`` it imported."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"sys.argv = ['publish', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        f"    print('LOADED', *[m for m in {watched!r} if m in sys.modules], file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    line = next(line for line in out.stderr.splitlines() if line.startswith("LOADED"))
    return out, line.split()[1:]


def test_check_imports_nothing_it_does_not_use(newsletter):
    issue = "issues/2026-12-01-calf-stretch.md"
    first, _ = loaded_by(["check", issue], newsletter)  # makes its picture, with Pillow
    assert first.returncode == 0, first.stderr
    again, loaded = loaded_by(["check", issue], newsletter)
    assert again.returncode == 0, again.stderr
    assert "1 issue checked: 0 errors" in again.stderr
    assert loaded == []


ON_EDIT = (
    "pipeline.feeds", "html.parser", "pipeline.transports", "subscribers.models",
    "subscribers.pages", "subscribers.page_samples", "subscribers.middleware", "jinja2.meta",
    "pipeline.yaml_errors",
)
"""What checking an edited issue needs none of: the feeds (the templates
take their filters from pipeline.feed_filters), the transports, the store's
records and the service's pages (the issue page's signup form is filled
without them), Jinja's template inspection (the email template names no
other), the explanations of front matter that does not parse."""


def test_an_edited_issue_is_linted_without_what_only_the_site_or_service_need(newsletter):
    issue = Path("issues/2026-12-01-calf-stretch.md")
    first, _ = loaded_by(["check", str(issue)], newsletter)
    assert first.returncode == 0, first.stderr
    issue.write_text(issue.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    # pipeline.lint: the issue is linted again; no pipeline.mailcheck: the
    # pages' and emails' findings are the first run's.
    watched = (*ON_EDIT, "pipeline.lint", "pipeline.mailcheck")
    edited, loaded = loaded_by(["check", str(issue)], newsletter, watched)
    assert edited.returncode == 0, edited.stderr
    assert "1 issue checked: 0 errors" in edited.stderr
    assert loaded == ["pipeline.lint"]
