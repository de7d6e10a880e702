"""Benchmark the data layer (not a test): digits load time, CIFAR-10 peak memory, synthetic speed.

CIFAR-10 is measured on a generated full-size archive in the real format (five pickled
training batches of 10 000 images and a test batch of 10 000, in cifar-10-python.tar.gz),
loaded in a fresh process whose peak resident memory (VmHWM, Linux) is reported.

    python scripts/bench_data.py [--json out.json] [--skip-cifar]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from gpucnn.data import SOURCES, load, synthetic_images  # noqa: E402

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
         b"ship", b"truck"]


def fake_cifar_archive(path: str, per_batch: int = 10000, seed: int = 0) -> str:
    """Write a CIFAR-10-format tar.gz of random images; return its MD5."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        members = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        for m in members:
            if m == "batches.meta":
                obj = {b"label_names": NAMES, b"num_cases_per_batch": per_batch}
            else:
                obj = {b"batch_label": m.encode(), b"filenames": [],
                       b"labels": rng.integers(0, 10, per_batch).tolist(),
                       b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)}
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{m}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            del data, obj
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def child_load_cifar(data_dir: str, md5: str) -> None:
    """Runs in a fresh process: load, then print timing and peak RSS as JSON."""
    src = SOURCES["cifar10"].replace(checksums={"cifar-10-python.tar.gz": md5})
    t = time.perf_counter()
    d = load("cifar10", data_dir=data_dir, source=src)
    seconds = time.perf_counter() - t
    # VmHWM starts afresh at exec (ru_maxrss would include the parent's size at fork)
    with open("/proc/self/status") as fh:
        peak_kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    nbytes = sum(a.nbytes for a in (d.x_train, d.x_val, d.x_test))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kib / 1024,
                      "arrays_mb": nbytes / 2**20, "sizes": d.meta.sizes}))


def bench_cifar() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "cifar10"))
        t = time.perf_counter()
        md5 = fake_cifar_archive(os.path.join(tmp, "cifar10", "cifar-10-python.tar.gz"))
        made = time.perf_counter() - t
        out = subprocess.run([sys.executable, __file__, "--child-cifar", tmp, md5],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result["archive_mb"] = os.path.getsize(
            os.path.join(tmp, "cifar10", "cifar-10-python.tar.gz")) / 2**20
        result["generate_seconds"] = made
    return result


def bench_digits(repeats: int = 7) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        load("digits")
        times.append(time.perf_counter() - t)
    return {"median_seconds": float(np.median(times)), "max_seconds": max(times)}


def bench_synthetic() -> dict:
    out = {}
    for n, size in ((50000, 32), (5000, 128)):
        t = time.perf_counter()
        synthetic_images(n, size=size, channels=3)
        out[f"3x{size}x{size} x {n}"] = time.perf_counter() - t
    return out


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-cifar":
        child_load_cifar(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--skip-cifar", action="store_true", help="skip the 60 000-image run")
    args = parser.parse_args()
    results = {"digits_load": bench_digits(), "synthetic_seconds": bench_synthetic()}
    if not args.skip_cifar:
        results["cifar10_tar_gz"] = bench_cifar()
    d = results["digits_load"]
    print(f"digits load        median {d['median_seconds'] * 1000:.1f} ms "
          f"(max {d['max_seconds'] * 1000:.1f} ms; limit 200 ms)")
    for k, v in results["synthetic_seconds"].items():
        print(f"synthetic {k:<16} {v:.2f} s")
    if "cifar10_tar_gz" in results:
        c = results["cifar10_tar_gz"]
        print(f"cifar10 tar.gz     {c['archive_mb']:.0f} MB archive -> {c['arrays_mb']:.0f} MB "
              f"float32 arrays in {c['seconds']:.1f} s, peak RSS {c['peak_rss_mb']:.0f} MB "
              f"(limit 1024 MB)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
