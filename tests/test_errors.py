"""One exception tree for both packages: every exception either is a
user-facing NewsletterError, drawn in subscribers/errors.py, or an internal
signal named below; and the CLI catches the one root."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import typer
from typer.testing import CliRunner

import pipeline
import subscribers
import subscribers.errors
from pipeline.cli import app
from pipeline.cli.app import PublishGroup
from pipeline.errors import ConfigError, PublishError
from subscribers.errors import InvalidEmail, NewsletterError, SubscriberError

# Internal signals: they never reach a person as an error, and each says so
# where it is defined.
INTERNAL = {
    "SnsRejected",  # /ses/events answers 403 and logs why
    "MalformedNotification",  # a ValueError; the webhook answers 400, the queue keeps it
    "TooDeep",  # a ValueError; the signup form answers it as a BadInput
    "QueryFailed",  # a DNS query that failed; publish doctor reports it as a finding
    "IssueBusy",  # publish unschedule turns it into its refusal
    "BadAnswer",  # the lean SES client makes it botocore's connection error
    "Unanswered",  # publish doctor's failed read, kept as a finding
}


def every_exception() -> list[type[BaseException]]:
    """Every exception class the two packages define, nested ones too."""
    for package in (pipeline, subscribers):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    found: list[type[BaseException]] = []
    waiting: list[type[BaseException]] = [Exception]
    while waiting:
        cls = waiting.pop()
        waiting.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in ("pipeline", "subscribers"):
            found.append(cls)
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


EXCEPTIONS = every_exception()


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_exception_is_in_the_tree_or_an_internal_signal(cls):
    if cls.__qualname__ in INTERNAL:
        assert not issubclass(cls, NewsletterError), f"{cls.__qualname__} is in the tree now"
        assert "internal signal" in (cls.__doc__ or ""), "say so where it is defined"
    else:
        assert issubclass(cls, NewsletterError), f"{cls.__qualname__} is outside the tree"


def test_the_tree_is_drawn_once_with_every_class_in_it():
    drawing = subscribers.errors.__doc__ or ""
    for cls in EXCEPTIONS:
        assert cls.__qualname__ in drawing, f"{cls.__qualname__} is missing from the drawing"
    assert {cls.__qualname__ for cls in EXCEPTIONS} >= INTERNAL
    assert issubclass(SubscriberError, NewsletterError)
    assert issubclass(PublishError, NewsletterError)
    assert not issubclass(PublishError, SubscriberError)


def group_raising(error: Exception) -> typer.Typer:
    """A command group of the CLI's kind whose one command raises ``error``."""
    group = typer.Typer(cls=PublishGroup)

    @group.callback()
    def _root() -> None:
        pass

    @group.command()
    def fail() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    "error",
    [
        SubscriberError("list.csv:3: no email column"),
        InvalidEmail("email: 'nope' is not valid"),
        PublishError("--date: 'soon' is not a date"),
        ConfigError("delivery.rate: must be at least 0"),
        NewsletterError("a new kind of problem"),
    ],
    ids=type,
)
def test_the_cli_catches_the_root(error):
    result = CliRunner().invoke(group_raising(error), ["fail"])
    assert result.exit_code == 1
    assert result.stderr == f"error: {error}\n"
    assert "Traceback" not in result.output


def test_anything_else_is_a_bug_with_a_traceback():
    result = CliRunner().invoke(group_raising(ValueError("a bug")), ["fail"])
    assert isinstance(result.exception, ValueError)


def test_the_publish_command_turns_both_layers_into_one_line(newsletter):
    runner = CliRunner()
    subscriber = runner.invoke(app, ["subscribers", "add", "not-an-address"])
    assert subscriber.exit_code == 1
    assert subscriber.stderr.startswith("error: email: 'not-an-address' is not valid")
    assert subscriber.stderr.count("\n") == 1
    toml = newsletter / "newsletter.toml"
    toml.write_text(toml.read_text().replace("\nrate = 0 ", "\nrate = -1 "))
    publish = runner.invoke(app, ["check"])
    assert publish.exit_code == 1
    assert publish.stderr == "error: delivery.rate: must be at least 0\n"
