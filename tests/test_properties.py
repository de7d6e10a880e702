"""Property-based (Hypothesis): the command line and the Python entry points, driven with
generated arguments, paths and arrays, end in success or one line naming the problem, never a
traceback, and change no file outside what they were asked to write (nor leave an empty
folder behind).

Derandomized by default (the same examples every run, no example database written: CI is
reproducible); ``HYPOTHESIS_PROFILE=explore pytest tests/test_properties.py`` draws fresh and
ten times as many examples.
"""
import contextlib
import hashlib
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpucnn import functional as F
from gpucnn import nn
from gpucnn.cli import USER_ERRORS, main
from gpucnn.models import ThreeLayerConvNet
from gpucnn.train import Trainer, load_weights, save_weights
from gpucnn.train.folder import plot_run_id, run_of

settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(factor: float) -> settings:
    """The profile's number of examples times ``factor`` (cheap tests get more)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


# Paths the generated arguments point at, relative to the sandbox: a finished run, a copy of
# its checkpoint, text, binary and TOML files, a folder, impossible places, nothing.
PATHS = ["out", "A", "A/checkpoint.npz", "A/weights.npz", "A/copy.npz", "A/other.npz", "B",
         "notes.txt", "bin.toml",
         "m.toml", "cfg.toml", "dir", "dir/new/deeper", "missing.npz", "notes.txt/x",
         "/dev/null/x", "", "f.png", "f", "out.json"]
TINY = ["--device", "cpu", "--no-progress", "--iterations-per-epoch", "2", "--filters", "2",
        "--hidden", "8"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> str:
    """A folder shared by a module's examples (a fresh one per example would train A again)."""
    root = str(tmp_path_factory.mktemp("sandbox"))
    with _in(root), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", *TINY, "--epochs", "1", "--output", "A"]) == 0
        assert main(["train", *TINY, "--epochs", "1", "--hidden", "9", "--output", "B"]) == 0
    for src, dst in (("A/checkpoint.npz", "A/copy.npz"), ("B/checkpoint.npz", "A/other.npz")):
        with open(os.path.join(root, src), "rb") as fi, open(os.path.join(root, dst), "wb") as fo:
            fo.write(fi.read())
    for name, data in (("notes.txt", b"my notes\n"), ("bin.toml", bytes(range(256))),
                       ("cfg.toml", b"epochs = 1\nbatch_size = 10\n"),
                       ("m.toml", b'[[layers]]\ntype = "flatten"\n[[layers]]\n'
                                  b'type = "linear"\nout_features = 10\n')):
        with open(os.path.join(root, name), "wb") as fh:
            fh.write(data)
    os.mkdir(os.path.join(root, "dir"))
    _own_data(root)
    return root


def _own_data(root) -> None:
    """One's own data for --dataset PATH: a good .npz, one with labels 1..K, one with mixed
    image shapes, 2x2 and 1x1 images, a folder of image folders and one of mixed image
    sizes."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(os.path.join(root, "own.npz"), x_train=x, y_train=y)
    np.savez(os.path.join(root, "shifted.npz"), x_train=x, y_train=y + 1)
    np.savez(os.path.join(root, "shapes.npz"), x_train=x, y_train=y, x_val=x[:4, :, :4],
             y_val=y[:4])
    np.savez(os.path.join(root, "tiny.npz"), x_train=x[:, :, :2, :2], y_train=y)
    np.savez(os.path.join(root, "dots.npz"), x_train=x[:, :, :1, :1], y_train=y)
    from PIL import Image

    for folder, sizes in (("imgs", [(8, 8)] * 4), ("mixed", [(8, 8), (9, 8)] * 2)):
        for i, size in enumerate(sizes):
            os.makedirs(os.path.join(root, folder, f"c{i % 2}"), exist_ok=True)
            Image.new("L", size, 40 * i).save(os.path.join(root, folder, f"c{i % 2}", f"{i}.png"))


@contextlib.contextmanager
def _in(folder):
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _snapshot(root) -> tuple[dict, set]:
    files, dirs = {}, set()
    for folder, subdirs, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs.add(rel)
        for n in names:
            with open(os.path.join(folder, n), "rb") as fh:
                files[os.path.normpath(os.path.join(rel, n))] = hashlib.sha1(fh.read()).digest()
    return files, dirs


def _within(path: str, allowed: list[str]) -> bool:
    return any(a and (path == a or path.startswith(a.rstrip("/") + "/")) for a in allowed)


def _check_files(root, before, allowed: list[str], replace=False):
    """Files outside ``allowed`` (paths relative to root) are byte-identical, and so are the
    files that were already inside unless ``replace`` (True when asked with --overwrite; a
    resume: the set of files of its own run); no new folder is left empty."""
    files, dirs = _snapshot(root)
    allowed = [os.path.normpath(a) for a in allowed if a and not os.path.isabs(a)]

    def may_change(p):
        return p not in before[0] or (replace is True or (replace and p in replace))

    changed = [p for p in set(before[0]) | set(files) if before[0].get(p) != files.get(p)
               and not (_within(p, allowed) and may_change(p))]
    assert not changed, f"changed, allowed {allowed} (replace={replace}): {changed}"
    empty = [d for d in dirs - before[1] if not os.listdir(os.path.join(root, d))]
    assert not empty, f"left empty folders {empty}"


def _run_cli(root, argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with _in(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: --help, a usage error
            code = e.code
    return code, err.getvalue()


def _assert_one_line_or_usage(code, err, argv):
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 1:
        assert err.count("\n") == 1 and err.startswith("gpucnn"), (argv, err)
    if code == 2:
        assert err == "" or err.splitlines()[-1].split(": ")[1] == "error", (argv, err)


def _flag(name, values):
    return st.tuples(st.just(name), st.sampled_from(values))


path = st.sampled_from(PATHS)
TRAIN_FLAGS = st.one_of(
    _flag("--epochs", ["-1", "0", "1", "2", "x", "1.5"]),
    _flag("--batch-size", ["0", "1", "10", "100000", "x"]),
    _flag("--lr", ["1e6", "-1", "0", "nan", "inf", "0.01", "x"]),
    _flag("--optimizer", ["sgd", "adam", "adamw", "adagrad"]),
    _flag("--dropout", ["0.5", "1", "-0.1"]),
    _flag("--filter-size", ["3", "4", "0"]),
    _flag("--dataset", ["digits", "mnist", "bogus", "own.npz", "shifted.npz", "shapes.npz",
                        "tiny.npz", "dots.npz", "imgs", "mixed", "notes.txt", "dir",
                        "missing.npz"]),
    _flag("--device", ["cpu", "tpu", "cuda"]),
    _flag("--seed", ["-1", "3"]),
    _flag("--train-samples", ["0", "5"]),
    _flag("--augment", ["flip", "crop", "flip,crop", "crop,crop", "blur", ""]),
    _flag("--crop-pad", ["-1", "0", "2", "x"]),
    _flag("--schedule", ["constant", "step", "multistep", "cosine", "plateau", "linear"]),
    _flag("--step-size", ["0", "1", "x"]),
    _flag("--milestones", ["1", "2,1", "0", "1,x"]),
    _flag("--gamma", ["0", "0.5", "2", "nan"]),
    _flag("--min-lr", ["-1", "0.001"]),
    _flag("--plateau-patience", ["-1", "0", "x"]),
    _flag("--warmup-epochs", ["-1", "0", "1", "x"]),
    _flag("--early-stop", ["0", "1", "5", "x"]),
    _flag("--monitor", ["val_acc", "val_loss", "loss"]),
    _flag("--clip-grad-norm", ["0", "-1", "1", "nan", "inf"]),
    _flag("--label-smoothing", ["-0.1", "0", "0.1", "1", "nan"]),
    _flag("--weight-decay", ["-1", "0.01", "nan"]),
    _flag("--lr-decay", ["0", "0.5", "2"]),
    st.tuples(st.sampled_from(["--output", "--model", "--config", "--resume", "--data-dir",
                               "--init-weights"]), path),
    st.just(("--overwrite",)), st.just(("--bogus",)),
)


@examples(1.5)
@given(st.lists(TRAIN_FLAGS, max_size=4))
@example([("--resume", "A/other.npz"), ("--epochs", "3")])   # issue 24, case 1
@example([("--resume", "A"), ("--epochs", "2"), ("--output", "notes.txt")])
@example([("--output", "A")])                                # a finished run is no output
@example([("--lr", "1e6"), ("--optimizer", "sgd")])
@example([("--dataset", "tiny.npz"), ("--augment", "crop")])   # issue 26: own data, 2x2 images
@example([("--resume", "A"), ("--epochs", "2"), ("--lr", "0.01"), ("--schedule", "step")])
@example([("--init-weights", "A/weights.npz"), ("--hidden", "9")])   # weights of another net
def test_train_from_the_command_line(sandbox, flags):
    given_ = dict(f for f in flags if len(f) == 2)  # the last of a flag wins, as in argparse
    resume = given_.get("--resume")
    base = ["--device", "cpu", "--no-progress"] if resume else [*TINY, "--epochs", "1"]
    argv = ["train", *base, *[a for f in flags for a in f]]
    output = given_.get("--output", None if resume else "runs/train")
    if resume and output is None:   # a resume writes into its checkpoint's folder
        output = resume if os.path.isdir(os.path.join(sandbox, resume)) else os.path.dirname(
            resume)
    before = _snapshot(sandbox)
    replace = _same_run(sandbox, resume, output) if resume else "--overwrite" in argv
    code, err = _run_cli(sandbox, argv)
    _assert_one_line_or_usage(code, err, argv)
    _check_files(sandbox, before, [output], replace)


def _same_run(root, checkpoint, folder) -> set:
    """The files now in ``folder`` of the run of ``checkpoint`` (a file or its run's folder):
    what resuming it may write over."""
    path = os.path.join(root, checkpoint)
    path = os.path.join(path, "checkpoint.npz") if os.path.isdir(path) else path
    rid = run_of(path)[0] if os.path.isfile(path) else None
    where = os.path.join(root, folder or ".")
    if rid is None or not os.path.isdir(where):
        return set()
    return {os.path.normpath(os.path.join(folder, n)) for n in os.listdir(where)
            if run_of(os.path.join(where, n))[0] == rid}


BENCH_QUICK = ["--parts", "naive", "--naive-batch", "1", "--naive-size", "4", "--reps", "1",
               "--no-torch", "--no-memory"]


@st.composite
def other_commands(draw) -> tuple[list, str | None]:
    """(argv, the files it may write) of evaluate, plot, visualize-filters, receptive-field,
    bench."""
    name = draw(st.sampled_from(["evaluate", "plot", "visualize-filters", "receptive-field",
                                 "bench"]))
    overwrite = draw(st.sampled_from([[], ["--overwrite"]]))
    if name == "plot":
        source, png = draw(path), draw(st.sampled_from([None, *PATHS]))
        out = png if png is not None else os.path.join(
            source if os.path.splitext(source)[1] == "" else os.path.dirname(source),
            "curves.png")
        return [name, source, *(["--png", png] if png is not None else []), *overwrite], out
    if name == "evaluate":
        source = draw(path)
        return ([name, source, *draw(st.sampled_from(
            [[], ["--dataset", "synthetic"], ["--split", "val"], ["--batch-size", "0"],
             ["--top-k", "0"], ["--output", "dir"], ["--output", "dir", "--overwrite"]]))],
                _evaluation_files(source))
    if name == "visualize-filters":
        out = draw(path)
        return [name, draw(path), "--output", out, *overwrite], out
    if name == "receptive-field":
        return [name, *draw(st.lists(st.sampled_from(["conv:3", "conv:0", "pool:2:0", "x"]),
                                     max_size=3)),
                *draw(st.sampled_from([[], ["--input-size", "0"], ["--input-size", "8"]]))], None
    out = draw(path)
    return [name, "--device", "cpu", *BENCH_QUICK, "--json", out, *overwrite], out


@examples(2)
@given(other_commands())
@example((["bench", "--device", "cpu", *BENCH_QUICK, "--json", "A/checkpoint.npz"],
          "A/checkpoint.npz"))                               # issue 24, case 2
@example((["visualize-filters", "A/weights.npz", "--output", "f"], "f"))
@example((["plot", "A"], "A/curves.png"))
@example((["plot", "A", "--png", "A/weights.npz"], "A/weights.npz"))
def test_other_commands(sandbox, command):
    argv, writes = command
    before = _snapshot(sandbox)
    replace = "--overwrite" in argv
    if argv[0] == "plot" and not replace:   # plotting a run again replaces its own plot
        replace = {os.path.normpath(writes)} if _own_plot(sandbox, argv[1], writes) else False
    code, err = _run_cli(sandbox, argv)
    _assert_one_line_or_usage(code, err, argv)
    writes = writes if isinstance(writes, list) else [writes] if writes else []
    _check_files(sandbox, before, writes, replace=replace)


def _own_plot(root, source, out) -> bool:
    """Whether ``out`` is already a plot of the run whose curves 'gpucnn plot SOURCE' draws."""
    metrics = os.path.join(root, source)
    metrics = os.path.join(metrics, "metrics.csv") if os.path.isdir(metrics) else metrics
    target = os.path.join(root, out)
    rid = run_of(metrics)[0] if metrics.endswith(".csv") and os.path.isfile(metrics) else None
    return rid is not None and os.path.isfile(target) and plot_run_id(target) == rid


def _evaluation_files(source) -> list[str]:
    """What 'gpucnn evaluate SOURCE' may write: its report of the weights (or the run folder's
    weights.npz or checkpoint.npz) on a dataset's split, beside them or in --output dir."""
    folder = source if os.path.splitext(source)[1] == "" else os.path.dirname(source)
    stems = {os.path.splitext(os.path.basename(source))[0], "weights", "checkpoint"}
    return [os.path.join(where, f"{stem}.{data}.{split}.{ext}") for where in (folder, "dir")
            for stem in stems for data in ("digits", "synthetic") for split in ("test", "val")
            for ext in ("json", "confusion.csv")]


# -- the Python entry points ---------------------------------------------------------------------
def _user_error(e: BaseException) -> bool:
    return isinstance(e, USER_ERRORS) and "\n" not in str(e)


dims = st.integers(0, 9)
dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.float16, bool])


@examples(4)
@given(st.tuples(st.integers(0, 3), st.integers(0, 3), dims, dims), dtypes,
       st.sampled_from(["net", "conv", "pool", "linear", "loss"]), st.booleans())
def test_ops_and_modules_on_generated_arrays(shape, dtype, op, nan):
    x = np.ones(shape, dtype=dtype)
    if nan and x.size and x.dtype.kind == "f":
        x.flat[0] = np.nan
    calls = {
        "net": lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Flatten(), nn.Linear(2 * 4 * 4, 3))(x),
        "conv": lambda: F.conv2d_forward(x, np.ones((2, max(shape[1], 1), 3, 3), np.float32),
                                         None, 1, 1),
        "pool": lambda: F.maxpool2d_forward(x, 2),
        "linear": lambda: F.linear_forward(x, np.ones((x[:1].size, 2), np.float32), None),
        "loss": lambda: F.softmax_cross_entropy(x.reshape(shape[0], -1),
                                                np.arange(shape[0]) - 1),
    }
    with np.errstate(all="ignore"):
        try:
            calls[op]()
        except Exception as e:  # noqa: BLE001 - the property: only one-line user errors
            assert _user_error(e), f"{op} on {shape} {np.dtype(dtype)}: {type(e).__name__}: {e}"


def _data(n_train, n_classes, label_shift):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (n_train + 8, 1, 8, 8)).astype(np.float32)
    y = np.arange(n_train + 8) % n_classes + label_shift
    return {"X_train": X[:n_train], "y_train": y[:n_train], "X_val": X[n_train:],
            "y_val": y[n_train:]}


@examples(1)
@given(st.fixed_dictionaries({
    "batch_size": st.sampled_from([0, 1, 10, 50, 10**6, 2.5, "10"]),
    "epochs": st.sampled_from([0, 1, 2, True]),
    "lr": st.sampled_from([None, 0.01, 0, -1, float("nan"), 1e6]),
    "optimizer": st.sampled_from(["sgd", "adam", "bogus"]),
    "checkpoint_dir": st.sampled_from([None, *PATHS]),
    "overwrite": st.booleans(),
    "early_stop": st.sampled_from([None, 0, 1, 2, 1.5]),
    "augment": st.sampled_from([(), ["flip"], "crop", ["blur"], 3, [np.flip]]),
    "init_weights": st.sampled_from([None, "A/weights.npz", "A/checkpoint.npz", "dir",
                                     "notes.txt", "missing.npz"]),
    "label_smoothing": st.sampled_from([0.0, 0.1, 1.0, -1]),
    "clip_grad_norm": st.sampled_from([None, 0, 1.0, float("nan")]),
    "schedule": st.sampled_from(["constant", "cosine", "step", "bogus"]),
}), st.sampled_from([(20, 4, 0), (20, 12, 0), (20, 4, -1), (0, 4, 0)]),
    st.sampled_from(["A/checkpoint.npz", "A/copy.npz", None]))
@example({"batch_size": 10, "epochs": 1, "optimizer": "sgd", "checkpoint_dir": "A",
          "overwrite": False}, (20, 4, 0), None)                 # issue 24, case 3
def test_trainer_with_generated_settings(sandbox, kwargs, data_args, resume):
    kwargs = {k: v for k, v in kwargs.items() if not (k == "lr" and v is None)}
    before = _snapshot(sandbox)
    with _in(sandbox), np.errstate(all="ignore"):
        try:
            model = ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3, hidden=4, seed=0)
            data = _data(*data_args)
            settings_ = dict(kwargs, iterations_per_epoch=1, device="cpu", progress=False)
            t = (Trainer(model, data, **settings_) if resume is None
                 else Trainer.from_checkpoint(resume, model, data, **settings_))
            t.train()
        except Exception as e:  # noqa: BLE001
            assert _user_error(e), f"{kwargs} {data_args}: {type(e).__name__}: {e}"
    _check_files(sandbox, before, [kwargs["checkpoint_dir"]]
                 if kwargs["checkpoint_dir"] is not None else [],
                 replace=kwargs["overwrite"] or resume is not None)


@examples(1)
@given(path, st.sampled_from(["net", "classifier", "dict"]), st.sampled_from([None, {"a": 1},
                                                                              {"a": np.int64(1)},
                                                                              [1]]))
def test_save_and_load_weights_with_generated_paths(sandbox, where, kind, info):
    model = {"net": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 3)),
             "classifier": lambda: ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3,
                                                     hidden=4),
             "dict": lambda: {"w": np.ones(3)}}[kind]()
    before = _snapshot(sandbox)
    with _in(sandbox):
        for call in (lambda: save_weights(where, model, info), lambda: load_weights(where),
                     lambda: load_weights(where, model)):
            try:
                call()
            except Exception as e:  # noqa: BLE001
                assert _user_error(e), f"{where} {kind} {info}: {type(e).__name__}: {e}"
    _check_files(sandbox, before, [where], replace=True)   # an explicit save_weights(path)
