"""Signed confirm and unsubscribe tokens, and where their secret comes from."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers import tokens
from subscribers.errors import TokenError
from subscribers.tokens import ExpiredToken, Signer, resolve_secret

SECRET = "a-test-secret-of-reasonable-length"
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def test_unsubscribe_tokens_round_trip_are_deterministic_and_url_safe():
    signer = Signer(SECRET)
    token = signer.unsubscribe(42)
    assert token == signer.unsubscribe(42) == Signer(SECRET.encode()).unsubscribe(42)
    assert re.fullmatch(r"[0-9]+\.[A-Za-z0-9_-]{22}", token)  # no '=' padding
    assert signer.read_unsubscribe(token) == 42
    assert signer.unsubscribe(43) != token


def test_unsubscribe_tokens_never_expire():
    signer = Signer(SECRET)
    assert signer.read_unsubscribe(signer.unsubscribe(7)) == 7  # no time in them at all


def test_confirm_tokens_expire_after_seven_days():
    signer = Signer(SECRET)
    token = signer.confirm(5, issued_at=NOW)
    assert signer.read_confirm(token, now=NOW + dt.timedelta(days=6, hours=23)) == 5
    with pytest.raises(ExpiredToken, match="expired"):
        signer.read_confirm(token, now=NOW + dt.timedelta(days=7, seconds=1))


def test_a_token_from_the_future_is_refused():
    signer = Signer(SECRET)
    token = signer.confirm(5, issued_at=NOW + dt.timedelta(hours=1))
    with pytest.raises(TokenError):
        signer.read_confirm(token, now=NOW)


def test_tokens_from_another_secret_or_purpose_are_refused():
    signer, other = Signer(SECRET), Signer(SECRET + "x")
    with pytest.raises(TokenError):
        other.read_unsubscribe(signer.unsubscribe(1))
    with pytest.raises(TokenError):
        other.read_confirm(signer.confirm(1, NOW), now=NOW)
    # An unsubscribe token is not a confirm token, nor the reverse.
    id_, mac = signer.unsubscribe(1).split(".")
    with pytest.raises(TokenError):
        signer.read_confirm(f"{id_}.0.{mac}", now=NOW)
    confirm = signer.confirm(1, NOW)
    with pytest.raises(TokenError):
        signer.read_unsubscribe(confirm.split(".")[0] + "." + confirm.split(".")[2])


@pytest.mark.parametrize("make", ["unsubscribe", "confirm"])
def test_every_altered_character_is_caught(make):
    signer = Signer(SECRET)
    token = signer.unsubscribe(1234) if make == "unsubscribe" else signer.confirm(1234, NOW)
    read = signer.read_unsubscribe if make == "unsubscribe" else (
        lambda value: signer.read_confirm(value, now=NOW)
    )
    for index, char in enumerate(token):
        for replacement in {"0", "A", "_", "."} - {char}:
            altered = token[:index] + replacement + token[index + 1:]
            with pytest.raises(TokenError):
                read(altered)


@given(st.text(max_size=200))
def test_arbitrary_text_is_never_accepted_and_never_crashes(garbage):
    signer = Signer(SECRET)
    for read in (signer.read_unsubscribe, signer.read_confirm):
        try:
            read(garbage)
        except TokenError:
            continue
        pytest.fail(f"accepted {garbage!r}")


def test_the_secret_never_shows_in_a_repr():
    assert SECRET not in repr(Signer(SECRET))


def test_an_empty_secret_is_refused():
    with pytest.raises(TokenError):
        Signer("")


# -- resolve_secret -----------------------------------------------------------


def test_the_configured_secret_wins(tmp_path):
    got = resolve_secret(SECRET, tmp_path / ".secret", "postgresql://x/y", "0.0.0.0")
    assert got == SECRET
    assert not (tmp_path / ".secret").exists()


def test_a_short_configured_secret_is_refused(tmp_path):
    with pytest.raises(TokenError, match="NEWSLETTER_TOKEN_SECRET: too short"):
        resolve_secret("short", tmp_path / ".s", "sqlite://", None)


@pytest.mark.parametrize("host", [None, "127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_embedded_demo_makes_and_keeps_a_private_secret(tmp_path, host):
    path = tmp_path / ".secret"
    first = resolve_secret("", path, "sqlite:///subscribers.db", host)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_secret("", path, "sqlite:///subscribers.db", host) == first


def test_concurrent_starts_agree_on_one_secret(tmp_path):
    path = tmp_path / ".secret"
    results: list[str] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(resolve_secret("", path, "sqlite:///subscribers.db", None))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert [p.name for p in tmp_path.iterdir()] == [".secret"]  # no temporary files left


@pytest.mark.parametrize(
    ("url", "host", "why"),
    [
        ("postgresql+psycopg://u@db/list", None, "a database other than the embedded SQLite"),
        ("sqlite:///subscribers.db", "0.0.0.0", "a public host (0.0.0.0)"),
        ("sqlite:///subscribers.db", "203.0.113.9", "a public host"),
    ],
)
def test_without_a_secret_postgres_or_a_public_host_refuse_to_start(tmp_path, url, host, why):
    with pytest.raises(TokenError) as caught:
        resolve_secret("", tmp_path / ".secret", url, host)
    message = str(caught.value)
    assert message.startswith("NEWSLETTER_TOKEN_SECRET is not set") and why in message
    assert "\n" not in message
    assert not (tmp_path / ".secret").exists()


def test_a_world_readable_secret_file_is_made_private(tmp_path):
    path = tmp_path / ".secret"
    path.write_text(SECRET)
    os.chmod(path, 0o644)
    assert resolve_secret("", path, "sqlite://", None) == SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- strength -----------------------------------------------------------------

WEAK = [
    "aaaaaaaaaaaaaaaaaaaa",
    "passwordpassword12",
    "abcabcabcabcabcabcabcabc",
    "abcdefghabcdefghabcdefghabcdefghabcdefgh",  # 8 characters, repeated
    "0123456789abcdefghijklmnopqrstuvwxyz",  # runs
    "Summer2024!Summer2024!",
    "xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy",
    "0123456789012345678901234567890123456789",
]


@pytest.mark.parametrize("weak", WEAK)
def test_a_weak_configured_secret_is_refused_in_one_line_saying_how_to_make_one(tmp_path, weak):
    with pytest.raises(TokenError) as caught:
        resolve_secret(weak, tmp_path / ".secret", "postgresql://x/y", None)
    message = str(caught.value)
    assert message.startswith("NEWSLETTER_TOKEN_SECRET: too weak")
    assert message.endswith(
        "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )
    assert "\n" not in message and weak not in message


def test_secrets_made_as_advised_pass(tmp_path):
    import secrets

    for _ in range(200):
        secret = secrets.token_urlsafe(32)
        assert tokens.estimated_bits(secret) >= 150
        assert resolve_secret(secret, tmp_path / ".secret", "postgresql://x/y", None) == secret


def test_the_embedded_demos_secret_passes_the_strength_check(tmp_path):
    path = tmp_path / ".secret"
    made = resolve_secret("", path, "sqlite:///subscribers.db", None)
    assert path.read_text().strip() == made
    assert tokens.check_secret(made) == made
    assert tokens.estimated_bits(made) >= tokens.MIN_SECRET_BITS


def test_a_weak_secret_file_is_refused(tmp_path):
    path = tmp_path / ".secret"
    path.write_text("passwordpassword12\n")
    with pytest.raises(TokenError, match=r"\.secret: too weak to be a token secret; delete it"):
        resolve_secret("", path, "sqlite://", None)


def test_cli_refuses_a_weak_secret_in_one_line(newsletter, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("NEWSLETTER_TOKEN_SECRET", "passwordpassword12")
    result = CliRunner().invoke(app, ["issue", "calf-stretch", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: NEWSLETTER_TOKEN_SECRET: too weak")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "secrets.token_urlsafe(32)" in result.stderr


# -- rotation -----------------------------------------------------------------

OLD_SECRET = "an-older-secret-Jq8w2Xv5Lr1Nz"


def test_links_signed_with_the_previous_secret_work_during_a_rotation():
    old = Signer(OLD_SECRET)
    unsubscribe, confirm = old.unsubscribe(42), old.confirm(7, issued_at=NOW)
    rotating = Signer(SECRET, previous=OLD_SECRET)
    assert rotating.read_unsubscribe(unsubscribe) == 42
    assert rotating.read_confirm(confirm, now=NOW) == 7
    with pytest.raises(ExpiredToken):  # the previous secret does not make links last longer
        rotating.read_confirm(confirm, now=NOW + dt.timedelta(days=8))
    # New links are made with the current secret only.
    assert rotating.unsubscribe(42) == Signer(SECRET).unsubscribe(42) != unsubscribe
    assert rotating.read_unsubscribe(rotating.unsubscribe(43)) == 43
    assert OLD_SECRET not in repr(rotating)
    # Once the previous secret is removed, its links stop working.
    done = Signer(SECRET)
    with pytest.raises(TokenError):
        done.read_unsubscribe(unsubscribe)
    with pytest.raises(TokenError):
        done.read_confirm(confirm, now=NOW)
    # And a third secret's links never passed.
    with pytest.raises(TokenError):
        rotating.read_unsubscribe(Signer(SECRET + "-other").unsubscribe(42))


def test_the_previous_secret_comes_from_the_environment_only_and_is_hidden(newsletter):
    from pipeline.config import load_settings
    from pipeline.errors import ConfigError

    settings = load_settings(
        newsletter,
        environ={"NEWSLETTER_TOKEN_SECRET": SECRET, "NEWSLETTER_TOKEN_SECRET_PREVIOUS": OLD_SECRET},
    )
    assert settings.token_secret_previous == OLD_SECRET
    assert OLD_SECRET not in repr(settings) and "token_secret_previous='***'" in repr(settings)
    toml = newsletter / "newsletter.toml"
    toml.write_text(toml.read_text().replace("[web]\n", '[web]\ntoken_secret_previous = "x"\n'))
    with pytest.raises(ConfigError, match=r"unknown key web\.token_secret_previous \(secrets"):
        load_settings(newsletter, environ={})


def serve_with(monkeypatch, environment: dict[str, str]):
    from typer.testing import CliRunner

    from pipeline.cli import app

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    served = []
    monkeypatch.setattr(
        "pipeline.cli.serve.run_service", lambda config, web: served.append(web)
    )
    return CliRunner().invoke(app, ["serve"]), served


def test_serve_reads_links_of_the_previous_secret_until_it_is_removed(newsletter, monkeypatch):
    from subscribers import db
    from subscribers.store import Store

    engine = db.connect(f"sqlite:///{newsletter / 'subscribers.db'}", newsletter)
    try:
        reader = Store(engine).add("reader@example.com")
        old_link = Signer(OLD_SECRET).unsubscribe(reader.id)
        result, [web] = serve_with(monkeypatch, {
            "NEWSLETTER_TOKEN_SECRET": SECRET, "NEWSLETTER_TOKEN_SECRET_PREVIOUS": OLD_SECRET,
        })
        assert result.exit_code == 0, result.output
        assert web.previous_secret == OLD_SECRET and OLD_SECRET not in repr(web)
        service = web.subscriptions(engine, lambda message: None)
        assert service.unsubscribe_target(old_link).id == reader.id
        assert service.signer.unsubscribe(reader.id) == Signer(SECRET).unsubscribe(reader.id)

        monkeypatch.delenv("NEWSLETTER_TOKEN_SECRET_PREVIOUS")
        result, [web] = serve_with(monkeypatch, {})
        assert result.exit_code == 0, result.output
        with pytest.raises(TokenError):
            web.subscriptions(engine, lambda message: None).unsubscribe_target(old_link)
    finally:
        engine.dispose()


def test_a_weak_previous_secret_is_refused_in_one_line(newsletter, monkeypatch):
    result, served = serve_with(monkeypatch, {
        "NEWSLETTER_TOKEN_SECRET": SECRET, "NEWSLETTER_TOKEN_SECRET_PREVIOUS": "aaaaaaaaaaaaaaaaaaaa",
    })
    assert result.exit_code == 1 and served == []
    assert result.stderr.startswith("error: NEWSLETTER_TOKEN_SECRET_PREVIOUS: too weak")
    assert result.stderr.count("\n") == 1 and "aaaaaaaa" not in result.output


def test_a_confirm_token_carries_its_signup_and_the_nonce_is_signed():
    signer = Signer(SECRET)
    token = signer.confirm(5, NOW, signup="AbC-_123xyz9")
    assert re.fullmatch(r"5\.AbC-_123xyz9\.[0-9a-z]+\.[A-Za-z0-9_-]{22}", token)
    link = signer.read_confirm_link(token, now=NOW)
    assert (link.subscriber_id, link.signup) == (5, "AbC-_123xyz9")
    assert signer.read_confirm(token, now=NOW) == 5
    _id, _nonce, issued, mac = token.split(".")
    with pytest.raises(TokenError):  # another signup's nonce with this mac
        signer.read_confirm(f"5.OtherNonce12.{issued}.{mac}", now=NOW)
    with pytest.raises(TokenError):  # the nonce dropped
        signer.read_confirm(f"5.{issued}.{mac}", now=NOW)
    # Links from before they carried a nonce read as the empty one.
    assert signer.read_confirm_link(signer.confirm(5, NOW), now=NOW).signup == ""
    with pytest.raises(ValueError):
        signer.confirm(5, NOW, signup="not.a.nonce")
