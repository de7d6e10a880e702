"""Label smoothing in the softmax cross-entropy: a naive reference from the definition, float64
numeric gradients, torch's CrossEntropyLoss(label_smoothing=) where torch is installed, and the
stand-in GPU against NumPy."""
import shutil

import numpy as np
import pytest

import gpucnn.functional as F
from gpucnn.gradcheck import TOLERANCE, numeric_gradient, rel_error


def naive_smoothed_cross_entropy(scores, y, e):
    """mean_i sum_k -q_ik log softmax(s_i)_k with q = (1 - e) one-hot + e / K, by loops."""
    n, k = scores.shape
    total = 0.0
    for i in range(n):
        shifted = scores[i] - scores[i].max()
        log_p = shifted - np.log(np.exp(shifted).sum())
        for c in range(k):
            q = (1 - e) * (c == y[i]) + e / k
            total -= q * log_p[c]
    return total / n


@pytest.mark.parametrize("e", [0.0, 0.1, 0.45, 0.99])
def test_loss_is_the_definitions_and_the_gradient_the_numeric_one(e):
    rng = np.random.default_rng(1)
    scores, y = rng.normal(0, 3, (7, 5)), rng.integers(0, 5, 7)
    loss, dscores = F.softmax_cross_entropy(scores, y, e)
    assert float(loss) == pytest.approx(naive_smoothed_cross_entropy(scores, y, e), rel=1e-12)
    numeric = numeric_gradient(lambda s: F.softmax_cross_entropy(s, y, e)[0], scores)
    assert rel_error(dscores, numeric) < TOLERANCE


def test_smoothing_is_torchs():
    torch = pytest.importorskip("torch", reason="torch is not installed: no reference")
    rng = np.random.default_rng(2)
    scores, y = rng.normal(0, 2, (9, 4)), rng.integers(0, 4, 9)
    t = torch.tensor(scores, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(t, torch.tensor(y), label_smoothing=0.2)
    expected.backward()
    loss, dscores = F.softmax_cross_entropy(scores, y, 0.2)
    assert float(loss) == pytest.approx(expected.item(), rel=1e-14)
    np.testing.assert_allclose(dscores, t.grad.numpy(), rtol=1e-12, atol=1e-16)


def test_a_smoothing_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"label_smoothing=1.0: expected a number in \[0.0, 1.0\)"):
        F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), 1.0)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed: the kernel "
                                                         "host emulation needs it")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_stand_in_gpu_smooths_as_numpy(fake_cupy, dtype):
    rng = np.random.default_rng(3)
    scores, y = rng.normal(0, 2, (6, 10)).astype(dtype), rng.integers(0, 10, 6)
    loss, d = F.softmax_cross_entropy(scores, y, 0.1)
    with fake_cupy.counting() as c:
        gl, gd = F.softmax_cross_entropy(fake_cupy.asarray(scores), fake_cupy.asarray(y), 0.1)
    assert not c.syncs  # the loss stays on the device until it is read
    tol = 1e-6 if dtype == np.float32 else 1e-12  # float32: the kernel's own rounding
    assert float(gl) == pytest.approx(float(loss), rel=tol)
    np.testing.assert_allclose(gd.get(), d, rtol=tol, atol=tol / 10)
