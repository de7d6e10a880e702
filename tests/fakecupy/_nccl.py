"""``cupy.cuda.nccl`` of the stand-in: NCCL's communicator over MPI, so the NCCL all-reduce
branch of gpucnn.distributed runs in tests (one process per rank under mpirun, or alone).

What it mirrors (cupy_backends/cuda/libs/nccl.pyx and nccl.pxd, CuPy 14):
- ``get_unique_id()`` returns NCCL_UNIQUE_ID_BYTES (128) bytes; ``NcclCommunicator(ndev,
  commId, rank)`` refuses another length with ValueError, as CuPy 14 does;
- a failed NCCL call raises ``NcclError(status)`` with message '<NAME>: <ncclGetErrorString>';
- creating a communicator on a GPU another rank of it already uses fails, as NCCL's
  ncclCommInitRank does ("Duplicate GPU detected", ncclInvalidUsage: status 5);
- ``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` takes device addresses and a
  stream pointer; the buffers must be memory of the communicator's device; the sum is
  written on that stream (in flight until ordered, fakecupy._stream).
The ranks are MPI's COMM_WORLD (mpi4py), whose size must be ``ndev``; a world of one needs no
MPI.  The collective is MPI's Allreduce on the buffers' bytes (the stand-in's device memory is
host memory).
"""
from __future__ import annotations

import os
import socket
import types

import numpy as np

from . import _devices, _stream

NCCL_UNIQUE_ID_BYTES = 128
OPS = {"NCCL_SUM": 0, "NCCL_PROD": 1, "NCCL_MAX": 2, "NCCL_MIN": 3}
TYPES = {"NCCL_INT8": np.int8, "NCCL_UINT8": np.uint8, "NCCL_INT32": np.int32,
         "NCCL_UINT32": np.uint32, "NCCL_INT64": np.int64, "NCCL_UINT64": np.uint64,
         "NCCL_FLOAT16": np.float16, "NCCL_FLOAT32": np.float32, "NCCL_FLOAT64": np.float64}
CODES = {"NCCL_INT8": 0, "NCCL_UINT8": 1, "NCCL_INT32": 2, "NCCL_UINT32": 3, "NCCL_INT64": 4,
         "NCCL_UINT64": 5, "NCCL_FLOAT16": 6, "NCCL_FLOAT32": 7, "NCCL_FLOAT64": 8}
ERRORS = {1: ("NCCL_ERROR_UNHANDLED_CUDA_ERROR", "unhandled cuda error"),
          4: ("NCCL_ERROR_INVALID_ARGUMENT", "invalid argument"),
          5: ("NCCL_ERROR_INVALID_USAGE", "invalid usage (run with NCCL_DEBUG=WARN for details)")}


class NcclError(RuntimeError):
    def __init__(self, status: int):
        self.status = status
        name, message = ERRORS[status]
        super().__init__(f"{name}: {message}")


def get_unique_id() -> bytes:
    return os.urandom(NCCL_UNIQUE_ID_BYTES)


def get_version() -> int:
    return 22705


def get_build_version() -> int:
    return 22705


def _mpi_world():
    from mpi4py import MPI

    return MPI.COMM_WORLD


class NcclCommunicator:
    """One rank's NCCL communicator on the current device."""

    def __init__(self, ndev, commId, rank, config=None):
        if len(commId) != NCCL_UNIQUE_ID_BYTES:
            raise ValueError(f"commId length {len(commId)} != {NCCL_UNIQUE_ID_BYTES}.")
        host = _devices.host
        host.touch()
        self._device, self._rank, self._size = host.current, int(rank), int(ndev)
        self._comm = _mpi_world() if ndev > 1 else None
        if self._comm is not None:
            if self._comm.Get_size() != ndev or self._comm.Get_rank() != rank:
                raise NcclError(4)
            gpus = self._comm.allgather((socket.gethostname(), host.physical(self._device)))
            if len(set(gpus)) < len(gpus):  # ncclCommInitRank: "Duplicate GPU detected"
                raise NcclError(5)

    def device_id(self) -> int:
        return self._device

    def rank_id(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def destroy(self) -> None:
        self._comm = None

    def abort(self) -> None:
        self._comm = None

    def _memory(self, ptr: int, count: int, dtype):
        """(the root holding ``count`` values at device address ``ptr`` of this communicator's
        device, a view of those values)."""
        nbytes = count * np.dtype(dtype).itemsize
        root = _stream.buffer_at(ptr, nbytes, self._device)
        if root is None:
            raise NcclError(1)  # not memory of this device: an illegal address on a GPU
        block = _stream.buffers[id(root)].block
        return root, np.ndarray((count,), dtype, buffer=block.mem, offset=ptr - block.address)

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        name = {v: k for k, v in CODES.items()}.get(datatype)
        if name is None or op not in OPS.values():
            raise NcclError(4)
        if _devices.host.current != self._device:
            raise NcclError(1)
        dtype = TYPES[name]
        (send_root, send), (recv_root, recv) = (self._memory(sendbuf, count, dtype),
                                                self._memory(recvbuf, count, dtype))
        on = next((s for s in list(_stream._streams) if s.ptr == stream), None)
        if on is None:
            raise NcclError(4)
        with on:
            _stream.check_read(send_root, "NCCL allReduce's send buffer")
        if self._comm is None:
            np.copyto(recv, send)
        else:
            from mpi4py import MPI

            mpi_op = {0: MPI.SUM, 1: MPI.PROD, 2: MPI.MAX, 3: MPI.MIN}[op]
            self._comm.Allreduce(MPI.IN_PLACE if sendbuf == recvbuf else send, recv, op=mpi_op)
        _stream.wrote(recv_root, "NCCL allReduce", on)


nccl = types.ModuleType("cupy.cuda.nccl", "NCCL over MPI for the stand-in (fakecupy._nccl).")
vars(nccl).update(available=True, NcclError=NcclError, NcclCommunicator=NcclCommunicator,
                  get_unique_id=get_unique_id, get_version=get_version,
                  get_build_version=get_build_version,
                  **OPS, **CODES, NCCL_CHAR=0, NCCL_INT=2, NCCL_HALF=6, NCCL_FLOAT=7,
                  NCCL_DOUBLE=8)
