"""gpucnn: a small CNN framework whose forward and backward passes run on NumPy or on NVIDIA GPUs
through CuPy and its own CUDA C kernels."""

__version__ = "0.1.0"
