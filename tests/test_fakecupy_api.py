"""The stand-in's API is real CuPy's: every public name of the stand-in's modules and classes
exists in the installed CuPy, and every function and method it defines takes CuPy's parameters,
by name and in order.  No GPU needed: names and signatures come from CuPy's modules (inspect,
or the signature line Cython writes at the head of a docstring); a module whose native library
is absent here (cupy.cuda.nccl without NCCL) is read in its compiled extension instead.
Skipped with the reason where CuPy does not import."""
import importlib
import importlib.util
import inspect
import re
import types

import numpy as np
import pytest

import fakecupy
from fakecupy import cuda as fake_cuda
from gpucnn.device import import_cupy

# What only the stand-in has, with why: its counters and helpers for tests.
STAND_IN_ONLY = {
    "cupy": {"counting", "phase", "Counter", "modules", "reset"},
    "cupy.cuda": {"DEVICE_NAME"},
}
NATIVE = {"cupy.cuda.nccl": "cupy_backends.cuda.libs.nccl"}
FAKES = {"cupy": fakecupy, "cupy.cuda": fake_cuda, "cupy.cuda.runtime": fake_cuda.runtime,
         "cupy.cuda.nvrtc": fake_cuda.nvrtc, "cupy.cuda.memory": fake_cuda.memory,
         "cupy.cuda.compiler": fake_cuda.compiler, "cupy.cuda.nccl": fake_cuda.nccl,
         "cupy.linalg": fakecupy.linalg}


@pytest.fixture(scope="module")
def cupy():
    try:
        return import_cupy()
    except Exception as e:  # a broken CuPy install raises more than ImportError
        pytest.skip(f"CuPy is not importable here ({type(e).__name__}: {e})")


def _real(path: str):
    """The CuPy module at ``path`` (``cupy.cuda.nvrtc`` is an attribute, not an importable
    module)."""
    obj = importlib.import_module("cupy")
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None) or importlib.import_module(f"{obj.__name__}.{part}")
    return obj


def _native_names(path: str) -> bytes:
    with open(importlib.util.find_spec(NATIVE[path]).origin, "rb") as f:
        return f.read()


def _public(module) -> list:
    """(name, object) of what a stand-in module offers: not private, not a module, not a
    __future__ feature."""
    return [(n, v) for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)
            and n != "annotations"]


def _params(obj):
    """(parameter names without self, bare * and /, whether it also takes **kwargs) of a
    function, method or class, or None when neither inspect nor a Cython signature line gives
    them.  A signature of (*args, **kwargs) gives ([], True): nothing to compare."""
    documented = _cython_params(getattr(obj, "__doc__", None) or "")
    try:
        params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return documented
    found = _named([("*" if p.kind == p.VAR_POSITIONAL else "**" if p.kind == p.VAR_KEYWORD
                     else "") + p.name for p in params])
    # a class whose __init__ forwards everything, documented as "__init__(shape, ...)"
    return documented if found == ([], True) and documented is not None else found


def _named(names: list):
    """(names, takes **kwargs) from parameter spellings such as 'a', '*shape', '**kwargs';
    ([], True) for a signature taking *args and **kwargs (CuPy's internal keyword-only
    parameters aside): it forwards everything."""
    if any(n.startswith("*") and not n.startswith("**") for n in names) and \
            any(n.startswith("**") for n in names):
        return [], True
    return [n.lstrip("*") for n in names if not n.startswith("**")], any(
        n.startswith("**") for n in names)


def _cython_params(doc: str):
    """_params of the signature line Cython puts first in a docstring
    (``MemoryPool.malloc(self, size_t size) -> MemoryPointer``: (['size'], False))."""
    m = re.match(r"[\w.]+\((.*)\)", doc.strip().splitlines()[0]) if doc.strip() else None
    if m is not None and m.group(0).startswith("__init__("):  # a class: its constructor
        m = re.match(r"__init__\((.*)\)", m.group(0))
    if m is None:
        return None
    names, depth, part = [], 0, ""
    for ch in m.group(1) + ",":
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            text = part.split("=")[0].strip()
            if text and text not in ("/", "*"):
                stars = len(text) - len(text.lstrip("*"))
                names.append("*" * stars + text.lstrip("*").split()[-1])
            part = ""
        else:
            part += ch
    return _named([n for n in names if n != "self"])


def _compare(fake, real, where: str) -> list:
    """Where the stand-in's parameters differ from CuPy's: CuPy's names in order (its leading
    ones where it takes **kwargs too); nothing where either forwards (*args, **kwargs)."""
    if not callable(fake) or isinstance(fake, np.ufunc):
        return []
    if not getattr(fake, "__module__", "").startswith(("fakecupy", "cupy")):
        return []  # NumPy's own (dtypes, functions CuPy mirrors)
    mine, theirs = _params(fake), _params(real)
    if mine is None or theirs is None or mine == ([], True) or theirs == ([], True):
        return []
    (names, _), (real_names, real_kwargs) = mine, theirs
    if names == real_names or (real_kwargs and names[:len(real_names)] == real_names):
        return []
    return [f"{where}: the stand-in takes {names}, CuPy {real_names}"]


@pytest.mark.filterwarnings(r"ignore:\s*nccl library could not be loaded:UserWarning")
@pytest.mark.parametrize("path", sorted(FAKES))
def test_every_stand_in_name_is_cupys_with_cupys_parameters(cupy, path):
    real = _real(path)
    native = path in NATIVE and getattr(real, "available", True) is False
    problems = []
    for name, fake in _public(FAKES[path]):
        if name in STAND_IN_ONLY.get(path, ()):
            continue
        if native and not hasattr(real, name):
            if name.encode() not in _native_names(path):
                problems.append(f"{path}.{name}: not in CuPy's {NATIVE[path]}")
            continue
        if not hasattr(real, name):
            problems.append(f"{path}.{name}: CuPy {cupy.__version__} has no such name")
            continue
        problems += _compare(fake, getattr(real, name), f"{path}.{name}")
        if isinstance(fake, type) and fake.__module__.startswith(("fakecupy", "cupy")):
            problems += _methods(fake, getattr(real, name), f"{path}.{name}")
    assert not problems, "\n".join(problems)


def _methods(fake_cls, real_cls, where: str) -> list:
    problems = []
    for name, member in vars(fake_cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if not hasattr(real_cls, name):
            problems.append(f"{where}.{name}: CuPy's {real_cls.__name__} has no such attribute")
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.isfunction(member):
            target = real_cls if name == "__init__" else getattr(real_cls, name)
            problems += _compare(member, target, f"{where}.{name}")
    return problems


def test_the_parameter_reader_reads_cython_signature_lines():
    assert _cython_params("MemoryPool.malloc(self, size_t size) -> MemoryPointer") == (
        ["size"], False)
    assert _cython_params("RawModule(str code=None, *, str path=None, tuple options=(), "
                          "name_expressions=None)\n\nmore") == (
        ["code", "path", "options", "name_expressions"], False)
    assert _cython_params("reshape(self, *shape, order='C')") == (["shape", "order"], False)
    assert _cython_params("RawKernel.__call__(self, grid, block, args, **kwargs)") == (
        ["grid", "block", "args"], True)
    assert _cython_params("Graph(*args, **kwargs)") == ([], True)
    assert _cython_params("getDeviceCount() -> int") == ([], False)
    assert _cython_params("no signature here") is None


def test_a_wrong_parameter_is_reported():
    def fake(a, b, stream=None):
        pass

    def real(a, b, out=None):
        pass

    def real_with_kwargs(a, b, **kwargs):
        pass

    fake.__module__ = "fakecupy.x"
    assert _compare(fake, real, "cupy.f") == [
        "cupy.f: the stand-in takes ['a', 'b', 'stream'], CuPy ['a', 'b', 'out']"]
    assert _compare(fake, real_with_kwargs, "cupy.f") == []
