"""Builds the optional native CPU kernels; all package metadata lives in pyproject.toml.

``optional=True``: without a working C compiler the build of ``gpucnn._native`` is skipped with
a warning and gpucnn runs on its NumPy path (see gpucnn/native.py).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "gpucnn._native",
    ["csrc/native.c"],
    depends=["csrc/kernels.h", "csrc/pool2.h", "csrc/updates.h", "csrc/drivers.h",
             "csrc/fused_ops.h", "csrc/batchnorm_isa.h", "csrc/batchnorm.h",
             "csrc/batchnorm_run.h", "csrc/eltwise.h", "csrc/conv_geom.h", "csrc/conv_drivers.h",
             "csrc/lanes.h", "csrc/pool.h", "csrc/blas.h", "csrc/conv_gemm.h",
             "csrc/winograd.h", "csrc/scratch.h"],
    optional=True,
    # -ffp-contract=fast: ISO C mode would otherwise forbid fusing a*b+c into one FMA.
    extra_compile_args=["-O3", "-std=c11", "-ffp-contract=fast"],
)])
