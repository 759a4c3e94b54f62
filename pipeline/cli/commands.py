"""Which module registers each `publish` command, and the top group's
commands built from those modules only when they are asked for.

Running one command should cost that command: ``publish check`` has no use
for the store, the web service or the send loop that other commands import.
So nothing imports the command modules up front. The top group knows each
command's name and module (:data:`COMMANDS`, in the order ``publish --help``
lists them), and its ``commands`` mapping (:class:`LazyCommands`) imports a
module the first time one of its commands is looked up: to run it, or when
help or a mistyped name's suggestions list them all.

A new command module: add each command it registers here, in the place help
should list it; tests/test_cli_commands.py fails until the map and the
modules agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING

import typer.main

if TYPE_CHECKING:
    from typer._click import Command

COMMANDS: Mapping[str, str] = {
    "new": "pipeline.cli.authoring",
    "check": "pipeline.cli.authoring",
    "preview": "pipeline.cli.authoring",
    "issue": "pipeline.cli.sending",
    "due": "pipeline.cli.sending",
    "status": "pipeline.cli.sending",
    "schedule": "pipeline.cli.sending",
    "unschedule": "pipeline.cli.sending",
    "worker": "pipeline.cli.worker",
    "report": "pipeline.cli.report",
    "site": "pipeline.cli.site",
    "draft": "pipeline.cli.site",
    "deploy": "pipeline.cli.site",
    "doctor": "pipeline.cli.doctor",
    "embed": "pipeline.cli.embed",
    "serve": "pipeline.cli.serve",
    "events": "pipeline.cli.events",
    "subscribers": "pipeline.cli.subscribers",
    "db": "pipeline.cli.subscribers",
    "setup": "pipeline.cli.golive",
}
"""Each top-level command (or group of commands) by name: the module whose
import registers it on the app. Help lists them in this order."""


class LazyCommands(MutableMapping[str, "Command"]):
    """The top group's commands by name, as Click reads them: looking up a
    name in :data:`COMMANDS` imports its module and builds the commands it
    registered; listing them (iterating, ``len``) imports every module.

    ``built`` are the commands Typer built when it made the group: those of
    every module imported by then, which is every command registered so far.
    """

    def __init__(self, app: typer.Typer, built: Mapping[str, Command]) -> None:
        self._app = app
        self._built = dict(built)
        self._seen = {id(info) for info in (*app.registered_commands, *app.registered_groups)}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built and name in COMMANDS:
            importlib.import_module(COMMANDS[name])
            self._build_new()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        for module in dict.fromkeys(COMMANDS.values()):
            importlib.import_module(module)
        self._build_new()
        listed = [name for name in COMMANDS if name in self._built]
        yield from listed
        yield from (name for name in list(self._built) if name not in COMMANDS)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def _build_new(self) -> None:
        """Build what was registered on the app since the last look, as
        Typer would have built it with the group."""
        app = self._app
        for info in app.registered_commands:
            if id(info) in self._seen:
                continue
            self._seen.add(id(info))
            command = typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
            )
            if command.name:
                self._built[command.name] = command
        for group_info in app.registered_groups:
            if id(group_info) in self._seen:
                continue
            self._seen.add(id(group_info))
            group = typer.main.get_group_from_info(
                group_info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=app.suggest_commands,
            )
            if group.name:
                self._built[group.name] = group
            else:  # as Typer does: a group without a name adds its commands
                self._built.update(group.commands)
