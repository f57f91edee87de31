"""Limits and timings of the SFTP server and client (``EDIGATE_SFTP_*`` variables).

They live beside :class:`gateway.settings.Settings` (which holds only ``sftp_port``) because
only the SFTP transport reads them and tests shrink them to seconds.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SftpTuning(BaseSettings):
    """Security limits of the hosted server, and timings of polls and pushes."""

    model_config = SettingsConfigDict(env_prefix="EDIGATE_SFTP_", extra="ignore", frozen=True)

    idle_timeout_seconds: float = Field(600.0, gt=0)  # a session with no request for this long is closed
    login_grace_seconds: float = Field(30.0, gt=0)  # time to authenticate after connecting
    max_sessions_per_account: int = Field(4, ge=1)
    max_connections: int = Field(200, ge=1)
    max_failed_logins: int = Field(5, ge=1)  # password failures within the window before a lockout
    failure_window_seconds: float = Field(900.0, gt=0)
    lockout_seconds: float = Field(900.0, gt=0)
    max_failures_per_address: int = Field(20, ge=1)  # any account, same source address
    max_file_bytes: int | None = Field(None, ge=1)  # default: Settings.max_body_bytes
    recovery_interval_seconds: float = Field(30.0, gt=0)  # spool recovery sweep in the server
    stale_upload_seconds: float = Field(24 * 3600.0, gt=0)  # abandoned partial uploads are removed
    connect_timeout_seconds: float = Field(15.0, gt=0)  # client: partners' servers
    push_attempts: int = Field(3, ge=1)  # in-process tries before the outbox retries later
    push_backoff_seconds: float = Field(1.0, ge=0)
    poll_sweep_seconds: float = Field(10.0, gt=0)  # beat: how often due polls are looked for
    poll_lease_seconds: float = Field(900.0, gt=0)  # a poll not finished by then may run again
    poll_min_age_seconds: float = Field(2.0, ge=0)  # remote files younger than this wait a poll
    # Closes published at most this often: the uploads of one interval share a task (a batch).
    publish_interval_seconds: float = Field(0.1, ge=0)
