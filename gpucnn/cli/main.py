"""The ``gpucnn`` command: every subcommand's parser and its ``func``.

Each module listed in ``COMMAND_MODULES`` (all in this package) has ``add_commands(subparsers)``,
which adds its parsers and sets ``func`` on each; ``func(args)`` returns the process exit code.
Bad input raised as one of ``USER_ERRORS`` reaches the user as one line, not a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Errors that mean bad input (a flag, a file, a missing extra): one line, exit status 1.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError)
COMMAND_MODULES = (
    "gpucnn.cli.info",
    "gpucnn.cli.data",
    "gpucnn.cli.receptive",
    "gpucnn.cli.train",
    "gpucnn.cli.bench",
    "gpucnn.cli.experiments",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="gpucnn",
        description="A small CNN framework on NumPy or CUDA: train, check, reproduce, benchmark.")
    parser.add_argument("--version", action="version", version=f"gpucnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        print(f"gpucnn {args.command}: error: {e}", file=sys.stderr)
        return 1

