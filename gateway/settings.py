"""Effective settings: ``EDIGATE_*`` environment variables over an optional config file.

Precedence, highest first: keyword arguments, environment variables, the file named by
``EDIGATE_CONFIG`` (TOML, YAML or JSON by extension), then the defaults below. Defaults that
depend on ``data_dir`` (database, broker, secret key) are resolved by methods, so building a
``Settings`` never touches the disk.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

CONFIG_ENV_VAR = "EDIGATE_CONFIG"
SECRET_KEY_FILE = "secret.key"
MASK = "********"


class SettingsError(Exception):
    """The settings are inconsistent or a config file cannot be used."""


class Settings(BaseSettings):
    """Everything the gateway's processes need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="EDIGATE_", extra="forbid", frozen=True)

    data_dir: Path = Path("edigate-data")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under data_dir (embedded mode)"
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (sets search_path); default: the server's"
    )
    broker_url: str | None = Field(
        None, description="Celery broker; default: SQLAlchemy transport on SQLite under data_dir"
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; none by default: the database is the truth"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    sftp_port: int = Field(2222, ge=1, le=65535)
    secret_key: SecretStr | None = Field(
        None, description="Encryption-at-rest key material; generated in data_dir when unset"
    )
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list, description="Older keys still accepted for decryption (rotation)"
    )
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1)
    max_outbound_batch: int = Field(
        500, ge=1, le=10_000, description="Most documents one POST /outbound/{partner}/{type}/batch may carry"
    )
    api_rate_per_second: float = Field(
        200.0, ge=0, description="Requests per second one API key may make (0: no limit); per API "
        "process when the limits are not shared (rate_limit_url)"
    )
    api_rate_burst: int = Field(2000, ge=1, description="Requests one API key may make at once")
    api_failed_logins_per_minute: int = Field(
        30, ge=1, description="Failed API logins per client address per minute before 429s"
    )
    rate_limit_url: str | None = Field(
        None, description="Redis shared by the API processes for their rate limits; default: the "
        "broker when it is Redis, else each process limits on its own"
    )
    duplicate_window_days: int = Field(365, ge=0)
    webhook_retry_hours: int = Field(24, ge=0)
    webhook_secret_overlap_hours: float = Field(
        24.0, ge=0, description="How long a rotated webhook secret keeps signing beside the new one"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the ``EDIGATE_CONFIG`` file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV_VAR)
        if config_file:
            sources.append(_config_file_source(settings_cls, Path(config_file)))
        return tuple(sources)

    @property
    def is_embedded(self) -> bool:
        """True when the database is the default SQLite file (migrated on start)."""
        return self.database_url is None

    def effective_database_url(self) -> str:
        """The database URL, defaulting to ``<data_dir>/edigate.sqlite3``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+pysqlite:///{self.data_dir.resolve() / 'edigate.sqlite3'}"

    def effective_broker_url(self) -> str:
        """The Celery broker URL, defaulting to kombu's SQLAlchemy transport on SQLite."""
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{self.data_dir.resolve() / 'broker.sqlite3'}"

    def effective_rate_limit_url(self) -> str | None:
        """The Redis that rate limits are shared through (None: each API process alone)."""
        if self.rate_limit_url:
            return self.rate_limit_url
        broker = self.effective_broker_url()
        return broker if broker.startswith(("redis://", "rediss://")) else None

    def archive_dir(self) -> Path:
        """Where content-addressed blobs live."""
        return self.data_dir / "archive"

    def resolve_secret_key(self) -> SecretStr:
        """The configured secret key, else the one persisted in data_dir (created once, 0600)."""
        if self.secret_key is not None:
            return self.secret_key
        if not self.is_embedded:
            raise SettingsError(
                "EDIGATE_SECRET_KEY is required with an external database: every process "
                "must share the key that encrypts secrets at rest"
            )
        return SecretStr(_read_or_create_key_file(self.data_dir / SECRET_KEY_FILE))

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets and URL passwords masked."""
        return {
            "data_dir": str(self.data_dir.resolve()),
            "database_url": mask_url(self.effective_database_url()),
            "database_schema": self.database_schema,
            "broker_url": mask_url(self.effective_broker_url()),
            "result_backend": mask_url(self.result_backend) if self.result_backend else None,
            "host": self.host,
            "port": self.port,
            "sftp_port": self.sftp_port,
            "secret_key": self._describe_secret_key(),
            "previous_secret_keys": [MASK for _ in self.previous_secret_keys],
            "max_body_bytes": self.max_body_bytes,
            "api_rate_per_second": self.api_rate_per_second,
            "api_rate_burst": self.api_rate_burst,
            "api_failed_logins_per_minute": self.api_failed_logins_per_minute,
            "rate_limit_url": mask_url(url) if (url := self.effective_rate_limit_url()) else None,
            "duplicate_window_days": self.duplicate_window_days,
            "webhook_retry_hours": self.webhook_retry_hours,
            "webhook_secret_overlap_hours": self.webhook_secret_overlap_hours,
            "config_file": os.environ.get(CONFIG_ENV_VAR),
        }

    def _describe_secret_key(self) -> str:
        if self.secret_key is not None:
            return MASK
        if (self.data_dir / SECRET_KEY_FILE).exists():
            return f"{MASK} (from {self.data_dir.resolve() / SECRET_KEY_FILE})"
        return "(not set; generated in data_dir on first use)"


def mask_url(url: str) -> str:
    """The URL with any password replaced by the mask."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:{MASK}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _config_file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise SettingsError(f"{CONFIG_ENV_VAR} names {path}, which is not a readable file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if suffix in (".yaml", ".yml"):
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    if suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    raise SettingsError(f"config file {path} must end in .toml, .yaml, .yml or .json")


def _read_or_create_key_file(path: Path) -> str:
    """Read the key file, or publish a new one atomically (mode 0600, first writer wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # atomic; fails if another process published first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise SettingsError(f"{path} is empty; delete it or set EDIGATE_SECRET_KEY")
    return key
