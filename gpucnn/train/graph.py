"""A training step as one CUDA graph: ``Trainer(..., cuda_graph=True)`` (``--cuda-graph``).

A small net's step on a fast GPU is bound by the host: some 30 kernel launches of a few
microseconds each (docs/benchmarks.md counts them).  Captured once into a CUDA graph, the step
is one launch.  The first step runs eagerly (kernels compile; cuBLAS and the memory pool
settle), the second is captured on a side stream and launched, and every later step with the
same batch shape uploads its batch into the captured input buffers, launches the graph and
reads the loss: 2 uploads, 1 launch, no allocation and 1 sync per step.

A graph replays its kernels with the arguments they had at capture, so what changes between
steps is read from device memory: the learning rate (SGD's fused update reads it; one upload
after each change the schedule makes) and each dropout stream's counter (the graph advances it
on the device; after each replay the host's counter advances by the same amount, so
checkpoints and resumes stay exact).  Buffers come from a memory pool of the graph's own,
filled by the warm-up step, so nothing else reuses the graph's memory between replays.  A
batch of another shape (a smaller last batch) runs eagerly.

Where a graph cannot work, training runs eagerly and one line on stderr says why: the CPU
device, several processes (the gradient allreduce is not captured), an optimizer other than
SGD (Adam and RMSprop compute their update from host numbers), a CuPy without stream capture,
or a step that fails to capture (a layer that reads a device value, or that replaces a
parameter or buffer array instead of writing into it).  With a graph, a diverged step has
been applied by the time its NaN loss is read.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import primitives
from ..device import DeviceScalar, import_cupy
from ..optim import SGD

WRAP = (1 << 64) - 1  # dropout counters are uint64 on the device


def unavailable(device: str, world_size: int, optimizer) -> str:
    """Why a training step cannot be a CUDA graph here; "" when it can."""
    if device != "cuda":
        return f"device={device!r}: a CUDA graph replays GPU work"
    if world_size > 1:
        return (f"{world_size} processes: the gradient allreduce between backward and update "
                f"is not captured")
    if not isinstance(optimizer, SGD):
        return (f"optimizer {type(optimizer).__name__}: its update reads host numbers every "
                f"step; sgd, momentum and nesterov read theirs on the device")
    cupy = import_cupy()
    if not hasattr(cupy.cuda.Stream, "begin_capture"):
        return f"CuPy {cupy.__version__} has no stream capture"
    return ""


def notice(reason: str) -> None:
    print(f"gpucnn: cuda_graph: {reason}; training without a CUDA graph", file=sys.stderr)


class GraphStep:
    """``step(X, y)`` trains ``model`` with ``optimizer`` (an SGD) on one host batch and returns
    its loss: eagerly the first time, then by a graph captured on the second step.  ``failed``
    says why capturing failed (that step and every later one run eagerly).  Every step, graph
    or not, multiplies with kernels/gemm.cu (gpucnn.cuda.gemm_kernels): CuPy refuses cuBLAS in
    a capture, and one GEMM for all steps keeps a replay equal to an eager step bit for bit.
    ``options`` go to ``model.train_step`` (label smoothing, gradient clipping)."""

    def __init__(self, model, optimizer, **options):
        self.cupy = import_cupy()
        self.model, self.optimizer, self.options = model, optimizer, options
        self.stream = self.cupy.cuda.Stream(non_blocking=True)
        self.pool = self.cupy.cuda.MemoryPool()  # the graph's memory, nobody else's
        self.inputs = self.graph = self.loss = None
        self.generators: dict = {}  # the model's random streams, by name
        self.counters: dict = {}    # random stream name -> its counter on the device
        self.advance: dict = {}     # random stream name -> counters one step draws
        self.steps = 0              # optimizer steps one training step takes
        self.failed = ""

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        with primitives.for_array_module(self.cupy).gemm_kernels():
            return self._step(X, y)

    def _step(self, X: np.ndarray, y: np.ndarray) -> float:
        X, y = np.ascontiguousarray(X), np.ascontiguousarray(y, dtype=np.int64)
        cupy = self.cupy
        caller = cupy.cuda.get_current_stream()
        with self.stream:
            # work queued before (the model moved, the velocity zeroed, a resume) comes first
            self.stream.wait_event(caller.record())
            if self.failed or self.inputs is not None and (X.shape, X.dtype) != (
                    self.inputs[0].shape, self.inputs[0].dtype):
                return float(self._train_step(cupy.asarray(X), cupy.asarray(y)))
            with cupy.cuda.using_allocator(self.pool.malloc):
                warm_up = self.inputs is None
                if warm_up:
                    self.inputs = (cupy.empty(X.shape, X.dtype), cupy.empty(y.shape, y.dtype))
                self.inputs[0].set(X)
                self.inputs[1].set(y)
                if warm_up:
                    return float(self._train_step(*self.inputs))
                replay = self.graph is not None
                if replay:
                    self._sync_device_numbers()
                else:  # the capture takes the step's host side (counters drawn, t)
                    try:
                        self._capture()
                    except Exception as e:  # noqa: BLE001 - any failure means: no graph
                        first = (str(e).strip().splitlines() or [""])[0]
                        self.failed = f"capturing the step failed ({type(e).__name__}: {first})"
                        notice(self.failed)
                        return float(self._train_step(*self.inputs))
                self.graph.launch(self.stream)
            for name, g in self.generators.items():
                mirror = self.counters[name]  # the graph moved the device's counter on
                mirror.known = (mirror.known + self.advance[name]) & WRAP
                if replay:  # and the host's, as the captured step did
                    g.counter += self.advance[name]
            if replay:
                self.optimizer.t += self.steps
            return float(self.loss)

    def _train_step(self, X, y):
        return self.model.train_step(X, y, self.optimizer, **self.options)

    def _sync_device_numbers(self) -> None:
        """Upload the learning rate and dropout counters where the host's differ (an lr decay,
        an eager step in between): outside the capture, before the graph reads them."""
        self.optimizer.device_lr()
        for name, g in self.generators.items():
            self.counters[name].sync(g.counter & WRAP)

    def _arrays(self) -> list:
        """(name, holder dict, key, array) of every parameter, buffer and optimizer state
        array: a step must write into them, since a replay writes where the capture saw them."""
        held = [(f"{type(m).__name__}.{n}", vars(m), n, getattr(m, n)) for m in self.model.modules()
                for n in (*m.param_names, *m.buffer_names) if getattr(m, n) is not None]
        return held + [(f"optimizer {b}[{k!r}]", d, k, a)
                       for b, d in self.optimizer.state.items() for k, a in d.items()]

    def _capture(self) -> None:
        cupy, model, opt = self.cupy, self.model, self.optimizer
        cuda = primitives.for_array_module(cupy)  # gpucnn.cuda, as the ops reach it
        generators = self.generators = dict(model.named_generators())
        keys = {name: g.key & WRAP for name, g in generators.items()}
        if len(set(keys.values())) < len(keys):
            raise ValueError(f"random streams {sorted(keys)}: two share a seed and stream, so "
                             f"their device counters would be one")
        for name in generators:
            self.counters.setdefault(name, DeviceScalar(cupy, np.uint64))
        self._sync_device_numbers()
        for m in model.modules():  # the warm-up's gradients go back to the pool
            m.grads = {}
        held, counters, t = self._arrays(), {n: g.counter for n, g in generators.items()}, opt.t
        self.stream.begin_capture()
        try:
            try:
                with cuda.device_counters({keys[n]: self.counters[n].array for n in generators}):
                    loss = self._train_step(*self.inputs)
            except BaseException:
                try:  # end the capture; the step's own error says more than CUDA's
                    self.stream.end_capture()
                except Exception:  # noqa: BLE001
                    pass
                raise
            graph = self.stream.end_capture()
            moved = [name for name, h, k, a in held if h[k] is not a]
            if moved:
                raise ValueError(f"{', '.join(moved)} replaced by a new array during the step: "
                                 f"a replay would keep writing the old one")
        except BaseException:  # nothing ran: the host goes back to before the step
            for _, h, k, a in held:
                h[k] = a
            for name, g in generators.items():
                g.counter = counters[name]
            opt.t = t
            raise
        self.advance = {n: g.counter - counters[n] for n, g in generators.items()}
        self.steps = opt.t - t
        self.graph, self.loss = graph, loss
