"""Streams and events, with enough ordering to catch a buffer read, or handed to another
allocation, while work on another stream may still be writing it.

Work runs at once on the CPU, so what the stand-in models is which writes a GPU would not yet
have ordered before a later access.  Every write into a device buffer -- an operation's
result, an ``out=``, a kernel's output, an upload, a CUDA graph's launch -- is made on a stream
(the current one; ``set(host, stream=s)`` and ``Graph.launch(s)`` name theirs) and stays in
flight until it is ordered: an event recorded after it is waited for by another stream
(``Stream.wait_event``) or by the host (``Event.synchronize``, ``Stream.synchronize``,
``Device.synchronize``, or a host read on that stream, which synchronises it).  Work on the
same stream is ordered by the stream, and the legacy null stream and a blocking stream
(``Stream(non_blocking=False)``) are ordered with each other (CUDA's implicit synchronisation
with the legacy default stream); a ``non_blocking=True`` stream is ordered with nothing.
(Waiting orders a write for every later reader, a simplification kinder than CUDA.)

Reading a buffer whose write is in flight raises :class:`StreamOrderError`.  Releasing a buffer
while a write from a stream other than the one it was allocated on is in flight records a
violation that the ``fake_cupy`` fixture turns into a test error: CuPy's pool hands the memory
to the next allocation on the allocating stream (cupy/cuda/memory.pyx keeps one arena per
stream), which that write may still overwrite.
"""
from __future__ import annotations

import time
import weakref

from . import _count, _graph

_SYNC_REFUSED = "the current stream is capturing, so synchronous API calls are disallowed"


class StreamOrderError(RuntimeError):
    """Device memory was read before the write into it was ordered before the read."""


violations: list[str] = []
_streams: "weakref.WeakSet[Stream]" = weakref.WeakSet()


class Write:
    """One write into a device buffer: its stream, its place there, and whether the rest of
    the program is ordered after it yet.  ``kind``: "copy" (an upload) or "write"."""

    def __init__(self, stream, seq, what, kind):
        self.stream, self.seq, self.what, self.kind, self.ordered = stream, seq, what, kind, False


def _implicitly_ordered(a: "Stream", b: "Stream") -> bool:
    """The legacy null stream and a blocking stream wait for each other's earlier work."""
    return (a.ptr == 0 and b.blocking) or (b.ptr == 0 and a.blocking)


def in_order(write: Write, reader: "Stream") -> bool:
    """Whether work issued now on ``reader`` comes after ``write``."""
    return write.ordered or write.stream is reader or _implicitly_ordered(write.stream, reader)


class Stream:
    """``cupy.cuda.Stream``: ``with s:`` makes it current; ``record()``, ``wait_event()``,
    ``synchronize()``, capture."""

    _ids = 0

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        Stream._ids += 1
        self.ptr = 0 if null else Stream._ids
        self.blocking = null or not non_blocking
        self._seq = 0
        self._writes: list[Write] = []
        _streams.add(self)

    def __repr__(self):
        return "Stream(null)" if self.ptr == 0 else f"Stream({self.ptr})"

    def _enqueue(self, what: str, kind: str = "write") -> Write:
        self._seq += 1
        w = Write(self, self._seq, what, kind)
        self._writes.append(w)
        return w

    def _order_until(self, seq: int) -> None:
        """Everything queued here up to ``seq`` is now ordered before later work."""
        for w in self._writes:
            if w.seq <= seq:
                w.ordered = True
        self._writes = [w for w in self._writes if not w.ordered]

    def record(self, event: "Event | None" = None) -> "Event":
        event = event if event is not None else Event()
        event.record(self)
        return event

    def wait_event(self, event: "Event") -> None:
        if event.stream is not None and event.stream is not self:
            event.stream._order_until(event.seq)

    def synchronize(self) -> None:
        _graph.refuse("Stream.synchronize", _SYNC_REFUSED)
        _count.sync("Stream.synchronize")
        self._order_until(self._seq)

    def begin_capture(self, mode=None) -> None:
        """Record the work issued on this stream until end_capture (see fakecupy._graph)."""
        _graph.begin(self)

    def end_capture(self) -> "_graph.Graph":
        return _graph.end(self)

    def is_capturing(self) -> bool:
        return _graph.active is not None and _graph.active.stream is self

    def use(self) -> "Stream":
        _current[-1:] = [self]
        return self

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()


class Event:
    """``cupy.cuda.Event``: marks a point of a stream's queue."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.stream, self.seq, self.time = None, 0, None

    def record(self, stream: Stream | None = None) -> None:
        self.stream = stream if stream is not None else get_current_stream()
        self.seq, self.time = self.stream._seq, time.perf_counter()

    def synchronize(self) -> None:
        _graph.refuse("Event.synchronize", _SYNC_REFUSED)
        _count.sync("Event.synchronize")
        if self.stream is not None:
            self.stream._order_until(self.seq)

    @property
    def done(self) -> bool:
        """Whether the work before the event is done; never true while a write before it is
        unordered, so code that polls cannot skip waiting."""
        return self.stream is None or all(w.seq > self.seq for w in self.stream._writes)


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events (host time: work runs when it is queued)."""
    for name, ev in (("start_event", start_event), ("end_event", end_event)):
        if ev.time is None:
            raise RuntimeError(f"{name}={ev!r}: expected a recorded Event")
    return (end_event.time - start_event.time) * 1e3


def synchronize_all() -> None:
    _graph.refuse("Device.synchronize", _SYNC_REFUSED)
    _count.sync("Device.synchronize")
    for s in list(_streams):
        s._order_until(s._seq)


# -- what device buffers know: the stream whose arena they came from, their last write

class Buffer:
    """A device buffer (the root of stand-in arrays, held weakly): its memory block, its device,
    the stream of the arena it was allocated from, and its latest write."""

    __slots__ = ("root", "block", "device", "arena", "write")

    def __init__(self, root, block, device: int, arena: "Stream"):
        self.root, self.block, self.device, self.arena = weakref.ref(root), block, device, arena
        self.write = None


buffers: dict[int, Buffer] = {}  # id(root array) -> its Buffer, while the root lives


def allocated(root, block, device: int) -> None:
    """A new device buffer ``root`` over ``block`` on ``device``, from the current stream's
    arena."""
    buffers[id(root)] = Buffer(root, block, device, get_current_stream())
    weakref.finalize(root, _released, id(root))


def buffer_at(ptr: int, nbytes: int, device: int):
    """The live root whose memory holds [ptr, ptr + nbytes) on ``device``, or None."""
    for buf in list(buffers.values()):
        root = buf.root()
        if (root is not None and buf.device == device and root.ctypes.data <= ptr
                and ptr + nbytes <= root.ctypes.data + root.nbytes):
            return root
    return None


def _released(key: int) -> None:
    buf = buffers.pop(key, None)
    w = None if buf is None else buf.write
    if w is not None and not in_order(w, buf.arena):
        violations.append(f"{w.what} was released while its {w.kind} on {w.stream!r} was still "
                          f"in flight (no stream waited for it and no event was synchronised): "
                          f"{buf.arena!r}, whose pool arena it returns to, may hand it out")


def wrote(root, what: str, stream: "Stream | None" = None, kind: str = "write") -> None:
    """``root`` was written on ``stream`` (the current one by default).  A capture runs
    nothing, so writes during one are not writes."""
    buf = buffers.get(id(root))
    if buf is None or _graph.active is not None:
        return
    buf.write = (stream or get_current_stream())._enqueue(what, kind)


def check_read(root, what: str) -> None:
    """Raise StreamOrderError if ``root``'s last write is not ordered before the current
    stream's next work."""
    if _graph.active is not None:  # a capture runs nothing: the graph reads at its launches
        _graph.active.reads[id(root)] = weakref.ref(root)
        return
    buf = buffers.get(id(root))
    w = None if buf is None else buf.write
    current = get_current_stream()
    if w is not None and not in_order(w, current):
        raise StreamOrderError(f"{what} read on {current!r} while its {w.kind} on {w.stream!r} "
                               f"({w.what}) is in flight: wait for that stream's event first")


def host_waited(stream: "Stream | None" = None) -> None:
    """The host waited for ``stream`` (the current one): a read back synchronises it."""
    s = stream or get_current_stream()
    s._order_until(s._seq)


null = Stream(null=True)
_current: list[Stream] = [null]


def get_current_stream(device_id=None) -> Stream:
    return _current[-1]


def in_flight() -> bool:
    """Whether some write is still unordered (its buffer may yet be released unsafely)."""
    return any(s._writes for s in list(_streams))


def reset() -> None:
    """A fresh device: the null stream current, no violations recorded, no capture."""
    _graph.reset()
    _current[:] = [null]
    violations.clear()
    _streams.clear()
    null._writes.clear()
    _streams.add(null)
