"""The `publish` command line: one module per group of commands, each
imported only when one of its commands runs or help lists them
(:mod:`pipeline.cli.commands` names them)."""

from pipeline.cli.app import app, main

__all__ = ["app", "main"]
