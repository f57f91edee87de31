"""paramiko's constants with types (paramiko ships no type hints)."""

from __future__ import annotations

import paramiko
from paramiko import sftp as _sftp

SFTP_OK: int = _sftp.SFTP_OK
SFTP_FAILURE: int = _sftp.SFTP_FAILURE
SFTP_NO_SUCH_FILE: int = _sftp.SFTP_NO_SUCH_FILE
SFTP_PERMISSION_DENIED: int = _sftp.SFTP_PERMISSION_DENIED
SFTP_OP_UNSUPPORTED: int = _sftp.SFTP_OP_UNSUPPORTED
CMD_CLOSE: int = _sftp.CMD_CLOSE
CMD_NAME: int = _sftp.CMD_NAME
CMD_REALPATH: int = _sftp.CMD_REALPATH
AUTH_SUCCESSFUL: int = paramiko.AUTH_SUCCESSFUL
AUTH_FAILED: int = paramiko.AUTH_FAILED
OPEN_SUCCEEDED: int = paramiko.OPEN_SUCCEEDED
OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED: int = paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
