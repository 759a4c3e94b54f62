"""The README documents every command: its name, its help line and an example."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from pipeline.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group=None, prefix="publish"):
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if getattr(command, "commands", None):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


ALL = list(commands())


def test_there_are_commands_to_document():
    names = [name for name, _ in ALL]
    assert {"publish new", "publish check", "publish preview"} <= set(names)


@pytest.mark.parametrize(("name", "command"), ALL, ids=[name for name, _ in ALL])
def test_command_is_in_the_readme_with_its_help(name, command):
    help_line = (command.help or "").strip().splitlines()[0]
    assert help_line, f"{name} has no help text"
    assert f"### `{name}" in README, f"README has no section for {name}"
    section = README.split(f"### `{name}", 1)[1].split("\n### ", 1)[0]
    assert help_line in section, f"README's {name} section lacks its help line: {help_line!r}"
    examples = [line for line in (command.help or "").splitlines() if line.strip().startswith("Example:")]
    assert examples, f"{name}'s help has no Example: line"
    example = examples[0].split("Example:", 1)[1].strip()
    assert example in section, f"README's {name} section lacks the example {example!r}"
