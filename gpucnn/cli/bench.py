"""``gpucnn bench``: time ops and training steps side by side with PyTorch (see
:mod:`gpucnn.bench`)."""
from __future__ import annotations

import argparse
import functools
import json
import os

import numpy as np

from .. import bench
from ..bench import report  # the module: header, tables, titles
from ..bench.machine import blas_threads, machine_info, set_blas_threads
from ..bench.nets import DEFAULT_CONFIGS, parse_config
from ..bench.suite_nets import parse_cases
from ..bench.suite_run import bench_case, busy_processes
from ..bench.suites import DEFAULT_PARTS, PARTS, bench_naive, bench_ops, bench_sweep, bench_train
from ..bench.torch_twins import import_torch
from ..config import TRAINING, combine
from ..device import resolve_device
from ..files import atomic_write
from .outputs import check_file


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive integers")
    return vals



def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated subset of {','.join(PARTS)}")
    return parts



def run_bench(args) -> int:
    for flag, path in (("--json", args.json), ("--md", args.md)):
        if path:  # before minutes of timing, not after
            check_file(flag, path, overwrite=args.overwrite)
    cases = parse_cases(args.suite) if "suite" in args.parts else []
    if args.md and not cases:
        raise ValueError(f"--md={args.md}: the markdown is the suite's table; add suite to --parts")
    if cases and args.device == "cuda":
        raise ValueError(f"--parts suite with --device={args.device}: the suite times the CPU "
                         f"path; give --device cpu")
    device = resolve_device(args.device)
    if args.threads is not None:
        set_blas_threads(args.threads)
    threads = args.threads or blas_threads() or os.cpu_count()
    torch_mod = None if args.no_torch else import_torch(device, threads)
    dtype = np.dtype(args.dtype)
    configs = [parse_config(c) for c in args.configs.split(",") if c.strip()]
    memory = not args.no_memory
    pause = (0.15 if torch_mod is not None else 0.0) if args.pause is None else args.pause
    result = {"machine": machine_info(device, torch_mod), "dtype": dtype.name, "reps": args.reps,
              "steps": args.steps, "warmup": args.warmup, "pause_s": pause, "parts": args.parts,
              "busy": args.busy, "train": [], "ops": []}
    # Each result is printed as it comes: a long run shows progress, and an interrupted one
    # keeps what it measured on screen.
    show = functools.partial(print, flush=True)
    with busy_processes(args.busy):  # none by default
        show("\n".join(report.header(result)))
        if "train" in args.parts:
            show("", report.TRAIN_TITLE, report.train_table([])[0], sep="\n")
            for cfg in configs:
                row = bench_train(cfg, dtype, device, torch_mod, args.reps, args.steps, args.warmup,
                                  memory, pause)
                result["train"].append(row)
                show(report.train_table([row])[1])
        if "ops" in args.parts:
            show("", report.OPS_TITLE, report.ops_table([])[0], sep="\n")
            for cfg in configs:
                rows = bench_ops(cfg, dtype, device, torch_mod, args.reps, args.steps, args.warmup,
                                 pause)
                result["ops"] += rows
                show("\n".join(report.ops_table(rows)[1:]))
        if "naive" in args.parts:
            result["naive"] = bench_naive(args.naive_batch, args.naive_size, dtype, device, args.reps)
            show("", report.naive_line(result["naive"]), sep="\n")
        if "sweep" in args.parts:
            result["sweep"] = bench_sweep(args.sweep_batches, args.sweep_sizes, args.sweep_size_batch,
                                          dtype, device, torch_mod, args.reps, args.steps, args.warmup,
                                          memory, pause)
            show("\n".join(["", report.SWEEP_TITLE, *report.train_table(result["sweep"]["rows"]),
                            *report.fits_lines(result["sweep"]["fits"])]))
        if cases:
            show("", report.SUITE_TITLE, report.suite_table([])[0], sep="\n")
            result["suite"] = []
            for case in cases:
                row = bench_case(case, dtype.name, threads, torch_mod is not None, args.reps,
                                 args.steps, args.warmup, pause)
                result["suite"].append(row)
                show(report.suite_table([row])[1])
            show("\n".join(report.suite_summary(result["suite"])))
    outputs = [(args.json, lambda: json.dumps(result, indent=1))]
    if cases:
        outputs.append((args.md, lambda: report.suite_markdown(result)))
    for path, text in outputs:
        if path:
            with atomic_write(path) as fh:
                fh.write(text().encode())
            print(f"wrote {path}")
    return 0



def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="time ops and training steps, side by side with PyTorch",
                       description=bench.__doc__.split("\n\n")[0])
    combine("bench", TRAINING, only=("device",)).add_flags(p)
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (and torch.set_num_threads); default: as the environment sets")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated <net><batch>[x<size>], net a or b (default: %(default)s)")
    p.add_argument("--parts", type=_parts, default=list(DEFAULT_PARTS),
                   help=f"comma-separated subset of {','.join(PARTS)} (default: "
                        f"{','.join(DEFAULT_PARTS)}; suite runs the nets of --suite in worker "
                        f"processes, ~15 minutes for all)")
    p.add_argument("--suite", default="all",
                   help="with --parts suite: all, tuning, held-out, or comma-separated nets or "
                        "cases such as 'vgg,resnet32 b64 train' (default: %(default)s)")
    p.add_argument("--md", metavar="PATH", help="with --parts suite: also write its table as markdown")
    p.add_argument("--reps", type=int, default=7,
                   help="rounds; in each, every framework takes a turn, the order alternating, and "
                        "ratios are per round (default: %(default)s)")
    p.add_argument("--steps", type=int, default=5,
                   help="consecutive timed steps per framework per round (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed steps before each turn's timed ones (default: %(default)s)")
    p.add_argument("--pause", type=float, default=None,
                   help="seconds of sleep before each framework's turn, so the other's spinning "
                        "worker threads are idle (default: 0.15 with PyTorch, else 0)")
    p.add_argument("--busy", type=int, default=0,
                   help="processes that spin beside every measurement, as on a machine shared "
                        "with other work (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--sweep-batches", type=_int_list, default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                   help="batch sizes of the sweep, on 32x32 images (default: 1,2,...,512)")
    p.add_argument("--sweep-sizes", type=_int_list, default=[32, 48, 64, 96, 128],
                   help="image sizes of the sweep (default: 32,48,64,96,128)")
    p.add_argument("--sweep-size-batch", type=int, default=32,
                   help="batch of the image-size sweep (default: %(default)s)")
    p.add_argument("--naive-batch", type=int, default=2, help="batch of the naive conv (default: 2)")
    p.add_argument("--naive-size", type=int, default=32, help="image size of the naive conv (default: 32)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory probes")
    p.add_argument("--json", metavar="PATH", help="also write all results and the machine as JSON")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files already at --json and --md (refused otherwise)")
    p.set_defaults(func=_checked_run)



def _checked_run(args) -> int:
    for name in ("reps", "steps", "warmup", "busy", "sweep_size_batch", "naive_batch", "naive_size"):
        minimum = 0 if name in ("warmup", "busy") else 1
        if getattr(args, name) < minimum:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)}: expected an integer >= {minimum}")
    if args.pause is not None and not args.pause >= 0:
        raise ValueError(f"--pause={args.pause}: expected a number of seconds >= 0")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads={args.threads}: expected an integer >= 1")
    return run_bench(args)
