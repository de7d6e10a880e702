#!/usr/bin/env python
"""Seed 000's regularization/dropout experiment: the same as ``gpucnn reproduce`` (same flags)."""
import sys

from gpucnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
