"""Counter-based random streams: one seed gives bit-identical dropout masks on the CPU and GPU.

Element i of a draw is a pure function of (seed, stream, counter + i).  The same arithmetic runs
in NumPy here (:func:`random_bits`) and in kernels/dropout.cu, so a stream's whole state is three
integers (easy to checkpoint and to move between devices).  The mixer is SplitMix64's finaliser,
which passes BigCrush when fed a Weyl sequence, as it is here.
"""
from __future__ import annotations

import numpy as np

from .checks import check_int

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
UNIFORM_BITS = 24  # a float32 carries exactly 24 bits of uniform mantissa


def splitmix64(z):
    """SplitMix64 finaliser applied elementwise to a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """The 64-bit key of one random stream, mixed from (seed, stream) on the host."""
    z = np.array([(seed * 0x9E3779B97F4A7C15 + stream) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int(splitmix64(z + _GOLDEN)[0])


def random_bits(key: int, counter: int, n: int, xp=np):
    """``n`` uniform 24-bit integers (as uint64) for counters ``counter .. counter + n - 1``."""
    idx = xp.arange(n, dtype=xp.uint64)
    idx += xp.uint64((counter + key) & 0xFFFFFFFFFFFFFFFF)
    idx *= _GOLDEN
    return splitmix64(idx) >> np.uint64(64 - UNIFORM_BITS)


def drop_threshold(p: float) -> int:
    """An element is kept when its 24-bit draw is >= this integer (so P(drop) = p to 2^-24)."""
    return int(round(p * (1 << UNIFORM_BITS)))


class Generator:
    """A seeded random stream, the same on every device.

    :meth:`reserve` hands out counters for counter-based draws (dropout masks, on either
    device); ``host`` is a NumPy ``Generator`` for draws made on the host (initialisation,
    shuffling).  ``state()`` / ``set_state()`` round-trip everything, for checkpoints.
    """

    def __init__(self, seed: int | None = None, stream: int = 0):
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        self.seed = check_int("seed", seed, 0)
        self.stream = int(stream)
        self.key = stream_key(self.seed, self.stream)
        self.counter = 0
        self.host = np.random.default_rng([self.seed, self.stream])

    def reserve(self, n: int) -> int:
        """Claim ``n`` consecutive counters for one draw; returns the first."""
        first = self.counter
        self.counter += int(n)
        return first

    def spawn(self, stream: int) -> "Generator":
        """An independent stream with the same seed (e.g. one per dropout layer or per rank)."""
        return Generator(self.seed, stream)

    def state(self) -> dict:
        return {"seed": self.seed, "stream": self.stream, "counter": self.counter,
                "host": self.host.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed, self.stream = int(state["seed"]), int(state["stream"])
        self.key = stream_key(self.seed, self.stream)
        self.counter = int(state["counter"])
        self.host.bit_generator.state = state["host"]

    def __repr__(self):
        return f"Generator(seed={self.seed}, stream={self.stream}, counter={self.counter})"
