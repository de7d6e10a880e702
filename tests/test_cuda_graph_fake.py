"""``Trainer(..., cuda_graph=True)`` on the stand-in cupy, whose stream capture records what a
step issues and replays it (tests/fakecupy/_graph.py): the replayed run must equal the eager
one bit for bit (dropout, lr decay, a smaller last batch, resume), a replay must cost one launch,
no allocation and one sync, and where a graph cannot work training must say why once and go on.
A real GPU run is still needed for what the stand-in cannot see (README)."""
import shutil
import sys

import numpy as np
import pytest

from gpucnn import nn
from gpucnn.models import Classifier, ThreeLayerConvNet
from gpucnn.optim import SGD, make_optimizer
from gpucnn.train import Trainer

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="g++ is not installed: the kernel host emulation needs it")


def _data(n_train=12):
    rng = np.random.default_rng(0)
    return {"X_train": rng.standard_normal((n_train, 3, 8, 8)).astype(np.float32),
            "y_train": rng.integers(0, 10, n_train),
            "X_val": rng.standard_normal((6, 3, 8, 8)).astype(np.float32),
            "y_val": rng.integers(0, 10, 6)}


def _model():
    return ThreeLayerConvNet((3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, reg=0.01,
                             dropout=0.3, seed=1)


def _train(graph, epochs=2, model=None, **settings):
    model = model or _model()
    settings = {"optimizer": "nesterov", "optim_config": {"lr": 0.05, "lr_decay": 0.5},
                "batch_size": 5, "epochs": epochs, "device": "cuda", "progress": False,
                "cuda_graph": graph, **settings}
    trainer = Trainer(model, _data(), **settings)  # 3 steps an epoch: batches of 5, 5, 2
    return trainer, trainer.train()


def _eager(**settings):
    """The run without a graph, multiplying with gemm.cu as every step of a graphed run does
    (cuBLAS, which CuPy refuses in a capture, rounds differently)."""
    from gpucnn import primitives

    with primitives.for_array_module(sys.modules["cupy"]).gemm_kernels():
        return _train(False, **settings)


def _same_run(a, b):
    (ta, ha), (tb, hb) = a, b
    assert ha.loss == hb.loss and ha.val_acc == hb.val_acc and ha.lr == hb.lr
    sa, sb = ta.model.state_dict(), tb.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    assert ta.model.extra_state() == tb.model.extra_state()  # dropout counters
    oa, ob = ta.optimizer.state_dict(), tb.optimizer.state_dict()
    assert (oa["lr"], oa["t"]) == (ob["lr"], ob["t"])
    for k, v in oa["buffers"]["velocity"].items():
        np.testing.assert_array_equal(v, ob["buffers"]["velocity"][k])


def test_a_replayed_run_equals_the_eager_run_bit_for_bit(fake_cupy, capsys):
    """Two epochs of 3 steps (batches of 5, 5, 2): the warm-up, the capture, an eager step of
    the smaller batch, then after the learning rate halved two replays and an eager step, with
    two dropout layers, Nesterov momentum and L2: losses, parameters, velocities, dropout
    counters and accuracies equal the eager run's."""
    graphed = _train(True)
    assert graphed[0]._graph is not None and graphed[0]._graph.graph is not None
    assert capsys.readouterr().err == ""  # no notice: the graph ran
    _same_run(graphed, _eager())


def test_a_run_resumed_with_a_graph_equals_one_never_stopped(fake_cupy, tmp_path):
    _train(True, epochs=1, checkpoint_dir=str(tmp_path))
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), _model(), _data(),
                                      epochs=2, progress=False)
    assert resumed._graph is not None  # the setting travels with the checkpoint
    _same_run((resumed, resumed.train()), _eager())


def test_a_replay_is_one_launch_no_allocation_and_one_sync(fake_cupy):
    """Per replayed step: the batch's 2 uploads into the captured buffers, 1 graph launch,
    no allocation, 1 sync (the loss); the capture holds what one eager step launches, with the
    dropout draws reading their counter on the device (and advancing it) instead."""
    from gpucnn.train.graph import GraphStep

    model = _model().to("cuda")
    step = GraphStep(model, make_optimizer("momentum", model.parameters(), lr=0.05))
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 4))
               for _ in range(4)]
    with fake_cupy.counting() as warm_up:
        step.step(*batches[0])
    step.step(*batches[1])  # captured, then launched
    for X, y in batches[2:]:
        with fake_cupy.counting() as c:
            loss = step.step(X, y)
        assert np.isfinite(loss)
        assert dict(c.launches) == {"graph": 1} and not c.allocations, c.report()
        assert [kind for kind, _ in c.uploads] == ["blocking", "blocking"] and len(c.syncs) == 1
    eager = [n for n in warm_up.launches.elements()]
    names = step.graph.names
    assert sorted(names) == sorted(
        [n for n in eager if not n.startswith("dropout_forward_f")]
        + ["dropout_forward_at_f32", "advance_counter"] * 2), (names, eager)
    assert step.pool.used_bytes() > 0 and step.counters["net.3.rng"].known > 0


class _Peek(nn.Module):
    """A layer that reads a device value in its forward (a sync, which no graph can hold)."""

    def forward(self, x):
        self.seen = float(x.sum())
        return x

    def backward(self, dout, need_dx=True):
        return dout


class _Rebinds(nn.Module):
    """A layer whose state is a new array every step instead of written in place."""

    buffer_names = ("calls",)

    def __init__(self):
        super().__init__()
        self.calls = np.zeros(1, np.float32)

    def forward(self, x):
        self.calls = self.calls + 1
        return x

    def backward(self, dout, need_dx=True):
        return dout


def _with(layer):
    base = _model()
    return Classifier(nn.Sequential(layer, *base.net.layers), reg=base.reg)


@pytest.mark.parametrize("case, why", [
    ("cpu", "device='cpu': a CUDA graph replays GPU work"),
    ("adam", "optimizer Adam: its update reads host numbers every step"),
    ("no capture", "CuPy 0.0.0+stand-in has no stream capture"),
    ("sync", "capturing the step failed (RuntimeError: the current stream is capturing, so "
             "synchronous API calls are disallowed)"),
    ("rebinds", "capturing the step failed (ValueError: _Rebinds.calls replaced by a new array "
                "during the step"),
])
def test_where_no_graph_can_work_one_line_says_why_and_training_goes_on(fake_cupy, capsys,
                                                                         monkeypatch, case, why):
    settings, model = {}, None
    if case == "cpu":
        settings["device"] = "cpu"
    elif case == "adam":
        settings["optimizer"] = "adam"
    elif case == "no capture":
        monkeypatch.delattr(fake_cupy.cuda.Stream, "begin_capture")
    else:
        model = _with(_Peek() if case == "sync" else _Rebinds())
    trainer, history = _train(True, epochs=1, model=model, **settings)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"gpucnn: cuda_graph: {why}"), err
    assert err[0].endswith("; training without a CUDA graph")
    assert (trainer._graph is None or trainer._graph.graph is None) and len(history.loss) == 3
    if case in ("sync", "rebinds"):  # the failed capture left no trace: as if never tried
        _same_run((trainer, history), _eager(epochs=1, model=_with(type(model.net[0])())))


def test_several_processes_are_no_case_for_a_graph():
    from gpucnn.train.graph import unavailable

    model = _model()
    assert unavailable("cuda", 2, SGD(model.parameters())).startswith(
        "2 processes: the gradient allreduce")


def test_with_cublas_the_capture_fails_as_on_real_cupy(fake_cupy, capsys, monkeypatch):
    """The stand-in refuses cuBLAS during a capture as CuPy does: a step that kept cuBLAS's
    products would not capture; gemm.cu's is what makes the graph above possible."""
    from gpucnn.train.graph import GraphStep

    monkeypatch.setattr(GraphStep, "step", GraphStep._step)  # no gemm_kernels()
    trainer, _ = _train(True, epochs=1)
    err = capsys.readouterr().err
    assert ("capturing the step failed (NotImplementedError: calling cuBLAS API during stream "
            "capture is currently unsupported)") in err
    assert trainer._graph.graph is None
