"""kernels/gemm.cu on the CPU: the GEMM kernels compiled by g++ against the CUDA emulation and
launched by the host code gpucnn.cuda uses (gpucnn.cuda.gemm_host through Primitives), against
NumPy's float64 product: every operand layout (n, t, a strided view), sizes off the 64 x 64
tile and the 16-wide K slice, more tiles than blocks, split K, empty sizes, and the same bits
every run.  The error bound is the classical one for a sum of K products: within
K * eps * (|A| @ |B|) of the exact product, elementwise."""
import shutil

import numpy as np
import pytest

from gpucnn.cuda.host import Primitives

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="g++ is not installed: the kernel host emulation needs it")

# (M, K, N): one element; smaller than a tile; exactly a tile and a slice; off the tile in every
# dimension with a K not a multiple of 16; more rows than columns; a long K
SHAPES = [(1, 1, 1), (3, 7, 5), (64, 16, 64), (70, 45, 130), (129, 33, 65), (5, 600, 9)]
SUFFIX = {np.float32: "f32", np.float64: "f64"}


@pytest.fixture
def prims(emulator):
    return Primitives(np, emulator.launch)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def _pair(rng, m, k, n, dtype):
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def _layout(a, how):
    """a itself (n), a transposed view of transposed memory (t), or a strided view (s)."""
    if how == "n":
        return a
    if how == "t":
        return np.ascontiguousarray(a.T).T
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    return wide[:, ::2]


def assert_product(got, a, b):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = a.shape[1] * np.finfo(a.dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert got.shape == exact.shape and got.dtype == a.dtype and got.flags.c_contiguous
    excess = np.abs(got - exact) - bound
    assert (excess <= 0).all(), f"{int((excess > 0).sum())} elements off, worst by {excess.max():.3g}"


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ab", ["nn", "nt", "tn", "tt"])
def test_every_layout_matches_numpy(prims, emulator, dtype, shape, ab):
    a, b = _pair(np.random.default_rng(0), *shape, dtype)
    va, vb = _layout(a, ab[0]), _layout(b, ab[1])
    emulator.launches.clear()
    assert_product(prims.gemm(va, vb), a, b)
    read_as = "".join("n" if v.flags.c_contiguous else "t" for v in (va, vb))  # (1, K): both
    assert emulator.launches[0][0] == f"gemm_{read_as}_{SUFFIX[dtype]}"  # no transposed copy


def test_a_strided_view_is_copied_then_multiplied(prims, dtype):
    a, b = _pair(np.random.default_rng(1), 9, 20, 7, dtype)
    assert_product(prims.gemm(_layout(a, "s"), _layout(b, "s")), a, b)


def test_more_tiles_than_blocks_walk_the_grid(emulator, dtype):
    """Two blocks for 3 x 2 tiles: each block takes every second tile."""
    a, b = _pair(np.random.default_rng(2), 150, 40, 100, dtype)
    few = Primitives(np, emulator.launch, max_blocks=2)
    emulator.launches.clear()
    assert_product(few.gemm(a, b), a, b)
    assert [grid for _, grid, _ in emulator.launches] == [2]


@pytest.mark.parametrize("k", [257, 1000, 33])
def test_split_k_sums_its_partial_products_in_order(emulator, dtype, k):
    """A small split size forces the split path: K in slices of 32 (or its remainder), each
    split's partial product written apart, then added by gemm_sum_splits."""
    prims = Primitives(np, emulator.launch, max_blocks=7)
    prims.split_blocks, prims.split_min_k = 64, 32
    a, b = _pair(np.random.default_rng(3), 70, k, 20, dtype)
    splits, klen = prims._splits(70, 20, k)
    assert klen % 16 == 0 and (splits - 1) * klen < k <= splits * klen
    emulator.launches.clear()
    assert_product(prims.gemm(a, b), a, b)
    names = [e.rsplit("_", 1)[0] for e, _, _ in emulator.launches]
    assert names == (["gemm_nn", "gemm_sum_splits"] if splits > 1 else ["gemm_nn"])
    assert splits > 1 or k < 64


def test_the_split_is_fixed_by_the_shapes():
    prims = Primitives(np, None)
    assert prims._splits(32, 147, 524288) == prims._splits(32, 147, 524288)
    assert prims._splits(32, 147, 524288)[0] == 171  # the conv's weight gradient at (a) b512
    assert prims._splits(8192, 500, 512) == (1, 512)  # 1024 tiles: no split
    assert prims._splits(5, 5, 100) == (1, 112)       # too short a K to split


def test_the_same_bits_every_run(emulator):
    prims = Primitives(np, emulator.launch)
    prims.split_min_k = 64
    a, b = _pair(np.random.default_rng(4), 33, 700, 65, np.float32)
    first = prims.gemm(a, b)
    for _ in range(2):
        np.testing.assert_array_equal(prims.gemm(a, b), first)


def test_empty_sizes_give_empty_or_zero_products(prims, dtype):
    for m, k, n in ((0, 3, 4), (3, 4, 0), (3, 0, 4)):
        got = prims.gemm(np.ones((m, k), dtype), np.ones((k, n), dtype))
        np.testing.assert_array_equal(got, np.zeros((m, n), dtype))


def test_matmul_is_cublas_unless_gemm_kernels_is_set(emulator):
    prims = Primitives(np, emulator.launch)
    a, b = _pair(np.random.default_rng(5), 4, 6, 3, np.float64)
    emulator.launches.clear()
    np.testing.assert_array_equal(prims.matmul(a, b), a @ b)
    assert emulator.launches == []  # NumPy's @ stands in for CuPy's cuBLAS here
    prims.gemm_kernels = True
    assert_product(prims.matmul(a.T.T, b), a, b)
    assert [e for e, _, _ in emulator.launches] == ["gemm_nn_f64"]


def test_bad_operands_are_one_clear_error(prims):
    with pytest.raises(ValueError, match=r"matmul: a.shape=\(2, 3\) and b.shape=\(4, 5\): "
                                         r"expected \(M, K\) and \(K, N\)"):
        prims.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"gemm: a.shape=\(3, 7\) and b.shape=\(3, 7\)"):
        prims.gemm(np.ones((3, 7)), np.ones((3, 7)))
    with pytest.raises(TypeError, match="gemm: a.dtype=float32 and b.dtype=float64"):
        prims.gemm(np.ones((2, 3), np.float32), np.ones((3, 5)))
    with pytest.raises(TypeError, match="a.dtype=float16: the CUDA kernels take float32, float64"):
        prims.gemm(np.ones((2, 3), np.float16), np.ones((3, 5), np.float16))


def test_a_split_ends_where_its_klen_says_even_inside_a_k_slice(emulator):
    """The kernel's contract holds for any klen (the host rounds it to whole slices): split s
    sums k in [s * klen, (s + 1) * klen) only."""
    from gpucnn.cuda.kernels import pack_args

    a, b = _pair(np.random.default_rng(6), 20, 50, 30, np.float64)
    klen, splits = 10, 5
    parts = np.empty(splits * 20 * 30)
    emulator.launch("gemm_nn", "gemm_nn_f64", splits, 256,
                    pack_args("gemm_nn", {"T": "double"}, (a, b, parts, 20, 30, 50, klen, splits)))
    for s, part in enumerate(parts.reshape(splits, 20, 30)):
        ks = slice(s * klen, (s + 1) * klen)
        assert_product(part, a[:, ks], b[ks])
