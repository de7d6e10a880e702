"""Smoke tests for ``gpucnn bench`` on tiny shapes: it runs, reports and writes JSON.

No timing assertions (benchmarks are not tests).  PyTorch parts run only when it is installed.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from gpucnn.bench import memory, nets, suite_run, suites, timing
from gpucnn import functional as F
from gpucnn.cli import main

TINY = ["bench", "--device", "cpu", "--configs", "a2x8,b2x8", "--reps", "2", "--steps", "2", "--warmup", "1",
        "--sweep-batches", "1,2", "--sweep-sizes", "8,12", "--sweep-size-batch", "2",
        "--naive-batch", "1", "--naive-size", "6", "--no-memory", "--no-torch"]


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_tiny_bench_prints_tables_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(TINY + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    for word in ("Full training step", "Ops", "Naive loop conv", "Scaling sweep", "time ~ batch^"):
        assert word in out
    result = json.loads(path.read_text())
    assert result["machine"]["numpy"] == np.__version__ and result["machine"]["date"]
    assert [r["config"] for r in result["train"]] == ["(a) b2 8px", "(b) b2 8px"]
    assert {r["op"] for r in result["ops"]} >= {"conv", "max-pool 2x2", "dropout p=0.5", "relu",
                                                "linear", "softmax-CE"}
    assert set(result["sweep"]["fits"]) == {"batch", "pixels"}
    assert "torch" not in result["train"][0] and "(PyTorch not run)" in out


@pytest.mark.skipif(not _has_torch(), reason="PyTorch is not installed")
def test_torch_runs_interleaved_with_ratios(tmp_path):
    path = tmp_path / "bench.json"
    args = [a for a in TINY if a != "--no-torch"]
    assert main(args + ["--configs", "b1x8", "--parts", "train,ops", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    row = result["train"][0]
    kept = sum(not d for d in row["ratio"]["disturbed"]) or 2  # all disturbed: all rounds count
    assert row["torch"]["n"] == 2 * kept and len(row["ratio"]["rounds"]) == 2
    assert result["machine"]["torch_threads"] >= 1
    assert all("torch_bwd" in r for r in result["ops"])


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes' states from /proc")
def test_busy_processes_spin_during_the_block_and_are_gone_after_it_however_it_ends(tmp_path, capsys):
    """--busy: the measurements of a shared machine; its header says so."""
    def state(pid):  # R running, Z exited, None gone
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split()[2]
        except FileNotFoundError:
            return None

    def wait_until(done):
        start = time.monotonic()
        while not done() and time.monotonic() - start < 10:
            time.sleep(0.05)

    with pytest.raises(KeyboardInterrupt):
        with suite_run.busy_processes(2) as children:
            wait_until(lambda: all(state(pid) == "R" for pid in children))  # Python started
            assert len(children) == 2 and all(state(pid) == "R" for pid in children)
            raise KeyboardInterrupt
    assert all(state(pid) is None for pid in children)
    code = ("import time\nfrom gpucnn.bench import suite_run\nwith suite_run.busy_processes(1) as pids:\n"
            "    print(pids[0], flush=True)\n    time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.terminate()  # SIGTERM: no finally runs; the child sees its parent gone
    parent.wait()
    wait_until(lambda: state(child) in (None, "Z"))
    assert state(child) in (None, "Z")
    assert main(TINY + ["--parts", "naive", "--busy", "1", "--json", str(tmp_path / "b.json")]) == 0
    assert "shared machine: 1 busy process(es) spinning" in capsys.readouterr().out
    assert json.loads((tmp_path / "b.json").read_text())["busy"] == 1


def test_memory_probe_reports_peak_resident_memory():
    mem = memory.cpu_peak_memory("gpucnn", nets.parse_config("b2x8"), np.float32, steps=1)
    assert 0 < mem["base_mb"] <= mem["peak_mb"]


def test_naive_conv_matches_ours():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    np.testing.assert_allclose(suites.naive_conv(x, w, b, 1), F.conv2d_forward(x, w, b, 1, 1)[0],
                               rtol=1e-12, atol=1e-12)


def test_loglog_exponents_of_a_power_law():
    fit = suites.loglog_exponents([1, 2, 4, 8], [3.0, 12.0, 48.0, 192.0])
    assert fit["exponent"] == pytest.approx(2.0)
    assert fit["local"] == pytest.approx([2.0, 2.0, 2.0])


def test_cpu_timer_and_summary():
    timer = timing.make_timer("cpu", "gpucnn")
    s = timing.summarize([timer(lambda: None) for _ in range(5)])
    assert s["n"] == 5 and s["min_ms"] <= s["median_ms"] <= s["max_ms"]


@pytest.mark.parametrize("text", ["c50", "a0", "a5x2", "a", "50"])
def test_bad_config_names_the_item(text):
    with pytest.raises(ValueError, match=f"--configs item '{text}'"):
        nets.parse_config(text)


def test_bad_arguments_are_one_clear_line(capsys):
    assert main(["bench", "--reps", "0"]) == 1
    assert "--reps=0: expected an integer >= 1" in capsys.readouterr().err
    assert main(["bench", "--busy", "-1"]) == 1
    assert "--busy=-1: expected an integer >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--parts", "train,bogus"])


def test_script_wrapper_shows_help():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, os.path.join(root, "scripts", "bench.py"), "--help"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "--sweep-batches" in out.stdout


class _FakeCupy:
    """Just enough of CuPy's event and pool API to drive the CUDA timing code without a GPU:
    events stamp the host clock when recorded, the pool grows when the step allocates."""

    class cuda:
        class Event:
            def record(self):
                import time
                self.t = time.perf_counter()

            def synchronize(self):
                pass

        @staticmethod
        def get_elapsed_time(start, end):
            return (end.t - start.t) * 1e3  # milliseconds, as CuPy returns

        class Device:
            def synchronize(self):
                pass

    class _Pool:
        total = 5 * 2**20

        def free_all_blocks(self):
            self.total = 0

        def total_bytes(self):
            return self.total

    pool = _Pool()

    @classmethod
    def get_default_memory_pool(cls):
        return cls.pool


def test_cuda_timer_and_pool_peak_logic_with_a_stand_in_cupy(monkeypatch):
    import sys
    import time

    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy)
    timer = timing.make_timer("cuda", "gpucnn")
    seconds = timer(lambda: time.sleep(0.02))
    assert 0.015 < seconds < 0.5  # the events bracket the call and ms are turned into seconds

    def step():  # a step that leaves 3 MiB in an emptied pool
        _FakeCupy.pool.total += 3 * 2**20

    assert memory.cuda_peak_memory("gpucnn", step) == {"peak_mb": 3.0}


def test_steady_method_alternates_who_goes_first_and_leaves_disturbed_rounds_out(monkeypatch):
    calls = []
    fns = {"gpucnn": lambda: calls.append("g"), "torch": lambda: calls.append("t")}
    durations = iter([1.0, 1.0, 2.0, 2.0,   # round 0: gpucnn, torch (ratio 0.5)
                      9.0, 9.0, 3.0, 3.0,   # round 1: torch first (9 s), then gpucnn (ratio 1/3)
                      1.0, 1.0, 4.0, 4.0])  # round 2 (ratio 0.25)
    timers = {k: (lambda fn: (fn(), next(durations))[1]) for k in fns}
    # round 1 is disturbed: another process took 10 s of CPU while it ran
    ticks = iter([(0, 0), (100, 100), (100, 100), (1100, 100), (1100, 100), (1200, 200)])
    monkeypatch.setattr(timing, "_cpu_ticks", lambda pids=(): next(ticks))
    monkeypatch.setattr(timing.os, "sysconf", lambda name: 100)
    out = timing.time_steady(fns, timers, rounds=3, steps=2, warmup=1)
    assert "".join(calls) == "gggttt" + "tttggg" + "gggttt"  # warm-up then 2 timed, alternating
    assert out["ratio"]["disturbed"] == [False, True, False]
    assert out["ratio"]["rounds"] == pytest.approx([0.5, 1 / 3, 0.25])
    assert out["ratio"]["median"] == pytest.approx(0.375)  # of the clean rounds only
    assert out["gpucnn"]["n"] == 4 and not out["ratio"]["all_disturbed"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="the stand-in's kernels need g++")
def test_train_rows_carry_the_step_counts_on_the_stand_in_cupy(fake_cupy):
    from gpucnn.bench import report

    row = suites.bench_train(nets.parse_config("b2x8"), np.float32, "cuda", None, reps=1,
                             steps=1, warmup=1, memory=False, pause=0.0)
    table = row["gpucnn"]["counts"]
    assert list(table) == ["forward", "loss", "backward", "update"]
    assert sum(t["syncs"] for t in table.values()) == 0  # the loss is not read in bench's step
    assert table["update"]["allocations"] == 0 and table["update"]["launches"] > 0
    assert any(line.startswith("  one gpucnn step: launches ") for line in report.train_table([row]))
