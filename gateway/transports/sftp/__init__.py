"""SFTP transport: the hosted server (partners' mailboxes), polling partners' servers, pushing to them.

Public surface: :func:`run_sftp_server` / :class:`HostedSftpServer` (``edigate sftp`` and
``edigate serve``), :class:`SftpTransport` (outbound sends, registered as ``"sftp"``),
:func:`poll_partner` and the beat/worker task functions in :mod:`.tasks`.
"""

from __future__ import annotations
