import os
import sys

# tests/reference.py (the naive seed-formula implementations) is imported by name
sys.path.insert(0, os.path.dirname(__file__))

from fakecupy.plugin import fake_cupy  # noqa: E402,F401  (the stand-in cupy fixture)
