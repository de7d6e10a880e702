"""On a GPU: kernels/gemm.cu against NumPy, and real CuPy's refusal of cuBLAS in a capture (the
stand-in's rule, seen where it comes from) with gemm.cu capturing.  (The captured training step
against eager ones: tests/test_cuda.py.)  Skipped with the reason where CUDA is unusable."""
import numpy as np
import pytest

from gpucnn.device import cuda_status

_STATUS = cuda_status()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _STATUS.available, reason=f"no usable GPU: {_STATUS.reason}")]

# the fixtures of the main GPU suite
from test_cuda import cp, cuda  # noqa: E402,F401

# (M, K, N): smaller than a tile, off the 64 x 64 tile and the 16-wide slice, a split K, and
# the shapes of net (a)'s conv weight gradient and hidden layer at batch 64
# (slow: minutes on the stand-in's emulated kernels, which the rehearsal leaves out)
SHAPES = [(3, 7, 5), (70, 45, 130), (9, 3001, 11),
          *(pytest.param(s, marks=pytest.mark.slow) for s in ((32, 65536, 147), (64, 8192, 500)))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ab", ["nn", "nt", "tn", "tt"])
def test_gemm_matches_numpy_within_the_summation_bound(cp, cuda, dtype, shape, ab):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    ga = cp.asarray(a) if ab[0] == "n" else cp.asarray(np.ascontiguousarray(a.T)).T
    gb = cp.asarray(b) if ab[1] == "n" else cp.asarray(np.ascontiguousarray(b.T)).T
    got = cuda.gemm(ga, gb).get()
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = k * np.finfo(dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert got.dtype == dtype and (np.abs(got - exact) <= bound).all()
    np.testing.assert_array_equal(cuda.gemm(ga, gb).get(), got)  # the same bits every run


def test_real_cupy_refuses_cublas_while_a_stream_captures(cp, cuda):
    """What tests/fakecupy refuses, on the GPU: a matmul raises, gemm.cu captures."""
    a = cp.ones((64, 64), cp.float32)
    s = cp.cuda.Stream(non_blocking=True)
    s.wait_event(cp.cuda.get_current_stream().record())  # a is written before the graph reads
    with s:
        s.begin_capture()
        try:
            with pytest.raises(NotImplementedError, match="cuBLAS"):
                a @ a
            out = cuda.gemm(a, a)
        finally:
            graph = s.end_capture()
        graph.launch(s)
        s.synchronize()
    np.testing.assert_array_equal(out.get(), np.full((64, 64), 64, np.float32))
