"""Imports flow one way: cli -> experiments -> train -> models/nn -> functional -> primitives ->
device.  Every gpucnn module's imports are read with ast and checked against the layer table;
an upward import fails with the module, the line and the rule it breaks.  No module is over 400
lines."""
import ast
from pathlib import Path

import gpucnn

PACKAGE = Path(gpucnn.__file__).parent

# Top-level module or package of gpucnn -> its layer.  A module may import from its own layer
# and the layers below.  gpucnn itself (__init__: the version) is the bottom.
LAYERS = {
    "gpucnn": 0, "device": 0, "checks": 0, "files": 0, "toml": 0, "shapes": 0,
    "rng": 1,
    "primitives": 2, "data": 2, "distributed": 2,
    # The device implementations of the primitives: below primitives' users, importing only
    # device, rng, primitives and cpu.  The CUDA side is gpucnn/cuda/; native is the optional
    # CPU extension's facade.
    "cpu": 3, "cpu_threads": 3, "cuda": 3, "native": 3,
    "functional": 4,
    "nn": 5, "optim": 5, "gradcheck": 5,
    "models": 6, "receptive": 6, "plots": 6,
    "config": 7,
    "train": 8, "bench": 8,
    "experiments": 9,
    "cli": 10,
}
# Upward imports allowed inside functions only (lazy, so the lower module loads without them):
# primitives picks an implementation by the array it is given.
LAZY_UP = {("primitives", "cpu"), ("primitives", "cuda"), ("primitives", "native")}
# Device implementations import nothing above them, whatever their layer number allows.
DEVICE_IMPLEMENTATIONS = {"cpu", "cpu_threads", "cuda", "native"}
DEVICE_IMPLEMENTATION_IMPORTS = {"gpucnn", "device", "checks", "rng", "shapes", "primitives",
                                 *DEVICE_IMPLEMENTATIONS}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ("gpucnn", *parts), path.name == "__init__.py"


def _group(dotted: tuple) -> str:
    return dotted[1] if len(dotted) > 1 else "gpucnn"


def _imports(path: Path, name: tuple, is_package: bool):
    """(imported gpucnn module as a tuple, line, inside a function) for every import."""
    tree = ast.parse(path.read_text(), str(path))
    functions = [n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    lazy_lines = {line for f in functions for line in range(f.lineno, f.end_lineno + 1)}
    here = name if is_package else name[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else ()
            module = (*base, *node.module.split(".")) if node.module else base
            # "from . import functional": the names may be modules themselves
            targets = [(*module, a.name) if not node.module else module for a in node.names]
        else:
            continue
        for target in targets:
            if target and target[0] == "gpucnn":
                yield target, node.lineno, node.lineno in lazy_lines


def _group_of_target(target: tuple) -> str:
    group = _group(target)
    return group if group in LAYERS or len(target) < 2 else "gpucnn"


def test_every_module_is_in_the_layer_table():
    missing = sorted({_group(name) for _, name, _ in _modules()} - set(LAYERS))
    assert not missing, f"add {missing} to LAYERS in {__file__}"


def test_imports_flow_one_way():
    problems = []
    for path, name, is_package in _modules():
        mine = _group(name)
        for target, line, lazy in _imports(path, name, is_package):
            theirs = _group_of_target(target)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {'.'.join(target)}"
            if mine in DEVICE_IMPLEMENTATIONS and theirs not in DEVICE_IMPLEMENTATION_IMPORTS:
                problems.append(f"{where}: a device implementation imports only "
                                f"{sorted(DEVICE_IMPLEMENTATION_IMPORTS)}")
            elif LAYERS[theirs] > LAYERS[mine] and not (lazy and (mine, theirs) in LAZY_UP):
                problems.append(f"{where}: {mine} (layer {LAYERS[mine]}) may not import "
                                f"{theirs} (layer {LAYERS[theirs]})")
    assert not problems, "\n".join(problems)


def test_the_table_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..cli import main\n")
    found = list(_imports(bad, ("gpucnn", "train", "bad"), False))
    assert found == [(("gpucnn", "cli"), 1, False)]
    assert LAYERS[_group_of_target(found[0][0])] > LAYERS["train"]


def test_no_module_is_over_400_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}: {n} lines" for path, _, _ in _modules()
            if (n := len(path.read_text().splitlines())) > 400]
    assert not long, "split by concern: " + "; ".join(long)



def test_every_subpackage_is_installed():
    """pyproject.toml lists packages by name (kernels/ is mapped into the wheel): a subpackage
    missing there imports from a checkout but not from a wheel."""
    from gpucnn.toml import read_toml
    root = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
    listed = set(read_toml(str(root / "pyproject.toml"), "pyproject.toml")["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "gpucnn").rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages in {root / 'pyproject.toml'}"
