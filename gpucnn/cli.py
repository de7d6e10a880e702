"""The ``gpucnn`` command.

Each subcommand lives beside the code it drives: a module listed in ``COMMAND_MODULES`` has
``add_commands(subparsers)``, which adds its parsers and sets ``func`` on each; ``func(args)``
returns the process exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .train_cli import USER_ERRORS

COMMAND_MODULES = (
    "gpucnn.info",
    "gpucnn.data.cli",
    "gpucnn.receptive",
    "gpucnn.train_cli",
    "gpucnn.bench",
    "gpucnn.experiments.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

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
        # Bad input reaches the user as one clear line, not a traceback.
        print(f"gpucnn {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
