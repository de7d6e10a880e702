"""Datasets that need no files: the embedded digits, synthetic images, splits, preprocessing,
the batch iterator and subsets."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gpucnn.data import BatchIterator, load, random_subset, synthetic_images
from gpucnn.data import digits as digits_mod
from gpucnn.data.augment import RandomCrop, RandomHorizontalFlip
from gpucnn.data.preprocess import stratified_split


# --- digits ------------------------------------------------------------------------------------

def test_digits_arrays_and_split():
    d = load("digits", seed=3)
    assert d.meta.sizes == (len(d.x_train), len(d.x_val), len(d.x_test))
    assert sum(d.meta.sizes) == 1797
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.shape[1:] == (1, 8, 8) and d.meta.num_classes == 10
    # mean of the training split is what was subtracted: training data now has mean ~0
    assert abs(float(d.x_train.mean(dtype=np.float64))) < 1e-6
    raw = load("digits", seed=3, normalize="none")
    assert raw.x_train.min() == 0 and raw.x_train.max() == 1
    assert np.isclose(raw.x_train.mean(dtype=np.float64), d.meta.mean[0])
    np.testing.assert_allclose(d.x_val, raw.x_val - np.float32(d.meta.mean[0]), atol=1e-6)
    np.testing.assert_allclose(d.meta.normalize(raw.x_test), d.x_test, atol=1e-6)
    # pixel values are multiples of 1/16 (16 grey levels) and every class is present per split
    assert np.allclose(raw.x_train * 16, np.round(raw.x_train * 16))
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(np.unique(y)) == set(range(10))
    assert "CC BY 4.0" in d.meta.source and "Alpaydin" in d.meta.source


def test_digits_split_is_deterministic_and_stratified():
    a, b, c = load("digits", seed=1), load("digits", seed=1), load("digits", seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train)
    counts = np.bincount(np.concatenate([a.y_train, a.y_val, a.y_test]))
    for y, f in ((a.y_test, 0.2), (a.y_val, 0.1)):
        assert len(y) == round(f * 1797)
        assert np.all(np.abs(np.bincount(y, minlength=10) - f * counts) < 1)


def test_digits_checksum_is_verified(tmp_path):
    with np.load(digits_mod.DIGITS_PATH) as f:
        images, labels = f["images"].copy(), f["labels"].copy()
    images[0, 0, 0] ^= 1
    bad = tmp_path / "digits.npz"
    np.savez_compressed(bad, images=images, labels=labels)
    with pytest.raises(ValueError, match="checksum mismatch"):
        digits_mod.load_digits(str(bad))


def test_digits_known_first_sample():
    images, labels = digits_mod.load_digits()
    assert images.shape == (1797, 1, 8, 8) and labels[:5].tolist() == [0, 1, 2, 3, 4]
    assert images[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


# --- load() arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"name": "imagenet"}, "digits, synthetic, mnist, fashion-mnist, cifar10"),
    ({"val_fraction": 0}, "val_fraction=0"),
    ({"val_fraction": 1.5}, "val_fraction=1.5"),
    ({"test_fraction": -0.1}, "test_fraction=-0.1"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "sum below 1"),
    ({"normalize": "zca"}, "normalize='zca'"),
    ({"seed": -1}, "seed=-1"),
    ({"size": 8}, "synthetic"),
])
def test_load_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(**kwargs)


# --- synthetic -----------------------------------------------------------------------------------

def test_synthetic_shapes_range_determinism_and_pieces():
    x, y = synthetic_images(300, size=12, channels=3, num_classes=5, seed=7)
    assert x.shape == (300, 3, 12, 12) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) == set(range(5))
    x2, y2 = synthetic_images(300, size=12, channels=3, num_classes=5, seed=7)
    np.testing.assert_array_equal(x, x2)
    xs, ys = synthetic_images(300, size=12, channels=3, num_classes=5, seed=8)
    assert not np.array_equal(x, xs)
    # any window start..start+n equals that slice of one large draw (crossing block edges)
    part, ypart = synthetic_images(150, size=12, channels=3, num_classes=5, seed=7, start=100)
    np.testing.assert_array_equal(part, x[100:250])
    np.testing.assert_array_equal(ypart, y[100:250])


@pytest.mark.parametrize("kwargs, match", [
    ({"n": -1}, "n=-1"), ({"n": 5, "size": 2}, "size=2"), ({"n": 5, "num_classes": 1},
                                                            "num_classes=1"),
    ({"n": 5, "noise": 2.0}, "noise=2.0"), ({"n": 5, "channels": 0}, "channels=0"),
])
def test_synthetic_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_images(**kwargs)


def test_synthetic_class_is_visible_in_the_image():
    # Without noise the stripe orientation alone decides the class: the angle of the dominant
    # 2-D Fourier component recovers the label for nearly every image.
    x, y = synthetic_images(400, size=32, channels=1, num_classes=4, seed=0, noise=0.0)
    spec = np.abs(np.fft.fft2(x[:, 0] - x[:, 0].mean(axis=(1, 2), keepdims=True)))
    spec[:, :, 16:] = 0                                   # one half-plane of the symmetric spectrum
    peak = spec.reshape(len(x), -1).argmax(axis=1)
    fy, fx = np.fft.fftfreq(32)[peak // 32], np.fft.fftfreq(32)[peak % 32]
    angle = np.degrees(np.arctan2(fy, fx)) % 180
    predicted = np.round(angle / 45).astype(int) % 4
    assert (predicted == y).mean() > 0.9


def test_small_convnet_learns_synthetic_well_above_chance():
    # conv 5x5 (8 filters) -> relu -> global average pool -> linear, trained by SGD; written
    # here in plain NumPy so this checks the data, not the layers under development elsewhere
    rng = np.random.default_rng(0)
    d = load("synthetic", n=1200, size=16, channels=1, num_classes=4, seed=0, test_fraction=0.25)
    w1 = rng.normal(0, 0.3, (25, 8)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (8, 4)).astype(np.float32)
    b2 = np.zeros(4, np.float32)

    def forward(x):
        cols = sliding_window_view(np.pad(x[:, 0], ((0, 0), (2, 2), (2, 2))), (5, 5), axis=(1, 2))
        cols = cols.reshape(len(x), 256, 25)
        h = np.maximum(cols @ w1, 0)                      # (N, 256, 8)
        return h.mean(axis=1) @ w2 + b2, cols, h

    for xb, yb in (b for _ in range(15) for b in d.batches(32, seed=0)):
        scores, cols, h = forward(xb)
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1
        ds = p / len(yb)
        dh = np.repeat((ds @ w2.T)[:, None, :] / 256, 256, axis=1) * (h > 0)
        w1 -= 0.5 * np.einsum("npk,npf->kf", cols, dh)
        w2 -= 0.5 * h.mean(axis=1).T @ ds
        b2 -= 0.5 * ds.sum(axis=0)
    accuracy = (forward(d.x_test)[0].argmax(axis=1) == d.y_test).mean()
    assert accuracy > 0.7, accuracy                       # chance is 0.25


# --- split and augmentation --------------------------------------------------------------------

def test_stratified_split_partitions_every_class():
    y = np.repeat(np.arange(3), [50, 30, 20])
    rest, val, test = stratified_split(y, (0.1, 0.2), seed=0)
    assert np.array_equal(np.sort(np.concatenate([rest, val, test])), np.arange(100))
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert np.bincount(y[test]).tolist() == [10, 6, 4]
    # shares that round to zero per class still add up to the asked total
    _, val = stratified_split(np.arange(40) % 10, (0.1,), seed=0)
    assert len(val) == 4 and len(set((val % 10).tolist())) == 4


def test_crop_and_flip_move_pixels_as_described():
    x = np.arange(2 * 1 * 4 * 5, dtype=np.float32).reshape(2, 1, 4, 5) + 1
    out = RandomHorizontalFlip()(x, np.random.default_rng(0))
    flipped = np.random.default_rng(0).random(2) < 0.5
    for i in range(2):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if flipped[i] else x[i])
    out = RandomCrop(2)(x, np.random.default_rng(5))
    oy, ox = np.random.default_rng(5).integers(0, 5, (2, 2))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(2):
        np.testing.assert_array_equal(out[i], padded[i, :, oy[i]:oy[i] + 4, ox[i]:ox[i] + 5])
    assert not np.array_equal(oy, ox) and out.dtype == x.dtype


# --- batch iterator ------------------------------------------------------------------------------

def _data(n=23):
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    return x, np.arange(n, dtype=np.int64)


def test_iterator_covers_each_epoch_once_in_a_new_order():
    x, y = _data()
    it = BatchIterator(x, y, 5, seed=1)
    assert len(it) == 5
    epochs = [np.concatenate([yb for _, yb in it]) for _ in range(2)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(23))
    assert not np.array_equal(epochs[0], epochs[1])
    assert it.state() == {"seed": 1, "epoch": 2, "position": 0}
    xb, yb = next(iter(BatchIterator(x, y, 5, seed=1, shuffle=False)))
    assert yb.tolist() == [0, 1, 2, 3, 4] and np.array_equal(xb[:, 0, 0, 0], yb.astype(np.float32))
    assert len(BatchIterator(x, y, 5, drop_last=True)) == 4


def test_iterator_resumes_bit_identically():
    x, y = _data()
    a = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True)
    reference = [a.next_batch() for _ in range(20)]   # crosses epoch boundaries
    b = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True)
    for _ in range(7):
        b.next_batch()
    saved = b.state()
    c = BatchIterator(x, y, 4, seed=0, crop_pad=1, flip=True)
    c.set_state(saved)
    rest = [c.next_batch() for _ in range(13)]
    for (xr, yr), (xc, yc) in zip(reference[7:], rest):
        np.testing.assert_array_equal(xr, xc)
        np.testing.assert_array_equal(yr, yc)
    # iterating resumes mid-epoch too
    d = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True)
    d.set_state(saved)
    assert len(list(d)) == len(d) - saved["position"]


def test_iterator_rejects_bad_input():
    x, y = _data()
    with pytest.raises(ValueError, match="batch_size=0"):
        BatchIterator(x, y, 0)
    with pytest.raises(ValueError, match="x has 23 samples but y has 22"):
        BatchIterator(x, y[:-1], 4)
    with pytest.raises(ValueError, match="position"):
        BatchIterator(x, y, 4).set_state({"seed": 0, "epoch": 0, "position": 6})
    with pytest.raises(ValueError, match="batch_size=30"):
        BatchIterator(x, y, 30, drop_last=True)


def test_iterator_serves_the_shard_of_each_global_batch():
    x, y = _data()
    whole = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True)
    half = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True,
                         shard=lambda xb, yb: (xb[2:], yb[2:]))
    assert len(half) == len(whole)
    for _ in range(8):  # crosses an epoch boundary: same order and augmentation
        (xw, yw), (xh, yh) = whole.next_batch(), half.next_batch()
        np.testing.assert_array_equal(xw[2:], xh)
        np.testing.assert_array_equal(yw[2:], yh)
    with pytest.raises(TypeError, match="shard=3"):
        BatchIterator(x, y, 4, shard=3)


def test_random_subset_is_fixed_and_without_repeats():
    x, y = _data(100)
    xs, ys = random_subset(x, y, 30, seed=4)
    assert len(set(ys.tolist())) == 30 and np.all(np.diff(ys) > 0)
    np.testing.assert_array_equal(ys, random_subset(x, y, 30, seed=4)[1])
    np.testing.assert_array_equal(xs[:, 0, 0, 0], ys.astype(np.float32))
    with pytest.raises(ValueError, match="n=101"):
        random_subset(x, y, 101)
    d = load("digits")
    assert d.subset(1000)[0].shape == (1000, 1, 8, 8)


@pytest.mark.cuda
def test_iterator_on_cuda_matches_cpu():
    from gpucnn.device import cuda_status
    if not cuda_status().available:
        pytest.skip(f"CUDA unavailable: {cuda_status().reason}")
    x, y = _data(50)
    cpu = list(BatchIterator(x, y, 8, seed=2, crop_pad=1, flip=True))
    gpu = list(BatchIterator(x, y, 8, seed=2, crop_pad=1, flip=True, device="cuda"))
    assert len(cpu) == len(gpu)
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        np.testing.assert_array_equal(xc, xg.get())
        np.testing.assert_array_equal(yc, yg.get())
