"""Reading TOML files on every supported Python: ``tomllib`` from 3.11, the ``tomli`` backport
(a dependency on 3.10 only) before it."""
from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def read_toml(path: str, what: str) -> dict:
    """The document in the TOML file ``path``; ``what`` names it in errors (e.g. ``"--config"``),
    which are one line: ``{what} {path}: ...``."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path}: expected a TOML file, found a folder") from None
    except OSError as e:
        raise OSError(e.errno, f"cannot be read ({e.strerror or e})", f"{what} {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path}: not a TOML file (not UTF-8 text; a binary file?)") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} {path}: not valid TOML: {e}") from None
