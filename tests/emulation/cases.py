"""Shapes shared by the host-emulation and GPU kernel suites."""
import numpy as np

# (N, C, H, W, KH, KW, stride, pad): odd sizes, non-square kernels, stride > 1, padding,
# a kernel as large as the padded input, stride larger than the kernel.
CONV_CASES = [
    (2, 3, 7, 5, 3, 2, 2, 1),
    (1, 1, 1, 1, 1, 1, 1, 0),
    (3, 2, 8, 9, 3, 3, 1, 2),
    (2, 1, 6, 6, 8, 8, 1, 1),
    (1, 2, 9, 7, 2, 3, 3, 0),
    (2, 2, 10, 11, 5, 4, 3, 2),
]

# (N, C, H, W, size, stride): tiling windows, overlapping windows, gaps between windows, windows
# that do not tile the input, and a 17x17 window whose argmax needs int32.
POOL_CASES = [
    (2, 3, 8, 8, 2, 2),
    (2, 2, 7, 9, 3, 2),
    (1, 3, 6, 5, 3, 1),
    (2, 1, 11, 10, 2, 3),
    (1, 1, 1, 1, 1, 1),
    (1, 2, 19, 18, 17, 1),
]

# (seed, counter, n, p) for dropout masks; one counter makes counter + key + i wrap past 2^64.
DROPOUT_CASES = [
    (0, 0, 1, 0.5),
    (1, 12345, 1000, 0.3),
    (2, 7, 4099, 0.9),
    (3, (1 << 64) - 500, 1001, 0.5),
    (4, 99, 257, 0.0),
    (5, 0, 0, 0.5),
]


def tied(rng, shape, dtype):
    """Few distinct values, so most pooling windows hold several equal maxima."""
    return rng.integers(-2, 2, size=shape).astype(dtype)


def activation_input(rng, dtype):
    """Random values plus the edge cases: signed zeros, huge magnitudes, infinities, NaN."""
    big = 80.0 if dtype == np.float32 else 700.0
    x = (rng.standard_normal((3, 5, 7)) * 6).astype(dtype)
    x.flat[:8] = [0.0, -0.0, big, -big, np.inf, -np.inf, np.nan, 1e-30]
    return x
