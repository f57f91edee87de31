"""Settings: defaults, precedence, config files, masking and the generated secret key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gateway.settings import Settings, SettingsError, mask_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EDIGATE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings()
    assert settings.data_dir == Path("edigate-data")
    assert settings.is_embedded
    assert settings.effective_database_url().startswith("sqlite+pysqlite:///")
    assert settings.effective_database_url().endswith("edigate-data/edigate.sqlite3")
    assert settings.effective_broker_url().startswith("sqla+sqlite:///")
    assert (settings.host, settings.port, settings.sftp_port) == ("127.0.0.1", 8080, 2222)
    assert settings.max_body_bytes == 100 * 1024 * 1024
    assert settings.duplicate_window_days == 365
    assert settings.webhook_retry_hours == 24
    assert settings.result_backend is None


def test_defaults_follow_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url() == f"sqlite+pysqlite:///{tmp_path}/edigate.sqlite3"
    assert settings.effective_broker_url() == f"sqla+sqlite:///{tmp_path}/broker.sqlite3"
    assert settings.archive_dir() == tmp_path / "archive"


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDIGATE_PORT", "9090")
    monkeypatch.setenv("EDIGATE_DATABASE_URL", "postgresql+psycopg://u:pw@db/edigate")
    settings = Settings()
    assert settings.port == 9090
    assert not settings.is_embedded
    assert settings.effective_database_url() == "postgresql+psycopg://u:pw@db/edigate"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("edigate.toml", 'port = 7000\nhost = "0.0.0.0"\n'),
        ("edigate.yaml", "port: 7000\nhost: 0.0.0.0\n"),
        ("edigate.json", '{"port": 7000, "host": "0.0.0.0"}'),
    ],
)
def test_config_file_named_by_edigate_config_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv("EDIGATE_CONFIG", str(path))
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 7000)


def test_environment_wins_over_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edigate.toml"
    path.write_text("port = 7000\nsftp_port = 2022\n")
    monkeypatch.setenv("EDIGATE_CONFIG", str(path))
    monkeypatch.setenv("EDIGATE_PORT", "9090")
    settings = Settings()
    assert (settings.port, settings.sftp_port) == (9090, 2022)


def test_unknown_key_in_config_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edigate.toml"
    path.write_text("prot = 7000\n")
    monkeypatch.setenv("EDIGATE_CONFIG", str(path))
    with pytest.raises(ValidationError):
        Settings()


def test_missing_config_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDIGATE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsError):
        Settings()


def test_masked_settings_never_show_secrets() -> None:
    settings = Settings(
        secret_key=SecretStr("super-secret-key-material"),
        previous_secret_keys=[SecretStr("older-secret-key-material")],
        database_url="postgresql+psycopg://edigate:db-password@db:5432/edigate",
        broker_url="redis://:redis-password@redis:6379/0",
    )
    text = json.dumps(settings.masked())
    for secret in ("super-secret-key-material", "older-secret-key", "db-password", "redis-pass"):
        assert secret not in text
    assert settings.masked()["database_url"] == "postgresql+psycopg://edigate:********@db:5432/edigate"
    assert "super-secret" not in repr(settings)


def test_mask_url_leaves_urls_without_password_alone() -> None:
    assert mask_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_secret_key_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.resolve_secret_key().get_secret_value()
    second = Settings(data_dir=tmp_path).resolve_secret_key().get_secret_value()
    assert first == second
    assert len(first) >= 40
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first not in json.dumps(settings.masked())


def test_configured_secret_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SecretStr("configured-key-material"))
    assert settings.resolve_secret_key().get_secret_value() == "configured-key-material"
    assert not (tmp_path / "secret.key").exists()


def test_external_database_requires_an_explicit_secret_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/edigate")
    with pytest.raises(SettingsError, match="EDIGATE_SECRET_KEY"):
        settings.resolve_secret_key()
