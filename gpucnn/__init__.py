"""gpucnn: a small CNN framework whose forward and backward passes run on NumPy or on NVIDIA GPUs
through CuPy and its own CUDA C kernels."""
import os as _os
import sys as _sys

__version__ = "0.1.0"

# OpenBLAS's idle workers spin for about 2^28 cycles after each matmul.  In a training step the
# next op is often a native conv or pool kernel on the same cores, which then ran at half speed:
# (a) b50, 2 threads, one step 29.8 -> 23.5 ms with the spin cut (docs/benchmarks.md); the
# matmuls themselves did not slow down.  OpenBLAS reads the variable when NumPy loads it, so
# this helps only when gpucnn is imported before NumPy (the gpucnn command always is); a value
# the user set is kept.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
