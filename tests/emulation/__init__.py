"""Host emulation of the CUDA kernels (see cuda_host.h and emulator.py)."""
