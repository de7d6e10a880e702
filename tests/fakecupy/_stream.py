"""Streams and events with just enough ordering to catch the hazards of asynchronous uploads.

Work runs at once on the CPU, so the only ordering the stand-in models is that of copies made
with ``ndarray.set(host, stream=s)`` on a stream other than the current one: such a copy is
*in flight* until an event recorded after it on ``s`` is waited for by another stream
(``Stream.wait_event``) or by the host (``Event.synchronize``, ``Stream.synchronize``,
``Device.synchronize``).  Reading an in-flight array raises :class:`StreamOrderError`; releasing
its buffer (the last reference dies, so a real pool would hand the memory to the next
allocation while the copy still writes it) records a violation that the ``fake_cupy`` fixture
turns into a test error.
"""
from __future__ import annotations

import time
import weakref

from . import _count, _graph

_SYNC_REFUSED = "the current stream is capturing, so synchronous API calls are disallowed"


class StreamOrderError(RuntimeError):
    """Device memory was read before the copy writing it was ordered before the read."""


violations: list[str] = []
_streams: "weakref.WeakSet[Stream]" = weakref.WeakSet()


class Upload:
    """One asynchronous copy into a device buffer: its stream, its place there, and whether
    the rest of the program is ordered after it yet."""

    def __init__(self, stream, seq, what):
        self.stream, self.seq, self.what, self.ordered = stream, seq, what, False


def released(upload: Upload) -> None:
    """Called when the buffer an upload writes is freed."""
    if not upload.ordered:
        violations.append(f"{upload.what} was released while its copy on {upload.stream!r} was "
                          f"still in flight (no stream waited for it and no event was synchronised)")


class Stream:
    """``cupy.cuda.Stream``: ``with s:`` makes it current; ``record()``, ``wait_event()``,
    ``synchronize()``."""

    _ids = 0

    def __init__(self, null=False, non_blocking=False, ptds=False):
        Stream._ids += 1
        self.ptr = 0 if null else Stream._ids
        self._seq = 0
        self._uploads: list[Upload] = []
        _streams.add(self)

    def __repr__(self):
        return "Stream(null)" if self.ptr == 0 else f"Stream({self.ptr})"

    def enqueue_upload(self, what: str) -> Upload:
        self._seq += 1
        up = Upload(self, self._seq, what)
        self._uploads.append(up)
        return up

    def order_until(self, seq: int) -> None:
        """Everything queued here up to ``seq`` is now ordered before later work."""
        for up in self._uploads:
            if up.seq <= seq:
                up.ordered = True
        self._uploads = [u for u in self._uploads if not u.ordered]

    def record(self, event: "Event | None" = None) -> "Event":
        event = event if event is not None else Event()
        event.record(self)
        return event

    def wait_event(self, event: "Event") -> None:
        if event.stream is not None and event.stream is not self:
            event.stream.order_until(event.seq)

    def synchronize(self) -> None:
        _graph.refuse("Stream.synchronize", _SYNC_REFUSED)
        _count.sync("Stream.synchronize")
        self.order_until(self._seq)

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
            self.stream.order_until(self.seq)

    def query(self) -> bool:
        """Whether the work before the event is done; never true for an unordered upload, so
        code that polls cannot skip waiting."""
        return self.stream is None or all(u.seq > self.seq for u in self.stream._uploads)

    @property
    def done(self) -> bool:
        return self.query()


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events (host time: work runs when it is queued)."""
    for name, ev in (("start", start), ("end", end)):
        if ev.time is None:
            raise RuntimeError(f"{name}={ev!r}: expected a recorded Event")
    return (end.time - start.time) * 1e3


def synchronize_all() -> None:
    _graph.refuse("Device.synchronize", _SYNC_REFUSED)
    _count.sync("Device.synchronize")
    for s in list(_streams):
        s.order_until(s._seq)


null = Stream(null=True)
_current: list[Stream] = [null]


def get_current_stream() -> Stream:
    return _current[-1]


def in_flight() -> bool:
    """Whether some upload is still unordered (its buffer may yet be released unsafely)."""
    return any(s._uploads for s in list(_streams))


def reset() -> None:
    """A fresh device: the null stream current, no violations recorded, no capture."""
    _graph.reset()
    _current[:] = [null]
    violations.clear()
    _streams.clear()
    null._uploads.clear()
    _streams.add(null)
