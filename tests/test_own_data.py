"""One's own data: an .npz file of arrays or a folder of class folders of images, through
gpucnn.data.load and ``gpucnn train --dataset PATH``; one-line errors for what cannot be used."""
import os

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.data import load


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _pixels(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_npz_splits_layouts_scale_and_training_statistics(tmp_path):
    y = np.arange(60) % 3
    nhwc = _pixels(60, (6, 5, 3))
    d = load(_npz(tmp_path / "d.npz", x_train=nhwc, y_train=y, class_names=["a", "b", "c"]))
    assert d.x_train.shape[1:] == (3, 6, 5) and d.meta.class_names == ("a", "b", "c")
    assert d.meta.sizes == (42, 6, 12)  # validation and test held out, stratified
    # [0, 1] scaling, then the training split's per-channel mean subtracted from every split
    restored = d.x_train + np.asarray(d.meta.mean, np.float32)[None, :, None, None]
    assert np.allclose(restored * 255, np.round(restored * 255), atol=1e-3)
    assert np.allclose(d.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    assert not np.allclose(d.x_val.mean(axis=(0, 2, 3)), 0, atol=1e-3)
    given = load(_npz(tmp_path / "g.npz", X_train=_pixels(30, (4, 4)), y_train=np.arange(30) % 2,
                      x_val=_pixels(8, (4, 4), 1), y_val=np.arange(8) % 2,
                      x_test=_pixels(5, (4, 4), 2), y_test=np.arange(5) % 2))
    assert given.meta.sizes == (30, 8, 5) and given.x_train.shape[1:] == (1, 4, 4)
    floats = load(_npz(tmp_path / "f.npz", x_train=np.full((20, 1, 2, 2), 3.0),
                       y_train=np.arange(20) % 2), normalize="none")
    assert floats.x_train.dtype == np.float32 and (floats.x_train == 3).all()  # as given


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.array([1, 2, 3, 1, 2, 3])),
     r"y_train holds labels \{1, 2, 3\}: expected 0..K-1 with every class present \(none of "
     r"class \[0\]\)"),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.array([0, 2, 0, 2, 0, 2])), r"none of class \[1\]"),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.eye(2)[np.arange(6) % 2]),
     r"one-hot labels: take y.argmax\(axis=1\)"),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.arange(6) % 2 * 1.0), r"holds float64"),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.arange(6) % 2, x_val=_pixels(2, (5, 4)),
          y_val=np.array([0, 1])), r"x_val holds uint8 images of shape \(1, 5, 4\), x_train "),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.arange(6) % 2, x_test=_pixels(2, (4, 4)),
          y_test=np.array([0, 2])), r"y_test holds labels 0..2: expected the training classes 0..1"),
    (dict(x_train=_pixels(6, (4, 4)), y_train=np.arange(6) % 2, x_val=_pixels(2, (4, 4))),
     r"holds x_val without y_val"),
    (dict(x_train=_pixels(6, (4, 4)), labels=np.arange(6)), r"missing y_train; unexpected labels"),
    (dict(x_train=_pixels(6, (4, 4)).astype(np.int64), y_train=np.arange(6) % 2),
     r"x_train holds int64: expected uint8 pixels"),
])
def test_npz_errors_are_one_line(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message) as e:
        load(path)
    assert str(e.value).startswith(path) and "\n" not in str(e.value)


def _folder(root, sizes, modes=None):
    Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the images extra)")
    rng = np.random.default_rng(0)
    for c, (name, count) in enumerate(sizes.items()):
        os.makedirs(root / name, exist_ok=True)
        for i in range(count):
            size = (modes or {}).get((name, i), ("RGB", (6, 4)))
            mode, (w, h) = size
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                root / name / f"{i}.png")
    return str(root)


def test_a_folder_of_class_folders_loads_sorted_with_the_channels_it_needs(tmp_path):
    d = load(_folder(tmp_path / "f", {"cat": 10, "dog": 10, "ant": 10}))
    assert d.meta.class_names == ("ant", "cat", "dog") and d.x_train.shape[1:] == (3, 4, 6)
    assert sum(d.meta.sizes) == 30
    grey = load(_folder(tmp_path / "g", {"a": 5, "b": 5},
                        {(n, i): ("L", (3, 3)) for n in "ab" for i in range(5)}))
    assert grey.x_train.shape[1:] == (1, 3, 3)


@pytest.mark.parametrize("build, message", [
    (lambda r: _folder(r, {"a": 3, "b": 3}, {("b", 1): ("RGB", (5, 4))}),
     r"b/1.png: 5x4 pixels, but .*a/0.png: 6x4: expected images of one size"),
    (lambda r: (_folder(r, {"a": 3, "b": 3}), os.makedirs(r / "c"))[0],
     r"c: no images \(expected files ending in .png"),
    (lambda r: _folder(r, {"a": 3}), r"1 class folder: expected one subfolder of images per "
                                     r"class, at least 2"),
])
def test_folder_errors_are_one_line(tmp_path, build, message):
    with pytest.raises(ValueError, match=message) as e:
        load(build(tmp_path / "f"))
    assert "\n" not in str(e.value)


def test_train_and_evaluate_on_ones_own_npz_from_the_command_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    y = np.arange(120) % 3
    x = rng.normal(0, 0.2, (120, 1, 6, 6)).astype(np.float32)
    x[np.arange(120), 0, y, :] += 1.0  # class k: a bright row k
    data = _npz(tmp_path / "rows.npz", x_train=x, y_train=y, class_names=["r0", "r1", "r2"])
    out = str(tmp_path / "run")
    assert main(["train", "--dataset", data, "--device", "cpu", "--no-progress", "--epochs",
                 "2", "--filters", "4", "--hidden", "16", "--lr", "0.01", "--output", out]) == 0
    assert main(["evaluate", out]) == 0  # the dataset recorded in the run
    printed = capsys.readouterr().out
    assert f"on {data} test (24 samples" in printed and "r2  " in printed
    assert main(["train", "--dataset", str(tmp_path / "nope.npz")]) == 1
    assert "--dataset='" in capsys.readouterr().err
