"""Optimizers: in-place updates, the update formulas, convergence, decay, state, bad settings."""
import numpy as np
import pytest

from gpucnn.optim import OPTIMIZERS, SGD, Adam, RMSprop, make_optimizer


def quadratic(seed=0):
    """loss = 0.5 * ||A w + c - t||^2 on a well-conditioned A: (params, loss_and_grads, minimum)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((20, 5)) + 3 * np.eye(20, 5)
    t = rng.standard_normal(20)
    params = {"w": np.zeros(5), "c": np.zeros(1)}

    def loss_and_grads():
        r = A @ params["w"] + params["c"][0] - t
        return 0.5 * r @ r, {"w": A.T @ r, "c": np.array([r.sum()])}

    best = np.linalg.lstsq(np.hstack([A, np.ones((20, 1))]), t, rcond=None)[0]
    r = np.hstack([A, np.ones((20, 1))]) @ best - t
    return params, loss_and_grads, 0.5 * r @ r


@pytest.mark.parametrize("name, lr", [("sgd", 5e-3), ("momentum", 2e-3), ("nesterov", 2e-3),
                                      ("rmsprop", 1e-2), ("adam", 5e-2)])
def test_every_optimizer_lowers_the_loss_in_place(name, lr):
    params, loss_and_grads, minimum = quadratic()
    w = params["w"]
    opt = make_optimizer(name, params, lr=lr)
    start = loss_and_grads()[0]
    for _ in range(300):
        opt.step(loss_and_grads()[1])
    assert params["w"] is w   # the same array, updated in place
    assert loss_and_grads()[0] - minimum < 0.01 * (start - minimum)


def test_update_formulas_match_cs231n():
    w0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    p = {"w": w0.copy()}
    SGD(p, lr=0.1).step({"w": g})
    np.testing.assert_allclose(p["w"], w0 - 0.1 * g)

    p = {"w": w0.copy()}
    opt = SGD(p, lr=0.1, momentum=0.9)
    opt.step({"w": g}); opt.step({"w": g})
    v1 = -0.1 * g
    v2 = 0.9 * v1 - 0.1 * g
    np.testing.assert_allclose(p["w"], w0 + v1 + v2)

    p = {"w": w0.copy()}
    opt = SGD(p, lr=0.1, momentum=0.9, nesterov=True)
    opt.step({"w": g}); opt.step({"w": g})
    x1 = w0 + (1 + 0.9) * v1
    np.testing.assert_allclose(p["w"], x1 - 0.9 * v1 + 1.9 * v2)

    p = {"w": w0.copy()}
    RMSprop(p, lr=0.1, alpha=0.9, eps=1e-8).step({"w": g})
    np.testing.assert_allclose(p["w"], w0 - 0.1 * g / (np.sqrt(0.1 * g * g) + 1e-8))

    p = {"w": w0.copy()}
    Adam(p, lr=0.1).step({"w": g})   # first bias-corrected step: -lr * sign(g)
    np.testing.assert_allclose(p["w"], w0 - 0.1 * np.sign(g), rtol=1e-6)


def test_lr_decay_applies_at_each_epoch_end():
    opt = SGD({"w": np.zeros(2)}, lr=1.0, lr_decay=0.5)
    opt.end_epoch(); opt.end_epoch()
    assert opt.lr == 0.25


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name):
    pa, fa, _ = quadratic()
    a = make_optimizer(name, pa, lr=1e-2, lr_decay=0.9)
    for _ in range(3):
        a.step(fa()[1])
    a.end_epoch()
    state = a.state_dict()
    pb, fb, _ = quadratic()
    for k in pb:
        pb[k][...] = pa[k]
    b = make_optimizer(name, pb, lr=1.0)
    b.load_state_dict(state)
    assert b.lr == a.lr and b.t == a.t
    for _ in range(3):
        a.step(fa()[1]); b.step(fb()[1])
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    for buffers in state["buffers"].values():   # host copies, not the live buffers
        for arr in buffers.values():
            assert isinstance(arr, np.ndarray)


def test_float32_parameters_stay_float32():
    p = {"w": np.ones(3, np.float32)}
    opt = make_optimizer("adam", p)
    opt.step({"w": np.full(3, 0.5, np.float32)})
    assert p["w"].dtype == np.float32 and opt.state["exp_avg"]["w"].dtype == np.float32


@pytest.mark.parametrize("name, settings, message", [
    ("adagrad", {}, r"optimizer='adagrad': expected one of sgd, momentum"),
    ("sgd", {"lr": -0.1}, r"lr=-0.1: expected a number in \[0.0, inf\)"),
    ("sgd", {"lr": float("nan")}, r"lr=nan"),
    ("adam", {"betas": (0.9, 1.0)}, r"betas\[1\]=1.0: expected a number in \[0.0, 1.0\)"),
    ("adam", {"betas": 0.9}, r"betas=0.9: expected a pair"),
    ("momentum", {"momentum": 1.5}, r"momentum=1.5"),
    ("rmsprop", {"eps": 0}, r"eps=0: expected a number in \(0.0, inf\)"),
    ("sgd", {"lr_decay": 0}, r"lr_decay=0: expected a number in \(0.0, 1.0\]"),
    ("sgd", {"beta": 0.9}, r"optimizer 'sgd': unknown settings \['beta'\]"),
    ("sgd", {"nesterov": True}, r"nesterov=True: needs momentum > 0"),
])
def test_bad_settings_are_clear_errors(name, settings, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, {"w": np.zeros(2)}, **settings)


def test_step_with_mismatched_grads():
    opt = SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match=r"grads: missing \['w'\], unexpected \['v'\]"):
        opt.step({"v": np.zeros(2)})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_decay_in_the_step_equals_l2_in_the_gradients(name, dtype):
    """A model's L2 folded into the update (the Trainer's way) gives the same loss and, step
    after step, the same weights bit for bit as L2 added into the gradients first."""
    from gpucnn.models import build_model

    spec = [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
            {"type": "linear", "out_features": 300}, {"type": "relu"},  # 300x48: native kernel
            {"type": "linear", "out_features": 4}]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 2, 8, 8)).astype(dtype), rng.integers(0, 4, 6)
    models = [build_model(spec, (2, 8, 8), reg=0.05, dtype=dtype, seed=1) for _ in range(2)]
    opts = [make_optimizer(name, m.parameters(), lr=1e-2) for m in models]
    for _ in range(3):
        loss_in, grads_in = models[0].loss(X, y)
        opts[0].step(grads_in)
        loss_out, grads_out = models[1].loss(X, y, l2_in_grads=False)
        assert models[1].weight_decay() == {"net.0.weight": 0.05, "net.4.weight": 0.05,
                                            "net.6.weight": 0.05}
        opts[1].step(grads_out, weight_decay=models[1].weight_decay())
        assert float(loss_in) == float(loss_out)
        for k, p in models[0].parameters().items():
            np.testing.assert_array_equal(p, models[1].parameters()[k], err_msg=k)


def test_weight_decay_without_reg_is_empty_and_bad_decay_is_refused():
    from gpucnn.models import build_model

    model = build_model([{"type": "linear", "out_features": 2}], (3,), reg=0.0)
    assert model.weight_decay() == {}
    opt = SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match=r"weight_decay: unknown parameters \['v'\]"):
        opt.step({"w": np.zeros(2)}, weight_decay={"v": 0.1})
    with pytest.raises(ValueError, match=r"weight_decay\['w'\]=-1"):
        opt.step({"w": np.zeros(2)}, weight_decay={"w": -1})
    assert opt.t == 0  # a refused step changes nothing


def test_adamw_is_torchs():
    """Decoupled decay on every parameter, then Adam's step: torch.optim.AdamW's numbers."""
    torch = pytest.importorskip("torch", reason="torch is not installed: no reference")
    params, loss_and_grads, _ = quadratic(3)
    twins = [torch.tensor(v, requires_grad=True) for v in params.values()]
    theirs = torch.optim.AdamW(twins, lr=0.05, weight_decay=0.1, betas=(0.8, 0.99))
    ours = make_optimizer("adamw", params, lr=0.05, weight_decay=0.1, betas=(0.8, 0.99))
    for _ in range(5):
        grads = loss_and_grads()[1]
        for t, g in zip(twins, grads.values()):
            t.grad = torch.tensor(g)
        theirs.step()
        ours.step(grads)
    for t, p in zip(twins, params.values()):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12)


def test_adamw_without_decay_is_adam_and_decay_is_refused_negative():
    pa, fa, _ = quadratic()
    pb, fb, _ = quadratic()
    a, b = make_optimizer("adam", pa, lr=0.1), make_optimizer("adamw", pb, lr=0.1, weight_decay=0)
    for _ in range(3):
        a.step(fa()[1])
        b.step(fb()[1])
    np.testing.assert_array_equal(pa["w"], pb["w"])
    with pytest.raises(ValueError, match=r"weight_decay=-1"):
        make_optimizer("adamw", pa, weight_decay=-1)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_is_torchs(max_norm):
    from gpucnn.optim import clip_grad_norm_

    torch = pytest.importorskip("torch", reason="torch is not installed: no reference")
    rng = np.random.default_rng(4)
    grads = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5)
             .astype(np.float32)}
    twins = [torch.zeros(g.shape, requires_grad=True) for g in grads.values()]
    for t, g in zip(twins, grads.values()):
        t.grad = torch.tensor(g)
    expected = torch.nn.utils.clip_grad_norm_(twins, max_norm)
    norm = clip_grad_norm_(grads, max_norm)
    assert float(norm) == pytest.approx(expected.item(), rel=1e-6)
    for t, g in zip(twins, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6)
    assert (np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values()))
            == pytest.approx(min(max_norm, float(norm)), rel=1e-5))
