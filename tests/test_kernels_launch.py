"""The pure-Python launch path of the CUDA backend (gpucnn.cuda.kernels, gpucnn.cuda.host), without a GPU:
argument typing and checks, kernel sources, op paths and the CuPy cache directory."""
import os
import re

import numpy as np
import pytest

from gpucnn.cuda.host import Primitives
from gpucnn.cuda.kernels import (KERNELS, SGD_TABLE, SQ_TABLE, entry_name, entry_names,
                                 kernel_dir, kernel_source, op_paths, pack_args, sgd_table_dtype,
                                 sq_table_dtype)
from gpucnn.device import prepare_cupy_cache_dir

F32 = {"T": "float"}


def test_scalars_cross_with_their_c_types():
    x, out = np.zeros(4, np.float32), np.zeros(4, np.float32)
    packed = pack_args("relu_forward", F32, (x, out, 4))
    assert packed[0] is x and type(packed[2]) is np.int64
    key_args = pack_args("dropout_keep_mask", {}, ((1 << 64) - 1, 0, 5, np.zeros(3, bool), 3))
    assert [type(a) for a in key_args] == [np.uint64, np.uint64, np.uint64, np.ndarray, np.int64]
    assert int(key_args[0]) == (1 << 64) - 1


def test_non_contiguous_array_is_refused_with_a_clear_error():
    x = np.zeros((4, 6), np.float32)[:, ::2]
    with pytest.raises(ValueError, match=r"relu_forward argument 0 \(const T\*\): expected a C-contiguous"):
        pack_args("relu_forward", F32, (x, np.zeros(12, np.float32), 12))


def test_wrong_element_type_and_arity_are_refused():
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        pack_args("relu_forward", F32, (np.zeros(3), np.zeros(3, np.float32), 3))
    with pytest.raises(TypeError, match="expected 3 arguments, got 2"):
        pack_args("relu_forward", F32, (np.zeros(3, np.float32), 3))


def test_unsupported_dtype_is_refused_before_any_launch():
    prims = Primitives(np, lambda *a: pytest.fail("launched"))
    with pytest.raises(TypeError, match=r"x.dtype=float16: the CUDA kernels take float32, float64"):
        prims.relu_forward(np.zeros(3, np.float16))


def test_reduce_block_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="reduce_block=48"):
        Primitives(np, None, reduce_block=48)


def test_kernel_sources_are_self_contained():
    for file in {k.file for k in KERNELS.values()}:
        src = kernel_source(file)
        assert '#include "' not in src and "GRID_STRIDE_LOOP" in src


def test_op_paths_name_kernels_that_exist():
    paths = op_paths()
    assert {"conv2d_forward", "maxpool2d_backward", "dropout_forward", "softmax_cross_entropy",
            "linear_forward"} <= set(paths)
    assert paths["linear_forward"].startswith("GEMMs: cuBLAS via cupy, or gemm.cu::gemm_* in a "
                                              "CUDA graph")
    assert re.search(r"void gemm\(", open(os.path.join(kernel_dir(), "gemm.cu")).read())
    for path in paths.values():
        for file, kernel in re.findall(r"CUDA kernel (\w+\.cu)::(\w+)", path):
            src = open(os.path.join(kernel_dir(), file)).read()
            # a device template of that name, or a macro that defines the entries (FORWARD(name, ...))
            assert re.search(rf"void {kernel}(_##\w+)?\(|\b\w+\({kernel},", src), (file, kernel)


def test_cupy_cache_dir_is_respected_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path / "mine"))
    assert prepare_cupy_cache_dir() == str(tmp_path / "mine")


def test_read_only_home_falls_back_to_a_temp_cache(monkeypatch):
    monkeypatch.delenv("CUPY_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", "/dev/null/home")  # cannot hold a directory, even for root
    used = prepare_cupy_cache_dir()
    assert os.environ["CUPY_CACHE_DIR"] == used and os.path.isdir(used) and os.access(used, os.W_OK)


def test_entry_names_carry_the_dtypes():
    assert entry_name("im2col", {"T": "double"}) == "im2col_f64"
    assert entry_name("maxpool_forward", {"T": "float", "A": "unsigned char"}) == "maxpool_forward_f32_u8"
    assert entry_name("dropout_keep_mask", {}) == "dropout_keep_mask"


def test_the_host_code_launches_every_entry_point_of_the_table_and_no_other():
    """Each primitive run on float32 and float64 (small and large pooling windows) through a
    recording launch: the entries it names are exactly the table's, each in its kernel's file.
    That each entry is defined in that file is checked by the nvcc, NVRTC and emulation tests."""
    launched = set()

    def record(kernel, entry, grid, block, args):
        assert entry in entry_names(KERNELS[kernel].file), (kernel, entry)
        launched.add(entry)

    prims = Primitives(np, record)
    for dt in (np.float32, np.float64):
        x = np.zeros((2, 3, 18, 18), dt)
        prims.col2im(prims.im2col(x, 3, 3, 1, 1), x.shape, 3, 3, 1, 1)
        for size in (2, 17):
            out, arg = prims.maxpool_forward(x, size, 1)
            prims.maxpool_backward(out, arg, x.shape, size, 1)
            out, arg = prims.relu_maxpool_forward(x, size, 1)
            prims.relu_maxpool_backward(out, arg, out, x.shape, size, 1)
            prims.bias_relu_maxpool_forward(x, x[0, :, 0, 0], size, 1)
        prims.bias_relu_forward(x, x[0, :, 0, 0])
        for name in ("relu", "sigmoid"):
            getattr(prims, f"{name}_backward")(x, getattr(prims, f"{name}_forward")(x))
        prims.bias_grad(x)
        prims.softmax_cross_entropy(np.zeros((4, 3), dt), np.zeros(4, np.int64))
        prims.sum_of_squares(x)
        prims.sgd_update(x, x, x, 0.1, 0.9, True, 0.01)
        prims.sgd_update_all([x], [x], None, np.zeros(1, dt), 0.0, False, [0.0])
        prims.add_scaled(x, 0.1, x)
        prims.dropout_backward(x, prims.dropout_forward(x, 1, 2, 3, dt(2))[1], dt(2))
        prims.device_counters = {1: np.zeros(1, np.uint64)}  # as while a CUDA graph captures
        prims.dropout_forward(x, 1, 2, 3, dt(2))
        prims.device_counters = {}
        m = np.zeros((3, 700), dt)
        for a, b in ((m, m.T), (m.T, m), (m, m.T.copy()), (m.T.copy().T, m.T)):
            prims.gemm(a, b)  # nt (split K), tn, nn, tt
    prims.dropout_keep_mask(1, 2, 10, 3)
    assert launched == {e for f in {k.file for k in KERNELS.values()} for e in entry_names(f)}


def test_the_sgd_table_has_the_kernels_layout():
    """kernels/optim.cu's SgdTable<T>: SGD_TABLE entries of p, g, v, n, decay, in that order."""
    src = kernel_source("optim.cu")
    assert re.search(rf"#define SGD_TABLE {SGD_TABLE}\n", src)
    body = re.search(r"struct SgdTable \{(.*?)\};", src, re.S).group(1)
    fields = re.findall(r"(\w+)\[SGD_TABLE\];", body)
    for dt in (np.float32, np.float64):
        table = sgd_table_dtype(dt)
        assert list(table.names) == fields == ["p", "g", "v", "n", "decay"]
        assert table.itemsize == SGD_TABLE * (4 * 8 + np.dtype(dt).itemsize)


def test_the_sum_of_squares_table_has_the_kernels_layout():
    """kernels/reduce.cu's SqTable<T>: SQ_TABLE addresses, then SQ_TABLE element counts."""
    src = kernel_source("reduce.cu")
    assert re.search(rf"#define SQ_TABLE {SQ_TABLE}\n", src)
    body = re.search(r"struct SqTable \{(.*?)\};", src, re.S).group(1)
    assert re.findall(r"(\w+)\[SQ_TABLE\];", body) == ["a", "n"]
    for dt in (np.float32, np.float64):
        assert list(sq_table_dtype(dt).names) == ["a", "n"]
        assert sq_table_dtype(dt).itemsize == SQ_TABLE * 16


def test_sgd_update_all_refuses_mismatched_arrays_before_any_launch():
    prims = Primitives(np, lambda *a: pytest.fail("launched"))
    p, lr = np.zeros((2, 3), np.float32), np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"grads\[0\]: expected a C-contiguous float32 array of "
                                         r"shape \(2, 3\)"):
        prims.sgd_update_all([p], [np.zeros((3, 2), np.float32)], None, lr, 0.0, False, [0.0])
    with pytest.raises(ValueError, match=r"params\[0\]: expected a C-contiguous float32"):
        prims.sgd_update_all([p.T], [p.T], None, lr, 0.0, False, [0.0])
    with pytest.raises(ValueError, match="one gradient, velocity and decay per parameter"):
        prims.sgd_update_all([p], [p], None, lr, 0.0, False, [])
    with pytest.raises(TypeError, match=r"lr.dtype=float16"):
        prims.sgd_update_all([p], [p], None, lr.astype(np.float16), 0.0, False, [0.0])
    with pytest.raises(TypeError, match=r"argument 0 \(SgdTable<T>\): expected a one-element"):
        pack_args("sgd_update_all", F32, (np.zeros(2, sgd_table_dtype(np.float32)), 1, lr, 0, 0, 0))
