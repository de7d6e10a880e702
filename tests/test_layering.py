"""The shape of the package: imports flow one way (cli -> experiments -> train -> models/nn ->
functional -> primitives -> the device implementations -> device), the import graph has no
cycle, no module is over 400 lines or named after its history.

Every gpucnn module's imports are read with ast, those inside functions included: an import
deferred into a function still ties the two modules together, so it obeys the same rules.
"""
import ast
import re
from pathlib import Path

import gpucnn

PACKAGE = Path(gpucnn.__file__).parent

# Top-level module or package of gpucnn -> its layer.  A module may import from its own layer
# and the layers below.  gpucnn itself (__init__: the version) is the bottom.
LAYERS = {
    "gpucnn": 0, "device": 0, "checks": 0, "env": 0, "files": 0, "toml": 0, "shapes": 0,
    "batchnorm": 0,
    "rng": 1,
    # The device implementations of the primitives (gpucnn/cuda/ is the CUDA side, native the
    # optional CPU extension's facade), and the data and distribution helpers.
    "cpu": 2, "cpu_threads": 2, "cpu_fused": 2, "cpu_conv": 2, "cpu_runtime": 2, "cuda": 2, "native": 2, "data": 2, "distributed": 2,
    # The contract and the choice of implementation by the array.
    "primitives": 3,
    "functional": 4, "compare": 4,
    "nn": 5, "optim": 5, "lr_scheduler": 5, "gradcheck": 5,
    "models": 6, "specs": 6, "receptive": 6, "plots": 6,
    "config": 7,
    "train": 8, "bench": 8, "interop": 8,
    "experiments": 9,
    "cli": 10,
}
# What a device implementation may import besides the bottom layers: the CPU side its native
# kernels and threads; the CUDA side nothing of the CPU's (the comparison of the two is
# gpucnn/compare.py, above both).
BOTTOM = {"gpucnn", "device", "checks", "env", "rng", "shapes", "batchnorm"}
DEVICE_IMPORTS = {"cpu": {"native", "cpu_threads", "cpu_fused", "cpu_conv", "cpu_runtime"},
                  "cpu_conv": {"native", "cpu_threads", "cpu_runtime"},
                  "cpu_threads": set(), "cpu_fused": {"native", "cpu_threads", "cpu_runtime"},
                  "cpu_runtime": set(), "native": set(), "cuda": set()}
# Names that say when a file was written, not what it holds.
HISTORY = re.compile(r"_(deeper|more|new|old|extra|v\d+)$|^(new|old)_")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ("gpucnn", *parts), path.name == "__init__.py"


MODULES = {name for _, name, _ in _modules()}


def _group(dotted: tuple) -> str:
    return dotted[1] if len(dotted) > 1 else "gpucnn"


def _imports(path: Path, name: tuple, is_package: bool):
    """(imported gpucnn module as a tuple, line) for every import, those in functions too.
    ``from package import name`` targets the submodule where ``name`` is one."""
    tree = ast.parse(path.read_text(), str(path))
    here = name if is_package else name[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else ()
            module = (*base, *node.module.split(".")) if node.module else base
            targets = [(*module, a.name) if (*module, a.name) in MODULES else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target and target[0] == "gpucnn":
                yield target, node.lineno


def _group_of_target(target: tuple) -> str:
    group = _group(target)
    return group if group in LAYERS or len(target) < 2 else "gpucnn"


def test_every_module_is_in_the_layer_table():
    missing = sorted({_group(name) for name in MODULES} - set(LAYERS))
    assert not missing, f"add {missing} to LAYERS in {__file__}"


def test_imports_flow_one_way():
    problems = []
    for path, name, is_package in _modules():
        mine = _group(name)
        for target, line in _imports(path, name, is_package):
            theirs = _group_of_target(target)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {'.'.join(target)}"
            if mine in DEVICE_IMPORTS and theirs != mine and theirs not in BOTTOM | DEVICE_IMPORTS[mine]:
                problems.append(f"{where}: device implementation {mine} imports only "
                                f"{sorted(BOTTOM | DEVICE_IMPORTS[mine])}")
            elif LAYERS[theirs] > LAYERS[mine]:
                problems.append(f"{where}: {mine} (layer {LAYERS[mine]}) may not import "
                                f"{theirs} (layer {LAYERS[theirs]})")
    assert not problems, "\n".join(problems)


def _cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (or a module importing
    itself), by Tarjan's algorithm."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph() -> dict:
    graph = {}
    for path, name, is_package in _modules():
        graph[".".join(name)] = {".".join(t) for t, _ in _imports(path, name, is_package)
                                 if t in MODULES and t != name}
    return graph


def test_the_import_graph_has_no_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_table_catches_an_upward_import_in_a_function(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..cli import main\n")
    found = list(_imports(bad, ("gpucnn", "train", "bad"), False))
    assert found == [(("gpucnn", "cli", "main"), 2)]
    assert LAYERS[_group_of_target(found[0][0])] > LAYERS["train"]


def test_no_module_is_over_400_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}: {n} lines" for path, _, _ in _modules()
            if (n := len(path.read_text().splitlines())) > 400]
    assert not long, "split by concern: " + "; ".join(long)


def test_no_module_is_named_after_its_history():
    named = [".".join(name) for name in MODULES if HISTORY.search(name[-1])]
    assert not named, f"name these after what they hold: {named}"
    assert HISTORY.search("nn_deeper") and HISTORY.search("conv_v2") and not HISTORY.search("conv")


def test_every_subpackage_is_installed():
    """pyproject.toml lists packages by name (kernels/ is mapped into the wheel): a subpackage
    missing there imports from a checkout but not from a wheel."""
    from gpucnn.toml import read_toml
    root = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
    listed = set(read_toml(str(root / "pyproject.toml"), "pyproject.toml")["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "gpucnn").rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages in {root / 'pyproject.toml'}"
