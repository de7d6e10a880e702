"""Data parallelism over MPI ranks: the single-process pieces here, and real two-rank jobs launched
with mpirun (skipped with the reason where mpi4py or the MPI library is missing)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpucnn
from gpucnn import distributed
from gpucnn.distributed import World
from gpucnn.distributed import world as world_mod

SCRIPTS = Path(__file__).parent / "mpi_scripts"
LAUNCH_TIMEOUT = 120  # seconds; the machine may be busy, but each launch takes a few seconds


# --- the trivial world (no MPI) -----------------------------------------------------------------

def test_without_a_launcher_the_world_has_one_rank(monkeypatch):
    for name in distributed.WORLD_SIZE_ENV:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_world_size() == 1
    world = distributed.training_world(None)
    assert (world.rank, world.size, world.local_rank, world.is_root) == (0, 1, 0, True)


def test_bad_world_size_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_SIZE='two'"):
        distributed.launched_world_size()


def test_shards_cover_the_batch_in_rank_order():
    n = 11
    parts = []
    for rank in range(4):
        world = World()
        world.rank, world.size = rank, 4
        parts.append(np.arange(n)[world.shard_slice(n)])
    assert [len(p) for p in parts] == [3, 3, 3, 2]
    assert np.array_equal(np.concatenate(parts), np.arange(n))


def test_global_batch_must_divide_by_world_size():
    world = World()
    world.size = 4
    assert world.check_batch_size(128) == 32
    with pytest.raises(ValueError, match="batch_size=50: .*world size 4"):
        world.check_batch_size(50)


def test_size_one_allreduce_leaves_gradients_alone():
    grads = {"w": np.arange(3.0)}
    assert World().allreduce_gradients(grads, 2.5, 7) == 2.5
    assert np.array_equal(grads["w"], np.arange(3.0))


def test_map_runs_without_mpi_is_a_loop_in_order():
    assert distributed.map_runs(lambda x: x * 10, [3, 1, 2]) == [30, 10, 20]


def test_trainer_inside_map_runs_is_not_data_parallel():
    worlds = distributed.map_runs(lambda _: distributed.training_world(None).size, [0])
    assert worlds == [1]
    with pytest.raises(ValueError, match="distributed=True inside distributed.map_runs"):
        distributed.map_runs(lambda _: distributed.training_world(True), [0])


class _FakeJob(World):
    """Local rank ``rank`` of a two-rank job on one host, without MPI: gather is local, and
    the other rank took the GPU ``taken`` says (a GPU of its own by default)."""

    def __init__(self, rank, taken=None):
        super().__init__()
        self.rank = self.local_rank = rank
        self.size = self.local_size = 2
        self.taken = taken or {}

    def gather(self, obj, root=0):
        return [obj]

    def gather_local(self, obj):
        return [obj if r == self.local_rank else self.taken.get(r, f"the GPU of rank {r}")
                for r in range(self.local_size)]


@pytest.fixture
def job(monkeypatch):
    """``job(rank, taken=None)`` makes this process that rank of a two-rank job (see _FakeJob)."""
    def make(rank, taken=None):
        fake = _FakeJob(rank, taken)
        monkeypatch.setattr(world_mod, "get_world", lambda: fake)
        return fake

    return make


@pytest.mark.parametrize("gpus, visible, ordinal, gpu", [(2, None, 1, 1), (2, "1", 0, 1)],
                         ids=["sharing the host's GPUs", "one GPU per rank"])
def test_a_rank_takes_its_gpu_before_cuda_is_probed_and_touches_no_other(
        fake_cupy, fake_host, job, gpus, visible, ordinal, gpu):
    """Local rank 1: with every GPU visible it takes GPU 1; with CUDA_VISIBLE_DEVICES=1 (Slurm's
    --gpus-per-task=1) it sees one GPU, ordinal 0.  The probe (a kernel, a cuBLAS matmul)
    and the data-parallel checks run there, and no context appears on host GPU 0."""
    host = fake_host(gpus=gpus, visible=visible)
    job(1)
    assert distributed.rank_device("auto") == "cuda"
    assert host.contexts == [gpu] and fake_cupy.cuda.Device().id == ordinal
    assert distributed.training_world(None, "cuda").rank == 1
    assert host.contexts == [gpu] and fake_cupy.cuda.Device().id == ordinal


def test_two_ranks_on_one_gpu_are_refused_in_one_line_before_using_it(fake_cupy, fake_host, job):
    from gpucnn.device import gpu_identity

    host = fake_host(gpus=1)
    job(1, taken={0: gpu_identity(0)})  # rank 0 took the host's one GPU too
    with pytest.raises(RuntimeError) as err:
        distributed.training_world(None, "cuda")
    assert str(err.value) == ("2 ranks on this host but 1 GPUs among them (local ranks 0 and 1 "
                              "took the same GPU; each sees 1): expected one GPU per rank (NCCL "
                              "rejects two ranks on one GPU); start at most 1 ranks here, or "
                              "give each its own GPU")
    assert host.contexts == []


def test_multi_gpu_training_without_nccl_fails_up_front_with_the_install_hint(fake_cupy, job,
                                                                              monkeypatch):
    monkeypatch.setattr(fake_cupy.cuda.nccl, "available", False)
    job(0)
    with pytest.raises(RuntimeError, match="needs NCCL") as err:
        distributed.training_world(None, "cuda")
    assert distributed.NCCL_INSTALL_HINT in str(err.value)


def test_nccl_stub_counts_as_unavailable(monkeypatch):
    import types

    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.available = False  # what CuPy's stub says when the NCCL library is missing
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl = nccl
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    assert world_mod.nccl_available() is False
    nccl.available = True
    assert world_mod.nccl_available() is True


def test_independent_runs_under_mpi_use_each_ranks_local_gpu(fake_cupy, fake_host, job,
                                                            monkeypatch):
    from gpucnn.device import gpu_identity

    host = fake_host(gpus=1)  # independent runs may share a GPU: no refusal, no NCCL needed
    monkeypatch.setattr(fake_cupy.cuda.nccl, "available", False)
    job(1, taken={0: gpu_identity(0)})
    sizes = []
    assert distributed.map_runs(
        lambda _: sizes.append(distributed.training_world(None, "cuda").size), [0, 1]) is None
    assert sizes == [1] and host.contexts == [0]
    host = fake_host(gpus=2)
    distributed.map_runs(lambda _: distributed.training_world(None, "cuda"), [0, 1])
    assert host.contexts == [1]


def _mask(g):
    """A 64-element dropout mask (p=0.5) drawn from generator ``g``."""
    from gpucnn import functional as F

    return F.dropout_forward(np.ones(64), 0.5, True, g)[1][0]


def test_dropout_streams_are_fixed_by_seed_and_rank():
    from gpucnn.models import ThreeLayerConvNet

    def masks(rank):
        model = ThreeLayerConvNet((1, 8, 8), num_filters=2, filter_size=3, hidden_dim=8,
                                  dropout=0.5, seed=3)
        distributed.spread_random_streams(model, rank)
        distributed.spread_random_streams(model, rank)  # idempotent
        return [_mask(m.rng) for m in model.modules() if hasattr(m, "rng")]

    single = ThreeLayerConvNet((1, 8, 8), num_filters=2, filter_size=3, hidden_dim=8,
                               dropout=0.5, seed=3)
    plain = [_mask(m.rng) for m in single.modules() if hasattr(m, "rng")]
    assert all(np.array_equal(a, b) for a, b in zip(masks(0), plain))  # rank 0 = one process
    assert all(np.array_equal(a, b) for a, b in zip(masks(1), masks(1)))
    assert not any(np.array_equal(a, b) for a, b in zip(masks(0), masks(1)))


def test_mpirun_command_adds_root_and_oversubscribe_flags(monkeypatch):
    monkeypatch.setattr(distributed.launch, "find_mpirun", lambda: "/x/mpirun")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert distributed.mpirun_command(4, ["prog"]) == [
        "/x/mpirun", "-n", "4", "--allow-run-as-root", "--oversubscribe", "prog"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert distributed.mpirun_command(2, ["prog"]) == ["/x/mpirun", "-n", "2", "prog"]
    with pytest.raises(ValueError, match="nproc=0"):
        distributed.mpirun_command(0, ["prog"])


# --- real jobs under mpirun ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mpi_env():
    """The environment for launched ranks; skips when mpi4py or an MPI library is missing."""
    env = dict(os.environ)
    for name in distributed.WORLD_SIZE_ENV:
        env.pop(name, None)
    # The ranks import the gpucnn this test imported (source tree or installed).
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(gpucnn.__file__).parents[1]), *filter(None, [env.get("PYTHONPATH")])])
    probe = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; MPI.Get_library_version()"],
                           capture_output=True, text=True, env=env, timeout=LAUNCH_TIMEOUT)
    if probe.returncode:
        pytest.skip(f"mpi4py or its MPI library is unusable ({probe.stderr.strip().splitlines()[-1]}); "
                    f"{distributed.MPI_INSTALL_HINT}")
    try:
        distributed.find_mpirun()
    except RuntimeError as e:
        pytest.skip(str(e))
    return env


def launch(env, nproc, script, *args, timeout=LAUNCH_TIMEOUT):
    """Run ``script`` as ``nproc`` ranks and return the finished process."""
    cmd = distributed.mpirun_command(nproc, [sys.executable, str(script), *map(str, args)])
    if "--oversubscribe" not in cmd:
        cmd.insert(3, "--oversubscribe")  # a busy CI machine may report fewer free slots
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_two_ranks_of_25_match_one_process_of_50(mpi_env, tmp_path):
    single = subprocess.run([sys.executable, str(SCRIPTS / "equivalence.py"), tmp_path / "one.npz"],
                            capture_output=True, text=True, env=mpi_env, timeout=LAUNCH_TIMEOUT)
    assert single.returncode == 0, single.stderr
    two = launch(mpi_env, 2, SCRIPTS / "equivalence.py", tmp_path / "two.npz")
    assert two.returncode == 0, two.stdout + two.stderr
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one) == sorted(two)
    for name in one:
        assert one[name].dtype == np.float64
        np.testing.assert_allclose(two[name], one[name], rtol=1e-12, atol=1e-12 * np.abs(one[name]).max(),
                                   err_msg=name)


def test_trainer_on_two_ranks_matches_one_process(mpi_env, tmp_path):
    """Batches of 50 (the last of each epoch 10 samples: shards of 5), sharded accuracy."""
    script = SCRIPTS / "trainer_equivalence.py"
    single = subprocess.run([sys.executable, str(script), tmp_path / "one.npz"],
                            capture_output=True, text=True, env=mpi_env, timeout=LAUNCH_TIMEOUT)
    assert single.returncode == 0, single.stderr
    two = launch(mpi_env, 2, script, tmp_path / "two.npz")
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("epoch") == 1  # the table is printed once, by rank 0
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert len(one["loss"]) == 10
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-12,
                                   atol=1e-12 * np.abs(one[name]).max(), err_msg=name)


def test_cli_nproc_launches_ranks_and_reports_bad_batch_in_one_line(mpi_env, tmp_path):
    cmd = [sys.executable, "-m", "gpucnn.cli", "train", "--nproc", "2", "--batch-size", "51",
           "--epochs", "1", "--device", "cpu", "--output", str(tmp_path), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env, timeout=LAUNCH_TIMEOUT)
    assert done.returncode != 0
    assert "ValueError: batch_size=51: the global batch must divide by the world size 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_map_runs_splits_runs_over_ranks_and_gathers_in_order(mpi_env):
    done = launch(mpi_env, 3, SCRIPTS / "map_runs.py")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])
    assert [r["item"] for r in results] == list(range(7))
    assert [r["square"] for r in results] == [i * i for i in range(7)]
    assert [r["rank"] for r in results] == [i % 3 for i in range(7)]
    assert len({r["pid"] for r in results}) == 3


def test_a_failing_rank_stops_the_job_with_its_error(mpi_env):
    start = time.monotonic()
    done = launch(mpi_env, 2, SCRIPTS / "failing_rank.py", timeout=LAUNCH_TIMEOUT)
    assert time.monotonic() - start < LAUNCH_TIMEOUT / 2  # stopped, not left waiting
    assert done.returncode != 0
    assert "rank 1: ValueError: batch 2 is corrupt (raised on purpose)" in done.stderr


# --- GPU ranks on the stand-in CuPy (tests/fakecupy): placement and the NCCL all-reduce -----------

def _stand_in_env(mpi_env, gpus):
    tests = Path(__file__).parent
    return {**mpi_env, "FAKECUPY_GPUS": str(gpus), "PYTHONPATH": os.pathsep.join(
        [str(tests / "fakecupy" / "shim"), str(tests), mpi_env["PYTHONPATH"]])}


@pytest.fixture(scope="module")
def one_gpu_run(mpi_env, tmp_path_factory):
    """tests/mpi_scripts/gpu_placement.py in one process on a one-GPU stand-in host."""
    out = tmp_path_factory.mktemp("one_gpu") / "one"
    one = subprocess.run([sys.executable, str(SCRIPTS / "gpu_placement.py"), out],
                         capture_output=True, text=True, env=_stand_in_env(mpi_env, 1),
                         timeout=LAUNCH_TIMEOUT)
    assert one.returncode == 0, one.stderr
    return json.loads(Path(f"{out}.0.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("isolated", [True, False], ids=["one GPU per rank", "sharing two GPUs"])
def test_two_gpu_ranks_each_train_on_their_own_gpu_as_one_process_does(mpi_env, one_gpu_run,
                                                                       tmp_path, isolated):
    """Two ranks on a two-GPU host, each seeing only its GPU (CUDA_VISIBLE_DEVICES per rank) or
    both: each creates a context on its own GPU only, and their NCCL-summed training equals one
    process's (float64)."""
    two = launch(_stand_in_env(mpi_env, 2), 2, SCRIPTS / "gpu_placement.py", tmp_path / "two",
                 *(["isolated"] if isolated else []))
    assert two.returncode == 0, two.stdout + two.stderr
    ref = one_gpu_run
    ranks = [json.loads((tmp_path / f"two.{r}.json").read_text()) for r in (0, 1)]
    assert [r["contexts"] for r in ranks] == [[0], [1]]
    assert [r["device"] for r in ranks] == ([0, 0] if isolated else [0, 1])
    for r in ranks:
        np.testing.assert_allclose(r["loss"], ref["loss"], rtol=1e-12)
        for name, value in ref["params"].items():
            np.testing.assert_allclose(r["params"][name], value, rtol=1e-10, atol=1e-12,
                                       err_msg=name)


@pytest.mark.slow
def test_more_gpu_ranks_than_gpus_on_a_host_are_refused_in_one_line(mpi_env, tmp_path):
    cmd = distributed.mpirun_command(2, [sys.executable, "-m", "gpucnn.cli", "train", "--device",
                                         "cuda", "--epochs", "1", "--output", str(tmp_path),
                                         "--no-progress"])
    if "--oversubscribe" not in cmd:
        cmd.insert(3, "--oversubscribe")
    done = subprocess.run(cmd, capture_output=True, text=True, env=_stand_in_env(mpi_env, 1),
                          timeout=LAUNCH_TIMEOUT)
    assert done.returncode != 0
    assert ("RuntimeError: 2 ranks on this host but 1 GPUs among them (local ranks 0 and 1 took "
            "the same GPU; each sees 1): expected one GPU per rank") in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
