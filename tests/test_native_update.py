"""The native L2 and optimizer-update kernels (csrc/updates.h) against gpucnn.cpu's NumPy code.

sgd_update must equal NumPy's result bit for bit (same order of operations, no fused
multiply-add), on every instruction-set variant, at sizes that leave vector tails, and when
split over threads; sum_of_squares must agree with a float64 sum to 1e-7 relative.
"""
import numpy as np
import pytest

from gpucnn import cpu, cpu_threads, native
from test_native import DTYPES, isa, native_kernels, needs_native  # noqa: F401 (isa: a fixture)

SIZES = [0, 1, 7, 64, 1000, 4099, 70001]
RULES = [(0.0, False, 0.0), (0.0, False, 1e-3), (0.9, False, 0.0), (0.9, False, 1e-2),
         (0.9, True, 0.0), (0.9, True, 1e-2)]


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("momentum, nesterov, decay", RULES)
def test_sgd_update_equals_numpy_bit_for_bit(dtype, n, momentum, nesterov, decay):
    rng = np.random.default_rng(n)
    p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    p1, v1, p2, v2 = p.copy(), v.copy(), p.copy(), v.copy()
    native.sgd_update(p1, g, v1 if momentum else None, 0.05, decay, momentum, nesterov)
    cpu.sgd_update_numpy(p2, g, v2 if momentum else None, 0.05, momentum, nesterov, decay)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(v1, v2)


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sum_of_squares_matches_a_float64_sum(dtype, n):
    a = (np.random.default_rng(n).standard_normal(n) * 3).astype(dtype)
    ref = float(np.sum(a.astype(np.float64) ** 2))
    assert abs(native.sum_of_squares(a) - ref) <= 1e-7 * ref


@needs_native
def test_ranges_touch_only_their_elements():
    p, g = np.ones(100, np.float32), np.full(100, 2.0, np.float32)
    native.sgd_update(p, g, None, 0.5, 0.0, 0.0, False, i0=10, i1=20)
    assert (p[10:20] == 0).all() and (p[:10] == 1).all() and (p[20:] == 1).all()
    assert native.sum_of_squares(g, i0=90, i1=100) == 40.0


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_primitives_split_over_threads_equal_numpy(monkeypatch, dtype):
    """gpucnn.cpu runs the kernels over thread ranges (4 here): the same bits as NumPy."""
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "4")
    monkeypatch.setattr(cpu_threads, "MIN_ELEMENTWISE_PER_THREAD", 500)
    ranges, kernel = [], native.sgd_update

    def recording(*args, i0, i1):
        ranges.append((i0, i1))
        kernel(*args, i0=i0, i1=i1)

    monkeypatch.setattr(native, "sgd_update", recording)
    rng = np.random.default_rng(0)
    shape = (70, 50)
    p, g, v = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    p1, v1, p2, v2 = p.copy(), v.copy(), p.copy(), v.copy()
    cpu.sgd_update(p1, g, v1, 0.05, 0.9, True, 1e-3)
    cpu.sgd_update_numpy(p2, g, v2, 0.05, 0.9, True, 1e-3)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(v1, v2)
    assert sorted(ranges) == [(0, 875), (875, 1750), (1750, 2625), (2625, 3500)]
    y1, y2 = p.copy(), p.copy()
    cpu.add_scaled(y1, 1e-3, g)
    y2 += 1e-3 * g
    np.testing.assert_array_equal(y1, y2)
    ref = float(np.sum(p.astype(np.float64) ** 2))
    got = cpu.sum_of_squares(p)
    assert got.dtype == np.float64 and got.shape == () and abs(float(got) - ref) <= 1e-7 * ref


def test_cpu_numpy_path_keeps_strided_arrays(monkeypatch):
    """Arrays the kernels do not take (strided, other dtypes) go the NumPy way, same rule."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal((6, 8))[:, ::2]
    g = rng.standard_normal((6, 4))
    ref = p.copy()
    cpu.sgd_update_numpy(ref, g, None, 0.1, 0.0, False, 0.01)
    cpu.sgd_update(p, g, None, 0.1, 0.0, False, 0.01)
    np.testing.assert_array_equal(p, ref)
    assert abs(float(cpu.sum_of_squares(p)) - float((p ** 2).sum())) <= 1e-12 * float((p ** 2).sum())


@needs_native
def test_rejects_bad_arrays_naming_them():
    p = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match="g: expected a C-contiguous float32 or float64"):
        native.sgd_update(p, np.zeros(10, np.int32), None, 0.1, 0.0, 0.0, False)
    with pytest.raises(ValueError, match=r"g: \(5,\) float32, expected p's \(10,\) float32"):
        native.sgd_update(p, np.zeros(5, np.float32), None, 0.1, 0.0, 0.0, False)
    with pytest.raises(TypeError, match="a: expected a C-contiguous"):
        native.sum_of_squares(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="i0=3, i1=2"):
        native.sum_of_squares(p, i0=3, i1=2)
    with pytest.raises(ValueError, match="writable"):
        ro = np.zeros(10, np.float32)
        ro.flags.writeable = False
        native.sgd_update(ro, p, None, 0.1, 0.0, 0.0, False)
