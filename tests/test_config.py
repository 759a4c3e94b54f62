"""Settings: defaults < newsletter.toml < environment < flags, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import find_root, load_settings, with_overrides
from pipeline.errors import ConfigError

MINIMAL = """
[newsletter]
name = "Test Letter"
site_url = "https://letter.example.org/"
postal_address = "1 Main St, Springfield"
[sender]
from = "Test Letter <news@letter.example.org>"
reply_to = "editor@letter.example.org"
"""


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "newsletter.toml").write_text(text)
    return root


def test_defaults_fill_what_the_file_leaves_out(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    assert settings.name == "Test Letter"
    assert settings.site_url == "https://letter.example.org"  # trailing slash dropped
    assert settings.sender.name == "Test Letter"
    assert settings.sender.email == "news@letter.example.org"
    assert settings.transport == "outbox"
    assert settings.outbox_dir == tmp_path / "outbox"
    assert settings.issues_dir == tmp_path / "issues"


def test_environment_overrides_file_and_flags_override_both(tmp_path):
    root = write(tmp_path, MINIMAL + '[delivery]\ntransport = "smtp"\nrate = 5\n')
    env = {"NEWSLETTER_TRANSPORT": "ses", "NEWSLETTER_RATE": "12.5"}
    from_env = load_settings(root, environ=env)
    assert (from_env.transport, from_env.rate) == ("ses", 12.5)
    from_flags = load_settings(root, {"transport": "outbox", "rate": None}, environ=env)
    assert (from_flags.transport, from_flags.rate) == ("outbox", 12.5)


def test_secrets_come_only_from_the_environment(tmp_path):
    root = write(tmp_path, MINIMAL + '[delivery]\nsmtp_password = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"unknown key delivery.smtp_password \(secrets"):
        load_settings(root, environ={})
    root = write(tmp_path, MINIMAL)
    settings = load_settings(root, environ={"NEWSLETTER_SMTP_PASSWORD": "hunter2"})
    assert settings.smtp_password == "hunter2"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "Test Letter"\n', ""), "newsletter.name: missing"),
        (
            lambda t: t.replace("https://letter.example.org/", "letter.example.org"),
            "newsletter.site_url: 'letter.example.org' is not an absolute http(s) URL",
        ),
        (
            lambda t: t.replace('"editor@letter.example.org"', '"not an address"'),
            "sender.reply_to: 'not an address' is not an email address",
        ),
        (lambda t: t + '[delivery]\ntransport = "pigeon"\n', "delivery.transport: 'pigeon'"),
        (lambda t: t + "[delivery]\nrate = -1\n", "delivery.rate: must be at least 0"),
        (lambda t: t + "[delivery]\nworkers = true\n", "delivery.workers: expected a number"),
        (lambda t: t + "[newsletter2]\nx = 1\n", "unknown table or key 'newsletter2'"),
        (lambda t: t + "[paths]\nissuez = 'x'\n", "unknown key paths.issuez"),
        (lambda t: t + "name = [", "newsletter.toml: "),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_key(tmp_path, edit, message):
    root = write(tmp_path, edit(MINIMAL))
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_environment_value_names_the_key(tmp_path):
    root = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"delivery\.smtp_port: expected a number"):
        load_settings(root, environ={"NEWSLETTER_SMTP_PORT": "twenty-five"})


def test_flags_are_validated_like_the_file(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    with pytest.raises(ConfigError, match=r"delivery\.rate"):
        with_overrides(settings, rate="fast")
    assert with_overrides(settings, rate="3").rate == 3.0


def test_the_root_is_found_by_searching_upwards(tmp_path):
    root = write(tmp_path / "letter", MINIMAL)
    deep = root / "issues" / "drafts"
    deep.mkdir(parents=True)
    assert find_root(deep) == root.resolve()
    with pytest.raises(ConfigError, match=r"no newsletter\.toml"):
        find_root(tmp_path)


def test_newsletter_root_environment_variable(tmp_path, monkeypatch):
    root = write(tmp_path / "letter", MINIMAL)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={"NEWSLETTER_ROOT": str(root)})
    assert settings.root == root.resolve()


def test_a_file_not_in_utf8_is_one_line_naming_the_file_and_line(tmp_path):
    root = tmp_path / "letter"
    root.mkdir()
    (root / "newsletter.toml").write_bytes(MINIMAL.replace("1 Main St", "1 Caf\u00e9 St").encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load_settings(root, environ={})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{root / 'newsletter.toml'}:5: not UTF-8 text (byte 0xe9)")


def test_every_command_reports_a_non_utf8_file_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    root = tmp_path / "letter"
    root.mkdir()
    (root / "newsletter.toml").write_bytes(b'[newsletter]\nname = "Caf\xe9"\n')
    monkeypatch.chdir(root)
    for command in (["check"], ["site"], ["status"], ["subscribers", "list"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), command
        assert result.output.strip().splitlines() == [
            f"error: {root / 'newsletter.toml'}:2: not UTF-8 text (byte 0xe9): save the file as UTF-8"
        ], command


def test_a_byte_order_mark_is_still_utf8(tmp_path):
    root = tmp_path / "letter"
    root.mkdir()
    (root / "newsletter.toml").write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_settings(root, environ={}).name == "Test Letter"


def test_trusted_proxies_and_the_domain_limit(tmp_path):
    root = write(tmp_path, MINIMAL)
    defaults = load_settings(root, environ={})
    assert defaults.trusted_proxies == ("127.0.0.0/8", "::1/128")
    assert defaults.confirmations_per_domain == 10
    from_file = load_settings(
        write(tmp_path, MINIMAL + '[web]\ntrusted_proxies = ["10.0.0.7", "fd00::/8"]\n'),
        environ={},
    )
    assert from_file.trusted_proxies == ("10.0.0.7/32", "fd00::/8")
    from_env = load_settings(
        root, environ={"NEWSLETTER_TRUSTED_PROXIES": "192.0.2.1, 10.1.0.0/16",
                       "NEWSLETTER_CONFIRMATIONS_PER_DOMAIN": "25"},
    )
    assert from_env.trusted_proxies == ("192.0.2.1/32", "10.1.0.0/16")
    assert from_env.confirmations_per_domain == 25
    assert load_settings(root, environ={"NEWSLETTER_TRUSTED_PROXIES": ""}).trusted_proxies == ()
    with pytest.raises(ConfigError, match=r"^web.trusted_proxies: 'proxy.lan' is not an IP"):
        load_settings(root, environ={"NEWSLETTER_TRUSTED_PROXIES": "127.0.0.1,proxy.lan"})
