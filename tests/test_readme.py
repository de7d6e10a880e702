"""The README's Python examples run as printed (the API example once saved a Sequential into a
traceback): each ```python block marked ``<!-- runs in tests/test_readme.py -->`` (a complete
program; fragments that assume a model or an installed extra are not marked), in a fresh
folder."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks() -> list[str]:
    if not os.path.isfile(README):  # an installed package without its source tree
        return []
    with open(README) as fh:
        return re.findall(r"<!-- runs in tests/test_readme.py -->\n```python\n(.*?)```",
                          fh.read(), re.S)


@pytest.mark.skipif(not _blocks(), reason="README.md is not beside the tests")
@pytest.mark.parametrize("index", [  # training the digits for 5 epochs: seconds
    pytest.param(i, marks=[pytest.mark.slow] if "Trainer(" in block else [])
    for i, block in enumerate(_blocks())])
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUCNN_DEVICE", "cpu")
    exec(compile(_blocks()[index], f"README.md python block {index}", "exec"), {})
