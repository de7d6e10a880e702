"""The device-primitive contract: one list, two implementations with the declared signatures."""
import inspect
import re

import numpy as np
import pytest

from gpucnn import cpu, functional, primitives, shapes
from gpucnn.cuda.host import Primitives as CudaPrimitives


def _declared(name):
    params = list(inspect.signature(getattr(primitives.DevicePrimitives, name)).parameters.values())
    return [p.name for p in params[1:]]  # without self


def _params(fn, drop_self=False):
    params = list(inspect.signature(fn).parameters.values())[1 if drop_self else 0:]
    return [p.name for p in params if p.default is inspect.Parameter.empty]


def test_the_list_is_not_empty_and_names_are_unique():
    assert len(primitives.NAMES) == len(set(primitives.NAMES)) >= 12


def test_numpy_implements_every_primitive_with_the_declared_signature():
    for name in primitives.NAMES:
        assert _params(getattr(cpu, name)) == _declared(name), name


def test_cuda_implements_every_primitive_with_the_declared_signature():
    for name in primitives.NAMES:
        assert _params(getattr(CudaPrimitives, name), drop_self=True) == _declared(name), name


def test_cuda_implements_every_fusion_with_the_declared_signature_and_numpy_none():
    assert primitives.FUSIONS
    for name in primitives.FUSIONS:
        declared = [p.name for p in list(inspect.signature(
            getattr(primitives.DeviceFusions, name)).parameters.values())[1:]]
        assert _params(getattr(CudaPrimitives, name), drop_self=True) == declared, name
        assert primitives.fusion(cpu, name) is None  # the CPU runs the plain primitives
    with pytest.raises(ValueError, match="name='relu_forward': expected one of"):
        primitives.fusion(cpu, "relu_forward")


def test_functional_has_no_device_branches():
    modules = [m for m in vars(functional).values() if inspect.ismodule(m)
               and m.__name__.startswith("gpucnn.functional.")]
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} >= {"conv", "pooling", "loss", "_checks"}
    for module in modules:
        source = inspect.getsource(module)
        assert not re.search(r"xp is (not )?np\b|is numpy|import cupy", source), module.__name__


def test_the_cuda_module_offers_exactly_the_contract():
    """gpucnn.cuda binds every public method of its host class: the primitives and fusions
    declared here, and gemm (kernels/gemm.cu's product, which matmul uses in a CUDA graph)."""
    from gpucnn import cuda
    assert set(cuda.OPS) == set(primitives.NAMES) | set(primitives.FUSIONS) | {"gemm"}


def test_for_array_module_picks_numpy_for_host_arrays():
    assert primitives.of(np.zeros(2)) is cpu
    assert primitives.for_array_module(np) is cpu


def test_out_size_is_the_conv_formula():
    assert shapes.out_size(32, 7, 1, 3) == 32
    assert shapes.out_size(9, 3, 2, 1) == 5
    assert shapes.out_size(8, 2, 2) == 4


def test_cpu_maxpool_nan_wins_at_its_first_position():
    x = np.array([[[[1.0, np.nan, 3.0, np.nan], [np.inf, 2.0, -np.inf, 0.0]]]])
    out, arg = cpu.maxpool_forward(x, 2, 2)
    assert np.isnan(out[0, 0, 0]).all()
    np.testing.assert_array_equal(arg[0, 0, 0], [1, 1])
    x = np.array([[[[-np.inf, -np.inf], [np.inf, np.inf]]]])
    out, arg = cpu.maxpool_forward(x, 2, 2)
    assert out[0, 0, 0, 0] == np.inf and arg[0, 0, 0, 0] == 2
    dx = cpu.maxpool_backward(np.ones((1, 1, 1, 1)), arg, x.shape, 2, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0], [1, 0]])
