"""Where the downloadable datasets come from, where their files are kept, and their checksums.

A :class:`Source` names a dataset's files with their official MD5s and the base URL they are
downloaded from.  Loading and downloading both take a ``source=`` argument, so a test can point
them at a loopback server and at checksums of files it generated.

Files live in ``<data root>/<dataset name>/`` where the data root is ``data_dir`` if given,
else ``$GPUCNN_DATA``, else ``~/.cache/gpucnn`` (``$XDG_CACHE_HOME/gpucnn`` where that is set).
Files placed directly in the data root are found too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

from .. import env


@dataclass(frozen=True)
class RemoteFile:
    """One distribution file: its name and the MD5 (hex) of its bytes."""

    name: str
    md5: str


@dataclass(frozen=True)
class Source:
    """A downloadable dataset: ``base_url + file.name`` is where each file is fetched from."""

    name: str
    base_url: str
    files: tuple[RemoteFile, ...]

    def md5_of(self, filename: str) -> str | None:
        """The expected MD5 of ``filename``, or None when this source has no checksum for it."""
        for f in self.files:
            if f.name == filename:
                return f.md5
        return None

    def replace(self, *, base_url: str | None = None,
                checksums: dict[str, str] | None = None) -> "Source":
        """A copy with another base URL and/or the checksums of ``checksums`` (name -> md5)."""
        files = self.files
        if checksums is not None:
            files = tuple(RemoteFile(name, md5) for name, md5 in checksums.items())
        return dataclasses.replace(self, base_url=self.base_url if base_url is None else base_url,
                                   files=files)


# The official files' MD5s, as published with each dataset (torchvision checks the same ones).
SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
         RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
         RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))),
    "fashion-mnist": Source(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
         RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
         RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"))),
    "cifar10": Source(
        "cifar10", "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
         # the members of the archive, for a folder that was extracted by hand
         RemoteFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
         RemoteFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
         RemoteFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
         RemoteFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
         RemoteFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
         RemoteFile("test_batch", "40351d587109b95175f43aff81a1287e"),
         RemoteFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"))),
}

# What `gpucnn data download NAME` fetches (CIFAR-10's members are read from the archive).
DOWNLOAD_FILES = {
    "mnist": tuple(f.name for f in SOURCES["mnist"].files),
    "fashion-mnist": tuple(f.name for f in SOURCES["fashion-mnist"].files),
    "cifar10": ("cifar-10-python.tar.gz",),
}


def get_source(name: str, source: Source | None = None) -> Source:
    """``source`` if given, else the registered source of ``name``."""
    if source is not None:
        return source
    if name not in SOURCES:
        raise ValueError(f"name={name!r}: no downloadable dataset of that name; "
                         f"expected one of {', '.join(SOURCES)}")
    return SOURCES[name]


def data_root(data_dir: str | os.PathLike | None = None) -> str:
    """The folder datasets are kept in: ``data_dir``, else $GPUCNN_DATA, else the user cache."""
    if data_dir is not None:
        path = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"data_dir={os.fspath(data_dir)!r}: expected a folder, found a file")
        return path
    from_env = env.folder("GPUCNN_DATA")
    if from_env:
        return from_env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gpucnn")


def search_dirs(name: str, data_dir=None) -> list[str]:
    """The folders a dataset's files are looked for in, in order: ``<root>/<name>``, ``<root>``."""
    root = data_root(data_dir)
    return [os.path.join(root, name), root]


def file_md5(path: str) -> str:
    """Hex MD5 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str, expected: str | None) -> None:
    """Raise ValueError naming ``path`` when its MD5 is not ``expected`` (None: nothing to check)."""
    if expected is None:
        return
    actual = file_md5(path)
    if actual != expected:
        raise ValueError(f"{path}: checksum mismatch: MD5 is {actual}, expected {expected} "
                         f"(a damaged or different file; delete it and download it again)")


def missing_files_error(name: str, expected: list[str], looked_in: list[str]) -> FileNotFoundError:
    """The error for a dataset whose files are not there: what, where, and how to get them."""
    return FileNotFoundError(
        f"dataset {name!r}: files not found: expected {', '.join(expected)} in one of "
        f"{', '.join(looked_in)}; download them with `gpucnn data download {name}` "
        f"(add --data-dir DIR to choose the folder, or set GPUCNN_DATA)")
