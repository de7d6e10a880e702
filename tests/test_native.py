"""gpucnn.native (the optional C extension) against NumPy references.

References: gpucnn.cpu's max-pool (the semantics the native pool must reproduce bit for bit) and
per-tap einsum formulas written from the convolution's definition (tests/test_native_conv.py
also checks every convolution mode against tests/reference.py's naive loops).  Errors are
measured relative to the largest reference magnitude (float64: 1e-12, float32: 1e-5); argmax
must match exactly.

Kernel tests run once per instruction-set variant the CPU has (AVX-512, AVX2, baseline).
Skipped with the reason when the extension is not built, unless GPUCNN_REQUIRE_NATIVE=1 (CI),
which turns "not built" into a failure.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpucnn import cpu, env, native

REQUIRE = env.switch("GPUCNN_REQUIRE_NATIVE")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_native = pytest.mark.skipif(not native.available and not REQUIRE,
                                  reason=f"gpucnn._native unavailable: {native.reason}")
DTYPES = [np.float64, np.float32]


@pytest.fixture(params=["avx512f", "avx2", "baseline"])
def isa(request):
    """Each kernel test runs on every instruction-set variant this CPU can execute."""
    got = native.use_isa(request.param)
    try:
        if got != request.param:
            pytest.skip(f"this CPU lacks {request.param} (best below it: {got})")
        yield got
    finally:
        native.use_isa("avx512f")


def native_kernels(test):
    return needs_native(pytest.mark.usefixtures("isa")(test))
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def assert_close(got, ref):
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-30)
    err = float(np.abs(got.astype(np.float64) - ref).max(initial=0.0))
    assert err <= TOL[got.dtype] * scale, f"max error {err:.3g} vs scale {scale:.3g} ({got.dtype})"


def layout(a, kind):
    """The same values as a (N, C, H, W) array stored NCHW, (C, N, H, W), column-strided, or
    cropped (dense columns in rows 3 elements longer)."""
    if kind == "nchw":
        return np.ascontiguousarray(a)
    if kind == "cnhw":
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if kind == "cropped":
        wide = np.zeros(a.shape[:3] + (a.shape[3] + 3,), dtype=a.dtype)
        wide[..., :a.shape[3]] = a
        return wide[..., :a.shape[3]]
    wide = np.zeros(a.shape[:3] + (2 * a.shape[3],), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


# --- references from the definitions, one einsum per kernel tap, in float64 -------------------

def _taps(H, W, KH, KW, stride, pad):
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    for i in range(KH):
        for j in range(KW):
            yield i, j, np.s_[:, :, i:i + stride * (OH - 1) + 1:stride, j:j + stride * (OW - 1) + 1:stride]


def _pad(x, pad):
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def conv_ref(x, w, b, stride, pad):
    xp = _pad(x, pad)
    out = 0.0
    for i, j, win in _taps(*x.shape[2:], *w.shape[2:], stride, pad):
        out = out + np.einsum("nchw,fc->nfhw", xp[win], w[:, :, i, j].astype(np.float64))
    return out + (0.0 if b is None else b.astype(np.float64)[None, :, None, None])


def wgrad_ref(x, dout, kh, kw, stride, pad):
    xp = _pad(x, pad)
    dw = np.zeros((dout.shape[1], x.shape[1], kh, kw))
    for i, j, win in _taps(*x.shape[2:], kh, kw, stride, pad):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout.astype(np.float64), xp[win])
    return dw, dout.astype(np.float64).sum(axis=(0, 2, 3))


def dx_ref(dout, w, x_shape, stride, pad):
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for i, j, win in _taps(H, W, *w.shape[2:], stride, pad):
        dxp[win] += np.einsum("nfhw,fc->nchw", dout.astype(np.float64), w[:, :, i, j].astype(np.float64))
    return dxp[:, :, pad:pad + H, pad:pad + W]


def relu_pool_ref(x, size, stride):
    return cpu.maxpool_forward(np.maximum(x, 0), size, stride)


def relu_pool_backward_ref(dout, x, size, stride):
    r = np.maximum(x, 0)
    _, argmax = cpu.maxpool_forward(r, size, stride)
    return cpu.maxpool_backward(dout, argmax, x.shape, size, stride) * (r > 0)


# --- availability -----------------------------------------------------------------------------

def test_available_or_reason():
    if REQUIRE:
        assert native.available, f"GPUCNN_REQUIRE_NATIVE=1 but gpucnn._native is unavailable: {native.reason}"
    if native.available:
        assert native.reason == "" and native.isa in ("avx512f", "avx2", "baseline")
    else:
        assert native.reason and native.isa is None
        with pytest.raises(RuntimeError, match="unavailable"):
            native.conv2d_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1, 1)), None, 1, 0)


def _import_native_in_subprocess(env_extra):
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    code = "from gpucnn import native; print(native.available); print(native.reason)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, cwd=REPO).stdout.splitlines()


def test_env_var_disables_native():
    available, reason = _import_native_in_subprocess({"GPUCNN_NATIVE": "0"})
    assert available == "False"
    assert reason == "disabled by GPUCNN_NATIVE=0"


@pytest.mark.slow
def test_install_without_compiler_falls_back_to_numpy(tmp_path):
    """pip install with CC=false: the build of the optional extension fails, the install does
    not, and gpucnn imports with native.available False (about 5 s)."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        "build", "dist", "*.so", "*.pyd", "*.egg-info", "__pycache__", ".git", ".pytest_cache", "runs"))
    target = tmp_path / "site"
    env = dict(os.environ, CC="false", CXX="false")
    # with build isolation, as users install: pip brings the setuptools pyproject.toml asks
    # for (a fresh venv's own is older), and the C compiler it would call is `false`
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                           "--quiet", "--target", str(target), str(src)],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (target / "gpucnn" / "native.py").exists()
    assert not list((target / "gpucnn").glob("_native*"))
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("GPUCNN_NATIVE", None)
    code = "from gpucnn import native; print(native.available); print(native.reason)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.splitlines()
    assert out[0] == "False" and out[1].startswith("not built")


# --- convolution ------------------------------------------------------------------------------

# (N, C, H, W, F, KH, KW, stride, pad): odd sizes, stride > 1, padding beyond the kernel, F not a
# multiple of the 8-filter block, rows wider than the 32-column block, 1x1 and non-square kernels
CONV_CASES = [
    (2, 3, 9, 8, 5, 3, 2, 1, 1),
    (3, 2, 11, 10, 3, 3, 4, 2, 2),
    (1, 3, 7, 7, 9, 5, 5, 3, 0),
    (2, 1, 6, 6, 2, 1, 1, 1, 0),
    (2, 4, 13, 17, 11, 7, 7, 1, 3),
    (2, 3, 5, 5, 4, 5, 5, 1, 4),
    (1, 2, 37, 70, 17, 3, 3, 2, 1),
    (3, 1, 28, 28, 16, 5, 5, 1, 2),
    (2, 3, 10, 9, 33, 2, 3, 3, 1),
    (1, 2, 8, 9, 3, 4, 2, 5, 2),
]


def _conv_inputs(case, dtype, seed=0):
    N, C, H, W, F, KH, KW, stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    dout = rng.standard_normal((N, F, OH, OW)).astype(dtype)
    return x, w, b, dout, stride, pad


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward(case, dtype):
    x, w, b, _, stride, pad = _conv_inputs(case, dtype)
    out = native.conv2d_forward(x, w, b, stride, pad)
    assert out.dtype == dtype and out.flags.c_contiguous
    assert_close(out, conv_ref(x, w, b, stride, pad))
    assert_close(native.conv2d_forward(x, w, None, stride, pad), conv_ref(x, w, None, stride, pad))


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_weight(case, dtype):
    x, w, _, dout, stride, pad = _conv_inputs(case, dtype)
    dw, db = native.conv2d_backward_weight(x, dout, w.shape[2], w.shape[3], stride, pad)
    ref_dw, ref_db = wgrad_ref(x, dout, w.shape[2], w.shape[3], stride, pad)
    assert dw.shape == w.shape and db.shape == (w.shape[0],)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_input(case, dtype):
    x, w, _, dout, stride, pad = _conv_inputs(case, dtype)
    dx = native.conv2d_backward_input(dout, w, x.shape, stride, pad)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    assert_close(dx, dx_ref(dout, w, x.shape, stride, pad))


@native_kernels
@pytest.mark.parametrize("kind", ["cnhw", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_reads_views_in_place(kind, dtype):
    """(N, C, H, W) views of (C, N, H, W) memory (gpucnn's inter-layer layout) and of
    column-strided memory, for every array argument."""
    x, w, b, dout, stride, pad = _conv_inputs((3, 4, 9, 11, 10, 3, 3, 1, 1), dtype)
    xv, wv, dv = layout(x, kind), layout(w, kind), layout(dout, kind)
    bv = np.repeat(b, 2)[::2]
    assert_close(native.conv2d_forward(xv, wv, bv, stride, pad), conv_ref(x, w, b, stride, pad))
    dw, db = native.conv2d_backward_weight(xv, dv, 3, 3, stride, pad)
    ref_dw, ref_db = wgrad_ref(x, dout, 3, 3, stride, pad)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    assert_close(native.conv2d_backward_input(dv, wv, x.shape, stride, pad), dx_ref(dout, w, x.shape, stride, pad))


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_batch_range_and_out_buffers(dtype):
    """n0..n1 computes those images only (the rest of out is left alone); dw is their sum;
    out= buffers of any layout are filled in place and returned."""
    x, w, b, dout, stride, pad = _conv_inputs((5, 3, 8, 8, 6, 3, 3, 1, 1), dtype)
    out = layout(np.full(dout.shape, np.nan, dtype=dtype), "cnhw")
    assert native.conv2d_forward(x, w, b, stride, pad, out=out, n0=1, n1=4) is out
    assert np.isnan(out[[0, 4]]).all()
    assert_close(out[1:4], conv_ref(x[1:4], w, b, stride, pad))
    strided = layout(np.zeros(dout.shape, dtype=dtype), "strided")
    native.conv2d_forward(x, w, b, stride, pad, out=strided)
    assert_close(strided, conv_ref(x, w, b, stride, pad))
    dw, db = np.empty_like(w), np.empty_like(b)
    got = native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, dw=dw, db=db, n0=2, n1=5)
    assert got[0] is dw and got[1] is db
    ref_dw, ref_db = wgrad_ref(x[2:5], dout[2:5], 3, 3, stride, pad)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    dw, db = native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, n0=3, n1=3)
    assert not dw.any() and not db.any()
    dx = np.full(x.shape, np.nan, dtype=dtype)
    native.conv2d_backward_input(dout, w, x.shape, stride, pad, dx=dx, n0=0, n1=2)
    assert np.isnan(dx[2:]).all()
    assert_close(dx[:2], dx_ref(dout[:2], w, x[:2].shape, stride, pad))


@native_kernels
def test_threads_on_batch_halves_equal_one_call():
    """The kernels release the GIL; two threads on [0, 3) and [3, 6) fill one buffer."""
    from concurrent.futures import ThreadPoolExecutor
    x, w, b, dout, stride, pad = _conv_inputs((6, 3, 16, 16, 8, 3, 3, 1, 1), np.float32)
    out = np.empty(dout.shape, dtype=np.float32)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda r: native.conv2d_forward(x, w, b, stride, pad, out=out, n0=r[0], n1=r[1]),
                      [(0, 3), (3, 6)]))
    np.testing.assert_array_equal(out, native.conv2d_forward(x, w, b, stride, pad))


# --- fused relu + max-pool --------------------------------------------------------------------

# (N, C, H, W, size, stride): tiling, ragged edges, overlapping windows, gaps between windows,
# rows wide enough for the vector path plus a tail, 1x1, and a window over 16x16 (int32 argmax);
# 2x2 stride 2 (its own plane kernel) with rows of 14 (the MNIST-sized net's: one partial
# vector per row), 3 and 16 outputs plus an odd column; 3x3 stride 2 (vector rows, the last
# vector overlapping the one before) with rows of 11 (stem7's), 8 and 16, and of 300 outputs (two
# chunks of the row)
POOL_CASES = [
    (2, 3, 8, 8, 2, 2), (3, 4, 9, 11, 2, 2), (2, 3, 9, 10, 3, 2), (2, 2, 9, 10, 3, 1),
    (2, 3, 9, 10, 2, 3), (2, 3, 6, 70, 2, 2), (1, 2, 7, 71, 3, 2), (2, 2, 5, 7, 1, 1),
    (1, 2, 12, 12, 4, 4), (1, 1, 20, 21, 17, 3), (2, 3, 28, 28, 2, 2), (1, 2, 6, 6, 2, 2),
    (2, 2, 7, 33, 2, 2), (2, 3, 24, 24, 3, 2), (1, 2, 9, 17, 3, 2), (1, 2, 7, 34, 3, 2),
    (1, 1, 5, 601, 3, 2),
]


def _pool_input(shape, dtype, values, seed=0):
    rng = np.random.default_rng(seed)
    if values == "ties":  # small integers: many equal maxima per window, and all-negative windows
        return rng.integers(-3, 3, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if values == "nonfinite":
        flat = x.reshape(-1)
        for v in (np.nan, np.inf, -np.inf):
            flat[rng.choice(flat.size, max(1, flat.size // 20), replace=False)] = v
    return x


@native_kernels
@pytest.mark.parametrize("values", ["normal", "ties", "nonfinite"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_relu_maxpool_forward_matches_cpu_exactly(case, dtype, values):
    *shape, size, stride = case
    x = _pool_input(tuple(shape), dtype, values)
    out, argmax = native.relu_maxpool_forward(x, size, stride)
    ref_out, ref_argmax = relu_pool_ref(x, size, stride)
    assert argmax.dtype == ref_argmax.dtype
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)  # NaN == NaN here


@native_kernels
@pytest.mark.parametrize("values", ["normal", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_relu_maxpool_backward(case, dtype, values):
    *shape, size, stride = case
    x = _pool_input(tuple(shape), dtype, values)
    out, argmax = native.relu_maxpool_forward(x, size, stride)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx = native.relu_maxpool_backward(dout, argmax, out, x.shape, size, stride)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    assert_close(dx, relu_pool_backward_ref(dout, x, size, stride))


@native_kernels
def test_relu_maxpool_nan_window():
    """A NaN makes its window's output NaN with the argmax at the first NaN (the primitives'
    contract, as on the GPU), and no gradient flows through a NaN output."""
    x = np.array([[[[1.0, np.nan], [5.0, np.nan]], [[np.nan, 3.0], [-1.0, 7.0]]]])
    out, argmax = native.relu_maxpool_forward(x, 2, 2)
    assert np.isnan(out).all()
    np.testing.assert_array_equal(argmax, relu_pool_ref(x, 2, 2)[1])
    np.testing.assert_array_equal(argmax.ravel(), [1, 0])
    dx = native.relu_maxpool_backward(np.ones_like(out), argmax, out, x.shape, 2, 2)
    assert not dx.any()


@native_kernels
@pytest.mark.parametrize("kind", ["cnhw", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_maxpool_reads_views_in_place(kind, dtype):
    x = _pool_input((3, 4, 10, 40), dtype, "ties")
    ref_out, ref_argmax = relu_pool_ref(x, 2, 2)
    out, argmax = native.relu_maxpool_forward(layout(x, kind), 2, 2)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    dx = native.relu_maxpool_backward(layout(dout, kind), layout(argmax, kind), layout(out, kind),
                                      x.shape, 2, 2)
    assert_close(dx, relu_pool_backward_ref(dout, x, 2, 2))


@native_kernels
@pytest.mark.parametrize("size", [3, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_maxpool_batch_range_and_out_buffers(dtype, size):
    x = _pool_input((4, 3, 9, 9), dtype, "normal")
    ref_out, ref_argmax = relu_pool_ref(x, size, 2)
    out = layout(np.full(ref_out.shape, -1.0, dtype=dtype), "cnhw")
    argmax = np.full(ref_out.shape, 99, dtype=np.uint8)
    got = native.relu_maxpool_forward(x, size, 2, out=out, argmax=argmax, n0=1, n1=3)
    assert got[0] is out and got[1] is argmax
    np.testing.assert_array_equal(out[1:3], ref_out[1:3])
    np.testing.assert_array_equal(argmax[1:3], ref_argmax[1:3])
    assert (out[[0, 3]] == -1).all() and (argmax[[0, 3]] == 99).all()
    full_out, full_argmax = native.relu_maxpool_forward(x, size, 2)
    dout = np.random.default_rng(3).standard_normal(ref_out.shape).astype(dtype)
    dx = layout(np.full(x.shape, 5.0, dtype=dtype), "cnhw")
    native.relu_maxpool_backward(dout, full_argmax, full_out, x.shape, size, 2, dx=dx, n0=2, n1=4)
    assert (dx[:2] == 5).all()
    assert_close(dx[2:], relu_pool_backward_ref(dout, x, size, 2)[2:])


def _array_before_a_guard_page(shape, dtype):
    """A C-contiguous array whose last byte is the last readable one: the next page is
    PROT_NONE, so a kernel reading past the array's end crashes the test."""
    import ctypes
    import mmap

    page, nbytes = mmap.PAGESIZE, int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = (nbytes + page - 1) // page * page
    buf = mmap.mmap(-1, size + page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(base + size), page, 0) == 0  # 0: PROT_NONE
    return np.frombuffer(buf, dtype, int(np.prod(shape)), offset=size - nbytes).reshape(shape)


@native_kernels
@pytest.mark.skipif(sys.platform != "linux", reason="the guard page needs Linux mprotect")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [2, 3])
def test_relu_maxpool_never_reads_past_an_array(dtype, size):
    """The 2x2 kernel's partial vectors read past a row's end only where the array goes on; the
    3x3 one's last vector of a row (13 outputs: it overlaps the first) ends at the row's end."""
    shape = (2, 3, 6, 28)
    x = _array_before_a_guard_page(shape, dtype)
    x[...] = _pool_input(shape, dtype, "normal")
    out, argmax = native.relu_maxpool_forward(x, size, 2)
    ref_out, ref_argmax = relu_pool_ref(np.array(x), size, 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    arrays = (np.ones_like(out), argmax, out)  # dout, argmax, out
    guarded = [_array_before_a_guard_page(a.shape, a.dtype) for a in arrays]
    for g, a in zip(guarded, arrays):
        g[...] = a
    dx = native.relu_maxpool_backward(*guarded, shape, size, 2)
    assert_close(dx, relu_pool_backward_ref(np.ones_like(out), np.array(x), size, 2))


# --- argument checks --------------------------------------------------------------------------

@needs_native
def test_rejects_other_dtypes_naming_the_argument():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    w = np.zeros((1, 1, 3, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"^x\.dtype=int64: expected float32 or float64$"):
        native.conv2d_forward(x.astype(np.int64), w, None, 1, 0)
    with pytest.raises(TypeError, match=r"^w\.dtype=float16: expected float32 or float64$"):
        native.conv2d_forward(x, w.astype(np.float16), None, 1, 0)
    with pytest.raises(TypeError, match=r"^w\.dtype=float64: expected float32"):
        native.conv2d_forward(x, w.astype(np.float64), None, 1, 0)
    with pytest.raises(TypeError, match=r"^x\.dtype=int32: expected float32 or float64$"):
        native.relu_maxpool_forward(x.astype(np.int32), 2, 2)
    with pytest.raises(TypeError, match=r"^dout\.dtype=float16"):
        native.conv2d_backward_input(np.zeros((1, 1, 2, 2), np.float16), w, x.shape, 1, 0)


@needs_native
def test_rejects_bad_shapes_and_parameters():
    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"^w\.shape=\(4, 2, 3, 3\): expected 3 input channels"):
        native.conv2d_forward(x, np.zeros((4, 2, 3, 3)), None, 1, 0)
    with pytest.raises(ValueError, match=r"^stride=0: expected an integer >= 1$"):
        native.conv2d_forward(x, w, None, 0, 0)
    with pytest.raises(ValueError, match=r"^out="):
        native.conv2d_forward(x, w, None, 1, 0, out=np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"^n0=1, n1=3: expected integers 0 <= n0 <= n1 <= N=2$"):
        native.conv2d_forward(x, w, None, 1, 0, n0=1, n1=3)
    with pytest.raises(ValueError, match=r"^dout\.shape=\(2, 4, 5, 5\): expected \(2, 4, 6, 6\)"):
        native.conv2d_backward_weight(x, np.zeros((2, 4, 5, 5)), 3, 3, 1, 0)
    with pytest.raises(ValueError, match=r"^size=9: larger than the input"):
        native.relu_maxpool_forward(x, 9, 1)
    out, argmax = native.relu_maxpool_forward(x, 2, 2)
    with pytest.raises(TypeError, match=r"^argmax\.dtype=int64: expected uint8"):
        native.relu_maxpool_backward(out, argmax.astype(np.int64), out, x.shape, 2, 2)
