"""Augmentation of training batches: the built-ins and a user's function, fixed by the seed,
the same bits on the stand-in GPU as on the CPU, resumed exactly, from the Trainer and the
command line."""
import shutil

import numpy as np
import pytest

from gpucnn.data import BatchIterator, Compose, RandomCrop, RandomHorizontalFlip
from gpucnn.data.augment import make_augment

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None,
                               reason="g++ is not installed: the kernel host emulation needs it")


def _data(n=23):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2, 5, 6)).astype(np.float32), rng.integers(0, 4, n)


def brighten(X, rng):
    """A user's augmentation: a random brightness per sample, on X's device."""
    from gpucnn.device import get_array_module

    xp = get_array_module(X)
    return X + xp.asarray(rng.uniform(-0.1, 0.1, (len(X), 1, 1, 1)).astype(X.dtype))


def test_make_augment_builds_the_built_ins_in_order_and_takes_functions():
    a = make_augment(["crop", "flip", brighten], crop_pad=2)
    assert isinstance(a, Compose) and repr(a.augmentations[:2]) == (
        "[RandomCrop(padding=2), RandomHorizontalFlip(p=0.5)]")
    assert a.augmentations[2] is brighten and make_augment([]) is None
    with pytest.raises(ValueError, match="augment='blur'"):
        make_augment(["blur"])


def test_a_batch_is_fixed_by_seed_epoch_and_index():
    x, y = _data()
    a = BatchIterator(x, y, 5, seed=1, augment=make_augment(["flip", "crop", brighten]))
    b = BatchIterator(x, y, 5, seed=1, augment=make_augment(["flip", "crop", brighten]))
    plain = BatchIterator(x, y, 5, seed=1)
    for _ in range(7):  # across an epoch
        (xa, ya), (xb, _), (xp, yp) = a.next_batch(), b.next_batch(), plain.next_batch()
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yp)
        assert xa.shape == xp.shape and not np.array_equal(xa, xp)
    with pytest.raises(ValueError, match="not both"):
        BatchIterator(x, y, 5, flip=True, augment=brighten)


@needs_gxx
def test_the_stand_in_gpu_augments_on_the_device_bit_for_bit(fake_cupy):
    x, y = _data()
    augment = make_augment(["crop", "flip", brighten], crop_pad=1)
    cpu = BatchIterator(x, y, 5, seed=3, augment=augment)
    gpu = BatchIterator(x, y, 5, seed=3, augment=augment, device="cuda")
    gpu.next_batch(), cpu.next_batch()
    for _ in range(6):
        with fake_cupy.counting() as c:
            xg, yg = gpu.next_batch()
        xc, yc = cpu.next_batch()
        assert isinstance(xg, fake_cupy.ndarray) and not c.syncs, c.report()
        # the batch's two uploads, then each augmentation's one array of draws
        assert [k for k, _ in c.uploads] == ["async", "async", "blocking", "blocking",
                                            "blocking"], c.uploads
        np.testing.assert_array_equal(xg.get(), xc)
        np.testing.assert_array_equal(yg.get(), yc)


@needs_gxx
def test_sharded_batches_are_augmented_as_the_global_batch(fake_cupy):
    x, y = _data()
    whole = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True)
    half = BatchIterator(x, y, 4, seed=9, crop_pad=1, flip=True, device="cuda",
                         shard=lambda xb, yb: (xb[2:], yb[2:]))
    for _ in range(8):
        (xw, _), (xh, _) = whole.next_batch(), half.next_batch()
        np.testing.assert_array_equal(xw[2:], xh.get())


def test_random_crop_and_flip_check_their_settings():
    with pytest.raises(ValueError, match="padding=-1"):
        RandomCrop(-1)
    with pytest.raises(ValueError, match=r"p=2"):
        RandomHorizontalFlip(2)
    with pytest.raises(TypeError, match="expected a function"):
        Compose([3])
