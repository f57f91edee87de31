"""The ``edigate`` command line; each command lives in its own module, imported on use."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> module defining ``register(subparsers)``; imported lazily so that
# ``edigate translate`` does not pay for the server's imports.
COMMAND_MODULES: dict[str, str] = {
    "serve": "gateway.cli.server_commands",
    "api": "gateway.cli.server_commands",
    "worker": "gateway.cli.server_commands",
    "beat": "gateway.cli.server_commands",
    "translate": "gateway.cli.x12_commands",
    "generate": "gateway.cli.x12_commands",
    "validate": "gateway.cli.x12_commands",
    "migrate": "gateway.cli.store_commands",
    "archive": "gateway.cli.store_commands",
    "config": "gateway.cli.store_commands",
    "keys": "gateway.cli.store_commands",
    "partners": "gateway.cli.partner_commands",
    "sftp": "gateway.cli.sftp_commands",
}


class UsageError(Exception):
    """A command was called wrongly; exits with status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    parser = argparse.ArgumentParser(prog="edigate", description="EDI/B2B trading-partner gateway")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edigate`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"edigate {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
