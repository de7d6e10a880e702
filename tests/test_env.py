"""Every environment variable gpucnn reads is read in one place (gpucnn/env.py) and refuses a
value it does not know in one line naming it; Ctrl-C at start-up is one line too."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gpucnn
from gpucnn import env
from gpucnn.cli import main
from gpucnn.train import Trainer

from strictness import TINY, one_error


@pytest.mark.parametrize("name,value,expected", [
    ("GPUCNN_DEVICE", "gpu", "expected one of cpu, cuda, auto"),
    ("GPUCNN_CPU_THREADS", "two", "expected an integer >= 1"),
    ("GPUCNN_DATA", __file__, "expected a folder, found a file"),
])
def test_an_unknown_environment_value_is_one_line_naming_it(capsys, monkeypatch, tmp_path,
                                                            name, value, expected):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(Trainer, "train", lambda self: pytest.fail("trained"))
    assert main(["train", *TINY[2:], "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, f"{name}={value!r}: {expected}")
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("value", ["yes", "off", "true", "2"])
def test_switch_variables_take_only_0_or_1(monkeypatch, value):
    monkeypatch.setenv("GPUCNN_NATIVE", value)
    with pytest.raises(ValueError, match=rf"GPUCNN_NATIVE='{value}': expected 0 or 1"):
        env.switch("GPUCNN_NATIVE", default=True)
    monkeypatch.setenv("GPUCNN_NATIVE", " 0 ")
    assert env.switch("GPUCNN_NATIVE", default=True) is False


def test_the_native_switch_is_refused_at_import_and_by_the_command(tmp_path):
    root = os.path.dirname(os.path.dirname(gpucnn.__file__))
    run = subprocess.run([sys.executable, "-m", "gpucnn.cli", "info"], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "GPUCNN_NATIVE": "off",
                                                       "PYTHONPATH": root})
    assert run.returncode == 1 and run.stderr == ("gpucnn: error: GPUCNN_NATIVE='off': expected "
                                                  "0 or 1 (or unset: 1)\n")


def test_every_gpucnn_variable_is_read_through_gpucnn_env():
    """One place reads them, so none can skip the check of its value."""
    root = Path(gpucnn.__file__).parent
    pattern = re.compile(r"environ(\.get)?[\[(]\s*[\"']GPUCNN_|getenv\(\s*[\"']GPUCNN_")
    offenders = [str(p) for p in [*root.rglob("*.py"), *Path(__file__).parent.rglob("*.py")]
                 if p.name != "env.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_ctrl_c_during_start_up_is_one_line(capsys, monkeypatch):
    import importlib

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "gpucnn: interrupted\n"
