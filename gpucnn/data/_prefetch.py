"""Host-to-GPU copies on a side stream, so the next batch travels while the current one computes.

Imported only when a batch iterator serves a CUDA device, so the CPU path never imports CuPy.
Each array goes through one of two pinned host buffers (a copy from pinned memory is truly
asynchronous); a buffer is reused only after its previous copy has finished.
"""
from __future__ import annotations

import cupy
import numpy as np


class CudaUploader:
    """``upload(x, y)`` starts copying a host batch; ``ready(handle)`` returns it usable."""

    SLOTS = 2

    def __init__(self):
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._buffers: dict[tuple[int, int], cupy.cuda.PinnedMemoryPointer] = {}
        self._events: list[cupy.cuda.Event | None] = [None] * self.SLOTS
        self._turn = 0

    def _pinned(self, slot: int, which: int, arr: np.ndarray) -> np.ndarray:
        mem = self._buffers.get((slot, which))
        if mem is None or mem.size() < arr.nbytes:
            mem = cupy.cuda.alloc_pinned_memory(max(arr.nbytes, 1))
            self._buffers[(slot, which)] = mem
        host = np.frombuffer(mem, arr.dtype, arr.size).reshape(arr.shape)
        host[...] = arr
        return host

    def upload(self, *arrays: np.ndarray):
        slot = self._turn % self.SLOTS
        self._turn += 1
        if self._events[slot] is not None:
            self._events[slot].synchronize()      # the previous copy out of this slot is done
        current = cupy.cuda.get_current_stream()
        # Device memory comes from the consumer's stream's pool; the copy waits for the work
        # already queued there, which may still be reading memory the pool hands back.
        devs = [cupy.empty(a.shape, a.dtype) for a in arrays]
        self.stream.wait_event(current.record())
        for which, (a, d) in enumerate(zip(arrays, devs)):
            d.set(self._pinned(slot, which, np.ascontiguousarray(a)), stream=self.stream)
        event = self.stream.record()
        self._events[slot] = event
        return devs, event

    def ready(self, handle):
        devs, event = handle
        cupy.cuda.get_current_stream().wait_event(event)
        return tuple(devs)
