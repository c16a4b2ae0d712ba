"""Settings are parsed strictly: a switch never fails open, a bad value stops the start with a
message naming its variable, and secrets can come from ``<NAME>_FILE``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CREDENCIA_* setting from the outside, except the run's master key."""
    import os

    for name in list(os.environ):
        if name.startswith("CREDENCIA_") and not name.startswith("CREDENCIA_SECRET_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_mod, "_settings", None)


# ------------------------------------------------------------------ booleans


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "1", "yes", "Yes", "on", "ON", " on "])
def test_true_spellings_turn_the_switches_on(monkeypatch, text) -> None:
    monkeypatch.setenv("CREDENCIA_CERTIFICATE_REQUIRE_ICP_BRASIL", text)
    monkeypatch.setenv("CREDENCIA_SMTP_STARTTLS", text)
    s = Settings()
    assert s.certificate_require_icp_brasil is True
    assert s.smtp_starttls is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "NO", "off", "Off"])
def test_false_spellings_turn_the_switches_off(monkeypatch, text) -> None:
    monkeypatch.setenv("CREDENCIA_CERTIFICATE_REQUIRE_ICP_BRASIL", text)
    monkeypatch.setenv("CREDENCIA_SMTP_STARTTLS", text)
    s = Settings()
    assert s.certificate_require_icp_brasil is False
    assert s.smtp_starttls is False


def test_unset_or_empty_switches_keep_their_safe_defaults(monkeypatch) -> None:
    s = Settings()
    assert s.certificate_require_icp_brasil is True and s.smtp_starttls is False
    monkeypatch.setenv("CREDENCIA_CERTIFICATE_REQUIRE_ICP_BRASIL", "")
    assert Settings().certificate_require_icp_brasil is True


@pytest.mark.parametrize(
    "name", ["CREDENCIA_CERTIFICATE_REQUIRE_ICP_BRASIL", "CREDENCIA_SMTP_STARTTLS"]
)
@pytest.mark.parametrize("text", ["sim", "verdadeiro", "2", "enabled", "t"])
def test_anything_else_stops_the_start_naming_the_variable(monkeypatch, name, text) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(SettingsError, match=name) as raised:
        Settings()
    assert repr(text) in str(raised.value)


# ------------------------------------------------------------------ integers and lists


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("CREDENCIA_SMTP_PORT", "25x"),
        ("CREDENCIA_SMTP_PORT", "2.5"),
        ("CREDENCIA_MAX_UPLOAD_BYTES", "10MB"),
        ("CREDENCIA_TRUSTED_PROXIES", "um"),
        ("CREDENCIA_OUTBOX_BATCH", "0x10"),
    ],
)
def test_a_bad_integer_names_its_variable(monkeypatch, name, text) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(SettingsError, match=f"{name}='{text}' não é um número inteiro"):
        Settings()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("CREDENCIA_SMTP_PORT", "0"),
        ("CREDENCIA_SMTP_PORT", "70000"),
        ("CREDENCIA_TRUSTED_PROXIES", "-1"),
    ],
)
def test_an_integer_out_of_range_names_its_variable(monkeypatch, name, text) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(SettingsError, match=f"{name}={text} fora do intervalo"):
        Settings()


def test_integers_and_lists_are_read(monkeypatch) -> None:
    monkeypatch.setenv("CREDENCIA_SMTP_PORT", " 587 ")
    monkeypatch.setenv("CREDENCIA_CERTIFICATE_REMINDER_DAYS", "30, 7,1")
    s = Settings()
    assert s.smtp_port == 587 and s.certificate_reminder_days == (30, 7, 1)
    monkeypatch.setenv("CREDENCIA_CERTIFICATE_REMINDER_DAYS", "30,sete")
    with pytest.raises(SettingsError, match="CREDENCIA_CERTIFICATE_REMINDER_DAYS"):
        Settings()


def test_an_unknown_time_zone_names_its_variable(monkeypatch) -> None:
    monkeypatch.setenv("CREDENCIA_TIMEZONE", "America/Brasilia")
    with pytest.raises(SettingsError, match="CREDENCIA_TIMEZONE"):
        Settings()


# ------------------------------------------------------------------ environment


@pytest.mark.parametrize("text", ["production", "Production", "PRODUCTION", " production\n"])
def test_production_is_production_in_any_case(monkeypatch, text) -> None:
    monkeypatch.setenv("CREDENCIA_ENV", text)
    s = Settings()
    assert s.environment == "production" and s.production


@pytest.mark.parametrize("text", ["prod", "producao", "live", "dev"])
def test_an_unknown_environment_stops_the_start(monkeypatch, text) -> None:
    monkeypatch.setenv("CREDENCIA_ENV", text)
    with pytest.raises(SettingsError, match="CREDENCIA_ENV") as raised:
        Settings()
    assert "production" in str(raised.value)  # the message lists the accepted values


def test_the_default_environment_is_development() -> None:
    s = Settings()
    assert s.environment == "development" and not s.production


def test_capitalized_production_refuses_to_start_without_a_master_key(
    monkeypatch, tmp_path
) -> None:
    """`CREDENCIA_ENV=Production` used to be "not production": the app then made itself a
    local key instead of refusing to start."""
    from web import create_app

    monkeypatch.setenv("CREDENCIA_ENV", "Production")
    monkeypatch.delenv("CREDENCIA_SECRET_KEY", raising=False)
    monkeypatch.delenv("CREDENCIA_SECRET_KEY_FILE", raising=False)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'never.db'}")
    with pytest.raises(secret_store.SecretKeyError):
        create_app(settings)
    assert not (tmp_path / "never.db").exists()


# ------------------------------------------------------------------ secrets from files


def test_secrets_are_read_from_their_file_without_the_trailing_newline(
    monkeypatch, tmp_path
) -> None:
    password = tmp_path / "smtp_password"
    password.write_text("  pa ss\twith spaces  \n", encoding="utf-8")
    url = tmp_path / "database_url"
    url.write_text("postgresql://credencia:s3cr%40t@db/credencia\r\n", encoding="utf-8")
    user = tmp_path / "smtp_user"
    user.write_text("apikey", encoding="utf-8")  # no newline at all
    monkeypatch.setenv("CREDENCIA_SMTP_PASSWORD_FILE", str(password))
    monkeypatch.setenv("CREDENCIA_DATABASE_URL_FILE", str(url))
    monkeypatch.setenv("CREDENCIA_SMTP_USER_FILE", str(user))
    s = Settings()
    assert s.smtp_password == "  pa ss\twith spaces  "
    assert s.database_url == "postgresql://credencia:s3cr%40t@db/credencia"
    assert s.smtp_user == "apikey"


def test_a_secret_set_twice_stops_the_start(monkeypatch, tmp_path) -> None:
    path = tmp_path / "p"
    path.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("CREDENCIA_SMTP_PASSWORD", "from-env")
    monkeypatch.setenv("CREDENCIA_SMTP_PASSWORD_FILE", str(path))
    with pytest.raises(
        SettingsError, match="CREDENCIA_SMTP_PASSWORD ou CREDENCIA_SMTP_PASSWORD_FILE"
    ):
        Settings()


def test_an_unreadable_secret_file_names_its_variable(monkeypatch, tmp_path) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("CREDENCIA_SMTP_PASSWORD_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"CREDENCIA_SMTP_PASSWORD_FILE={missing}"):
        Settings()


def test_only_secret_settings_come_from_files(monkeypatch, tmp_path) -> None:
    path = tmp_path / "u"
    path.write_text("https://elsewhere.example\n", encoding="utf-8")
    monkeypatch.setenv("CREDENCIA_BASE_URL_FILE", str(path))
    assert Settings().base_url == "http://127.0.0.1:5000"


def test_old_master_keys_are_read_from_their_file(tmp_path: Path) -> None:
    current, old = secret_store.generate_key(), secret_store.generate_key()
    path = tmp_path / "old_keys"
    path.write_text(old + "\n", encoding="ascii")
    ring = secret_store.load_keyring(
        {"CREDENCIA_SECRET_KEY": current, "CREDENCIA_SECRET_OLD_KEYS_FILE": str(path)}
    )
    assert ring is not None
    assert secret_store.Key.from_text(old).id in ring.keys


# ------------------------------------------------------------------ the CLI stops


def test_the_cli_stops_on_a_bad_setting_with_the_message(monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("CREDENCIA_SMTP_STARTTLS", "talvez")
    result = CliRunner().invoke(main, ["processes", "list"])
    assert result.exit_code == 1
    assert "erro: CREDENCIA_SMTP_STARTTLS='talvez'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
