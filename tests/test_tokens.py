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
    path.write_text("x" * 40)
    os.chmod(path, 0o644)
    assert resolve_secret("", path, "sqlite://", None) == "x" * 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
