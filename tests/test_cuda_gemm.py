"""On a GPU: kernels/gemm.cu against NumPy, real CuPy's refusal of cuBLAS in a capture (the
stand-in's rule, seen where it comes from), and a captured training step that calls no cuBLAS:
replays equal eager steps bit for bit.  Skipped with the reason where CUDA is unusable."""
import numpy as np
import pytest

from gpucnn.device import cuda_status

_STATUS = cuda_status()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _STATUS.available, reason=f"no usable GPU: {_STATUS.reason}")]

# (M, K, N): smaller than a tile, off the 64 x 64 tile and the 16-wide slice, a split K, and
# the shapes of net (a)'s conv weight gradient and hidden layer at batch 64
# (slow: minutes on the stand-in's emulated kernels, which the rehearsal leaves out)
SHAPES = [(3, 7, 5), (70, 45, 130), (9, 3001, 11),
          *(pytest.param(s, marks=pytest.mark.slow) for s in ((32, 65536, 147), (64, 8192, 500)))]


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.fixture(scope="module")
def cuda():
    from gpucnn import cuda

    return cuda


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


def test_a_replayed_step_equals_an_eager_one_with_the_same_kernels_bit_for_bit(cp, cuda):
    """Trainer(cuda_graph=True) against the same run without a graph, both multiplying with
    gemm.cu: losses and weights bit for bit, the step captured (no notice)."""
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import Trainer

    rng = np.random.default_rng(5)
    data = {"X_train": rng.standard_normal((12, 3, 8, 8)).astype(np.float32),
            "y_train": rng.integers(0, 10, 12),
            "X_val": rng.standard_normal((6, 3, 8, 8)).astype(np.float32),
            "y_val": rng.integers(0, 10, 6)}
    runs = {}
    for graph in (True, False):
        model = ThreeLayerConvNet((3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10,
                                  reg=0.01, dropout=0.3, seed=1)
        with cuda.gemm_kernels(not graph):  # the graph's steps turn gemm.cu on themselves
            trainer = Trainer(model, data, optimizer="nesterov", batch_size=5, epochs=2,
                              optim_config={"lr": 0.05, "lr_decay": 0.5}, device="cuda",
                              progress=False, cuda_graph=graph)
            runs[graph] = (trainer.train().loss, model.state_dict(), trainer)
    assert runs[True][2]._graph.graph is not None and not runs[True][2]._graph.failed
    assert runs[True][0] == runs[False][0]
    for name, value in runs[True][1].items():
        np.testing.assert_array_equal(value, runs[False][1][name], err_msg=name)
