"""CUDA graphs on the stand-in: ``Stream.begin_capture()``, ``end_capture()`` -> :class:`Graph`,
``Graph.launch()``; and what CuPy refuses while a stream captures.

A GPU's capture runs nothing: it records the work issued on the capturing stream, and a launch
of the graph runs it, reading and writing the same memory each time.  The stand-in runs every
operation as it is issued (it needs the results' shapes), so a capture here records, for each
operation, a closure that redoes it on the same memory, and at its end puts back every device
buffer that was alive before it (the capture changed nothing there) and fills the buffers it
allocated with garbage (NaN, or the largest integer): code that reads a result before
launching the graph sees the garbage.  The closures hold the memory, not the arrays: a buffer
the program drops goes back to the pool (fakecupy._memory), which may hand it to the next
allocation while the graph still writes it at every launch, as CuPy's pool does.  A launch's
writes are in flight on its stream until ordered (fakecupy._stream).

Refused while the current stream captures, as CuPy and CUDA refuse them:
- device-to-host reads and synchronisation, host-to-device copies, and capturing on the null
  stream: CUDA invalidates the capture (cudaErrorStreamCaptureInvalidated at its end);
- any cuBLAS call (cupy_backends/cuda/libs/cublas.pyx, setStream, which every cuBLAS wrapper
  calls first: NotImplementedError 'calling cuBLAS API during stream capture is currently
  unsupported'; CuPy's test_graph.py::test_stream_capture_failure_cublas).  CuPy raises before
  any CUDA call, so the capture stays valid.  What reaches cuBLAS: matmul, dot, inner,
  tensordot and ``@`` of floating arrays (cupy/_core/_routines_linalg.pyx, tensordot_core and
  matmul), except a product with one output element, a zero-size or 0-d operand, which CuPy
  computes with its own kernels; and ``asfortranarray`` of a 2-D C-contiguous float32/float64
  array (cupy/_core/core.pyx, _internal_asfortranarray: cuBLAS geam).
Work issued on another stream during a capture is not modelled and raises.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import _count

CUBLAS_REFUSED = "calling cuBLAS API during stream capture is currently unsupported"

# every device buffer alive (the roots of the stand-in's arrays): what a capture must put back
_live: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


class Capture:
    """The capture under way on ``stream``: replay closures, and the buffers it allocated."""

    def __init__(self, stream):
        self.stream = stream
        self.nodes: list = []
        self.kept: list = []  # weak references to the buffers allocated during the capture
        self.reads: dict = {}  # id -> weak reference of every buffer the work read
        self.before = [(weakref.ref(root), root.copy()) for root in list(_live.values())]
        self.invalid = ""  # why CUDA would have invalidated the capture


active: Capture | None = None


def allocated(root: np.ndarray) -> None:
    """A new device buffer (one a capture under way allocates)."""
    _live[id(root)] = root
    if active is not None:
        active.kept.append(weakref.ref(root))


def record(replay, what: str) -> None:
    """Operation ``what`` ran; inside a capture, ``replay()`` redoes it on the same memory."""
    if active is None:
        return
    _on_capturing_stream(what)
    active.nodes.append((what, replay))


def refuse(what: str, message: str) -> None:
    """A synchronising call or a transfer: refused while the current stream captures (CuPy's
    ``message``), which invalidates the capture, as CUDA does."""
    if active is None:
        return
    _on_capturing_stream(what)
    active.invalid = active.invalid or f"{what}: {message}"
    raise RuntimeError(message)


def refuse_cublas(what: str) -> None:
    """A cuBLAS call: refused while the current stream captures; the capture stays valid."""
    if active is not None:
        _on_capturing_stream(what)
        raise NotImplementedError(CUBLAS_REFUSED)


def product_uses_cublas(a, b, result_size: int) -> bool:
    """Whether CuPy computes this matmul/dot/inner/tensordot with cuBLAS (see the docstring)."""
    return (np.result_type(a.dtype, b.dtype).kind in "fc" and a.ndim > 0 and b.ndim > 0
            and a.size > 0 and b.size > 0 and (result_size > 1 or max(a.ndim, b.ndim) > 2))


def _on_capturing_stream(what: str) -> None:
    from ._stream import get_current_stream

    current = get_current_stream()
    if current is not active.stream:
        raise RuntimeError(f"{what} on {current!r} while {active.stream!r} captures: work on "
                           f"another stream during a capture is not modelled by the stand-in")


def begin(stream) -> None:
    global active
    if stream.ptr == 0:
        raise RuntimeError("cannot capture on the default (legacy) stream")
    if active is not None:
        raise RuntimeError(f"{active.stream!r} is capturing already (the stand-in models one "
                           f"capture at a time)")
    active = Capture(stream)


def end(stream) -> "Graph":
    global active
    capture = active
    if capture is None or capture.stream is not stream:
        raise RuntimeError(f"{stream!r} is not capturing (cudaErrorIllegalState)")
    active = None
    written = []
    for ref, saved in capture.before:  # the capture ran nothing
        root = ref()
        if root is not None and not np.array_equal(root, saved, equal_nan=root.dtype.kind in "fc"):
            np.copyto(root, saved)
            written.append(ref)
    for ref in capture.kept:  # allocated, never written: garbage until the graph runs
        root = ref()
        if root is not None:
            kind = root.dtype.kind
            root.fill(np.nan if kind in "fc" else True if kind == "b" else np.iinfo(root.dtype).max)
    if capture.invalid:
        raise RuntimeError(f"cudaErrorStreamCaptureInvalidated: {capture.invalid}")
    return Graph(capture.nodes, written + capture.kept, list(capture.reads.values()))


class Graph:
    """``cupy.cuda.Graph``: ``launch()`` is one launch that reruns every captured operation;
    ``names`` lists them (kernel or operation names, as the launch counters name them)."""

    def __init__(self, nodes, written, reads):
        self._nodes, self._written, self._reads = nodes, written, reads
        self.names = [what for what, _ in nodes]

    def launch(self, stream=None) -> None:
        """Run the captured work on ``stream`` (the current one): what it reads must be
        ordered before, what it writes is in flight on it after (fakecupy._stream)."""
        from . import _stream

        with stream if stream is not None else _stream.get_current_stream():
            for ref in self._reads:
                root = ref()
                if root is not None:
                    _stream.check_read(root, f"device array {root.dtype}{root.shape} (read by a "
                                             f"CUDA graph)")
        _count.launch("graph")
        for _, replay in self._nodes:
            replay()
        for ref in self._written:
            root = ref()
            if root is not None:
                _stream.wrote(root, "a CUDA graph's output", stream)


def reset() -> None:
    """A fresh device: no capture under way."""
    global active
    active = None
