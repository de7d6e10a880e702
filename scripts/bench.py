#!/usr/bin/env python
"""Thin wrapper: ``python scripts/bench.py ARGS`` is ``gpucnn bench ARGS`` (see --help)."""
import sys

from gpucnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
