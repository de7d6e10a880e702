"""What the experiment tests share: tiny settings, file readers, synthetic runs."""
import pytest

from gpucnn.experiments import replicate

# A few updates of a tiny net: seconds, not minutes.
TINY = ["--epochs", "1", "--iterations-per-epoch", "3", "--batch-size", "10", "--filters", "2",
        "--hidden", "8", "--train-samples", "50", "--device", "cpu", "--no-progress"]
# Per-seed variation that pairing by seed removes.
SEED_NOISE = [0.03, -0.02, 0.01, -0.01, 0.0, 0.02]


def read(path):
    with open(path) as fh:
        return fh.read()


def read_png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture
def has_matplotlib():
    pytest.importorskip("matplotlib")


def interrupt_run(monkeypatch, n):
    """Ctrl-C during the ``n``-th run an experiment trains in this process."""
    real, calls = replicate.train_one, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(replicate, "train_one", interrupted)
