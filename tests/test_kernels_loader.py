"""The NVRTC loader (gpucnn.cuda.loader) against a recording stand-in for the few CuPy calls it
makes, without a GPU: what it compiles, how often, per device; the launch; its errors.  Also:
the CUDA package imports without importing CuPy."""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from gpucnn.cuda.loader import KernelCompileError, Loader, program


class _CompileException(Exception):
    def get_message(self):
        return "kern.cu(1): error: expected a \")\""


class _OutOfMemory(Exception):
    pass


@pytest.fixture
def fake():
    """A ``cupy`` stand-in recording every RawModule built, compiled and looked up."""
    log = SimpleNamespace(built=[], lookups=[], calls=[], device=0)

    class RawModule:
        def __init__(self, **kwargs):
            log.built.append((log.device, kwargs))
            self.code = kwargs["code"]

        def compile(self):
            if "broken" in self.code:
                raise _CompileException()

        def get_function(self, name):
            log.lookups.append((log.device, name))
            return lambda grid, block, args: log.calls.append((name, grid, block, args))

    cuda = SimpleNamespace(runtime=SimpleNamespace(getDevice=lambda: log.device),
                           compiler=SimpleNamespace(CompileException=_CompileException),
                           memory=SimpleNamespace(OutOfMemoryError=_OutOfMemory))
    return SimpleNamespace(cupy=SimpleNamespace(RawModule=RawModule, cuda=cuda), log=log)


def test_a_file_compiles_once_per_device_without_name_expressions(fake):
    loader = Loader(fake.cupy)
    assert loader.module("pool.cu") is loader.module("pool.cu")
    fake.log.device = 1
    loader.module("pool.cu")
    prog = program("pool.cu")
    assert fake.log.built == [(0, {"code": prog.source, "options": prog.options}),
                              (1, {"code": prog.source, "options": prog.options})]


def test_a_launch_looks_its_function_up_once_per_device(fake):
    loader = Loader(fake.cupy)
    for _ in range(3):
        loader.launch("maxpool_forward", "maxpool_forward_f32_u8", 7, 256, [np.int64(1)])
    loader.launch("maxpool_backward", "maxpool_backward_f32_u8", 7, 256, [])
    fake.log.device = 1
    loader.launch("maxpool_forward", "maxpool_forward_f32_u8", 7, 256, [])
    assert fake.log.lookups == [(0, "maxpool_forward_f32_u8"), (0, "maxpool_backward_f32_u8"),
                                (1, "maxpool_forward_f32_u8")]
    assert len(fake.log.built) == 2  # pool.cu once on each device
    assert fake.log.calls[0] == ("maxpool_forward_f32_u8", (7,), (256,), (np.int64(1),))


def test_compile_error_names_the_file_and_carries_the_log(fake):
    loader = Loader(fake.cupy)
    with pytest.raises(KernelCompileError, match=r'(?s)kernels/pool\.cu.*error: expected a "\)"'):
        loader.module("pool.cu", source="broken")
    assert loader.module("pool.cu").code == program("pool.cu").source  # the bad one was not kept


def test_out_of_memory_becomes_a_memory_error_with_a_batch_size_hint(fake):
    def im2col(x, *args):
        raise _OutOfMemory("out of memory allocating 240 GiB")

    guarded = Loader(fake.cupy).guard_memory("im2col", im2col)
    with pytest.raises(MemoryError, match=r"(?s)im2col \(input shape \(512, 3, 4, 4\), batch size 512\)"
                                          r".*240 GiB.*Lower the batch size"):
        guarded(np.zeros((512, 3, 4, 4)), 3, 3, 1, 1)


def test_the_cuda_package_imports_without_cupy():
    """gpucnn info and the tests use the kernel table and host code on machines without CuPy."""
    code = ("import sys, gpucnn.cuda, gpucnn.cuda.kernels, gpucnn.cuda.host, gpucnn.cuda.loader, "
            "gpucnn.compare, gpucnn.cli.info; assert 'cupy' not in sys.modules, 'cupy imported'; "
            "assert 'conv2d_forward' in gpucnn.cuda.op_paths()")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
