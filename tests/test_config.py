"""Settings schemas: one name and one default per setting, the same flags on every command, old
spellings as hidden aliases, errors that name what the user typed."""
import argparse
import json
import re

import pytest

from gpucnn import config
from gpucnn.cli import build_parser, main
from gpucnn.train import checkpoint


def _subparsers(parser, prefix=()):
    """(command path, parser) of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


def _flags(parser) -> dict:
    return {s: a for a in parser._actions for s in a.option_strings}


def test_shared_flags_are_spelled_the_same_on_every_command():
    spellings = {"--output": ("--out",), "--data-dir": ("--data_dir",), "--device": (),
                 "--seed": (), "--iterations-per-epoch": ("--iterations-per-epoch",)}
    seen = {flag: 0 for flag in spellings}
    for path, parser in _subparsers(build_parser()):
        flags = _flags(parser)
        for flag in seen:
            seen[flag] += flag in flags
        # a setting's dest is its schema name, whatever command takes it
        for flag, action in flags.items():
            if action.dest in config.TRAINING.settings or action.dest in config.MODEL.settings:
                assert action.dest.replace("_", "-") in (flag[2:], flag[5:]) or \
                    action.help == argparse.SUPPRESS, (path, flag)
    assert seen["--output"] >= 5 and seen["--data-dir"] >= 6 and seen["--device"] >= 7


def test_old_spellings_are_hidden_aliases(tmp_path, capsys):
    train = dict(_subparsers(build_parser()))[("reproduce",)]
    flags = _flags(train)
    for old, new in (("--out", "--output"), ("--iterations", "--iterations-per-epoch"),
                     ("--num-filters", "--filters"), ("--hidden-dim", "--hidden")):
        assert flags[old].dest == flags[new].dest and flags[old].help == argparse.SUPPRESS
        assert not re.search(re.escape(old) + r"(?![\w-])", train.format_help())
    out = tmp_path / "rep"
    assert main(["reproduce", "--epochs", "1", "--iterations", "2", "--batch-size", "10",
                 "--num-filters", "2", "--hidden-dim", "4", "--train-samples", "20",
                 "--grid", "0:0", "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["settings"]["iterations_per_epoch"] == 2
    assert result["runs"][0]["settings"]["filters"] == 2


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs=0: expected an integer >= 1"),
    (["train", "--filter-size", "4"], "--filter-size=4: expected an odd size"),
    (["train", "--dropout", "1"], "--dropout=1.0: expected a drop probability in [0, 1)"),
    (["train", "--lr", "0"], "--lr=0.0: expected a number in (0, inf)"),
    (["reproduce", "--batch-size", "0"], "--batch-size=0: expected an integer >= 1"),
    (["reproduce", "--grid", "0:x"], "--grid '0:x': expected REG:DROPOUT pairs"),
    (["experiment", "sweep", "--hidden", "-3"], "--hidden=-3: expected an integer >= 1"),
])
def test_cli_errors_name_the_flag(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_toml_errors_name_the_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("epochs = 0\n")
    assert main(["train", "--config", str(cfg), "--device", "cpu"]) == 1
    assert f"{cfg}: epochs=0: expected an integer >= 1" in capsys.readouterr().err
    cfg.write_text("epoch = 2\n")
    assert main(["train", "--config", str(cfg)]) == 1
    assert "unknown setting 'epoch'" in capsys.readouterr().err


def test_train_reads_settings_from_toml_and_records_them_by_name(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("epochs = 1\niterations_per_epoch = 2\nfilters = 2\nhidden = 4\n"
                   "batch_size = 10\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--device", "cpu", "--no-progress",
                 "--output", str(out), "--train-samples", "20", "--data-dir",
                 str(tmp_path)]) == 0
    saved = checkpoint.load_checkpoint(str(out / "checkpoint.npz"))[1]["config"]
    assert set(config.TRAINING.names()) <= set(saved)
    assert (saved["epochs"], saved["iterations_per_epoch"], saved["batch_size"],
            saved["train_samples"]) == (1, 2, 10, 20)
    assert saved["optim_config"] == config.optim_config(config.OPTIMIZATION.defaults())


def test_python_keywords_take_the_old_names_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'num_epochs' is now called 'epochs'"):
        values = config.TRAINING.resolve(({"num_epochs": 3}, {}))
    assert values["epochs"] == 3 and values["batch_size"] == config.TRAINING["batch_size"].default
    with pytest.raises(ValueError, match="unknown setting 'epochz'"):
        config.TRAINING.resolve(({"epochz": 3}, {}))


def test_every_setting_default_passes_its_own_check():
    for schema in (config.TRAINING, config.OPTIMIZATION, config.MODEL, config.DATA, config.RUN,
                   config.EVALUATION, config.EXPERIMENT):
        assert schema.resolve() == schema.check(schema.defaults())


def test_a_switch_flag_flips_its_default_and_cuda_graph_on_the_cpu_is_a_notice(tmp_path, capsys):
    flags = _flags(dict(_subparsers(build_parser()))[("train",)])
    assert {"--no-progress", "--cuda-graph"} <= set(flags) and "--no-cuda-graph" not in flags
    out = tmp_path / "run"
    assert main(["train", "--cuda-graph", "--device", "cpu", "--no-progress", "--epochs", "1",
                 "--iterations-per-epoch", "1", "--output", str(out), "--train-samples", "20",
                 "--data-dir", str(tmp_path)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "cuda_graph" in line]
    assert err == ["gpucnn: cuda_graph: device='cpu': a CUDA graph replays GPU work; training "
                   "without a CUDA graph"]
    saved = checkpoint.load_checkpoint(str(out / "checkpoint.npz"))[1]["config"]
    assert saved["cuda_graph"] is True
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
