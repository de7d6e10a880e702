"""Every ``gpucnn`` command (``gpucnn.cli:main`` is the console script; ``python -m gpucnn.cli``
runs it too, which is how ``--nproc`` starts its ranks)."""
from .main import USER_ERRORS, build_parser, main

__all__ = ["USER_ERRORS", "build_parser", "main"]
