"""``gpucnn data list`` and ``gpucnn data download NAME``."""
from __future__ import annotations

import os

from ..config import DATA, combine
from ..data import cifar, idx
from ..data.dataset import DATASETS
from ..data.download import download
from ..data.sources import SOURCES, data_root, file_md5

DATA_DIR = combine("data", DATA, only=("data_dir",))


def status_lines(data_dir=None) -> list[str]:
    """One line per dataset: where its files are and whether their checksums match."""
    lines = [f"data folder: {data_root(data_dir)}",
             "digits         embedded (UCI handwritten digits, 1797 images 8x8, CC BY 4.0)",
             "synthetic      generated on demand"]
    for name, source in SOURCES.items():
        try:
            paths = (list(idx.locate(name, data_dir).values()) if name != "cifar10"
                     else [cifar.locate(name, data_dir)])
        except FileNotFoundError:
            lines.append(f"{name:<14} not present (gpucnn data download {name})")
            continue
        files = [p for p in paths if os.path.isfile(p)]
        if any(os.path.isdir(p) for p in paths):
            files += [os.path.join(paths[0], m) for m in cifar.MEMBERS]
        bad = [p for p in files if source.md5_of(os.path.basename(p)) not in
               (None, file_md5(p))]
        state = "CHECKSUM MISMATCH: " + ", ".join(bad) if bad else "checksums ok"
        lines.append(f"{name:<14} {os.path.dirname(files[0])} ({state})")
    return lines


def run_list(args) -> int:
    print("\n".join(status_lines(args.data_dir)))
    return 0


def run_download(args) -> int:
    download(args.name, args.data_dir)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("data", help="datasets: list what is present, download")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    for cmd, helptext, func in (("list", "which datasets are present and intact", run_list),
                                ("download", "download a dataset's files (checksum-verified)",
                                 run_download)):
        q = dsub.add_parser(cmd, help=helptext)
        DATA_DIR.add_flags(q)
        if cmd == "download":
            q.add_argument("name", choices=sorted(SOURCES),
                           help=f"dataset to fetch ({', '.join(d for d in DATASETS if d in SOURCES)})")
        q.set_defaults(func=func)
