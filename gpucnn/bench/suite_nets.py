"""The nets of ``gpucnn bench --parts suite``: families of CPU workloads (kernel sizes 1/3/5/7,
strides 1-3, batch norm, residual blocks, global pooling, batch 8 to 256, training and
inference), each a gpucnn layer list that :func:`gpucnn.models.build_model` takes.

Nets have a *role*.  "tuning" nets are the ones the CPU kernels were tuned on (their numbers
were looked at while choosing block sizes and paths); "held-out" nets are of the same families
but were fixed before any of their numbers were seen and never tuned on, so a speed claim
that holds there is a claim about the family, not about the nets it was fitted to.
"""
from __future__ import annotations

from dataclasses import dataclass

MODES = ("train", "infer")
ROLES = ("tuning", "held-out")


def _conv(out, k, stride=1, pad=0):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, "stride": stride, "padding": pad}


RELU, BN, FLAT, GAP = ({"type": t} for t in ("relu", "batchnorm2d", "flatten", "global_avgpool2d"))


def _pool(k, stride=None):
    return {"type": "maxpool2d", "kernel_size": k, **({"stride": stride} if stride else {})}


def _linear(out):
    return {"type": "linear", "out_features": out}


def _residual(*layers):
    return {"type": "residual", "layers": list(layers)}


# examples/resnet.toml (tests/test_bench_suite.py holds them equal)
RESNET = (
    _conv(16, 3, 1, 1), BN, RELU,
    _residual(_conv(16, 3, 1, 1), BN, RELU, _conv(16, 3, 1, 1), BN), RELU,
    _residual(_conv(32, 3, 2, 1), BN, RELU, _conv(32, 3, 1, 1), BN), RELU,
    GAP, _linear(10),
)


@dataclass(frozen=True)
class SuiteNet:
    """A benchmarked network: ``layers`` on (C, H, W) images of ``input_dim``, 10 classes."""

    name: str
    role: str
    what: str
    input_dim: tuple
    layers: tuple


NETS = {n.name: n for n in (
    # --- tuning ---
    SuiteNet("resnet32", "tuning", "examples/resnet.toml: conv-BN-ReLU stem, 2 residual stages "
             "(3x3 s2 and a 1x1 s2 projection), global average pool", (3, 32, 32), RESNET),
    SuiteNet("resnet-digits", "tuning", "examples/resnet.toml on the 8x8 digits", (1, 8, 8), RESNET),
    SuiteNet("strided", "tuning", "conv 5x5 s2 1->16, conv 3x3 s2 16->32, linear",
             (1, 28, 28), (_conv(16, 5, 2, 2), RELU, _conv(32, 3, 2, 1), RELU, FLAT, _linear(10))),
    SuiteNet("vgg", "tuning", "three 3x3 convs (32, 32, 64), two 2x2 pools, two linears",
             (3, 32, 32), (_conv(32, 3, 1, 1), RELU, _conv(32, 3, 1, 1), RELU, _pool(2),
                           _conv(64, 3, 1, 1), RELU, _pool(2), FLAT, _linear(256), RELU,
                           _linear(10))),
    SuiteNet("convnet-a", "tuning", "the ThreeLayerConvNet: 7x7 conv 3->32, pool, linear 500",
             (3, 32, 32), (_conv(32, 7, 1, 3), RELU, _pool(2), FLAT, _linear(500), RELU, _linear(10))),
    SuiteNet("convnet-b", "tuning", "MNIST-sized: 5x5 conv 1->16, pool, linear 100",
             (1, 28, 28), (_conv(16, 5, 1, 2), RELU, _pool(2), FLAT, _linear(100), RELU, _linear(10))),
    # --- held-out: fixed before any of their numbers were seen; never tuned on ---
    SuiteNet("bottleneck", "held-out", "ResNet of 1x1-3x3-1x1 bottleneck blocks with BN, the "
             "second strided (3x3 s2 and a 1x1 s2 projection), global average pool",
             (3, 32, 32), (_conv(32, 3, 1, 1), BN, RELU,
                           _residual(_conv(16, 1), BN, RELU, _conv(16, 3, 1, 1), BN, RELU,
                                     _conv(32, 1), BN), RELU,
                           _residual(_conv(32, 1), BN, RELU, _conv(32, 3, 2, 1), BN, RELU,
                                     _conv(64, 1), BN), RELU,
                           GAP, _linear(10))),
    SuiteNet("stem7", "held-out", "ImageNet-style stem: 7x7 s2 conv 3->24, BN, 3x3 s2 max-pool, "
             "a residual block, global average pool", (3, 48, 48),
             (_conv(24, 7, 2, 3), BN, RELU, _pool(3, 2),
              _residual(_conv(24, 3, 1, 1), BN, RELU, _conv(24, 3, 1, 1), BN), RELU,
              GAP, _linear(10))),
    SuiteNet("allconv", "held-out", "all-convolutional: 3x3 3->32, 3x3 s2 32->48 + BN, 5x5 s2 "
             "48->64, 1x1 64->10, global average pool", (3, 32, 32),
             (_conv(32, 3, 1, 1), RELU, _conv(48, 3, 2, 1), BN, RELU, _conv(64, 5, 2, 2), RELU,
              _conv(10, 1), GAP)),
    SuiteNet("lenet", "held-out", "LeNet-5: 5x5 1->6, pool, 5x5 6->16, pool, linears 120, 84",
             (1, 28, 28), (_conv(6, 5), RELU, _pool(2), _conv(16, 5), RELU, _pool(2), FLAT,
                           _linear(120), RELU, _linear(84), RELU, _linear(10))),
    SuiteNet("stride3", "held-out", "3x3 s3 conv 3->32 and 5x5 conv 32->32 with BN, 2x2 pool, "
             "linear", (3, 36, 36), (_conv(32, 3, 3), BN, RELU, _conv(32, 5, 1, 2), BN, RELU,
                                     _pool(2), FLAT, _linear(10))),
)}


@dataclass(frozen=True)
class Case:
    """One measurement: ``net`` at ``batch`` images, a training step or an inference pass."""

    net: SuiteNet
    batch: int
    mode: str

    @property
    def name(self) -> str:
        return f"{self.net.name} b{self.batch} {self.mode}"


def _cases(*items):
    return [Case(NETS[name], batch, mode) for name, batch, mode in items]


CASES = _cases(
    ("resnet32", 64, "train"), ("resnet32", 8, "train"), ("resnet32", 256, "infer"),
    ("resnet-digits", 64, "train"), ("resnet-digits", 256, "infer"),
    ("strided", 128, "train"), ("strided", 256, "infer"),
    ("vgg", 8, "train"), ("vgg", 64, "train"), ("vgg", 256, "infer"),
    ("convnet-a", 50, "train"), ("convnet-b", 64, "train"),
    ("bottleneck", 32, "train"), ("bottleneck", 128, "infer"),
    ("stem7", 16, "train"), ("stem7", 64, "infer"),
    ("allconv", 64, "train"), ("allconv", 8, "train"), ("allconv", 256, "infer"),
    ("lenet", 128, "train"), ("lenet", 8, "train"), ("lenet", 256, "infer"),
    ("stride3", 32, "train"), ("stride3", 128, "infer"),
)


def parse_cases(text: str) -> list[Case]:
    """``--suite`` selection: "all", "tuning", "held-out", or comma-separated net names (all of
    their cases) or case names ("vgg b64 train")."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    chosen = []
    for item in items:
        if item == "all":
            hit = CASES
        elif item in ROLES:
            hit = [c for c in CASES if c.net.role == item]
        else:
            hit = [c for c in CASES if item in (c.net.name, c.name)]
        if not hit:
            raise ValueError(f"--suite item {item!r}: expected all, tuning, held-out, a net "
                             f"({', '.join(NETS)}) or a case such as 'vgg b64 train'")
        chosen += [c for c in hit if c not in chosen]
    if not chosen:
        raise ValueError(f"--suite={text!r}: expected at least one net or case")
    return chosen
