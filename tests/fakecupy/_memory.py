"""``cupy.get_default_memory_pool()``, ``cupy.cuda.MemoryPool`` and ``using_allocator``, and
pinned host memory, with a settable limit so the out-of-memory paths of gpucnn can be driven
without a GPU."""
from __future__ import annotations

import contextlib


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size, total, limit):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: "
                         f"{total:,} bytes, limit set to: {limit:,} bytes).")


DEVICE_MEMORY = 16 * 2**30  # the stand-in device's memory


class MemoryPool:
    """Live bytes of the stand-in's device buffers.  ``total_bytes()`` is the peak since the
    last ``free_all_blocks()``, as a pool that keeps freed blocks would hold.  Allocating past
    the limit (``set_limit``, else the device's memory) raises OutOfMemoryError."""

    def __init__(self, allocator=None):
        self._used = self._peak = 0
        self._limit = 0

    def check(self, nbytes: int) -> None:
        limit = self._limit or DEVICE_MEMORY
        if self._used + nbytes > limit:
            raise OutOfMemoryError(nbytes, self._used, limit)

    def malloc(self, nbytes: int) -> None:
        self.check(nbytes)
        self._used += nbytes
        self._peak = max(self._peak, self._used)

    def free(self, nbytes: int) -> None:
        self._used -= nbytes

    def used_bytes(self) -> int:
        return self._used

    def total_bytes(self) -> int:
        return self._peak

    def free_bytes(self) -> int:
        return self._peak - self._used

    def free_all_blocks(self, stream=None) -> None:
        self._peak = self._used

    def set_limit(self, size=None, fraction=None) -> None:
        """``size`` bytes at most in use (0 or None: no limit)."""
        self._limit = int(size or 0)

    def get_limit(self) -> int:
        return self._limit


pool = MemoryPool()
_allocators: list[MemoryPool] = []


def current_pool() -> MemoryPool:
    """The pool new device buffers come from: the default one, or ``using_allocator``'s."""
    return _allocators[-1] if _allocators else pool


@contextlib.contextmanager
def using_allocator(allocator):
    """``cupy.cuda.using_allocator(pool.malloc)``: allocations inside come from that pool."""
    owner = getattr(allocator, "__self__", None)
    if not isinstance(owner, MemoryPool):
        raise TypeError(f"allocator={allocator!r}: the stand-in takes a MemoryPool's malloc")
    _allocators.append(owner)
    try:
        yield
    finally:
        _allocators.pop()


class MemoryPointer:
    """``cupy.cuda.MemoryPointer`` as ``ndarray.data`` gives it: the address in ``ptr``."""

    def __init__(self, ptr: int):
        self.ptr = ptr


class PinnedMemoryPointer(bytearray):
    """Page-locked host memory: a buffer NumPy can view (``np.frombuffer``)."""

    def size(self) -> int:
        return len(self)


def alloc_pinned_memory(nbytes: int) -> PinnedMemoryPointer:
    return PinnedMemoryPointer(int(nbytes))
