"""The base class of every layer: parameters, buffers, random streams, gradients, child
modules, train/eval mode, ``.to(device)`` and ``state_dict``.

Names and argument order follow ``torch.nn``.  Differences a PyTorch user should know:
``backward(dout)`` is explicit (no autograd) and *sets* ``grads`` rather than accumulating.
"""
from __future__ import annotations

import numpy as np

from ..device import device_of, resolve_device, to_device, to_numpy
from ..rng import Generator


_EMPTY = object()  # "no forward cache held"; distinct from None, which dropout uses in eval
_USED = object()  # "the cache was taken by a backward": a second backward needs a new forward


class Module:
    """Base class: holds parameters (``param_names`` attributes), buffers (``buffer_names``:
    arrays that are state but not trained, such as running statistics), random streams (any
    :class:`gpucnn.rng.Generator` attribute), ``grads`` and child modules.

    State is found by walking the modules, so saving, loading and moving a model needs no
    knowledge of its layer types.
    """

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()

    def __init__(self):
        self.training = True
        self.grads: dict[str, object] = {}
        self._cache = _EMPTY

    # -- computation: subclasses define forward(x) and backward(dout, need_dx=True)
    def __call__(self, x):
        return self.forward(x)

    def _take_cache(self):
        """The forward's cache, released so big buffers (im2col columns) die with the step."""
        if self._cache is _EMPTY:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward before it")
        if self._cache is _USED:
            raise RuntimeError(f"{type(self).__name__}.backward called twice after one forward: "
                               f"the first released what the forward kept; run forward again")
        cache, self._cache = self._cache, _USED
        return cache

    # -- structure
    def children(self) -> list[tuple[str, "Module"]]:
        return []

    def _walk(self, prefix, own):
        """(dotted name, value) for ``own(module)``'s (name, value) pairs of every module."""
        for name, value in own(self):
            yield prefix + name, value
        for child_name, child in self.children():
            yield from child._walk(f"{prefix}{child_name}.", own)

    def named_parameters(self, prefix=""):
        return self._walk(prefix, lambda m: ((n, getattr(m, n)) for n in m.param_names
                                             if getattr(m, n) is not None))

    def named_buffers(self, prefix=""):
        return self._walk(prefix, lambda m: ((n, getattr(m, n)) for n in m.buffer_names
                                             if getattr(m, n) is not None))

    def named_generators(self, prefix=""):
        """Every random stream the model owns (dropout masks...), as (dotted name, Generator)."""
        return self._walk(prefix, lambda m: ((n, v) for n, v in vars(m).items()
                                             if isinstance(v, Generator)))

    def parameters(self) -> dict:
        """{dotted name: array}; the arrays themselves, so in-place updates reach the layer."""
        return dict(self.named_parameters())

    def gradients(self) -> dict:
        """{dotted name: gradient array} from the last backward."""
        out = {}
        for name in self.param_names:
            if name in self.grads and self.grads[name] is not None:
                out[name] = self.grads[name]
        for child_name, child in self.children():
            out.update({f"{child_name}.{k}": v for k, v in child.gradients().items()})
        return out

    def modules(self):
        yield self
        for _, child in self.children():
            yield from child.modules()

    # -- mode and device
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @property
    def device(self) -> str:
        for _, p in self.named_parameters():
            return device_of(p)
        return "cpu"

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to ``device`` ("cpu", "cuda" or "auto"); returns self.
        Random streams are device-independent and stay as they are."""
        device = resolve_device(device)
        for m in self.modules():
            for name in m.param_names + m.buffer_names:
                if getattr(m, name) is not None:
                    setattr(m, name, to_device(getattr(m, name), device))
            m.grads = {}
            m._cache = _EMPTY
        return self

    # -- persistence
    def state_dict(self) -> dict:
        """{dotted name: NumPy copy} of every parameter and buffer."""
        return {k: np.array(to_numpy(v)) for k, v in (*self.named_parameters(),
                                                      *self.named_buffers())}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (NumPy or CuPy) into the parameters and buffers, on their device and in
        their dtype; names and shapes must match."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        own = dict((*self.named_parameters(), *self.named_buffers()))
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {type(self).__name__}: "
                             f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        for name, param in own.items():
            value = state[name]
            if not hasattr(value, "shape"):
                raise TypeError(f"state_dict[{name!r}]: expected an array, got "
                                f"{type(value).__name__}")
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"state_dict[{name!r}].shape={tuple(value.shape)}: expected "
                                 f"{tuple(param.shape)}")
            param[...] = to_device(value, device_of(param))  # one copy, never via the host twice

    def extra_state(self) -> dict:
        """{dotted name: state} of every random stream, JSON-able (checkpoints store it)."""
        return {name: g.state() for name, g in self.named_generators()}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`; the model must own the same streams."""
        own = dict(self.named_generators())
        if set(own) != set(state):
            raise ValueError(f"random streams {sorted(state)}: expected this model's "
                             f"{sorted(own)}")
        for name, g in own.items():
            g.set_state(state[name])

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""
