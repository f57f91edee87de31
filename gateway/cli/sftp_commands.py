"""``edigate sftp``: the hosted SFTP server on its own (what ``edigate serve`` also runs)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``sftp``."""
    parser = subparsers.add_parser("sftp", help="the hosted SFTP server (partners' mailboxes)")
    parser.add_argument("--data-dir", type=Path, help="data directory (EDIGATE_DATA_DIR)")
    parser.add_argument("--host", help="listen address (EDIGATE_HOST, default 127.0.0.1)")
    parser.add_argument("--sftp-port", type=int, help="port (EDIGATE_SFTP_PORT, default 2222)")
    parser.set_defaults(handler=run_sftp)


def run_sftp(args: argparse.Namespace) -> int:
    """Serve SFTP until SIGINT/SIGTERM; prints the port and host key fingerprints first."""
    for option, variable in (("data_dir", "EDIGATE_DATA_DIR"), ("host", "EDIGATE_HOST"),
                             ("sftp_port", "EDIGATE_SFTP_PORT")):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[variable] = str(Path(value).resolve()) if option == "data_dir" else str(value)
    from gateway.settings import Settings
    from gateway.store.migrate import open_database
    from gateway.transports.sftp.server import describe, run_sftp_server

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_database(settings).dispose()  # migrates the embedded database; checks an external one
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    run_sftp_server(settings, stop, on_ready=lambda server: print("\n".join(describe(server)), flush=True))
    return 0


def main() -> int:
    """Run ``edigate sftp`` directly (``python -m gateway.cli.sftp_commands``): a child of ``serve``."""
    parser = argparse.ArgumentParser(prog="edigate sftp")
    subparsers = parser.add_subparsers(dest="command")
    register(subparsers)
    import sys

    args = parser.parse_args(["sftp", *sys.argv[1:]])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
