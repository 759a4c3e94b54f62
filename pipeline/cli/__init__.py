"""The `publish` command line: one module per group of commands."""

from pipeline.cli import authoring as _authoring  # noqa: F401  (registers commands)
from pipeline.cli.app import app, main

__all__ = ["app", "main"]
