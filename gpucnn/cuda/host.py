"""The host side of every CUDA primitive; importable without CuPy.

:class:`Primitives` does the shape arithmetic (via :func:`gpucnn.shapes.out_size`), output
allocation, grid sizes and argument packing of each primitive, written against an array module
``xp`` and a ``launch`` function.  :mod:`gpucnn.cuda` binds it to CuPy and the NVRTC loader; the
host emulation in ``tests/emulation`` binds it to NumPy and the same kernel sources compiled by
g++, so the tests without a GPU run this very code.
"""
from __future__ import annotations

import numpy as np

from ..shapes import out_size
from . import array_ops
from .gemm_host import Gemm
from .kernels import (KERNELS, SGD_TABLE, SQ_TABLE, c_type as _c_type, entry_name, pack_args,
                      sgd_table_dtype, sq_table_dtype)


def _address(a) -> int:
    """The device address of a's first element: CuPy's ``a.data.ptr``; for the host emulation's
    NumPy arrays (its device memory) their own."""
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def _is_cnhw(a) -> int:
    """1 for a 4-D (N, C, H, W) view of memory laid out (C, N, H, W) (a conv output), else 0."""
    return int(a.transpose(1, 0, 2, 3).flags.c_contiguous and not a.flags.c_contiguous)


class Primitives(Gemm):
    """The CUDA primitives' host side over array module ``xp`` and ``launch``.

    ``launch(kernel, entry, grid, block, packed_args)`` runs entry point ``entry`` of table
    kernel ``kernel``.  Elementwise kernels get ``block`` threads per block and at most
    ``max_blocks`` blocks (grid-stride loops cover the rest); reductions (bias_grad, softmax) run
    one block of ``reduce_block`` threads (a power of two <= 256) per row.  Outputs are
    C-contiguous, except the max-pool argmax and input gradient, which keep the layout of the
    forward input (a conv output's (C, N, ...) memory, which the conv's backward reads as is).
    im2col and maxpool_forward read any strided input in place; the other primitives take a
    C-contiguous copy of a strided one.  Matrix products (``matmul``, :class:`Gemm`) are
    cuBLAS's, or kernels/gemm.cu's while ``gemm_kernels`` is set.
    """

    batchnorm_forward = array_ops.batchnorm_forward
    batchnorm_backward = array_ops.batchnorm_backward
    add_relu_forward = array_ops.add_relu_forward

    def __init__(self, xp, launch, block=256, max_blocks=65535, reduce_block=256):
        if reduce_block & (reduce_block - 1) or not 0 < reduce_block <= 256:
            raise ValueError(f"reduce_block={reduce_block}: expected a power of two <= 256")
        self.xp, self._launch = xp, launch
        self.block, self.max_blocks, self.reduce_block = block, max_blocks, reduce_block
        self.device_counters: dict = {}  # dropout stream key -> its counter on the device

    def _run(self, kernel, types, work, *args, reduce=False):
        inst = {p: _c_type(p, types[p]) for p in KERNELS[kernel].tparams}
        block = self.reduce_block if reduce else self.block
        blocks = work if reduce else -(-work // block)
        grid = max(1, min(blocks, self.max_blocks))
        self._launch(kernel, entry_name(kernel, inst), grid, block, pack_args(kernel, inst, args))

    def _float(self, name, a):
        a = self.xp.ascontiguousarray(a)
        _c_type("T", a.dtype, name)
        return a

    def _strided(self, name, a):
        """(a, its strides in elements): a itself unless a stride is not a whole number of
        elements, which only a reinterpreting view makes; then a C-contiguous copy."""
        _c_type("T", a.dtype, name)
        if any(s % a.itemsize for s in a.strides):
            a = self.xp.ascontiguousarray(a)
        return a, [s // a.itemsize for s in a.strides]

    def conv2d_forward(self, x, w, b, stride, pad):
        """im2col + one GEMM ``w (F, C*KH*KW) @ cols``; saved = the columns."""
        N, _, H, W = x.shape
        F, _, KH, KW = w.shape
        cols = self.im2col(x, KH, KW, stride, pad)
        out = self.matmul(w.reshape(F, -1), cols)
        if b is not None:
            out += b[:, None]
        OH, OW = out_size(H, KH, stride, pad), out_size(W, KW, stride, pad)
        return out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3), cols

    def conv2d_relu_forward(self, x, w, b, stride, pad):
        """conv2d_forward without its bias, then bias_relu_forward: the bias and the ReLU in
        one launch (what nn.Sequential ran for a conv and a ReLU before this primitive)."""
        out, cols = self.conv2d_forward(x, w, None, stride, pad)
        return (self.relu_forward(out) if b is None else self.bias_relu_forward(out, b)), cols

    def conv2d_backward(self, dout, saved, w, x_shape, stride, pad, need_dx, need_db):
        """dw = dout' @ cols^T and dx = col2im(w^T @ dout') by GEMMs, db by the bias kernel.

        dout' (F, N*OH*OW) is a view when dout is laid out (F, N, ...), as the pooling kernels
        write it after a conv; db sums its rows, so it needs no (N, F, ...) copy either."""
        F, _, KH, KW = w.shape
        dmat = dout.transpose(1, 0, 2, 3).reshape(F, -1)
        db = self.bias_grad(dmat.reshape(1, F, -1)) if need_db else None
        dw = self.matmul(dmat, saved.T).reshape(w.shape)
        dx = (self.col2im(self.matmul(w.reshape(F, -1).T, dmat), x_shape, KH, KW, stride, pad)
              if need_dx else None)
        return dx, dw, db

    def relu_maxpool_forward(self, x, size, stride):
        """maxpool(relu(x)) by the max-pool kernel with RELU: one launch, relu(x) never stored."""
        return self._pool_forward("relu_maxpool_forward", x, size, stride)

    def bias_relu_maxpool_forward(self, x, b, size, stride):
        """maxpool(relu(x + b)), b per channel, by the max-pool kernel: the conv's bias add, a
        pass over its whole output, folded into the pooling's read."""
        return self._pool_forward("bias_relu_maxpool_forward", x, size, stride, self._bias(b, x))

    def relu_maxpool_backward(self, dout, argmax, out, x_shape, size, stride):
        """Each window's dout * (out > 0) to its argmax, one gather launch."""
        dout, out = self._float("dout", dout), self._float("out", out)
        argmax, cnhw = self._pool_layout(argmax)
        dx = self._like_layout(x_shape, cnhw, dout.dtype)
        self._run("relu_maxpool_backward", {"T": dout.dtype, "A": argmax.dtype}, dx.size, dout,
                  self._memory(argmax, cnhw), out, self._memory(dx, cnhw), *x_shape, size, stride, *dout.shape[2:],
                  cnhw)
        return dx

    def _pool_layout(self, argmax):
        """(argmax, cnhw): whether argmax is an (N, C, ...) view of (C, N, ...) memory, as the
        forward stores it for a conv output; any other layout becomes a C-contiguous copy."""
        cnhw = _is_cnhw(argmax)
        return (argmax if cnhw else self.xp.ascontiguousarray(argmax)), cnhw

    def _like_layout(self, shape, cnhw, dtype):
        """An empty (N, C, H, W) array, stored (C, N, H, W) when cnhw."""
        if not cnhw:
            return self.xp.empty(shape, dtype=dtype)
        N, C, H, W = shape
        return self.xp.empty((C, N, H, W), dtype=dtype).transpose(1, 0, 2, 3)

    @staticmethod
    def _memory(a, cnhw):
        """The C-contiguous array a kernel is handed: a's memory in its own order."""
        return a.transpose(1, 0, 2, 3) if cnhw else a

    def im2col(self, x, kh, kw, stride, pad):
        """x (N, C, H, W), any strides (no copy) -> cols (C*KH*KW, N*OH*OW); rows (c, i, j),
        columns (n, oh, ow)."""
        x, xs = self._strided("x", x)
        N, C, H, W = x.shape
        oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
        cols = self.xp.empty((C * kh * kw, N * oh * ow), dtype=x.dtype)
        self._run("im2col", {"T": x.dtype}, cols.size, x, cols, N, C, H, W, *xs, kh, kw, stride, pad,
                  oh, ow)
        return cols

    def col2im(self, dcols, x_shape, kh, kw, stride, pad):
        """dcols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows."""
        dcols = self._float("dcols", dcols)
        N, C, H, W = x_shape
        oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
        if dcols.shape != (C * kh * kw, N * oh * ow):
            raise ValueError(f"dcols.shape={tuple(dcols.shape)}: expected {(C * kh * kw, N * oh * ow)}")
        dx = self.xp.empty((N, C, H, W), dtype=dcols.dtype)
        self._run("col2im", {"T": dcols.dtype}, dx.size, dcols, dx, N, C, H, W, kh, kw, stride, pad,
                  oh, ow)
        return dx

    def maxpool_forward(self, x, size, stride):
        """x (N, C, H, W), any strides (no copy) -> out (N, C, OH, OW), argmax (row-major offset
        of the first maximum, or of the first NaN; uint8 when size*size <= 256, else int32)."""
        return self._pool_forward("maxpool_forward", x, size, stride)

    def _pool_forward(self, kernel, x, size, stride, *bias):
        x, xs = self._strided("x", x)
        N, C, H, W = x.shape
        oh, ow = out_size(H, size, stride), out_size(W, size, stride)
        out = self.xp.empty((N, C, oh, ow), dtype=x.dtype)
        # argmax in x's layout, so the backward writes dx in it too (see pool.cu)
        cnhw = _is_cnhw(x)
        argmax = self._like_layout(out.shape, cnhw, np.uint8 if size * size <= 256 else np.int32)
        self._run(kernel, {"T": x.dtype, "A": argmax.dtype}, out.size, x, *bias, out,
                  self._memory(argmax, cnhw), N, C, *xs, size, stride, oh, ow, cnhw)
        return out, argmax

    def _bias(self, b, x):
        """b checked as x's per-channel (axis 1) bias, C-contiguous."""
        b = self._float("b", b)
        if b.shape != (x.shape[1],) or b.dtype != x.dtype:
            raise ValueError(f"b.shape={tuple(b.shape)} ({b.dtype}): expected one {x.dtype} per "
                             f"channel (axis 1) of x.shape={tuple(x.shape)}")
        return b

    def maxpool_backward(self, dout, argmax, x_shape, size, stride):
        """dout, argmax (N, C, OH, OW) -> dx (N, C, H, W); each window's gradient to its argmax."""
        dout = self._float("dout", dout)
        argmax, cnhw = self._pool_layout(argmax)
        dx = self._like_layout(x_shape, cnhw, dout.dtype)
        self._run("maxpool_backward", {"T": dout.dtype, "A": argmax.dtype}, dx.size, dout,
                  self._memory(argmax, cnhw), self._memory(dx, cnhw), *x_shape, size, stride,
                  *dout.shape[2:], cnhw)
        return dx

    def dropout_keep_mask(self, key, counter, n, threshold):
        """Bool (n,): element i kept when rng.random_bits(key, counter + i) >= threshold."""
        keep = self.xp.empty(int(n), dtype=np.bool_)
        wrap = (1 << 64) - 1
        self._run("dropout_keep_mask", {}, int(n), key & wrap, counter & wrap, threshold, keep, n)
        return keep

    def dropout_forward(self, x, key, counter, threshold, scale):
        """(x * keep * scale, keep shaped like x) in one launch; keep as dropout_keep_mask's.

        A stream whose key is in ``device_counters`` (set while a CUDA graph is captured)
        reads its counter from that (1,) uint64 device array instead of ``counter`` and
        advances it by x.size on the device: two launches, replayable."""
        x = self._float("x", x)
        out, keep = self.xp.empty_like(x), self.xp.empty(x.shape, dtype=np.bool_)
        wrap = (1 << 64) - 1
        on_device = self.device_counters.get(key & wrap)
        if on_device is None:
            self._run("dropout_forward", {"T": x.dtype}, x.size, key & wrap, counter & wrap,
                      threshold, x, out, keep, scale, x.size)
            return out, keep
        self._run("dropout_forward_at", {"T": x.dtype}, x.size, key & wrap, on_device, threshold,
                  x, out, keep, scale, x.size)
        self._run("advance_counter", {}, 1, on_device, x.size)
        return out, keep

    def dropout_backward(self, dout, keep, scale):
        """dout * keep * scale in one launch."""
        dout, keep = self._float("dout", dout), self.xp.ascontiguousarray(keep)
        dx = self.xp.empty_like(dout)
        self._run("dropout_backward", {"T": dout.dtype}, dout.size, dout, keep, dx, scale, dout.size)
        return dx

    def _unary(self, kernel, x):
        x = self._float("x", x)
        out = self.xp.empty_like(x)
        self._run(kernel, {"T": x.dtype}, x.size, x, out, x.size)
        return out

    def _binary(self, kernel, dout, out):
        dout, out = self._float("dout", dout), self._float("out", out)
        if dout.shape != out.shape or dout.dtype != out.dtype:
            raise ValueError(f"{kernel}: dout {dout.dtype}{tuple(dout.shape)} does not match the "
                             f"forward output {out.dtype}{tuple(out.shape)}")
        dx = self.xp.empty_like(out)
        self._run(kernel, {"T": out.dtype}, out.size, dout, out, dx, out.size)
        return dx

    def relu_forward(self, x):
        """max(x, 0), any shape."""
        return self._unary("relu_forward", x)

    def bias_relu_forward(self, x, b):
        """relu(x + b), b per channel (axis 1), C-contiguous out in one launch: the bias add
        and the relu were two passes.  A conv output's (N, C, ...) view of (C, N, ...) memory
        is read in place (the relu alone copies it first)."""
        cnhw = x.ndim == 4 and _is_cnhw(x)
        mem = self._memory(x, cnhw) if cnhw else self._float("x", x)
        b = self._bias(b, x)
        N, C = x.shape[:2]
        out = self.xp.empty(x.shape, dtype=x.dtype)
        self._run("bias_relu_forward", {"T": x.dtype}, out.size, mem, b, out, N, C,
                  out.size // max(N * C, 1), int(cnhw))
        return out

    def relu_backward(self, dout, out):
        """dout * (out > 0)."""
        return self._binary("relu_backward", dout, out)

    def sigmoid_forward(self, x):
        """1 / (1 + exp(-x)) without overflow."""
        return self._unary("sigmoid_forward", x)

    def sigmoid_backward(self, dout, out):
        """dout * out * (1 - out)."""
        return self._binary("sigmoid_backward", dout, out)

    def bias_grad(self, dout):
        """dout (N, F, ...) -> (F,): the sum over every axis but 1 (conv and linear biases)."""
        dout = self._float("dout", dout)
        N, F = dout.shape[:2]
        S = dout.size // max(N * F, 1)
        # blocks of >= 32 values per thread each, as many as fit the grid: more blocks than
        # filters where each filter has much to sum, then one more launch over the partials
        chunks = max(1, min(-(-N * S // (32 * self.reduce_block)), self.max_blocks // max(F, 1)))
        if chunks > 1:
            partial = self.xp.empty(F * chunks, dtype=dout.dtype)
            self._run("bias_grad", {"T": dout.dtype}, F * chunks, dout, partial, N, F, S, chunks,
                      reduce=True)
            dout, N, S = partial, 1, chunks
        db = self.xp.empty(F, dtype=dout.dtype)
        self._run("bias_grad", {"T": dout.dtype}, F, dout, db, N, F, S, 1, reduce=True)
        return db

    def softmax_cross_entropy(self, scores, y):
        """scores (N, K), y (N,) labels in [0, K) -> (mean loss, 0-d float64; dscores (N, K)).
        Two launches: the softmax kernel writes float64 row losses, loss_total averages them
        (was a CuPy sum and a divide after it)."""
        scores = self._float("scores", scores)
        y = self.xp.ascontiguousarray(y, dtype=np.int64)
        N, K = scores.shape
        dscores = self.xp.empty_like(scores)
        row_loss = self.xp.empty(N, dtype=np.float64)
        self._run("softmax_cross_entropy", {"T": scores.dtype}, N, scores, y, dscores, row_loss, N, K,
                  reduce=True)
        return self._loss_total(row_loss, 1.0, N, None), dscores

    def sum_of_squares(self, a):
        """sum(a**2) as a 0-d float64 array: sum_of_squares_all of [a]."""
        return self.sum_of_squares_all([a], 1.0, None)

    def sum_of_squares_all(self, arrays, scale, plus):
        """plus + scale * sum(a**2) over every array, a 0-d float64 array, in two launches
        whatever their number (SQ_TABLE arrays per first-pass launch): each array read once in
        its dtype, squares summed in float64 by per-block partials, then loss_total.  The
        float64 copy and cuBLAS dot per array took 2 launches and an allocation each, and
        adding the sums, scaling and adding a data loss a launch each.  ``plus``: a 0-d
        float64 device array or None."""
        arrays = [self._float(f"arrays[{i}]", a) for i, a in enumerate(arrays)]
        dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
        for i, a in enumerate(arrays):
            if a.dtype != dtype:
                raise TypeError(f"arrays[{i}].dtype={a.dtype}: expected arrays[0]'s {dtype}")
        if plus is not None and (plus.shape != () or plus.dtype != np.float64):
            raise ValueError(f"plus.shape={tuple(plus.shape)} ({plus.dtype}): expected a 0-d "
                             f"float64 array")
        chunks = [arrays[s:s + SQ_TABLE] for s in range(0, len(arrays), SQ_TABLE)]
        # >= 32 values of the largest array per thread, at most 1024 partials (loss_total's
        # one block sums them); a grid the host fixes keeps the sum's order, and bits, fixed
        grids = [max(1, min(-(-max(a.size for a in c) // (32 * self.reduce_block)), 1024,
                            self.max_blocks)) for c in chunks]
        parts = self.xp.empty(sum(grids), dtype=np.float64)
        at = 0
        for chunk, grid in zip(chunks, grids):
            table = np.zeros(1, sq_table_dtype(dtype))
            table["a"][0, :len(chunk)] = [_address(a) for a in chunk]
            table["n"][0, :len(chunk)] = [a.size for a in chunk]
            self._run("sum_squares_all", {"T": dtype}, grid, table, len(chunk),
                      parts[at:at + grid], reduce=True)
            at += grid
        return self._loss_total(parts, scale, 1.0, plus)

    def _loss_total(self, parts, scale, div, plus):
        """scale * sum(parts) / div (+ plus) as a new 0-d float64 array, one launch."""
        out = self.xp.empty((), dtype=np.float64)
        self._run("loss_total", {}, 1, parts, parts.size, scale, div,
                  parts if plus is None else plus, int(plus is not None), out, reduce=True)
        return out

    def add_scaled(self, y, a, x):
        """y += a * x in place, one launch and no temporary (the array code took 2 and one)."""
        _c_type("T", y.dtype, "y")
        if not y.flags.c_contiguous or x.shape != y.shape:
            raise ValueError(f"add_scaled: expected a C-contiguous y of x's shape {tuple(x.shape)}, "
                             f"got {tuple(y.shape)}")
        self._run("add_scaled", {"T": y.dtype}, y.size, y, a, self._float("x", x), y.size)

    def sgd_update(self, p, g, v, lr, momentum, nesterov, decay):
        """SGD's step in place by one kernel over p (and v): no temporaries, one launch where
        the array code took 2 (momentum 4, nesterov 6) and an allocation per parameter."""
        _c_type("T", p.dtype, "p")
        if not (p.flags.c_contiguous and g.flags.c_contiguous) or g.shape != p.shape:
            raise ValueError(f"sgd_update: expected C-contiguous p and g of one shape, got "
                             f"{tuple(p.shape)} and {tuple(g.shape)}")
        # plain SGD never touches v: p stands in for it
        self._run("sgd_update", {"T": p.dtype}, p.size, p, g, p if v is None else v, lr, decay,
                  momentum, 1 + momentum, int(nesterov), p.size)

    def sgd_update_all(self, params, grads, velocities, lr, momentum, nesterov, decays):
        """sgd_update on every parameter of a step in one launch (per SGD_TABLE parameters):
        the launches of an update no longer grow with the layers.  ``lr`` is a (1,) device
        array of the parameters' dtype, read by the kernel, so a replayed CUDA graph sees a new
        learning rate; ``velocities`` None without momentum; ``decays`` one per parameter.  The
        addresses travel in the kernel's arguments: no upload, allocation or sync."""
        dtype = np.dtype(lr.dtype)
        _c_type("T", dtype, "lr")
        vs = [None] * len(params) if velocities is None else list(velocities)
        if not len(params) == len(grads) == len(vs) == len(decays):
            raise ValueError(f"sgd_update_all: expected one gradient, velocity and decay per "
                             f"parameter, got {len(params)}, {len(grads)}, {len(vs)}, {len(decays)}")
        for i, (p, g, v) in enumerate(zip(params, grads, vs)):
            for name, a in (("params", p), ("grads", g), ("velocities", v)):
                if a is not None and (a.dtype != dtype or a.shape != p.shape
                                      or not a.flags.c_contiguous):
                    raise ValueError(f"{name}[{i}]: expected a C-contiguous {dtype} array of "
                                     f"shape {tuple(p.shape)} (lr's dtype, params[{i}]'s shape), "
                                     f"got {a.dtype}{tuple(a.shape)}")
        for start in range(0, len(params), SGD_TABLE):
            chunk = range(start, min(start + SGD_TABLE, len(params)))
            table = np.zeros(1, sgd_table_dtype(dtype))
            m = len(chunk)
            table["p"][0, :m] = [_address(params[i]) for i in chunk]
            table["g"][0, :m] = [_address(grads[i]) for i in chunk]
            table["v"][0, :m] = [0 if vs[i] is None else _address(vs[i]) for i in chunk]
            table["n"][0, :m] = [params[i].size for i in chunk]
            table["decay"][0, :m] = [decays[i] for i in chunk]
            self._run("sgd_update_all", {"T": dtype}, int(table["n"].max()), table, m, lr,
                      momentum, 1 + momentum, int(nesterov))
