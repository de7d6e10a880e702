"""Time data-parallel steps of ThreeLayerConvNet on 1, 2, ... CPU ranks (weak scaling: the batch
per rank is fixed) and print a table and JSON: time per step, the all-reduce's share of it, and
the bytes each rank sends into the all-reduce per step.

    python scripts/bench_distributed.py --ranks 1 2 --batch 32 --steps 20

Each rank count is a separate ``mpirun`` job (1 rank runs without MPI); BLAS threads are split
evenly between the most ranks asked for, and every run uses that many per rank.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def worker(args) -> None:
    from gpucnn import distributed
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.optim import SGD

    world = distributed.get_world()
    model = ThreeLayerConvNet((3, 32, 32), num_filters=args.filters, filter_size=7,
                              hidden_dim=args.hidden, weight_scale=1e-3, seed=0)
    world.broadcast_parameters(model)
    opt = SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.default_rng(world.rank)
    x = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    compute, reduce, total = [], [], []
    for step in range(args.warmup + args.steps):
        world.barrier()
        t0 = time.perf_counter()
        loss, grads = model.loss(x, y)
        t1 = time.perf_counter()
        world.barrier()  # so the all-reduce time below is communication, not waiting for a rank
        t1w = time.perf_counter()
        world.allreduce_gradients(grads, loss, len(x))
        t2 = time.perf_counter()
        opt.step(grads)
        t3 = time.perf_counter()
        if step >= args.warmup:
            compute.append(t1 - t0 + t3 - t2)
            reduce.append(t2 - t1w)
            total.append(t3 - t0)
    # The slowest rank sets the pace: take each step's maximum over ranks.
    per_rank = world.gather((total, compute, reduce))
    if world.is_root:
        total, compute, reduce = (np.max([r[i] for r in per_rank], axis=0) for i in range(3))
        params = sum(p.size for p in model.parameters().values())
        print("RESULT " + json.dumps({
            "ranks": world.size, "batch_per_rank": args.batch, "params": int(params),
            "allreduce_bytes": (params + 2) * 4 if world.size > 1 else 0,
            "step_ms": 1e3 * float(np.median(total)),
            "compute_ms": 1e3 * float(np.median(compute)),
            "allreduce_ms": 1e3 * float(np.median(reduce)),
            "blas_threads": os.environ.get("OMP_NUM_THREADS"),
        }))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    from gpucnn import distributed

    # The same BLAS threads per rank in every run (weak scaling: each rank's resources fixed).
    threads = str(max(1, (os.cpu_count() or 1) // max(args.ranks)))
    rows = []
    for n in args.ranks:
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", *sys.argv[1:]]
        if n > 1:
            cmd = distributed.mpirun_command(n, cmd)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            sys.stderr.write(done.stdout + done.stderr)
            return done.returncode
        rows.append(json.loads(next(line for line in done.stdout.splitlines()
                                    if line.startswith("RESULT "))[len("RESULT "):]))
    base = rows[0]["step_ms"] if rows[0]["ranks"] == 1 else None
    print(f"{'ranks':>5} {'batch/rank':>10} {'step ms':>9} {'compute ms':>10} {'allreduce ms':>12} "
          f"{'bytes/step':>11} {'efficiency':>10}")
    for r in rows:
        eff = f"{base / r['step_ms']:.0%}" if base else "-"
        print(f"{r['ranks']:>5} {r['batch_per_rank']:>10} {r['step_ms']:>9.1f} {r['compute_ms']:>10.1f} "
              f"{r['allreduce_ms']:>12.2f} {r['allreduce_bytes']:>11} {eff:>10}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
