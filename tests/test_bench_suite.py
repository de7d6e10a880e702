"""``gpucnn bench --parts suite``: its nets, their PyTorch twins, the worker processes, the report.

No timing assertions (benchmarks are not tests).  The twins must be the same networks: equal
scores and, after one training step from the same weights and data, equal parameters (float64).
"""
import json
import os

import numpy as np
import pytest

from gpucnn.bench import report, suite_nets, suite_run
from gpucnn.bench.suite_worker import build_steps
from gpucnn.cli import main
from gpucnn.models import build_model, read_spec

torch = pytest.importorskip("torch", reason="the suite's twins need PyTorch")
from gpucnn.bench.torch_twins import torch_train_step, torch_twin  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_suite_resnet_is_the_shipped_example():
    shipped = read_spec(os.path.join(REPO, "examples", "resnet.toml"))
    for dim in ((3, 32, 32), (1, 8, 8)):
        assert repr(build_model(list(suite_nets.RESNET), dim)) == repr(build_model(shipped, dim))


def test_every_role_has_nets_and_cases_name_nets_of_the_table():
    assert {n.role for n in suite_nets.NETS.values()} == set(suite_nets.ROLES)
    assert {c.net.name for c in suite_nets.CASES} == set(suite_nets.NETS)
    assert all(c.mode in suite_nets.MODES and 8 <= c.batch <= 256 for c in suite_nets.CASES)
    kinds = {(layer.get("kernel_size"), layer.get("stride", 1)) for n in suite_nets.NETS.values()
             for layer in n.layers if layer["type"] == "conv2d"}
    assert {k for k, _ in kinds} >= {1, 3, 5, 7} and {s for _, s in kinds} >= {1, 2}


@pytest.mark.parametrize("name", list(suite_nets.NETS))
def test_twin_equals_the_gpucnn_net_forward_and_after_a_training_step(name):
    net = suite_nets.NETS[name]
    model = build_model(list(net.layers), net.input_dim, reg=1e-3, dtype=np.float64, seed=0)
    twin = torch_twin(model.net)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3,) + net.input_dim), rng.integers(0, 10, 3)
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(X)).numpy(), model.net.forward(X), atol=1e-12)
    from gpucnn.optim import SGD

    model.train_step(X, y, SGD(model.parameters(), lr=0.1))
    torch_train_step(twin, X, y, lr=0.1, reg=1e-3)()
    ours = [v for k, v in model.parameters().items()]
    theirs = [p.detach().numpy() for p in twin.parameters()]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.T if a.ndim == 2 else b, rtol=1e-9, atol=1e-12)


def test_case_selection_and_its_errors():
    assert {c.net.role for c in suite_nets.parse_cases("held-out")} == {"held-out"}
    assert [c.name for c in suite_nets.parse_cases("vgg b64 train, vgg")][:2] == ["vgg b64 train", "vgg b8 train"]
    assert len(suite_nets.parse_cases("all")) == len(suite_nets.CASES)
    with pytest.raises(ValueError, match=r"^--suite item 'alexnet': expected all, tuning, held-out"):
        suite_nets.parse_cases("alexnet")


def test_workers_start_without_gpucnns_blas_timeout_and_with_the_threads(monkeypatch):
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    env = suite_run.worker_env(3)
    assert "OPENBLAS_THREAD_TIMEOUT" not in env
    assert env["OPENBLAS_NUM_THREADS"] == env["GPUCNN_CPU_THREADS"] == env["OMP_NUM_THREADS"] == "3"


def test_a_worker_builds_both_frameworks_steps_from_the_same_weights_and_data():
    steps = build_steps("lenet b256 infer", ["gpucnn", "torch"], "float64", 1)
    np.testing.assert_allclose(steps["gpucnn"](), steps["torch"]().numpy(), rtol=1e-10, atol=1e-12)
    assert set(build_steps("lenet b8 train", ["gpucnn"], "float32", 1)) == {"gpucnn"}


@pytest.mark.slow
def test_suite_part_runs_workers_and_writes_json_and_markdown(tmp_path, capsys):
    """Three worker processes (one with both frameworks, one each): about 10 s."""
    paths = tmp_path / "s.json", tmp_path / "s.md"
    assert main(["bench", "--device", "cpu", "--parts", "suite", "--suite", "lenet b8 train",
                 "--reps", "2", "--steps", "1", "--warmup", "0",
                 "--threads", "1", "--json", str(paths[0]), "--md", str(paths[1])]) == 0
    row = json.loads(paths[0].read_text())["suite"][0]
    assert row["case"] == "lenet b8 train" and row["role"] == "held-out"
    for way in ("together", "apart"):
        assert row[way]["gpucnn"]["n"] >= 1 and len(row[way]["ratio"]["rounds"]) == 2
    md = paths[1].read_text()
    assert "| lenet | held-out | 8 | train |" in md and "Workers import NumPy before gpucnn" in md
    assert "lenet b8 train" in capsys.readouterr().out


def test_md_needs_the_suite_and_the_suite_needs_the_cpu(tmp_path, capsys):
    assert main(["bench", "--parts", "train", "--md", str(tmp_path / "x.md"), "--no-torch"]) == 1
    assert "--md=" in capsys.readouterr().err and not (tmp_path / "x.md").exists()
    assert main(["bench", "--parts", "suite", "--device", "cuda", "--no-torch"]) == 1
    assert "the suite times the CPU path; give --device cpu" in capsys.readouterr().err


def test_suite_summary_counts_cases_at_the_target_both_ways():
    def row(role, one, two):
        return {"role": role, "together": {"ratio": {"median": one}}, "apart": {"ratio": {"median": two}}}

    lines = report.suite_summary([row("tuning", 0.7, 0.75), row("tuning", 0.7, 0.9),
                                  row("held-out", 0.5, 0.6)])
    assert lines == ["tuning: 1 of 2 cases at <= 0.8x PyTorch's time both ways; worst 0.90x",
                     "held-out: 1 of 1 cases at <= 0.8x PyTorch's time both ways; worst 0.60x"]
