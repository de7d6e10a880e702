"""Every CuPy attribute gpucnn's code uses exists in the installed CuPy.

The uses are collected from the source with ``ast``: attribute chains on ``cupy`` (a module
name, ``self.cupy``, ``import_cupy()``), on names bound by ``from cupy.x import y``, and the
``from`` imports themselves; array code's ``xp.`` chains must exist in both NumPy and CuPy.  A
module whose native library is absent here (``cupy.cuda.nccl`` without NCCL) cannot be
imported, so its names are looked for in its compiled extension instead.  Skipped with the
reason where CuPy does not import.
"""
import ast
import importlib
import importlib.util
import os
import re

import numpy as np
import pytest

import gpucnn
from gpucnn.device import import_cupy

PACKAGE = os.path.dirname(os.path.abspath(gpucnn.__file__))
# CuPy modules that are plain Python wrappers over an extension needing a native library.
NATIVE = {"cupy.cuda.nccl": "cupy_backends.cuda.libs.nccl"}


def _cupy():
    try:
        return import_cupy()
    except Exception as e:  # a broken CuPy install raises more than ImportError
        pytest.skip(f"CuPy is not importable here ({type(e).__name__}: {e})")


class _Uses(ast.NodeVisitor):
    """Dotted paths used from the ``cupy`` module and from ``xp``."""

    def __init__(self):
        self.roots = {"cupy": "cupy", "xp": "xp"}  # local name -> the path it stands for
        self.paths = set()

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.split(".")[0] != "cupy":
                continue
            if alias.asname:  # import cupy.cuda as cc
                self.roots[alias.asname] = alias.name
            self.paths.add(alias.name)

    def visit_ImportFrom(self, node):
        if (node.module or "").split(".")[0] == "cupy":
            for alias in node.names:
                self.roots[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                self.paths.add(f"{node.module}.{alias.name}")

    def _root(self, node):
        if isinstance(node, ast.Name):
            return self.roots.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return self.roots.get(node.attr)  # self.cupy, self.xp
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "import_cupy":
            return "cupy"
        return None

    def visit_Attribute(self, node):
        attrs = []
        while isinstance(node, ast.Attribute) and self._root(node) is None:
            attrs.append(node.attr)
            node = node.value
        root = self._root(node)
        if root is not None and attrs:
            self.paths.add(".".join([root, *reversed(attrs)]))
        self.generic_visit(node)


def _collect():
    """{path: [files using it]}, paths like cupy.cuda.Stream or xp.empty_like."""
    uses = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                visitor = _Uses()
                visitor.visit(ast.parse(f.read(), path))
            for used in visitor.paths:
                uses.setdefault(used, []).append(os.path.relpath(path, PACKAGE))
    return uses


USES = _collect()


def _exists(module, path: str) -> bool:
    """Whether dotted ``path`` (after the module's own name) resolves in ``module``."""
    obj, prefix = module, module.__name__
    for part in path.split(".")[1:]:
        prefix = f"{prefix}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:  # a submodule not imported yet
            obj = importlib.import_module(prefix)
            continue
        except ImportError:
            pass
        native = NATIVE.get(getattr(obj, "__name__", ""))
        if native and getattr(obj, "available", True) is False:
            with open(importlib.util.find_spec(native).origin, "rb") as f:
                return re.search(rb"\b%s\b" % part.encode(), f.read()) is not None
        return False
    return True


def test_the_collector_finds_the_uses_we_know_of():
    assert {"cupy.RawModule", "cupy.cuda.runtime.getDeviceCount", "cupy.cuda.memory.OutOfMemoryError",
            "cupy.cuda.compiler.CompileException", "xp.empty_like", "cupy.cuda.MemoryPool",
            "cupy.cuda.using_allocator"} <= set(USES)


# Methods gpucnn calls on CuPy objects, which no attribute chain from ``cupy`` shows: the CUDA
# graph of a training step (gpucnn/train/graph.py), the batch prefetch, the device numbers, a
# rank's GPU (gpucnn/device.py use_gpu), the acceptance run's memory of a graph.
METHODS = {"cupy.cuda.Stream": ("begin_capture", "end_capture", "record", "wait_event"),
           "cupy.cuda.Graph": ("launch",), "cupy.cuda.MemoryPool": ("malloc", "total_bytes"),
           "cupy.cuda.Device": ("use",), "cupy.ndarray": ("set", "get")}


@pytest.mark.parametrize("owner", sorted(METHODS))
def test_methods_called_on_cupy_objects_exist(owner):
    cls = _cupy()
    for part in owner.split(".")[1:]:
        cls = getattr(cls, part)
    missing = [m for m in METHODS[owner] if not hasattr(cls, m)]
    assert not missing, f"{owner} has no {missing} in CuPy {_cupy().__version__}"


@pytest.mark.filterwarnings(r"ignore:\s*nccl library could not be loaded:UserWarning")
def test_a_missing_name_is_reported_missing():
    cupy = _cupy()
    assert not _exists(cupy, "cupy.cuda.NoSuchStream")
    assert not _exists(cupy, "cupy.cuda.nccl.NcclNoSuchCommunicator")


@pytest.mark.filterwarnings(r"ignore:\s*nccl library could not be loaded:UserWarning")
@pytest.mark.parametrize("path", sorted(p for p in USES if p.startswith("cupy")))
def test_cupy_attribute_exists(path):
    assert _exists(_cupy(), path), f"{path} (used in {', '.join(USES[path])}) is missing from " \
                                   f"CuPy {_cupy().__version__}"


@pytest.mark.parametrize("path", sorted(p for p in USES if p.startswith("xp.")))
def test_array_code_attribute_exists_in_numpy_and_cupy(path):
    for module in (np, _cupy()):
        assert _exists(module, path), f"{path} (used in {', '.join(USES[path])}) is missing from " \
                                      f"{module.__name__} {module.__version__}"
