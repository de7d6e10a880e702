"""The ``gpucnn`` command: every subcommand's parser and its ``func``.

Each module listed in ``COMMAND_MODULES`` (all in this package) has ``add_commands(subparsers)``,
which adds its parsers and sets ``func`` on each; ``func(args)`` returns the process exit code.
Bad input raised as one of ``USER_ERRORS`` reaches the user as one line, not a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import env

# Errors that mean bad input (a flag, a file, a missing extra) or a refusal of the machine (a
# full disk, a permission, a layer too large for memory: numpy's MemoryError names the size):
# one line, exit status 1.
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, MemoryError)
COMMAND_MODULES = (
    "gpucnn.cli.info",
    "gpucnn.cli.data",
    "gpucnn.cli.receptive",
    "gpucnn.cli.train",
    "gpucnn.cli.evaluate",
    "gpucnn.cli.plot",
    "gpucnn.cli.export",
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


def _innermost(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The (sub)command's own parser that ``args`` came through, e.g. ``experiment sweep``'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _innermost(action.choices[name], args)
    return parser


def main(argv=None) -> int:
    command = ""
    try:  # everything, imports included: Ctrl-C at start-up is no traceback either
        parser = build_parser()
        from ..device import DEVICES

        env.check_all(DEVICES)
        args, unknown = parser.parse_known_args(argv)
        command = f" {args.command}" if getattr(args, "command", None) else ""
        if unknown:  # the subcommand's usage, not the top level's: it lists the flags that exist
            _innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (gpucnn train | head -1): stop quietly.  Python's documented
        # recipe: point stdout at devnull so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the signal
    except KeyboardInterrupt:
        print(f"gpucnn{command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        print(f"gpucnn{command}: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    """An OSError with a file name reads 'path: reason' (its str() is '[Errno 28] No space left
    on device: 'path''); anything else is its message, its lines joined."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return "; ".join(lines) or type(e).__name__
