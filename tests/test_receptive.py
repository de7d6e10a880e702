"""Receptive fields: the recursion against the source document's closed form (seeds/004) and
against back-propagation."""
import numpy as np
import pytest

from gpucnn import nn
from gpucnn.cli import main
from gpucnn.cli.receptive import parse_layer
from gpucnn.receptive import closed_form_field, empirical_field, receptive_fields, spatial_layers

STACKS = [
    [("conv", 7, 1, 3), ("pool", 2, 2, 0)],
    [("conv", 3, 1, 1), ("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 1, 1)],
    [("conv", 5, 2, 2), ("pool", 3, 2, 0), ("conv", 3, 2, 1), ("conv", 3, 1, 0)],
    [("conv", 3, 3, 0), ("pool", 2, 1, 0), ("conv", 4, 2, 1)],
]


def build(stack, channels=2, seed=0):
    layers, c = [], channels
    for i, (kind, k, s, p) in enumerate(stack):
        if kind == "conv":
            layers += [nn.Conv2d(c, 3, k, s, p, dtype=np.float64, rng=seed + i), nn.ReLU()]
            c = 3
        else:
            layers.append(nn.MaxPool2d(k, s))
    return nn.Sequential(*layers, nn.Flatten())


@pytest.mark.parametrize("stack", STACKS)
def test_recursion_equals_closed_form(stack):
    rows = receptive_fields(build(stack), 41)
    assert rows[-1].field == closed_form_field([k for _, k, _, _ in stack], [s for _, _, s, _ in stack])
    assert rows[-1].jump == int(np.prod([s for _, _, s, _ in stack]))


def test_seed_004_recursion_from_the_top():
    ks, ss = [3, 2, 5, 3], [1, 2, 2, 1]
    r = 1
    for k, s in zip(reversed(ks), reversed(ss)):
        r = s * r + (k - s)  # r_(i-1) = s_i r_i + (k_i - s_i)
    assert r == closed_form_field(ks, ss) == 1 + 2 + 1 + 4 * 2 + 2 * 4


@pytest.mark.parametrize("stack", STACKS)
def test_field_matches_the_support_of_the_input_gradient(stack):
    size = 41
    net = build(stack)
    rows = receptive_fields(net, size)
    first, extent = empirical_field(nn.Sequential(*spatial_layers(net)), size, channels=2, trials=24)
    last = rows[-1]
    centre = last.output_size // 2
    theory_first = last.start + centre * last.jump - (last.field - 1) / 2
    theory_last = theory_first + last.field - 1
    # Padding clips the field at the border; the centre unit of a 41-pixel input is clear of it.
    assert (first, extent) == (int(theory_first), last.field)
    assert first + extent - 1 == int(theory_last)


def test_output_sizes_follow_the_conv_formula():
    rows = receptive_fields([parse_layer("conv:7:1:3"), parse_layer("pool:2"), parse_layer("conv:3:2:1")], 32)
    assert [r.output_size for r in rows] == [32, 16, 8]
    assert [r.field for r in rows] == [7, 8, 12]


def test_bad_specs():
    with pytest.raises(ValueError, match="conv:K"):
        parse_layer("conv:x")
    with pytest.raises(ValueError, match="input_size=0"):
        receptive_fields([parse_layer("conv:3")], 0)
    with pytest.raises(ValueError, match="kernel 9 exceeds its padded input 4"):
        receptive_fields([parse_layer("conv:9")], 4)
    with pytest.raises(ValueError, match="expected type"):
        receptive_fields([{"type": "upsample"}], 8)


def test_command_prints_the_table(capsys):
    assert main(["receptive-field", "--input-size", "28", "conv:5:1:2", "pool:2", "conv:3:1:1"]) == 0
    out = capsys.readouterr().out
    assert "field" in out and out.strip().splitlines()[-1].split()[-2] == "10"
