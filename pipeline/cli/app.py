"""The Typer application `publish` and what every command shares.

Commands parse their flags, build Settings once, call one library function
and report. Errors from the library, the one tree under ``NewsletterError``
(:mod:`subscribers.errors`), become ``error: <one line>`` and exit 1; the
top group catches them so that every command behaves the same.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pipeline.cli.commands import LazyCommands
from pipeline.config import Settings, load_settings
from subscribers.errors import NewsletterError
from subscribers.text import NOT_IN_TEXT


class PublishGroup(TyperGroup):
    """Maps user-facing errors to one line on stderr and exit status 1; its
    commands are built when first looked up (:class:`LazyCommands`), so a
    command imports only its own module."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(app, self.commands)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="publish",
    cls=PublishGroup,
    help="Write, check, render and send the newsletter.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="The newsletter folder (holding newsletter.toml). Default: search upwards.",
            envvar="NEWSLETTER_ROOT",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Write, check, render and send the newsletter."""
    ctx.obj = {"root": root}


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """The run's Settings: file < environment < the flags in ``overrides``."""
    root_ctx = ctx.find_root()
    root = (root_ctx.obj or {}).get("root")
    return load_settings(root, overrides)


def printable(text: str) -> str:
    """``text`` with every character that never belongs in a line of text
    but newline and tab (:data:`subscribers.text.NOT_IN_TEXT`) written out
    as an escape (``\\x1b``, ``\\u2028``): stored text (a stranger's name, a
    user agent, a provider's error) cannot move the cursor, retitle the
    window or plant a hyperlink in the editor's terminal."""
    return NOT_IN_TEXT.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def echo(message: str = "", *, err: bool = False) -> None:
    typer.echo(printable(message), err=err)


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plural(count: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def when(moment: dt.datetime | None) -> str:
    """``2026-12-01 09:30 UTC``; ``-`` for no moment."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def main() -> None:
    """Console-script entry point."""
    app(prog_name="publish")


def is_tty() -> bool:
    return sys.stdout.isatty()
