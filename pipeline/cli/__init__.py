"""The `publish` command line: one module per group of commands."""

from pipeline.cli import authoring as _authoring  # noqa: F401  (registers commands)
from pipeline.cli import events as _events  # noqa: F401
from pipeline.cli import sending as _sending  # noqa: F401  (registers commands)
from pipeline.cli import site as _site  # noqa: F401
from pipeline.cli import subscribers as _subscribers  # noqa: F401

# `publish --help` lists commands in the order they register: serve after the
# site's commands, where the README has it.
# isort: split
from pipeline.cli import doctor as _doctor  # noqa: F401
from pipeline.cli import embed as _embed  # noqa: F401
from pipeline.cli import golive as _golive  # noqa: F401
from pipeline.cli import serve as _serve  # noqa: F401
from pipeline.cli.app import app, main

__all__ = ["app", "main"]
