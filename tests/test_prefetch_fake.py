"""BatchIterator's uploads on CUDA, through the stand-in cupy's stream model.

A batch copied on the side stream may only be used, or handed back to the memory pool, after
the consumer's stream has waited for (or the host has synchronised with) the copy.  Loops that
stop early (break, an exception, ``next(iter(...))``) and ``set_state`` must not drop an upload
in flight; ``next_batch`` (the Trainer's call) keeps the following batch uploading while the
current one computes; ``state()`` stays ``(epoch, position)`` exactly.
"""
import gc

import numpy as np
import pytest

from fakecupy import _stream
from gpucnn.data import BatchIterator


def _data(n=23):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2, 4, 4)).astype(np.float32), rng.integers(0, 10, n)


def _it(device, **kw):
    x, y = _data()
    return BatchIterator(x, y, 5, **{"seed": 3, "crop_pad": 1, "flip": True, "device": device,
                                     **kw})


def _same(dev_batch, host_batch):
    for d, h in zip(dev_batch, host_batch):
        np.testing.assert_array_equal(d.get(), h)


def _no_violation():
    gc.collect()
    assert not _stream.violations, _stream.violations
    _stream.violations.clear()  # reported once, here, rather than again at teardown


def test_break_leaves_no_upload_in_flight_to_be_released(fake_cupy):
    it = _it("cuda")
    for _ in it:
        break
    _no_violation()


def test_an_exception_in_the_loop_leaves_no_upload_to_be_released(fake_cupy):
    it = _it("cuda")
    with pytest.raises(KeyError):
        for _ in it:
            raise KeyError("stop")
    _no_violation()


def test_next_of_a_fresh_iterator_leaves_no_upload_to_be_released(fake_cupy):
    it = _it("cuda")
    xb, yb = next(iter(it))
    assert xb.shape == (5, 2, 4, 4) and isinstance(xb, fake_cupy.ndarray)
    _no_violation()


def test_deleting_an_iterator_with_a_batch_in_flight_waits_for_it(fake_cupy):
    it = _it("cuda")
    it.next_batch()
    assert _stream.in_flight()  # the following batch is on its way
    del it
    _no_violation()


def test_cuda_batches_are_the_cpu_batches_in_every_mix_of_calls(fake_cupy):
    cpu, gpu = _it("cpu"), _it("cuda")
    for _ in range(3):  # next_batch, a whole epoch's rest, a loop stopped early, over epochs
        _same(gpu.next_batch(), cpu.next_batch())
        for g, c in zip(gpu, list(cpu)):
            _same(g, c)
        for g, c in zip(gpu, cpu):
            _same(g, c)
            break
        assert gpu.state() == cpu.state()
    _no_violation()


def test_next_batch_keeps_the_following_upload_in_flight(fake_cupy):
    it = _it("cuda", crop_pad=0, flip=False)  # the augmentation's uploads: test_augment.py
    it.next_batch()
    for _ in range(6):  # across an epoch boundary (5 batches per epoch)
        with fake_cupy.counting() as c:
            xb, yb = it.next_batch()
            (xb * 1).sum()  # the served batch is usable on the consumer's stream at once
        # the served batch was already uploaded; the one after it starts now, on the side stream
        assert [kind for kind, _ in c.uploads] == ["async", "async"], c.uploads
        assert not c.syncs, c.syncs
        assert _stream.in_flight()


def test_state_is_exact_and_set_state_drops_a_stale_prefetch(fake_cupy):
    cpu, gpu = _it("cpu"), _it("cuda")
    for _ in range(7):
        cpu.next_batch()
        gpu.next_batch()
    saved = gpu.state()
    assert saved == cpu.state() == {"seed": 3, "epoch": 1, "position": 2}
    later = [cpu.next_batch() for _ in range(4)]
    resumed = _it("cuda")
    resumed.set_state(saved)
    for want in later:
        _same(resumed.next_batch(), want)
    gpu.set_state({"seed": 3, "epoch": 0, "position": 4})  # away from the prefetched batch
    cpu.set_state({"seed": 3, "epoch": 0, "position": 4})
    _same(gpu.next_batch(), cpu.next_batch())
    gpu.set_state(gpu.state())  # onto the prefetched batch: still the right one
    _same(gpu.next_batch(), cpu.next_batch())
    _no_violation()


def test_a_trainer_step_on_cuda_waits_for_no_upload(fake_cupy):
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import Trainer

    x, y = _data(40)
    data = {"X_train": x, "y_train": y, "X_val": x[:10], "y_val": y[:10]}

    def run(device):
        model = ThreeLayerConvNet((2, 4, 4), num_filters=3, filter_size=3, hidden_dim=6,
                                  weight_scale=0.1, dropout=0.2, dtype=np.float64, seed=1)
        return Trainer(model, data, batch_size=8, epochs=1, iterations_per_epoch=3,
                       train_samples=10, device=device, progress=False, log=lambda *a: None)

    cpu_loss = run("cpu").train().loss
    trainer = run("cuda")
    assert trainer.train().loss == pytest.approx(cpu_loss, rel=1e-10)
    with fake_cupy.counting() as c:
        trainer._step()  # one iteration of train(): next_batch, loss, gradients, update
    # the batch was uploaded during the previous step; the following one starts asynchronously;
    # the host waits only to read the loss (device labels are not read back to be checked)
    assert [kind for kind, _ in c.uploads] == ["async", "async"], c.uploads
    assert [what for what, _ in c.syncs] == ["float()"], c.syncs
    _no_violation()


def test_host_batches_after_device_ones_give_up_the_upload_in_flight(fake_cupy):
    """next_host_batch (a CUDA graph's feed) continues where next_batch left off, as NumPy
    arrays, and drops the following batch's upload safely."""
    it, host = _it("cuda"), _it("cpu")
    _same(it.next_batch(), host.next_batch())  # and the next one is uploading now
    for _ in range(6):  # across the epoch's end (23 samples: batches of 5, 5, 5, 5, 3)
        xb, yb = it.next_host_batch()
        want = host.next_batch()
        assert isinstance(xb, np.ndarray)
        np.testing.assert_array_equal(xb, want[0])
        np.testing.assert_array_equal(yb, want[1])
    assert it.state() == host.state()
    _no_violation()
