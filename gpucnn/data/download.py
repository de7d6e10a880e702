"""Download a dataset's distribution files with the standard library, checksum-verified.

Each file is streamed into a temporary file beside its destination, its MD5 and length checked,
and only then renamed into place, so an interrupted, truncated or corrupted download never
leaves a file under the final name; one a killed download left behind is removed at the next.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request

from ..files import atomic_write, remove_stale_temps
from .sources import DOWNLOAD_FILES, Source, file_md5, get_source, search_dirs

CHUNK = 1 << 20
PART = ".part"  # suffix of a download in progress


def download(name: str, data_dir=None, *, source: Source | None = None,
             files: tuple[str, ...] | None = None, timeout: float = 60.0,
             log=print) -> list[str]:
    """Fetch the files of dataset ``name`` into ``<data root>/<name>/``; return their paths.

    Files already there with the right checksum are kept.  ``source`` replaces the registered
    base URL and checksums (tests point it at a loopback server); ``files`` replaces the list
    of file names to fetch.  Raises ValueError on a checksum or length mismatch, RuntimeError
    when the server cannot be reached.
    """
    src = get_source(name, source)
    if files is None:
        files = DOWNLOAD_FILES.get(name, tuple(f.name for f in src.files))
    folder = search_dirs(name, data_dir)[0]
    os.makedirs(folder, exist_ok=True)
    paths = []
    for filename in files:
        expected = src.md5_of(filename)
        if expected is None:
            raise ValueError(f"{filename}: no checksum known for this file of {name!r}; "
                             f"expected one of {', '.join(f.name for f in src.files)}")
        path = os.path.join(folder, filename)
        if os.path.exists(path) and file_md5(path) == expected:
            log(f"{path}: present, checksum ok")
        else:
            url = src.base_url + filename
            log(f"downloading {url}")
            fetch(url, path, expected, timeout)
            log(f"{path}: checksum ok")
        paths.append(path)
    return paths


def fetch(url: str, path: str, md5: str, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``path`` via a temporary file; it takes the name only if its length and
    MD5 match.  Temporary files a killed download left beside ``path`` are removed first."""
    remove_stale_temps(path, PART)
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with atomic_write(path, PART) as out:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        except http.client.IncompleteRead as e:
            raise ValueError(f"{url}: truncated download: the connection closed after "
                             f"{received + len(e.partial)} bytes, "
                             f"{e.expected} more were announced") from None
        except OSError as e:  # URLError, HTTPError, timeouts, resets
            raise RuntimeError(f"{url}: download failed: {e}") from None
        if length is not None and received != int(length):
            raise ValueError(f"{url}: truncated download: got {received} bytes, the server "
                             f"announced {length}")
        if digest.hexdigest() != md5:
            raise ValueError(f"{url}: checksum mismatch: MD5 of the {received} bytes received is "
                             f"{digest.hexdigest()}, expected {md5}; nothing was saved")
