"""Models holding each layer gpucnn has, for the export and exchange tests (ONNX, PyTorch).

Each case is a small model around the layer under test, ending in class scores, so its
predictions can be compared too.  Batch norm gets random statistics, scale and shift (its
defaults, 0 and 1, would hide a mix-up of mean and variance or of scale and shift), and the
inputs are 9x9 so that pooling and strides drop an edge.
"""
import os

import numpy as np

from gpucnn import nn
from gpucnn.models import Classifier, build_model, read_spec
from gpucnn.rng import Generator

IMAGE = (3, 9, 9)
ROWS = (12,)
HEAD = [{"type": "linear", "out_features": 5}]
RESNET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                      "resnet.toml")


def _spec(*layers, input_dim=IMAGE):
    return lambda dtype: build_model(list(layers) + HEAD, input_dim, dtype=dtype, seed=3)


def _conv(**kw):
    return {"type": "conv2d", "out_channels": 4, **kw}


def _nn(make, input_dim=IMAGE):
    """A Classifier around a hand-built net (no spec, so it records no input shape)."""
    def build(dtype):
        rng = Generator(3).host
        return Classifier(make(dtype, rng)), input_dim
    return build


def _nested(dtype, rng):
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=dtype, rng=rng)
    inner = nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(4 * 9 * 9, 6, dtype=dtype, rng=rng)))
    return nn.Sequential(nn.Sequential(conv, nn.ReLU()), inner, nn.Tanh(),
                         nn.Linear(6, 5, dtype=dtype, rng=rng))


def _no_bias(dtype, rng):
    return nn.Sequential(nn.Conv2d(3, 4, (2, 3), stride=2, padding=1, bias=False, dtype=dtype,
                                   rng=rng),
                         nn.Linear(4 * 5 * 5, 5, bias=False, dtype=dtype, rng=rng))


def _resnet(dtype):
    return build_model(read_spec(RESNET), (3, 12, 12), dtype=dtype, seed=3)


def _three_layer(dtype):
    from gpucnn.models import ThreeLayerConvNet
    return ThreeLayerConvNet(IMAGE, num_filters=4, filter_size=3, hidden_dim=7, num_classes=5,
                             weight_scale=0.3, dropout=0.5, dtype=dtype, seed=3)


# name -> build(dtype) -> model (records its input shape) or (model, input shape)
CASES = {
    "conv2d k3 s1 p0": _spec(_conv(kernel_size=3)),
    "conv2d k3 s2 p1": _spec(_conv(kernel_size=3, stride=2, padding=1)),
    "conv2d k5 s3 p2": _spec(_conv(kernel_size=5, stride=3, padding=2)),
    "conv2d k2 s2": _spec(_conv(kernel_size=2, stride=2)),
    "conv2d k1": _spec(_conv(kernel_size=1)),
    "conv2d k(2,3) s1 p1": _spec(_conv(kernel_size=[2, 3], padding=1)),
    "conv2d and linear without bias": _nn(_no_bias),
    "maxpool2d k2": _spec({"type": "maxpool2d", "kernel_size": 2}),
    "maxpool2d k3 s2": _spec({"type": "maxpool2d", "kernel_size": 3, "stride": 2}),
    "maxpool2d k3 s1": _spec({"type": "maxpool2d", "kernel_size": 3, "stride": 1}),
    "avgpool2d k2": _spec({"type": "avgpool2d", "kernel_size": 2}),
    "avgpool2d k3 s2": _spec({"type": "avgpool2d", "kernel_size": 3, "stride": 2}),
    "avgpool2d k3 s1": _spec({"type": "avgpool2d", "kernel_size": 3, "stride": 1}),
    "global_avgpool2d": _spec({"type": "global_avgpool2d"}),
    "batchnorm2d": _spec(_conv(kernel_size=3), {"type": "batchnorm2d", "eps": 1e-3}),
    "batchnorm1d": _spec({"type": "linear", "out_features": 6}, {"type": "batchnorm1d"},
                         input_dim=ROWS),
    "relu": _spec(_conv(kernel_size=3), {"type": "relu"}),
    "leaky_relu": _spec(_conv(kernel_size=3), {"type": "leaky_relu", "negative_slope": 0.2}),
    "sigmoid": _spec(_conv(kernel_size=3), {"type": "sigmoid"}),
    "tanh": _spec(_conv(kernel_size=3), {"type": "tanh"}),
    "dropout": _spec(_conv(kernel_size=3), {"type": "dropout", "p": 0.5}),
    "flatten": _spec({"type": "flatten"}),
    "linear on rows": _spec({"type": "linear", "out_features": 7}, {"type": "relu"},
                            input_dim=ROWS),
    "residual": _spec({"type": "residual", "layers": [_conv(kernel_size=3, padding=1, out_channels=3),
                                                      {"type": "relu"}]}),
    "residual with conv projection": _spec(
        {"type": "residual", "layers": [_conv(kernel_size=3, stride=2, padding=1),
                                        {"type": "batchnorm2d"}]}),
    "residual with linear projection": _spec(
        {"type": "residual", "layers": [{"type": "linear", "out_features": 6}, {"type": "tanh"}]},
        input_dim=ROWS),
    "nested sequential": _nn(_nested),
    "three-layer net": _three_layer,
    "resnet.toml": _resnet,
}


def make_case(name, dtype=np.float32):
    """``(model in eval mode, input shape, inputs)`` of case ``name``; batch norm randomised."""
    built = CASES[name](dtype)
    model, shape = built if isinstance(built, tuple) else (built, tuple(built.config()["input_dim"]))
    randomize_batchnorm(model, np.random.default_rng(7))
    x = np.random.default_rng(11).normal(size=(6, *shape)).astype(dtype)
    return model.eval(), shape, x


def randomize_batchnorm(model, rng):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean[...] = rng.normal(0, 0.5, n)
            m.running_var[...] = rng.uniform(0.3, 2.0, n)
            m.gamma[...] = rng.normal(1, 0.3, n)
            m.beta[...] = rng.normal(0, 0.3, n)
