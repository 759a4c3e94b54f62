"""Settings carry the secrets (the token secret, the SMTP password, the
database URL's password) and never show them: not in repr(Settings), not in
any --help, not in an error message, not in a log line."""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.publish import SendOptions, prepare_send, token_secret
from subscribers.errors import TokenError
from subscribers.store import Store
from subscribers.tokens import Signer
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER

ISSUE = "issues/2026-12-01-calf-stretch.md"
SAMPLE = Path(__file__).resolve().parent.parent / "subscribers" / "sample.csv"
TOKEN_SECRET = "tok-5ecret-Qm3vZ8-never-shown"
SMTP_SECRET = "smtp-5ecret-Lw7pK2-never-shown"
DB_SECRET = "db-5ecret-Hx4nT9-never-shown"
SECRETS = (TOKEN_SECRET, SMTP_SECRET, DB_SECRET)
PG_URL = f"postgresql+psycopg://editor:{DB_SECRET}@db.example.org:5432/newsletter"
ENVIRONMENT = {
    "NEWSLETTER_TOKEN_SECRET": TOKEN_SECRET,
    "NEWSLETTER_SMTP_PASSWORD": SMTP_SECRET,
    "NEWSLETTER_DATABASE_URL": PG_URL,
}

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def assert_hidden(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text


def assert_one_line_error(result, *, naming: str) -> None:
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {naming}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert_hidden(result.output)


# -- repr ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (PG_URL, "postgresql+psycopg://editor:***@db.example.org:5432/newsletter"),
        (  # a password with an @ and a / in it, written as the user would
            f"postgresql+psycopg://editor:a@b/{DB_SECRET}@db.example.org/newsletter",
            "postgresql+psycopg://editor:***@db.example.org/newsletter",
        ),
        (
            f"postgresql+psycopg://db.example.org/newsletter?user=editor&password={DB_SECRET}",
            "postgresql+psycopg://db.example.org/newsletter?user=editor&password=***",
        ),
    ],
)
def test_repr_of_settings_shows_no_secret(newsletter, monkeypatch, url, shown):
    for name, value in {**ENVIRONMENT, "NEWSLETTER_DATABASE_URL": url}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(newsletter)
    assert (settings.token_secret, settings.smtp_password) == (TOKEN_SECRET, SMTP_SECRET)
    assert settings.database_url == url
    text = repr(settings)
    assert_hidden(text)
    assert f"database_url={shown!r}" in text
    assert "token_secret='***'" in text and "smtp_password='***'" in text


# -- help ---------------------------------------------------------------------


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``command`` (Typer's own click's objects)."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


def test_no_help_shows_a_secret(newsletter):
    paths = command_paths(typer.main.get_command(app))
    assert ("subscribers", "import") in paths and ("db", "upgrade") in paths
    for path in paths:
        result = run(*path, "--help", env=ENVIRONMENT)
        assert result.exit_code == 0, (path, result.output)
        assert_hidden(result.output)


# -- error messages -----------------------------------------------------------


@pytest.mark.parametrize("command", [("db", "upgrade"), ("subscribers", "list"), ("status",)])
def test_a_bad_port_in_the_database_url_names_the_setting(newsletter, command):
    url = f"postgresql+psycopg://u:{DB_SECRET}@localhost:notaport/db"
    result = run(*command, env={**ENVIRONMENT, "NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, naming="database.url: ")
    assert "port" in result.stderr and "u:***@localhost:notaport/db" in result.stderr


def test_a_database_url_that_is_no_url_hides_its_password(newsletter):
    url = f"editor:{DB_SECRET}@db.example.org/newsletter"
    result = run("db", "upgrade", env={**ENVIRONMENT, "NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, naming="database.url: ")


def test_an_unreachable_database_hides_its_password(newsletter):
    url = f"postgresql+psycopg://editor:{DB_SECRET}@127.0.0.1:1/newsletter"
    result = run("db", "upgrade", env={**ENVIRONMENT, "NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, naming="database postgresql+psycopg://editor:***@127.0.0.1:1/")


def test_a_refused_smtp_login_hides_the_password(newsletter, smtp_server):
    env = {
        **ENVIRONMENT,
        "NEWSLETTER_DATABASE_URL": "sqlite:///subscribers.db",
        "NEWSLETTER_SMTP_HOST": smtp_server.host,
        "NEWSLETTER_SMTP_PORT": str(smtp_server.port),
        "NEWSLETTER_SMTP_USERNAME": SMTP_USER,
        "SSL_CERT_FILE": str(smtp_server.cafile),
    }
    result = run("issue", ISSUE, "--transport", "smtp", "--test-to", "dana@example.com", env=env)
    assert_one_line_error(result, naming="--test-to dana@example.com: not sent: ")
    assert "login as 'newsletter' refused" in result.stderr
    assert not smtp_server.messages


# -- logs ---------------------------------------------------------------------


@pytest.mark.postgres
def test_an_import_and_a_send_log_no_secret(
    newsletter, postgres_url, smtp_server, caplog, monkeypatch
):
    # The throwaway server trusts every login, so the URL can carry any password.
    url = postgres_url.replace("://postgres@", f"://postgres:{DB_SECRET}@")
    assert DB_SECRET in url
    env = {
        "NEWSLETTER_TOKEN_SECRET": TOKEN_SECRET,
        "NEWSLETTER_SMTP_PASSWORD": SMTP_PASSWORD,  # the one the relay accepts
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SMTP_HOST": smtp_server.host,
        "NEWSLETTER_SMTP_PORT": str(smtp_server.port),
        "NEWSLETTER_SMTP_USERNAME": SMTP_USER,
        "SSL_CERT_FILE": str(smtp_server.cafile),
    }
    caplog.set_level(logging.DEBUG)
    imported = run("subscribers", "import", str(SAMPLE), env=env)
    assert imported.exit_code == 0, imported.output
    sent = run("issue", ISSUE, "--transport", "smtp", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    assert smtp_server.messages
    assert any(record.name.startswith("pipeline.") for record in caplog.records)
    assert any("postgres:***@" in record.getMessage() for record in caplog.records)
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # the relay's own
    shown = "\n".join(caplog.handler.format(record) for record in ours)
    assert_hidden(shown + imported.output + sent.output, (TOKEN_SECRET, SMTP_PASSWORD, DB_SECRET))


# -- the secrets come from Settings -------------------------------------------


def test_the_token_secret_comes_from_settings(settings):
    with pytest.raises(TokenError, match="NEWSLETTER_TOKEN_SECRET is not set"):
        token_secret(replace(settings, database_url=PG_URL))  # and not in the environment
    assert token_secret(replace(settings, database_url=PG_URL, token_secret=TOKEN_SECRET)) == (
        TOKEN_SECRET
    )


def test_unsubscribe_links_are_signed_with_the_settings_secret(settings):
    settings = replace(settings, token_secret=TOKEN_SECRET)
    with Store.open(settings.database_url, settings.root) as store:
        reader = store.add("reader@example.com", name="Reader")
    with prepare_send(settings, settings.root / ISSUE, SendOptions()) as prepared:
        result = prepared.run()
    assert result.sent == 1
    [path] = settings.outbox_dir.glob("*.eml")
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    url = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
    assert url.startswith(f"{settings.site_url}/unsubscribe/")
    assert Signer(TOKEN_SECRET).read_unsubscribe(url.rsplit("/", 1)[1]) == reader.id


def test_serve_signs_with_the_settings_secret(newsletter, monkeypatch):
    app_module = importlib.import_module("pipeline.cli.app")  # not the Typer app of that name
    real = app_module.load_settings
    monkeypatch.setattr(
        app_module,
        "load_settings",
        lambda *args, **kwargs: replace(real(*args, **kwargs), token_secret=TOKEN_SECRET),
    )
    served = []
    monkeypatch.setattr(
        "pipeline.cli.serve.run_service", lambda config, web: served.append(web)
    )
    result = run("serve", "--host", "0.0.0.0")  # a public host needs a configured secret
    assert result.exit_code == 0, result.output
    [web] = served
    assert web.secret == TOKEN_SECRET
    assert TOKEN_SECRET not in repr(web)
