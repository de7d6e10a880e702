"""What the tests of issue 24's rules share: a tiny training run's flags, the one-line error
check, a small network."""
from gpucnn import nn

# A few updates of a tiny net on the embedded digits.
TINY = ["--device", "cpu", "--no-progress", "--epochs", "1", "--iterations-per-epoch", "2",
        "--filters", "2", "--hidden", "8"]


def one_error(capsys, *needles):
    """The command printed one line on stderr, no traceback, holding every one of ``needles``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def small_net():
    """The README's Sequential, smaller: (N, 1, 8, 8) -> (N, 10)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 10))
