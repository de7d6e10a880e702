"""``cupy.get_default_memory_pool()``, ``cupy.cuda.MemoryPool``, ``using_allocator``, and pinned
host memory.  The pool hands freed blocks out again as CuPy's does (cupy/cuda/memory.pyx,
SingleDeviceMemoryPool), so code that keeps using memory it gave back -- or a CUDA graph whose
buffers another allocation is handed between replays -- shows it:

- sizes are rounded up to 512 bytes (``_round_size``, ALLOCATION_UNIT_SIZE);
- each device, and on it each stream, has its own arena of free chunks (``_arena``, keyed by
  the stream current at ``malloc``); a freed chunk goes back to the arena it came from;
- ``malloc`` takes the smallest free chunk that fits and splits off the rest (best fit,
  ``get_chunk``), else allocates a new block of exactly the rounded size; freeing merges a
  chunk with free neighbours of the same block;
- ``free_all_blocks`` releases blocks that are entirely free; ``total_bytes`` is every block
  held, ``used_bytes`` the chunks in use; ``set_limit`` bounds the blocks held.

The memory is NumPy's: each array the stand-in makes views its chunk's bytes (its own root,
whose death frees the chunk).
"""
from __future__ import annotations

import bisect
import contextlib
import ctypes
import weakref

import numpy as np

UNIT = 512
DEVICE_MEMORY = 16 * 2**30  # each stand-in device's memory


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size, total, limit):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: "
                         f"{total:,} bytes, limit set to: {limit:,} bytes).")


class Block:
    """Memory the pool allocated at once (cudaMalloc's share): host bytes and their address.
    A bytearray, not a NumPy array, so the arrays over it are roots of their own (NumPy
    records the exporting array as a view's base)."""

    __slots__ = ("mem", "address", "__weakref__")

    def __init__(self, nbytes: int):
        self.mem = bytearray(nbytes)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.mem))

    @property
    def nbytes(self) -> int:
        return len(self.mem)


class _Chunk:
    """Bytes [offset, offset + size) of a block, in the arena of stream ``stream``."""

    __slots__ = ("block", "offset", "size", "stream", "free", "prev", "next")

    def __init__(self, block, offset, size, stream, prev=None, nxt=None):
        self.block, self.offset, self.size, self.stream = block, offset, size, stream
        self.free, self.prev, self.next = False, prev, nxt


class _Device:
    """One device's share of a pool: blocks held, bytes in use, free chunks per stream."""

    def __init__(self):
        self.blocks: list[Block] = []
        self.used = 0
        self.arenas: dict[int, list] = {}  # stream ptr -> [(size, id, chunk)], sorted

    def release(self, chunk: _Chunk) -> None:
        chunk.free = True
        bisect.insort(self.arenas.setdefault(chunk.stream, []), (chunk.size, id(chunk), chunk))

    def unlist(self, chunk: _Chunk) -> None:
        self.arenas[chunk.stream].remove((chunk.size, id(chunk), chunk))


class MemoryPool:
    """``cupy.cuda.MemoryPool``; ``used_bytes`` and the other totals are the current device's."""

    def __init__(self, allocator=None):
        self._devices: dict[int, _Device] = {}
        self._limit = 0

    def _device(self) -> _Device:
        from ._devices import host

        return self._devices.setdefault(host.current, _Device())

    def malloc(self, size: int) -> "MemoryPointer":
        """At least ``size`` bytes on the current device, from the current stream's arena."""
        from . import _stream
        from ._devices import host

        host.touch()
        if not size:
            return MemoryPointer(_Memory(_Chunk(Block(UNIT), 0, 0, 0), host.current), 0)
        dev, rounded = self._device(), -(-int(size) // UNIT) * UNIT
        stream = _stream.get_current_stream().ptr
        free = dev.arenas.setdefault(stream, [])
        at = bisect.bisect_left(free, (rounded, -1))
        if at < len(free):
            chunk = free.pop(at)[2]
            if chunk.size > rounded:  # the rest becomes a free chunk of its own
                rest = _Chunk(chunk.block, chunk.offset + rounded, chunk.size - rounded, stream,
                              chunk, chunk.next)
                if chunk.next is not None:
                    chunk.next.prev = rest
                chunk.next, chunk.size = rest, rounded
                dev.release(rest)
        else:
            total = sum(b.nbytes for b in dev.blocks)
            limit = self._limit or DEVICE_MEMORY
            if total + rounded > limit:
                raise OutOfMemoryError(int(size), total, limit)
            block = Block(rounded)
            dev.blocks.append(block)
            chunk = _Chunk(block, 0, rounded, stream)
        chunk.free = False
        dev.used += chunk.size
        return MemoryPointer(_Memory(chunk, host.current, (self, dev)), 0)

    def _free(self, chunk: _Chunk, dev: _Device) -> None:
        """Give ``chunk`` back to its arena, merged with the free chunks beside it."""
        dev.used -= chunk.size
        for side in ("next", "prev"):
            other = getattr(chunk, side)
            if other is None or not other.free:
                continue
            dev.unlist(other)
            first, second = (chunk, other) if side == "next" else (other, chunk)
            first.size += second.size
            first.next = second.next
            if second.next is not None:
                second.next.prev = first
            chunk = first
        dev.release(chunk)

    def used_bytes(self) -> int:
        return self._device().used

    def total_bytes(self) -> int:
        return sum(b.nbytes for b in self._device().blocks)

    def free_bytes(self) -> int:
        return self.total_bytes() - self.used_bytes()

    def free_all_blocks(self, stream=None) -> None:
        """Release every block that is one free chunk (of ``stream``'s arena, or of all)."""
        dev = self._device()
        for ptr, free in dev.arenas.items():
            if stream is not None and ptr != stream.ptr:
                continue
            for entry in [e for e in free if e[2].offset == 0 and e[2].next is None]:
                free.remove(entry)
                dev.blocks = [b for b in dev.blocks if b is not entry[2].block]

    def set_limit(self, size=None, fraction=None) -> None:
        """``size`` bytes of blocks at most (0 or None: the device's memory)."""
        self._limit = int(size or 0)

    def get_limit(self) -> int:
        return self._limit


class _Memory:
    """What a MemoryPointer points into (CuPy's BaseMemory): a chunk of a device's memory,
    and the pool and device it goes back to."""

    def __init__(self, chunk: _Chunk, device_id: int, owner=None):
        self.chunk, self.device_id, self.owner = chunk, device_id, owner
        self.ptr = chunk.block.address + chunk.offset


class MemoryPointer:
    """``cupy.cuda.MemoryPointer``: ``ptr`` the device address, ``device_id`` its device."""

    def __init__(self, mem, offset):
        self.mem, self.ptr, self.device_id = mem, mem.ptr + offset, mem.device_id


def array_over(pointer: MemoryPointer, shape, dtype, strides=None) -> np.ndarray:
    """An array over the memory ``pointer`` got from ``malloc``, its own root (its base is the
    block's bytearray, not an array); when it dies the chunk goes back to its pool."""
    dtype, chunk = np.dtype(dtype), pointer.mem.chunk
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    view = memoryview(chunk.block.mem)[chunk.offset:chunk.offset + nbytes]
    a = np.ndarray(shape, dtype, buffer=view, strides=strides)
    if pointer.mem.owner is not None:
        pool, dev = pointer.mem.owner
        weakref.finalize(a, pool._free, chunk, dev)
    return a


class _Address:
    """The memory behind ``ndarray.data``: an address on a device."""

    def __init__(self, ptr: int, device_id: int):
        self.ptr, self.device_id = ptr, device_id


pool = MemoryPool()
_allocators: list[MemoryPool] = []


def current_pool() -> MemoryPool:
    """The pool new device buffers come from: the default one, or ``using_allocator``'s."""
    return _allocators[-1] if _allocators else pool


@contextlib.contextmanager
def using_allocator(allocator=None):
    """``cupy.cuda.using_allocator(pool.malloc)``: allocations inside come from that pool."""
    owner = getattr(allocator, "__self__", None)
    if not isinstance(owner, MemoryPool):
        raise TypeError(f"allocator={allocator!r}: the stand-in takes a MemoryPool's malloc")
    _allocators.append(owner)
    try:
        yield
    finally:
        _allocators.pop()


def reset() -> None:
    """A fresh device: the default pool empty."""
    global pool
    pool = MemoryPool()
    _allocators.clear()


class PinnedMemoryPointer(bytearray):
    """Page-locked host memory: a buffer NumPy can view (``np.frombuffer``)."""

    def size(self) -> int:
        return len(self)


def alloc_pinned_memory(size: int) -> PinnedMemoryPointer:
    return PinnedMemoryPointer(int(size))
