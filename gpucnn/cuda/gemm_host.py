"""The host side of kernels/gemm.cu: matrix products without cuBLAS; importable without CuPy.

CuPy refuses every cuBLAS call while the current stream captures a CUDA graph
(``cupy_backends/cuda/libs/cublas.pyx``, ``setStream``: ``NotImplementedError('calling cuBLAS
API during stream capture is currently unsupported')``), and the conv and linear layers'
products are most of a training step.  :class:`Gemm` gives :class:`gpucnn.cuda.host.Primitives`
its ``matmul`` primitive: cuBLAS through CuPy's ``@`` by default, kernels/gemm.cu while
``gemm_kernels`` is set, which :mod:`gpucnn.train.graph` does for every step of a graphed
training (the eager warm-up included, so replays equal eager steps bit for bit).
"""
from __future__ import annotations

from .kernels import c_type, entry_name, pack_args

# kernels/gemm.cu's tile of C, slice of K and threads per block
GEMM_TILE, GEMM_BK, GEMM_LAUNCH = 64, 16, 256
# A split-K product aims at this many blocks (about 4 per SM of a 132-SM H100 at 256 threads,
# what the kernel's registers allow), each summing at least SPLIT_MIN_K values of K, so the
# partial sums stay a small extra pass.
SPLIT_BLOCKS, SPLIT_MIN_K = 512, 256


def _check_shapes(name, a, b) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: a.shape={tuple(a.shape)} and b.shape={tuple(b.shape)}: "
                         f"expected (M, K) and (K, N)")


class Gemm:
    """``matmul`` and ``gemm`` over ``self.xp`` and ``self._launch`` (see Primitives).
    ``split_blocks`` and ``split_min_k`` decide how a product splits K (the tests shrink them
    to reach the split path with small matrices)."""

    gemm_kernels = False
    split_blocks, split_min_k = SPLIT_BLOCKS, SPLIT_MIN_K

    def matmul(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N), C-contiguous: CuPy's ``@`` (cuBLAS), or
        :meth:`gemm` while ``gemm_kernels`` is set."""
        _check_shapes("matmul", a, b)
        return self.gemm(a, b) if self.gemm_kernels else a @ b

    def _operand(self, a):
        """(C-contiguous memory of a, whether it holds a transposed): a transposed view (x.T)
        is read in place by the kernel's t variant; another strided view is copied."""
        if a.flags.c_contiguous:
            return a, "n"
        if a.T.flags.c_contiguous:
            return a.T, "t"
        return self.xp.ascontiguousarray(a), "n"

    def _splits(self, m: int, n: int, k: int) -> tuple[int, int]:
        """(splits, klen): how a product of these shapes splits K, from the shapes alone."""
        tiles = -(-m // GEMM_TILE) * -(-n // GEMM_TILE)
        splits = max(1, min(-(-self.split_blocks // tiles), k // self.split_min_k))
        klen = -(-k // splits)
        klen = -(-klen // GEMM_BK) * GEMM_BK  # whole K slices, so splits meet on slice edges
        return -(-k // klen), klen

    def gemm(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N) C-contiguous by kernels/gemm.cu: one launch, two with
        split K; the same bits every run."""
        _check_shapes("gemm", a, b)
        if a.dtype != b.dtype:
            raise TypeError(f"gemm: a.dtype={a.dtype} and b.dtype={b.dtype}: expected one dtype")
        inst = {"T": c_type("T", a.dtype, "a")}
        (m, k), n = a.shape, b.shape[1]
        out = self.xp.empty((m, n), dtype=a.dtype)
        if not (m and n and k):
            if m and n:
                out.fill(0)
            return out
        (am, ta), (bm, tb) = self._operand(a), self._operand(b)
        splits, klen = self._splits(m, n, k)
        target = out if splits == 1 else self.xp.empty(splits * m * n, dtype=a.dtype)
        kernel = f"gemm_{ta}{tb}"
        blocks = -(-m // GEMM_TILE) * -(-n // GEMM_TILE) * splits
        self._launch(kernel, entry_name(kernel, inst), min(blocks, self.max_blocks), GEMM_LAUNCH,
                     pack_args(kernel, inst, (am, bm, target, m, n, k, klen, splits)))
        if splits > 1:
            grid = max(1, min(-(-m * n // self.block), self.max_blocks))
            self._launch("gemm_sum_splits", entry_name("gemm_sum_splits", inst), grid, self.block,
                         pack_args("gemm_sum_splits", inst, (target, out, m * n, splits)))
        return out
