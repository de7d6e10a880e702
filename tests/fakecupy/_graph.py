"""CUDA graphs on the stand-in: ``Stream.begin_capture()``, ``end_capture()`` -> :class:`Graph`,
``Graph.launch()``.

A GPU's capture runs nothing: it records the work issued on the capturing stream, and a launch
of the graph runs it, reading and writing the same buffers each time.  The stand-in runs every
operation as it is issued (it needs the results' shapes), so a capture here records, for each
operation, a closure that redoes it into the same buffers, and at its end puts back every device
buffer that existed before it (the capture changed nothing there) and fills the buffers it
allocated with garbage (NaN, or the largest integer), which the graph keeps alive, as its
memory pool does on a GPU: code that reads a result before launching the graph sees the
garbage.  What CuPy and CUDA refuse while a stream captures is refused here too, and
invalidates the capture: device-to-host reads and synchronisation, host-to-device copies, and
capturing on the null stream.  Work issued on another stream during a capture is not modelled
and raises.  The stand-in's buffers are never reused, so the hazards of a GPU's memory pool
(another allocation handed the graph's memory between replays) do not show here.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import _count

# every device buffer alive (the roots of the stand-in's arrays): what a capture must put back
_live: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


class Capture:
    """The capture under way on ``stream``: replay closures, and the buffers it allocated."""

    def __init__(self, stream):
        self.stream = stream
        self.nodes: list = []
        self.kept: list[np.ndarray] = []
        self.before = [(root, root.copy()) for root in list(_live.values())]
        self.invalid = ""  # why CUDA would have invalidated the capture


active: Capture | None = None


def allocated(root: np.ndarray) -> None:
    """A new device buffer: the graph being captured keeps it (its pool would)."""
    _live[id(root)] = root
    if active is not None:
        active.kept.append(root)


def record(replay, what: str) -> None:
    """Operation ``what`` ran; inside a capture, ``replay()`` redoes it on the same buffers."""
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
    for root, saved in capture.before:  # the capture ran nothing
        np.copyto(root, saved)
    for root in capture.kept:  # allocated, never written: garbage until the graph runs
        kind = root.dtype.kind
        root.fill(np.nan if kind in "fc" else True if kind == "b" else np.iinfo(root.dtype).max)
    if capture.invalid:
        raise RuntimeError(f"cudaErrorStreamCaptureInvalidated: {capture.invalid}")
    return Graph(capture.nodes, capture.kept)


class Graph:
    """``cupy.cuda.Graph``: ``launch()`` is one launch that reruns every captured operation;
    ``names`` lists them (kernel or operation names, as the launch counters name them)."""

    def __init__(self, nodes, kept):
        self._nodes, self._kept = nodes, kept
        self.names = [what for what, _ in nodes]

    def launch(self, stream=None) -> None:
        _count.launch("graph")
        for _, replay in self._nodes:
            replay()


def reset() -> None:
    """A fresh device: no capture under way."""
    global active
    active = None
