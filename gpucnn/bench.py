"""``gpucnn bench``: time every op and a full training step, side by side with PyTorch.

What is measured (see docs/benchmarks.md for results and method):

- **train**: one full training step (forward, softmax-CE + L2, backward, SGD update) of
  (a) ThreeLayerConvNet on 3x32x32 (32 filters 7x7 pad 3, hidden 500) and (b) an MNIST-sized net
  (1x28x28, 16 filters 5x5 pad 2, hidden 100), at the batches named by ``--configs``.
- **ops**: forward and backward of conv, max-pool, dropout, relu, linear and softmax-CE at the
  shapes of each config's layers.
- **naive**: a textbook loop convolution against ours at a small size.
- **sweep**: (a)'s training step over batch sizes and image sizes, with log-log exponents.

Timings are medians with the interquartile range over ``--reps`` repetitions after ``--warmup``
untimed ones; when PyTorch is installed the same models run in the same process with the same
shapes, dtype and thread count, alternating one gpucnn and one PyTorch repetition.  Peak memory
is the peak resident set of a fresh process that runs only that framework's steps (CPU), or the
allocator's peak (GPU).  Device-specific code is confined to :func:`make_timer` and the memory
probes.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import __version__
from . import functional as F
from .device import resolve_device, xp_for
from .rng import Generator

CHILD_ENV = "GPUCNN_BENCH_CHILD"  # set in re-run children so they never re-run themselves
PARTS = ("train", "ops", "naive", "sweep")
LR = 1e-3
REG = 1e-3


# --- the networks -----------------------------------------------------------------------------

@dataclass(frozen=True)
class NetSpec:
    """conv(filters, ksize, pad) - relu - 2x2 pool - affine(hidden) - relu - affine(10)."""

    channels: int
    size: int
    filters: int
    ksize: int
    pad: int
    hidden: int
    classes: int = 10

    def with_size(self, size: int) -> "NetSpec":
        return NetSpec(self.channels, size, self.filters, self.ksize, self.pad, self.hidden, self.classes)

    @property
    def pooled(self) -> int:
        return (self.size + 2 * self.pad - self.ksize + 1) // 2


NETS = {"a": NetSpec(3, 32, 32, 7, 3, 500), "b": NetSpec(1, 28, 16, 5, 2, 100)}
DEFAULT_CONFIGS = "a50,a128,b64"


@dataclass(frozen=True)
class Config:
    """One benchmark shape: network ``net`` (a key of NETS) at ``batch`` images of ``spec.size``."""

    net: str
    batch: int
    spec: NetSpec

    @property
    def name(self) -> str:
        base = f"({self.net}) b{self.batch}"
        return base if self.spec.size == NETS[self.net].size else f"{base} {self.spec.size}px"


def parse_config(text: str) -> Config:
    """'a50' -> net (a) at batch 50; 'b2x12' -> net (b) at batch 2 on 12x12 images."""
    m = re.fullmatch(r"([ab])(\d+)(?:x(\d+))?", text.strip())
    if not m or int(m.group(2)) < 1 or (m.group(3) and int(m.group(3)) < 4):
        raise ValueError(f"--configs item {text!r}: expected <net><batch>[x<size>] with net in "
                         f"{sorted(NETS)}, batch >= 1 and size >= 4, e.g. a50 or b2x12")
    spec = NETS[m.group(1)]
    if m.group(3):
        spec = spec.with_size(int(m.group(3)))
    return Config(m.group(1), int(m.group(2)), spec)


def layer_spec(spec: NetSpec) -> list[dict]:
    """The gpucnn layer list of a NetSpec (He-scaled init, no dropout)."""
    return [
        {"type": "conv2d", "out_channels": spec.filters, "kernel_size": spec.ksize, "padding": spec.pad},
        {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
        {"type": "linear", "out_features": spec.hidden}, {"type": "relu"},
        {"type": "linear", "out_features": spec.classes},
    ]


def make_data(cfg: Config, dtype, seed=0):
    """Random images X (N, C, S, S) and labels y (N,) on the host."""
    rng = np.random.default_rng(seed)
    s = cfg.spec
    X = rng.standard_normal((cfg.batch, s.channels, s.size, s.size)).astype(dtype)
    y = rng.integers(0, s.classes, cfg.batch)
    return X, y


def gpucnn_step(cfg: Config, dtype, device: str):
    """(step, model): ``step()`` runs one training step of gpucnn and returns the loss."""
    from .models import build_model
    from .optim import SGD

    xp = xp_for(device)
    model = build_model(layer_spec(cfg.spec), (cfg.spec.channels, cfg.spec.size, cfg.spec.size),
                        reg=REG, dtype=dtype, seed=0).to(device)
    opt = SGD(model.parameters(), lr=LR)
    X, y = (xp.asarray(a) for a in make_data(cfg, dtype))

    def step():
        loss, grads = model.loss(X, y)
        opt.step(grads)
        return loss

    return step, model


def torch_step(cfg: Config, dtype, device: str, init=None):
    """``step()`` for the same network in PyTorch: cross-entropy, weight decay ``REG`` on weights
    only (the same gradient as gpucnn's 0.5 * reg * sum(W**2)), plain SGD.  ``init``: gpucnn
    parameters to copy, so both start from the same weights."""
    import torch

    s = cfg.spec
    tdtype = getattr(torch, np.dtype(dtype).name)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(s.channels, s.filters, s.ksize, padding=s.pad), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(s.filters * s.pooled * s.pooled, s.hidden), torch.nn.ReLU(),
        torch.nn.Linear(s.hidden, s.classes)).to(device=device, dtype=tdtype)
    if init is not None:
        _copy_weights(net, init)
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": REG}, {"params": biases}], lr=LR)
    X, y = make_data(cfg, dtype)
    X, y = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _copy_weights(net, params: dict) -> None:
    """gpucnn parameters ("net.<i>.weight") into the torch Sequential; Linear weights transposed."""
    import torch

    from .device import to_numpy

    torch_index = {0: 0, 4: 4, 6: 6}  # gpucnn layer index -> torch layer index (same here)
    with torch.no_grad():
        for name, value in params.items():
            _, i, kind = name.split(".")
            a = to_numpy(value)
            a = a.T if a.ndim == 2 else a
            getattr(net[torch_index[int(i)]], kind).copy_(torch.from_numpy(np.ascontiguousarray(a)))


# --- timing -----------------------------------------------------------------------------------

def make_timer(device: str, framework: str):
    """A function ``timer(fn) -> seconds`` for one call of ``fn`` on ``device``.

    CPU: wall clock around the call.  CUDA: device events recorded on the current stream around
    the call, then synchronised (cupy events for gpucnn, torch.cuda events for PyTorch).
    """
    if device == "cpu":
        def timer(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return timer
    if framework == "torch":
        import torch

        def timer(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return timer
    import cupy

    def timer(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1e3
    return timer


def summarize(times) -> dict:
    """Seconds -> {median, q1, q3, min, max, n} in milliseconds."""
    t = np.asarray(times, dtype=np.float64) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(t.min()), "max_ms": float(t.max()), "n": int(t.size)}


def time_interleaved(fns: dict, timers: dict, reps: int, warmup: int, pause: float = 0.0,
                     block: int = 1) -> dict:
    """Time every fn ``reps`` times after ``warmup`` untimed calls; {key: summary}.

    Keys are "<framework>" or "<framework>_<part>"; frameworks take turns every ``block``
    repetitions, with ``pause`` seconds of sleep before each turn.  The pause matters on a small
    machine: OpenBLAS and OpenMP worker threads spin for up to ~0.1 s after their last task, and
    would otherwise steal the CPUs of whichever framework runs next.
    """
    groups = {}
    for k in fns:
        groups.setdefault(k.split("_")[0], []).append(k)
    for keys in groups.values():
        time.sleep(pause)
        for _ in range(warmup):
            for k in keys:
                fns[k]()
    times = {k: [] for k in fns}
    for start in range(0, reps, block):
        for keys in groups.values():
            time.sleep(pause)
            for _ in range(min(block, reps - start)):
                for k in keys:
                    times[k].append(timers[k](fns[k]))
    return {k: summarize(v) for k, v in times.items()}


# --- peak memory ------------------------------------------------------------------------------

def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MiB: VmRSS (resident now) or VmHWM (peak resident).

    VmHWM belongs to this process image; getrusage's ru_maxrss would not do, because Linux
    carries it over from the parent across fork and exec.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} line (peak memory needs Linux)")


def probe_cpu_memory(framework: str, config: str, dtype: str, steps: int) -> dict:
    """Run in a fresh process: build, then ``steps`` training steps; resident memory in MiB.

    -> {"base_mb": RSS after imports and setup, "peak_mb": peak RSS of the whole process}.
    """
    cfg = parse_config(config)
    if framework == "torch":
        import torch

        torch.set_num_threads(blas_threads() or os.cpu_count())
        step = torch_step(cfg, np.dtype(dtype), "cpu")
    else:
        step, _ = gpucnn_step(cfg, np.dtype(dtype), "cpu")
    base = _status_mb("VmRSS")
    for _ in range(steps):
        step()
    return {"base_mb": base, "peak_mb": _status_mb("VmHWM")}


def cpu_peak_memory(framework: str, cfg: Config, dtype, steps: int = 3) -> dict:
    """:func:`probe_cpu_memory` in a child process with this process's environment."""
    config = f"{cfg.net}{cfg.batch}x{cfg.spec.size}"
    cmd = [sys.executable, "-m", "gpucnn.bench", "--probe-memory", framework, config,
           np.dtype(dtype).name, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, CHILD_ENV: "1"})
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {' '.join(cmd[2:])} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cuda_peak_memory(framework: str, step) -> dict:
    """Peak device memory of one step in MiB: torch's max_memory_allocated, or for CuPy the
    pool's total after one step from an emptied pool (an upper bound on the peak in use)."""
    if framework == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20}
    import cupy

    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    pool.free_all_blocks()
    step()
    cupy.cuda.Device().synchronize()
    return {"peak_mb": pool.total_bytes() / 2**20}


# --- machine description ----------------------------------------------------------------------

def _openblas():
    """The OpenBLAS library NumPy loaded (a ctypes handle and its symbol prefix), or None."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()
                            and line.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "")):
            if hasattr(lib, f"{prefix}_get_num_threads{suffix}"):
                return lib, prefix, suffix
    return None


def blas_threads() -> int | None:
    """OpenBLAS's thread count as it will run (None when NumPy's BLAS is not OpenBLAS)."""
    found = _openblas()
    if found is None:
        return None
    lib, prefix, suffix = found
    return int(getattr(lib, f"{prefix}_get_num_threads{suffix}")())


def blas_info() -> dict:
    """NumPy's BLAS (from numpy.show_config) and, for OpenBLAS, the kernels it runs."""
    info = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas}
    except Exception as e:  # older NumPy has no mode="dicts"
        info["error"] = f"numpy.show_config: {type(e).__name__}: {e}"
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
        if corename is not None:
            corename.restype = ctypes.c_char_p
            info["corename"] = corename().decode()
        info["threads"] = blas_threads()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str, torch_mod) -> dict:
    env = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "OPENBLAS_CORETYPE", "MALLOC_MMAP_THRESHOLD_")}
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(), "platform": platform.platform(), "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(), "device": device, "python": platform.python_version(),
        "gpucnn": __version__, "numpy": np.__version__, "blas": blas_info(), "env": env,
        "torch": getattr(torch_mod, "__version__", None),
    }
    if torch_mod is not None:
        info["torch_threads"] = torch_mod.get_num_threads()
    if device == "cuda":
        from .device import cuda_status

        st = cuda_status()
        info.update(gpu=st.device_name, cupy=st.cupy_version, cuda_runtime=st.runtime_version,
                    cuda_driver=st.driver_version)
    return info


# --- per-op benchmarks ------------------------------------------------------------------------

def _op_shapes(cfg: Config) -> dict:
    s, n = cfg.spec, cfg.batch
    conv_out = s.size + 2 * s.pad - s.ksize + 1
    return {"x": (n, s.channels, s.size, s.size), "w": (s.filters, s.channels, s.ksize, s.ksize),
            "act": (n, s.filters, conv_out, conv_out), "pooled": (n, s.filters, s.pooled, s.pooled),
            "fc_in": (n, s.filters * s.pooled * s.pooled), "fc_w": (s.filters * s.pooled * s.pooled, s.hidden),
            "scores": (n, s.classes)}


def gpucnn_ops(cfg: Config, dtype, device: str) -> dict:
    """{op name: (forward, backward)} callables at the shapes of ``cfg``'s layers.

    Each backward reuses one forward's cache; softmax-CE computes its gradient in the forward
    call, so its backward is a no-op.
    """
    xp, sh, s = xp_for(device), _op_shapes(cfg), cfg.spec
    rng = np.random.default_rng(1)

    def arr(shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    x, w, b, act, pooled = arr(sh["x"]), arr(sh["w"]), arr((s.filters,)), arr(sh["act"]), arr(sh["pooled"])
    fc_x, fc_w, fc_b, scores = arr(sh["fc_in"]), arr(sh["fc_w"]), arr((s.hidden,)), arr(sh["scores"])
    y = xp.asarray(rng.integers(0, s.classes, cfg.batch))
    gen = Generator(0)
    d_act, d_pool, d_fc = arr(sh["act"]), arr(sh["pooled"]), arr((cfg.batch, s.hidden))
    conv_cache = F.conv2d_forward(x, w, b, 1, s.pad)[1]
    pool_cache = F.maxpool2d_forward(act, 2)[1]
    relu_cache = F.relu_forward(act)[1]
    drop_cache = F.dropout_forward(pooled, 0.5, True, gen)[1]
    fc_cache = F.linear_forward(fc_x, fc_w, fc_b)[1]
    return {
        "conv": (lambda: F.conv2d_forward(x, w, b, 1, s.pad),
                 lambda: F.conv2d_backward(d_act, conv_cache, need_dx=False)),
        "conv (with dx)": (lambda: F.conv2d_forward(x, w, b, 1, s.pad),
                           lambda: F.conv2d_backward(d_act, conv_cache, need_dx=True)),
        "max-pool 2x2": (lambda: F.maxpool2d_forward(act, 2), lambda: F.maxpool2d_backward(d_pool, pool_cache)),
        "relu": (lambda: F.relu_forward(act), lambda: F.relu_backward(d_act, relu_cache)),
        "dropout p=0.5": (lambda: F.dropout_forward(pooled, 0.5, True, gen),
                          lambda: F.dropout_backward(d_pool, drop_cache)),
        "linear": (lambda: F.linear_forward(fc_x, fc_w, fc_b), lambda: F.linear_backward(d_fc, fc_cache)),
        "softmax-CE": (lambda: F.softmax_cross_entropy(scores, y), lambda: None),
    }


def torch_ops(cfg: Config, dtype, device: str) -> dict:
    """The same ops in PyTorch: forward with autograd recording, backward by autograd.grad on a
    retained graph (only the gradients gpucnn's backward computes)."""
    import torch
    import torch.nn.functional as TF

    sh, s = _op_shapes(cfg), cfg.spec
    tdtype = getattr(torch, np.dtype(dtype).name)
    rng = np.random.default_rng(1)

    def arr(shape, grad=False):
        t = torch.from_numpy(rng.standard_normal(shape).astype(dtype)).to(device=device, dtype=tdtype)
        return t.requires_grad_(grad)

    x, xg = arr(sh["x"]), arr(sh["x"], True)
    w, b = arr(sh["w"], True), arr((s.filters,), True)
    act, pooled = arr(sh["act"], True), arr(sh["pooled"], True)
    fc_x, fc_w, fc_b = arr(sh["fc_in"], True), arr((s.hidden, sh["fc_w"][0]), True), arr((s.hidden,), True)
    scores = arr(sh["scores"], True)
    y = torch.from_numpy(rng.integers(0, s.classes, cfg.batch)).to(device)
    d_act, d_pool, d_fc = arr(sh["act"]), arr(sh["pooled"]), arr((cfg.batch, s.hidden))

    def op(forward, inputs, dout):
        out = forward()

        def backward():
            return torch.autograd.grad(out, inputs, dout, retain_graph=True)
        return forward, backward

    return {
        "conv": op(lambda: TF.conv2d(x, w, b, padding=s.pad), (w, b), d_act),
        "conv (with dx)": op(lambda: TF.conv2d(xg, w, b, padding=s.pad), (xg, w, b), d_act),
        "max-pool 2x2": op(lambda: TF.max_pool2d(act, 2), (act,), d_pool),
        "relu": op(lambda: TF.relu(act), (act,), d_act),
        "dropout p=0.5": op(lambda: TF.dropout(pooled, 0.5, training=True), (pooled,), d_pool),
        "linear": op(lambda: TF.linear(fc_x, fc_w, fc_b), (fc_x, fc_w, fc_b), d_fc),
        "softmax-CE": op(lambda: TF.cross_entropy(scores, y), (scores,), None),
    }


def bench_ops(cfg: Config, dtype, device: str, torch_mod, reps: int, warmup: int,
              pause: float) -> list[dict]:
    """One row per op: gpucnn (and PyTorch) forward and backward summaries."""
    ours = gpucnn_ops(cfg, dtype, device)
    theirs = torch_ops(cfg, dtype, device) if torch_mod is not None else {}
    rows = []
    for name, (fwd, bwd) in ours.items():
        fns = {"gpucnn_fwd": fwd, "gpucnn_bwd": bwd}
        if name in theirs:
            fns.update(torch_fwd=theirs[name][0], torch_bwd=theirs[name][1])
        timers = {k: make_timer(device, k.split("_")[0]) for k in fns}
        res = time_interleaved(fns, timers, reps, warmup, pause, block=max(1, reps // 4))
        rows.append({"config": cfg.name, "op": name, **res})
    return rows


# --- training steps, naive conv, scaling sweep ------------------------------------------------

def bench_train(cfg: Config, dtype, device: str, torch_mod, reps: int, warmup: int,
                memory: bool, pause: float) -> dict:
    """Full training step of ``cfg``: time summaries, images/s and peak memory per framework."""
    step, model = gpucnn_step(cfg, dtype, device)
    fns = {"gpucnn": step}
    if torch_mod is not None:
        fns["torch"] = torch_step(cfg, dtype, device, init=model.parameters())
    timers = {k: make_timer(device, k) for k in fns}
    row = {"config": cfg.name, "net": cfg.net, "batch": cfg.batch, "size": cfg.spec.size,
           **time_interleaved(fns, timers, reps, warmup, pause)}
    for k in fns:
        row[k]["images_per_s"] = cfg.batch / (row[k]["median_ms"] / 1e3)
        if memory:
            row[k].update(cpu_peak_memory(k, cfg, dtype) if device == "cpu"
                          else cuda_peak_memory(k, fns[k]))
    return row


def naive_conv(x, w, b, pad: int):
    """Textbook convolution: one dot product per output element, in Python loops.

    x (N, C, H, W), w (F, C, K, K), b (F,) -> out (N, F, OH, OW), stride 1.
    """
    N, _, H, W = x.shape
    Fn, _, K, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = H + 2 * pad - K + 1, W + 2 * pad - K + 1
    out = np.empty((N, Fn, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(Fn):
            for i in range(OH):
                for j in range(OW):
                    out[n, f, i, j] = np.sum(xp[n, :, i:i + K, j:j + K] * w[f]) + b[f]
    return out


def bench_naive(batch: int, size: int, dtype, device: str, reps: int) -> dict:
    """Naive loop conv (host) vs gpucnn's conv forward on (a)'s conv layer at a small size."""
    spec = NETS["a"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, spec.channels, size, size)).astype(dtype)
    w = rng.standard_normal((spec.filters, spec.channels, spec.ksize, spec.ksize)).astype(dtype)
    b = rng.standard_normal(spec.filters).astype(dtype)
    xp = xp_for(device)
    xd, wd, bd = xp.asarray(x), xp.asarray(w), xp.asarray(b)
    fns = {"naive": lambda: naive_conv(x, w, b, spec.pad),
           "gpucnn": lambda: F.conv2d_forward(xd, wd, bd, 1, spec.pad)}
    timers = {"naive": make_timer("cpu", "naive"), "gpucnn": make_timer(device, "gpucnn")}
    res = time_interleaved(fns, timers, min(reps, 3), 1)
    return {"shape": [batch, spec.channels, size, size], **res,
            "ratio": res["naive"]["median_ms"] / res["gpucnn"]["median_ms"]}


def sweep_configs(batches, sizes, size_batch: int) -> list[Config]:
    """(a)'s layers at each batch on 32x32 images, then at each image size at ``size_batch``."""
    a = NETS["a"]
    return ([Config("a", n, a) for n in batches]
            + [Config("a", size_batch, a.with_size(s)) for s in sizes if s != a.size or size_batch not in batches])


def loglog_exponents(xs, ts) -> dict:
    """Least-squares slope of log t on log x over all points, and the local slope between
    neighbours (1 = linear; < 1 = overheads amortised; > 1 = cache or memory effects)."""
    lx, lt = np.log(np.asarray(xs, float)), np.log(np.asarray(ts, float))
    fit = float(np.polyfit(lx, lt, 1)[0]) if len(xs) >= 2 else float("nan")
    local = [float((lt[i + 1] - lt[i]) / (lx[i + 1] - lx[i])) for i in range(len(xs) - 1)]
    return {"exponent": fit, "local": local}


def bench_sweep(batches, sizes, size_batch: int, dtype, device, torch_mod, reps, warmup,
                memory, pause) -> dict:
    """Training-step rows for every sweep config, plus log-log exponents of gpucnn's time (and
    of its peak memory above the process's baseline) against batch and against pixels."""
    configs = sweep_configs(batches, sizes, size_batch)
    rows = [bench_train(c, dtype, device, torch_mod, reps, warmup, memory, pause) for c in configs]
    fits = {}
    for axis, key, pick in (("batch", "batch", lambda r: r["size"] == NETS["a"].size),
                            ("pixels", "size", lambda r: r["batch"] == size_batch)):
        sel = sorted((r for r in rows if pick(r)), key=lambda r: r[key])
        if len(sel) < 2:
            continue
        xs = [r[key] if axis == "batch" else r[key] ** 2 for r in sel]
        fits[axis] = {"x": xs, "time": loglog_exponents(xs, [r["gpucnn"]["median_ms"] for r in sel])}
        if memory and device == "cpu":
            work = [max(r["gpucnn"]["peak_mb"] - r["gpucnn"]["base_mb"], 1e-3) for r in sel]
            fits[axis]["peak_memory_above_base"] = loglog_exponents(xs, work)
    return {"rows": rows, "fits": fits}


# --- report -----------------------------------------------------------------------------------

def _ms(s: dict) -> str:
    return f"{s['median_ms']:9.3f} [{s['q1_ms']:.3f}-{s['q3_ms']:.3f}]"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "    -"


def train_table(rows: list[dict]) -> list[str]:
    """Training-step rows as text: median [IQR] ms, images/s, peak MiB, gpucnn/torch ratios."""
    lines = [f"{'config':<18} {'gpucnn ms [IQR]':>26} {'img/s':>8} {'peak MiB':>9} | "
             f"{'torch ms [IQR]':>26} {'img/s':>8} {'peak MiB':>9} | {'time':>6} {'mem':>6}"]
    for r in rows:
        g, t = r["gpucnn"], r.get("torch")
        line = f"{r['config']:<18} {_ms(g):>26} {g['images_per_s']:8.0f} {g.get('peak_mb', float('nan')):9.1f} | "
        if t is None:
            lines.append(line + "(PyTorch not run)")
            continue
        mem = _ratio(g["peak_mb"], t["peak_mb"]) if "peak_mb" in g else "    -"
        lines.append(line + f"{_ms(t):>26} {t['images_per_s']:8.0f} {t.get('peak_mb', float('nan')):9.1f} | "
                     f"{_ratio(g['median_ms'], t['median_ms']):>6} {mem:>6}")
    return lines


def ops_table(rows: list[dict]) -> list[str]:
    lines = [f"{'config':<18} {'op':<15} {'gpucnn fwd ms':>24} {'gpucnn bwd ms':>24} | "
             f"{'torch fwd ms':>24} {'torch bwd ms':>24} | {'fwd+bwd':>7}"]
    for r in rows:
        line = f"{r['config']:<18} {r['op']:<15} {_ms(r['gpucnn_fwd']):>24} {_ms(r['gpucnn_bwd']):>24} | "
        if "torch_fwd" in r:
            ours = r["gpucnn_fwd"]["median_ms"] + r["gpucnn_bwd"]["median_ms"]
            theirs = r["torch_fwd"]["median_ms"] + r["torch_bwd"]["median_ms"]
            line += f"{_ms(r['torch_fwd']):>24} {_ms(r['torch_bwd']):>24} | {_ratio(ours, theirs):>7}"
        lines.append(line)
    return lines


def fits_lines(fits: dict) -> list[str]:
    lines = []
    for axis, f in fits.items():
        local = ", ".join(f"{e:.2f}" for e in f["time"]["local"])
        lines.append(f"time ~ {axis}^{f['time']['exponent']:.2f}  (local exponents: {local})")
        if "peak_memory_above_base" in f:
            m = f["peak_memory_above_base"]
            local = ", ".join(f"{e:.2f}" for e in m["local"])
            lines.append(f"peak memory above base ~ {axis}^{m['exponent']:.2f}  (local: {local})")
    return lines


def report(result: dict) -> str:
    m = result["machine"]
    blas = m["blas"]
    out = [f"gpucnn bench  {m['date']}  device={m['device']}  dtype={result['dtype']}",
           f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {m['platform']}",
           f"numpy {m['numpy']}, BLAS {blas.get('name')} {blas.get('version')} kernels="
           f"{blas.get('corename', '?')} threads={blas.get('threads', '?')}; torch {m['torch'] or 'not installed'}"
           + (f" threads={m['torch_threads']}" if m.get("torch_threads") else ""),
           f"timings: median [interquartile range] over {result['reps']} reps after {result['warmup']} warm-up, "
           f"gpucnn and PyTorch interleaved, {result['pause_s']} s pause per turn; ratios are "
           "gpucnn / PyTorch (< 1: gpucnn faster or smaller)"]
    if result.get("train"):
        out += ["", "Full training step (forward, loss, backward, SGD update)"] + train_table(result["train"])
    if result.get("ops"):
        out += ["", "Ops (conv backward without dx is what the first layer runs)"] + ops_table(result["ops"])
    if result.get("naive"):
        n = result["naive"]
        out += ["", f"Naive loop conv forward {tuple(n['shape'])}, w (32, 3, 7, 7): "
                f"{n['naive']['median_ms']:.1f} ms vs gpucnn {n['gpucnn']['median_ms']:.3f} ms: "
                f"{n['ratio']:.0f}x slower"]
    if result.get("sweep"):
        out += ["", "Scaling sweep, network (a)"] + train_table(result["sweep"]["rows"])
        out += fits_lines(result["sweep"]["fits"])
    return "\n".join(out)


# --- command ----------------------------------------------------------------------------------

def set_blas_threads(n: int) -> None:
    """Run NumPy's BLAS with ``n`` threads from now on, and start child processes with the same.

    OpenBLAS is told directly (openblas_set_num_threads), so this works after NumPy is loaded;
    for another BLAS the thread variables must be set before Python starts.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(n)
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        getattr(lib, f"{prefix}_set_num_threads{suffix}")(ctypes.c_int(n))
        return
    raise ValueError(f"--threads={n}: NumPy's BLAS is not OpenBLAS, so its threads cannot be set "
                     f"after start-up; run with OMP_NUM_THREADS={n} MKL_NUM_THREADS={n} instead")


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


def _import_torch(device: str, threads: int):
    """PyTorch set up like gpucnn (threads; cudnn.benchmark on CUDA), or None if not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch


def run_bench(args) -> int:
    device = resolve_device(args.device)
    if args.threads is not None:
        set_blas_threads(args.threads)
    threads = args.threads or blas_threads() or os.cpu_count()
    torch_mod = None if args.no_torch else _import_torch(device, threads)
    dtype = np.dtype(args.dtype)
    configs = [parse_config(c) for c in args.configs.split(",") if c.strip()]
    memory = not args.no_memory
    pause = (0.15 if torch_mod is not None else 0.0) if args.pause is None else args.pause
    result = {"machine": machine_info(device, torch_mod), "dtype": dtype.name, "reps": args.reps,
              "warmup": args.warmup, "pause_s": pause, "parts": args.parts, "train": [], "ops": []}
    for cfg in configs:
        if "train" in args.parts:
            result["train"].append(bench_train(cfg, dtype, device, torch_mod, args.reps, args.warmup,
                                               memory, pause))
        if "ops" in args.parts:
            result["ops"] += bench_ops(cfg, dtype, device, torch_mod, args.reps, args.warmup, pause)
    if "naive" in args.parts:
        result["naive"] = bench_naive(args.naive_batch, args.naive_size, dtype, device, args.reps)
    if "sweep" in args.parts:
        result["sweep"] = bench_sweep(args.sweep_batches, args.sweep_sizes, args.sweep_size_batch,
                                      dtype, device, torch_mod, args.reps, args.warmup, memory, pause)
    print(report(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="time ops and training steps, side by side with PyTorch",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: $GPUCNN_DEVICE, else auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (and torch.set_num_threads); default: as the environment sets")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated <net><batch>[x<size>], net a or b (default: %(default)s)")
    p.add_argument("--parts", type=_parts, default=list(PARTS),
                   help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default: %(default)s)")
    p.add_argument("--pause", type=float, default=None,
                   help="seconds of sleep before each framework's turn, so the other's spinning "
                        "worker threads are idle (default: 0.15 with PyTorch, else 0)")
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
    p.set_defaults(func=_checked_run)


def _checked_run(args) -> int:
    for name in ("reps", "warmup", "sweep_size_batch", "naive_batch", "naive_size"):
        minimum = 0 if name == "warmup" else 1
        if getattr(args, name) < minimum:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)}: expected an integer >= {minimum}")
    if args.pause is not None and not args.pause >= 0:
        raise ValueError(f"--pause={args.pause}: expected a number of seconds >= 0")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads={args.threads}: expected an integer >= 1")
    return run_bench(args)


if __name__ == "__main__":
    # Internal entry for the memory probes: python -m gpucnn.bench --probe-memory FRAMEWORK CONFIG DTYPE STEPS
    if len(sys.argv) == 6 and sys.argv[1] == "--probe-memory" and os.environ.get(CHILD_ENV):
        print(json.dumps(probe_cpu_memory(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    else:
        sys.exit("gpucnn.bench is run as `gpucnn bench`; see `gpucnn bench --help`")
