"""The whole CUDA path (gpucnn.cuda's host code, the real kernels through the g++ emulation,
functional, nn, models, optim) on the stand-in cupy: it must agree with NumPy, and what one
training step costs on a GPU (launches, allocations, syncs) must not grow unnoticed."""
import dataclasses
import shutil

import numpy as np
import pytest

from fakecupy.counts import step_counts
from gpucnn import functional as F
from gpucnn.bench import nets as bench
from gpucnn.models import ThreeLayerConvNet, build_model
from gpucnn.optim import SGD, make_optimizer

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="g++ is not installed: the kernel host emulation needs it")


def _close(got, want, rtol=1e-10):
    """Relative to the largest magnitude, so near-zero entries of sums do not fail spuriously."""
    got = got.get() if hasattr(got, "get") else np.asarray(got)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(got - want), initial=0.0)) <= rtol * scale


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_one_training_step_agrees_with_numpy(fake_cupy, monkeypatch, optimizer):
    masks = {"cpu": [], "cuda": []}
    dropout = F.dropout_forward

    def recording_dropout(x, p, train, rng):
        out, cache = dropout(x, p, train, rng)
        masks["cuda" if isinstance(x, fake_cupy.ndarray) else "cpu"].append(cache[0])
        return out, cache

    monkeypatch.setattr(F, "dropout_forward", recording_dropout)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 3, 9, 9))
    y = rng.integers(0, 10, 3)
    results = {}
    for device in ("cpu", "cuda"):
        model = ThreeLayerConvNet((3, 9, 9), num_filters=4, filter_size=5, hidden_dim=20,
                                  weight_scale=0.1, reg=0.01, dropout=0.3, dtype=np.float64,
                                  seed=7).to(device)
        opt = make_optimizer(optimizer, model.parameters(), lr=0.05)
        Xd, yd = (fake_cupy.asarray(X), fake_cupy.asarray(y)) if device == "cuda" else (X, y)
        loss, grads = model.loss(Xd, yd)
        opt.step(grads)
        results[device] = (float(loss), grads, model.parameters())
    loss_cpu, grads_cpu, params_cpu = results["cpu"]
    loss_gpu, grads_gpu, params_gpu = results["cuda"]
    assert len(masks["cpu"]) == len(masks["cuda"]) == 2
    for cpu_mask, gpu_mask in zip(masks["cpu"], masks["cuda"]):
        np.testing.assert_array_equal(gpu_mask.get(), cpu_mask)  # bit-identical
    assert abs(loss_gpu - loss_cpu) <= 1e-10 * abs(loss_cpu)
    assert grads_gpu.keys() == grads_cpu.keys() == params_gpu.keys()
    for name in grads_cpu:
        assert isinstance(params_gpu[name], fake_cupy.ndarray)
        _close(grads_gpu[name], grads_cpu[name])
        _close(params_gpu[name], params_cpu[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpucnn_check_compares_every_primitive_through_the_cuda_module(fake_cupy, dtype):
    from gpucnn.compare import compare_cuda_with_numpy

    rows = compare_cuda_with_numpy(dtype)
    exact = [op for op, _ in rows if "argmax" in op or op in ("im2col", "dropout_keep_mask")]
    assert len(exact) == 5 and all(diff == 0.0 for op, diff in rows if op in exact), rows
    assert max(diff for _, diff in rows) <= (1e-5 if dtype == np.float32 else 1e-12), rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_trainers_loss_with_l2_is_numpys_to_float64_rounding(fake_cupy, dtype):
    """model.loss(X, y, l2_in_grads=False): data loss plus L2 over every weight, summed on the
    device in float64 by 4 launches (a 0-d float64 device array, no sync): NumPy's float64 L2
    sum, and the device's own data loss, to 1e-12 relative."""
    rng = np.random.default_rng(4)
    model = ThreeLayerConvNet((3, 9, 9), num_filters=4, filter_size=5, hidden_dim=20,
                              weight_scale=1.0, reg=0.3, dtype=dtype, seed=2).to("cuda")
    X = fake_cupy.asarray(rng.standard_normal((3, 3, 9, 9)).astype(dtype))
    y = fake_cupy.asarray(rng.integers(0, 10, 3))
    with fake_cupy.counting() as c:
        loss, _ = model.loss(X, y, l2_in_grads=False)
    assert isinstance(loss, fake_cupy.ndarray) and loss.shape == () and loss.dtype == np.float64
    assert not c.syncs, c.report()
    data_loss = float(F.softmax_cross_entropy(model.net.forward(X), y)[0])
    weights = [p.get().astype(np.float64) for k, p in model.parameters().items()
               if k.endswith(".weight")]
    want = data_loss + 0.5 * 0.3 * sum(float(np.sum(w * w)) for w in weights)
    assert abs(float(loss) - want) <= 1e-12 * want, (float(loss), want)


def test_device_labels_out_of_range_make_the_loss_nan_without_a_sync(fake_cupy):
    scores = fake_cupy.asarray(np.random.default_rng(0).standard_normal((3, 4)))
    with fake_cupy.counting() as c:
        loss, dscores = F.softmax_cross_entropy(scores, fake_cupy.asarray(np.array([1, 4, 0])))
    assert not c.syncs, c.syncs
    d = dscores.get()
    assert np.isnan(float(loss)) and np.isnan(d[1]).all() and np.isfinite(d[[0, 2]]).all()
    with pytest.raises(ValueError, match="expected a class label in"):  # host labels: checked
        F.softmax_cross_entropy(scores, np.array([1, -1, 0]))


def test_dropout_is_one_launch_each_way(fake_cupy):
    """The mask and the scaled output come from one kernel (was 3 launches: mask, 2 multiplies),
    the backward from one (was 2)."""
    from gpucnn.rng import Generator

    x = fake_cupy.asarray(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    with fake_cupy.counting() as c:
        out, cache = F.dropout_forward(x, 0.5, True, Generator(1))
        F.dropout_backward(out, cache)
    assert c.n_launches == 2 and len(c.allocations) == 3, c.report()


# One training step of each benchmark net, counted by phase (the step gpucnn.bench times and the
# Trainer takes: forward, softmax + L2's loss, backward, SGD with L2's gradient folded in).
# Today's numbers are the bounds: a change that adds launches, allocations, uploads or syncs to a
# phase fails here and must lower or justify the bound.  Counts do not depend on batch, image
# or layer sizes, except that a bias gradient with many values per feature (>= 32 per thread of
# its block) splits into partial sums and one more launch; small sizes keep the emulated
# kernels fast and count the unsplit path.  Today, for both nets:
#   forward 7 launches: im2col and GEMM of the conv, its bias added by the fused relu +
#     max-pool kernel; per linear layer a GEMM, then for the hidden one relu(x + b) in one
#     kernel, for the last the bias add.  (Was 9: the conv's and the hidden layer's bias each
#     a pass of its own.)
#   loss 4 launches, 5 allocations, no sync: the softmax kernel writing float64 row losses
#     (1) and their mean (1); L2's float64 partial sums of squares over every weight (1) and
#     0.5 * reg * their sum plus the data loss (1).  (Was 13 launches and 14 allocations: the
#     mean a CuPy sum and a divide, per weight a float64 cast and a dot, then adds, a scale and
#     data + reg loss.)
#   backward 10 launches: per linear layer dW GEMM, bias_grad, dX GEMM; relu and fused
#     relu + max-pool kernels; for the conv bias_grad and dW (no dX).
#   update 1 launch, no allocation: one SGD kernel over every parameter (was one per
#     parameter, 6).
PHASE_BOUNDS = {
    "forward": {"launches": 7, "allocations": 7, "uploads": 0, "syncs": 0},
    "loss": {"launches": 4, "allocations": 5, "uploads": 0, "syncs": 0},
    "backward": {"launches": 10, "allocations": 10, "uploads": 0, "syncs": 0},
    "update": {"launches": 1, "allocations": 0, "uploads": 0, "syncs": 0},
}


def _bench_net(fake_cupy, net):
    # Hidden layers of 20: the emulated bias-gradient reduction runs one block of 256 threads
    # per output feature, which adds up for 500 features.
    if net == "a":  # the seeds' ThreeLayerConvNet: 32 7x7 filters (3x8x8 images, hidden 20)
        model = ThreeLayerConvNet((3, 8, 8), num_filters=32, filter_size=7, hidden_dim=20,
                                  weight_scale=None, reg=bench.REG, seed=0)
        shape = (2, 3, 8, 8)
    else:  # gpucnn.bench's MNIST-sized net (b): 16 5x5 filters (1x12x12 images, hidden 20)
        spec = dataclasses.replace(bench.NETS["b"], size=12, hidden=20)
        model = build_model(bench.layer_spec(spec), (1, 12, 12), reg=bench.REG, seed=0)
        shape = (2, 1, 12, 12)
    model.to("cuda")
    rng = np.random.default_rng(0)
    X = fake_cupy.asarray(rng.standard_normal(shape).astype(np.float32))
    y = fake_cupy.asarray(rng.integers(0, 10, shape[0]))
    return model, X, y, SGD(model.parameters(), lr=bench.LR)


@pytest.mark.parametrize("net", ["a", "b"])
def test_a_training_step_costs_no_more_than_today(fake_cupy, net):
    model, X, y, opt = _bench_net(fake_cupy, net)
    step_counts(model, X, y, opt)  # kernels compile once per process; not part of a step
    counts = step_counts(model, X, y, opt)
    print(f"\n({net}) one training step on the stand-in: {counts.report()}")
    covered = {k: sum(p[k] for p in counts.phases.values()) for k in counts.summary()}
    assert covered == counts.summary(), f"events outside the four phases:\n{counts.report()}"
    over = {f"{name}.{k}": f"{counts.phases.get(name, {}).get(k, 0)} > {bound}"
            for name, bounds in PHASE_BOUNDS.items() for k, bound in bounds.items()
            if counts.phases.get(name, {}).get(k, 0) > bound}
    assert not over, f"({net}) one training step costs more than recorded: {over}\n{counts.report()}"
    # each layer's kernel runs once (names with or without template arguments or dtype suffix);
    # the first conv needs no input gradient, so col2im never runs; relu + max-pool is fused,
    # and so is the bias of the conv before it and of the hidden linear layer before its relu
    per_kernel = {base: sum(n for name, n in counts.launches.items() if name.startswith(base))
                  for base in ("im2col", "col2im", "maxpool_forward", "relu_maxpool_forward",
                               "bias_relu_maxpool_forward", "relu_forward", "bias_relu_forward",
                               "relu_maxpool_backward", "softmax_cross_entropy",
                               "sum_squares_all", "loss_total")}
    assert per_kernel == {"im2col": 1, "col2im": 0, "maxpool_forward": 0,
                          "relu_maxpool_forward": 0, "bias_relu_maxpool_forward": 1,
                          "relu_forward": 0, "bias_relu_forward": 1,
                          "relu_maxpool_backward": 1, "softmax_cross_entropy": 1,
                          "sum_squares_all": 1, "loss_total": 2}


def test_sgd_updates_every_parameter_in_one_launch_and_uploads_lr_only_when_it_changes(fake_cupy):
    """Nesterov SGD with L2 folded in, three steps with an lr decay between the second and the
    third: bit for bit gpucnn.cpu's NumPy reference, one launch per step, no allocation after
    the first (the learning rate's device copy), and one upload of the learning rate after it
    changed (the kernel reads it from the device)."""
    from gpucnn.cpu import sgd_update_numpy

    model, X, y, _ = _bench_net(fake_cupy, "a")
    grads = {k: g.copy() for k, g in model.loss(X, y, l2_in_grads=False)[1].items()}
    decay = model.weight_decay()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, lr_decay=0.5)
    ref = {k: p.get() for k, p in model.parameters().items()}
    vel = {k: np.zeros_like(p) for k, p in ref.items()}
    for step in range(3):
        with fake_cupy.counting() as c:
            opt.step(grads, weight_decay=decay)
        for k, p in ref.items():
            sgd_update_numpy(p, grads[k].get(), vel[k], opt.lr, 0.9, True, decay.get(k, 0.0))
        assert c.launches == {"sgd_update_all_f32": 1} and not c.syncs
        assert len(c.allocations) == (step == 0), c.allocations  # the lr's (1,) array
        assert len(c.uploads) == (step != 1), (step, c.uploads)  # lr: first step, after decay
        if step == 1:
            opt.end_epoch()
    for k, p in model.parameters().items():
        np.testing.assert_array_equal(p.get(), ref[k])
        np.testing.assert_array_equal(opt.state["velocity"][k].get(), vel[k])


def test_biases_fused_into_the_relus_give_the_unfused_results_bit_for_bit(fake_cupy, monkeypatch):
    """On the CUDA path nn.Sequential lets a Conv2d or Linear before a ReLU (and MaxPool2d)
    leave its bias to the fused kernel (a Conv2d and ReLU with no pool after them run as
    conv2d_relu_forward, which does that on CUDA): outputs, gradients and the argmax-driven
    backward equal those of each layer adding its own bias, bit for bit, with 4 launches fewer
    here (conv -> relu -> pool, conv -> relu, linear -> relu: one bias add each, and the copy of
    the second conv's (C, N, ...) output before its relu)."""
    from gpucnn import cuda, nn, primitives

    def net():
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 3, 2, rng=1), nn.ReLU(), nn.Flatten(), nn.Linear(12, 5, rng=2),
            nn.ReLU(), nn.Linear(5, 3, rng=3)).to("cuda")

    rng = np.random.default_rng(9)
    x = fake_cupy.asarray(rng.standard_normal((3, 2, 6, 6)).astype(np.float32))
    dout = fake_cupy.asarray(rng.standard_normal((3, 3)).astype(np.float32))
    results = []
    for fused in (True, False):
        if not fused:
            plain = primitives.fusion
            monkeypatch.setattr(primitives, "fusion", lambda impl, name: None
                                if name.startswith("bias_") else plain(impl, name))

            def conv_then_relu(x, w, b, stride, pad):
                out, saved = cuda.conv2d_forward(x, w, b, stride, pad)
                return cuda.relu_forward(out), saved
            monkeypatch.setattr(cuda, "conv2d_relu_forward", conv_then_relu)
        model = net()
        with fake_cupy.counting() as c:
            out = model.forward(x)
        dx = model.backward(dout)
        results.append((c.n_launches, out.get(), dx.get(),
                        {k: g.get() for k, g in model.gradients().items()}))
    (n_fused, *fused), (n_plain, *plain) = results
    assert n_plain - n_fused == 4, (n_plain, n_fused)
    for got, want in zip(fused[:2], plain[:2]):
        np.testing.assert_array_equal(got, want)
    assert fused[2].keys() == plain[2].keys() and len(plain[2]) == 8
    for k in plain[2]:
        np.testing.assert_array_equal(fused[2][k], plain[2][k])
