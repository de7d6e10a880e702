"""Messages in the user's terms from the nets and the settings: an empty batch, a second
backward, a label out of range, a spec key or setting under another name, the three-layer
net's names."""
import numpy as np
import pytest

from gpucnn import functional as F
from gpucnn.cli import main
from gpucnn.models import ThreeLayerConvNet, build_model

from strictness import one_error, small_net


def test_an_empty_batch_is_refused_at_the_first_op():
    x = np.zeros((0, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"x.shape=\(0, 1, 8, 8\): expected a batch of at least "
                                         r"one sample"):
        small_net()(x)
    with pytest.raises(ValueError, match="scores.shape=\\(0, 10\\)"):
        F.softmax_cross_entropy(np.zeros((0, 10)), np.zeros(0, np.int64))


def test_backward_twice_after_one_forward_says_so():
    net = small_net()
    out = net(np.ones((2, 1, 8, 8), np.float32))
    net.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="Linear.backward called twice after one forward"):
        net.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="without a forward before it"):
        small_net().backward(np.ones_like(out))


def test_a_label_out_of_range_is_named_with_its_index():
    with pytest.raises(ValueError, match=r"y\[2\]=12: expected a class label in \[0, 9\]"):
        F.softmax_cross_entropy(np.zeros((4, 10)), np.array([0, 1, 12, 3]))


def test_spec_keys_and_settings_under_another_name_get_a_suggestion(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown keys 'pad' \(did you mean 'padding'\?\)"):
        build_model([{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "pad": 1},
                     {"type": "flatten"}, {"type": "linear", "out_features": 3}], (1, 8, 8))
    config = tmp_path / "run.toml"
    config.write_text("learning_rate = 0.1\n")
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, "unknown setting 'learning_rate' (did you mean 'lr'?)")


def test_the_three_layer_net_takes_the_flags_names_and_the_old_ones():
    a = ThreeLayerConvNet((1, 8, 8), filters=3, filter_size=3, hidden=5, seed=0)
    b = ThreeLayerConvNet((1, 8, 8), num_filters=3, filter_size=3, hidden_dim=5, seed=0)
    assert a.config() == b.config()
    with pytest.raises(ValueError, match="hidden=5 and hidden_dim=6: the same setting twice"):
        ThreeLayerConvNet((1, 8, 8), hidden=5, hidden_dim=6)
