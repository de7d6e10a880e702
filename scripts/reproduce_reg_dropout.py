#!/usr/bin/env python
"""The source document's regularization/dropout experiment (seeds/000): the same as ``gpucnn reproduce`` (same flags)."""
import sys

from gpucnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
