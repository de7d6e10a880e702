"""Host-to-GPU copies on a side stream, so the next batch travels while the current one computes.

Imported only when a batch iterator serves a CUDA device, so the CPU path never imports CuPy.
Each array goes through one of two pinned host buffers (a copy from pinned memory is truly
asynchronous); a buffer is reused only after its previous copy has finished.

Device memory of an upload comes from the consumer's stream's pool, so it may go back to that
pool only once the consumer's stream is ordered after the copy: every upload is either
``ready()`` (used) or ``discard()``-ed (given up) before its arrays are dropped, and uploads still
pending when the uploader is collected are discarded then.
"""
from __future__ import annotations

import weakref

import cupy
import numpy as np


class _Upload:
    __slots__ = ("arrays", "event")

    def __init__(self, arrays, event):
        self.arrays, self.event = arrays, event


def _order_after(uploads: list) -> None:
    """Make the consumer's stream wait for every upload in ``uploads`` (and forget them)."""
    stream = cupy.cuda.get_current_stream()
    for up in uploads:
        stream.wait_event(up.event)
    uploads.clear()


class CudaUploader:
    """``upload(x, y)`` starts copying a host batch; ``ready(handle)`` returns it usable;
    ``discard(handle)`` gives it up safely."""

    SLOTS = 2

    def __init__(self):
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._buffers: dict[tuple[int, int], cupy.cuda.PinnedMemoryPointer] = {}
        self._events: list[cupy.cuda.Event | None] = [None] * self.SLOTS
        self._turn = 0
        self._pending: list[_Upload] = []
        # at collection (or interpreter exit, while CuPy is still importable)
        weakref.finalize(self, _order_after, self._pending)

    def _pinned(self, slot: int, which: int, arr: np.ndarray) -> np.ndarray:
        mem = self._buffers.get((slot, which))
        if mem is None or mem.size() < arr.nbytes:
            mem = cupy.cuda.alloc_pinned_memory(max(arr.nbytes, 1))
            self._buffers[(slot, which)] = mem
        host = np.frombuffer(mem, arr.dtype, arr.size).reshape(arr.shape)
        host[...] = arr
        return host

    def upload(self, *arrays: np.ndarray) -> _Upload:
        slot = self._turn % self.SLOTS
        self._turn += 1
        event = self._events[slot]
        if event is not None and not event.done:
            event.synchronize()      # the previous copy out of this slot must be done
        current = cupy.cuda.get_current_stream()
        # Device memory comes from the consumer's stream's pool; the copy waits for the work
        # already queued there, which may still be reading memory the pool hands back.
        devs = [cupy.empty(a.shape, a.dtype) for a in arrays]
        self.stream.wait_event(current.record())
        for which, (a, d) in enumerate(zip(arrays, devs)):
            d.set(self._pinned(slot, which, np.ascontiguousarray(a)), stream=self.stream)
        self._events[slot] = self.stream.record()
        handle = _Upload(tuple(devs), self._events[slot])
        self._pending.append(handle)
        return handle

    def ready(self, handle: _Upload) -> tuple:
        """The uploaded arrays, with the consumer's stream ordered after their copy."""
        self.discard(handle)
        return handle.arrays

    def discard(self, handle: _Upload) -> None:
        """Order the consumer's stream after the copy, so its arrays may be dropped."""
        self._pending.remove(handle)
        _order_after([handle])
