"""The stand-in's GPUs: how many the host has, which ones this process sees, which one is
current, and which ones it has created a context on; the driver and runtime versions.

The host is read from the environment when the stand-in is installed (:func:`reset`):
``FAKECUPY_GPUS`` GPUs (default 1), then, only where ``FAKECUPY_GPUS`` is set (so a GPU
machine's own setting never reaches the stand-in), ``CUDA_VISIBLE_DEVICES`` as CUDA reads it (a
comma list of host GPU indices, stopping at the first that is not one; empty hides them all;
unset shows all), ``FAKECUPY_RUNTIME``, the CUDA runtime version CuPy was built with (default
``RUNTIME``, CUDA 12.4 as 12040), and ``FAKECUPY_DRIVER``, the CUDA version the driver supports
(default the runtime's).  What each rule mirrors:

- Device ordinals are positions in the visible list (cuda_runtime_api.h, CUDA_VISIBLE_DEVICES).
- ``runtime.getDeviceCount`` raises ``cudaErrorInsufficientDriver`` (35) when the driver is
  older than the runtime's major version and ``cudaErrorNoDevice`` (100) when no GPU is
  visible; CuPy raises ``CUDARuntimeError('<name>: <message>')`` for any error status
  (cupy_backends/cuda/api/runtime.pyx, check_status and CUDARuntimeError).
- ``runtime.setDevice`` creates the device's primary context (CUDA 12 and later initialise it
  in cudaSetDevice); so does the first allocation or launch on the current device.
  ``getDevice``, ``getDeviceProperties`` and ``deviceGetPCIBusId`` create none.  The current
  device is per host thread, 0 at first, as CUDA's.
- ``cupy.cuda.Device`` (cupy/cuda/device.pyx): ``use()`` sets the device; ``with`` pushes the
  current one, sets its own and sets the pushed one again on exit (a context on both);
  ``compute_capability``, ``mem_info`` and ``synchronize()`` set their device and then the
  previous one again, so each touches the device that was current.

``contexts`` lists the host GPUs a context was created on, in order: what a test of "nothing
touches GPU 0 from rank 1" reads.
"""
from __future__ import annotations

import os
import threading

RUNTIME = 12040
ERRORS = {35: ("cudaErrorInsufficientDriver",
               "CUDA driver version is insufficient for CUDA runtime version"),
          100: ("cudaErrorNoDevice", "no CUDA-capable device is detected"),
          101: ("cudaErrorInvalidDevice", "invalid device ordinal")}


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``: ``status`` and '<name>: <message>'."""

    def __init__(self, status: int):
        self.status = status
        name, message = ERRORS[status]
        super().__init__(f"{name}: {message}")


class Host:
    """The machine as the process sees it (see the module docstring)."""

    def __init__(self, gpus: int, visible: list, driver: int, runtime: int = None):
        self.gpus, self.visible, self.driver = gpus, visible, driver
        self.runtime = RUNTIME if runtime is None else runtime
        self.contexts: list[int] = []  # host GPU indices, in the order their contexts appeared
        self._local = threading.local()

    @property
    def current(self) -> int:
        return getattr(self._local, "device", 0)

    def physical(self, ordinal: int) -> int:
        """The host GPU behind a device ordinal of this process."""
        self.check(ordinal)
        return self.visible[ordinal]

    def check(self, ordinal: int) -> None:
        if not 0 <= int(ordinal) < len(self.visible):
            raise CUDARuntimeError(101)

    def count(self) -> int:
        if self.driver < self.runtime // 1000 * 1000:
            raise CUDARuntimeError(35)
        if not self.visible:
            raise CUDARuntimeError(100)
        return len(self.visible)

    def touch(self, ordinal: int | None = None) -> None:
        """A context on the device (the current one by default), created if there was none."""
        self.count()
        gpu = self.physical(self.current if ordinal is None else ordinal)
        if gpu not in self.contexts:
            self.contexts.append(gpu)

    def set_device(self, ordinal: int) -> None:
        self.touch(int(ordinal))
        self._local.device = int(ordinal)


def _visible(gpus: int) -> list:
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(gpus))
    seen = []
    for item in spec.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) >= gpus or int(item) in seen:
            break
        seen.append(int(item))
    return seen


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected an integer") from None


host = Host(1, [0], RUNTIME)


def reset() -> Host:
    """A fresh process on the host the environment describes.  Without ``FAKECUPY_GPUS`` the
    host has one GPU and the real ``CUDA_VISIBLE_DEVICES`` (a GPU machine's) is not read."""
    global host
    described = "FAKECUPY_GPUS" in os.environ
    gpus = _env_int("FAKECUPY_GPUS", 1)
    runtime = _env_int("FAKECUPY_RUNTIME", RUNTIME)
    host = Host(gpus, _visible(gpus) if described else list(range(gpus)),
                _env_int("FAKECUPY_DRIVER", runtime), runtime)
    return host


def pci_bus_id(gpu: int) -> str:
    return f"0000:{0x18 + 0x10 * gpu:02X}:00.0"


def uuid(gpu: int) -> bytes:
    return b"fakecupy-gpu-%02d" % gpu


class Device:
    """``cupy.cuda.Device``."""

    def __init__(self, device=None):
        self.id = host.current if device is None else int(device)

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    __hash__ = None

    def use(self) -> "Device":
        host.set_device(self.id)
        return self

    def __enter__(self):
        stack = host._local.__dict__.setdefault("stack", [])
        stack.append(host.current)
        if self.id != host.current:
            host.set_device(self.id)
        return self

    def __exit__(self, *exc):
        host.set_device(host._local.stack.pop())

    def _on_it(self, fn):
        """``fn()`` with this device current, then the previous one set again (CuPy's way)."""
        previous = host.current
        try:
            host.set_device(self.id)
            return fn()
        finally:
            host.set_device(previous)

    @property
    def compute_capability(self) -> str:
        return self._on_it(lambda: "90")

    @property
    def mem_info(self):
        from ._memory import DEVICE_MEMORY, pool

        return self._on_it(lambda: (DEVICE_MEMORY - pool.used_bytes(), DEVICE_MEMORY))

    @property
    def pci_bus_id(self) -> str:
        return pci_bus_id(host.physical(self.id))

    def synchronize(self) -> None:
        from . import _stream

        self._on_it(_stream.synchronize_all)
