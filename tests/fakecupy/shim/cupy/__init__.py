"""``import cupy`` gives the stand-in (tests/fakecupy) for the whole process: put this folder and
tests/ first on PYTHONPATH (``scripts/gpu_acceptance.py --rehearse`` and the multi-process
tests do), and every ``import cupy`` -- gpucnn's, pytest's, a child process's -- finds it.  The
host comes from the environment (FAKECUPY_GPUS, CUDA_VISIBLE_DEVICES, FAKECUPY_DRIVER: see
fakecupy._devices)."""
import sys

import fakecupy

fakecupy.reset()
sys.modules.update(fakecupy.modules())  # "cupy" itself too: the import returns the stand-in
