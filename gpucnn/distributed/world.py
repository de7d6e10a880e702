"""Data-parallel training over MPI ranks: one process per CPU socket slice or per GPU, on one host
or many.

The engines are proven ones, nothing home-made: MPI through mpi4py (``Allreduce`` on NumPy
buffers) for CPU ranks, NCCL through ``cupy.cuda.nccl`` for GPU ranks, with NCCL's communicator
id broadcast over MPI.  mpi4py is imported lazily: a process that was not launched by ``mpirun``
is a world of size 1 and never needs it.

The scheme (synchronous data parallelism, as Horovod and PyTorch DDP do it):

* parameters are initialised on rank 0 and broadcast (:meth:`World.broadcast_parameters`);
* every rank reads its own contiguous shard of every *global* batch (:meth:`World.shard`), so the
  global batch, the learning-rate schedule and the data order are those of a single process;
* after each backward pass the gradients, the loss and the sample count are packed into ONE flat
  buffer that lives for the whole run, summed with one collective, and divided by the global
  sample count (:meth:`World.allreduce_gradients`) — the mean gradient of the global batch, even
  when shards differ in size;
* the model's random streams (dropout) differ per rank but are fixed by (seed, rank)
  (:func:`spread_random_streams`);
* a failure on one rank stops every rank with that rank's error (:meth:`World.guard`, and an
  excepthook for uncaught errors), never a hang in a collective.

This module holds the world and its collectives; :mod:`gpucnn.distributed.runs` spreads
independent runs over ranks and :mod:`gpucnn.distributed.launch` starts ranks with ``mpirun``.
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback

import numpy as np

from ..device import (get_array_module, gpu_identity, requested_device, resolve_device,
                      to_numpy, use_gpu, visible_gpus)

# Environment variables an MPI launcher sets in every rank: Open MPI's mpirun, then the PMI
# ones of MPICH / Intel MPI (hydra) and of Slurm's srun.
WORLD_SIZE_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
MPI_INSTALL_HINT = "install the MPI extra: pip install 'gpucnn[mpi]'"
NCCL_INSTALL_HINT = ("install NCCL with the CUDA and MPI extras: pip install 'gpucnn[cuda12-mpi]' "
                     "or 'gpucnn[cuda13-mpi]'")
RANK_STREAM_STRIDE = 1 << 32  # rank r's dropout stream s is s + r * 2**32: disjoint for s < 2**32


def launched_world_size() -> int:
    """The world size an MPI launcher announced in the environment; 1 when none did."""
    for name in WORLD_SIZE_ENV:
        value = os.environ.get(name)
        if value:
            try:
                size = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r}: expected the MPI world size, an integer "
                                 f">= 1") from None
            if size < 1:
                raise ValueError(f"{name}={value!r}: expected the MPI world size, an integer >= 1")
            return size
    return 1


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"this process runs under an MPI launcher but mpi4py is unusable "
                           f"({e}); {MPI_INSTALL_HINT}") from None
    return MPI


def nccl_available() -> bool:
    """Whether ``cupy.cuda.nccl`` has the NCCL library behind it (CuPy ships a stub without it)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(getattr(nccl, "available", False))


class World:
    """The ranks of one data-parallel job and the collectives they run.

    ``World()`` is the trivial world (size 1, no MPI).  Use :func:`get_world` for the job's
    world.  ``comm`` is an mpi4py communicator, or None in the trivial world.
    """

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        if comm is not None and self.size > 1:
            MPI = _import_mpi()
            self.local_comm = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
            self.local_rank, self.local_size = self.local_comm.Get_rank(), self.local_comm.Get_size()
        else:
            self.local_comm, self.local_rank, self.local_size = None, 0, 1
        self._buffer = None      # the flat gradient buffer, reused between steps
        self._layout = None      # ((name, shape, size), ...) the buffer was laid out for
        self._nccl = None        # NCCL communicator, made on the first GPU all-reduce

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints, reports and writes checkpoints."""
        return self.rank == 0

    # -- data ----------------------------------------------------------------------------------

    def check_batch_size(self, batch_size: int, name: str = "batch_size") -> int:
        """The per-rank batch of a global ``batch_size``; it must divide by the world size."""
        if batch_size % self.size:
            raise ValueError(f"{name}={batch_size}: the global batch must divide by the world "
                             f"size {self.size} (try {batch_size - batch_size % self.size or self.size})")
        return batch_size // self.size

    def shard_slice(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items: sizes differ by at most one, rank order."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def shard(self, *arrays):
        """This rank's shard of each array (along the first axis); one array in, one out."""
        out = tuple(a[self.shard_slice(len(a))] for a in arrays)
        return out[0] if len(out) == 1 else out

    # -- collectives ---------------------------------------------------------------------------

    def broadcast_parameters(self, model) -> None:
        """Overwrite every parameter of ``model`` with rank 0's values (in place, any device)."""
        if self.size == 1:
            return
        params = model.parameters()
        flat = np.concatenate([to_numpy(p).ravel() for p in params.values()]) if params else \
            np.empty(0)
        self.comm.Bcast(flat, root=0)
        offset = 0
        for p in params.values():
            xp = get_array_module(p)
            p[...] = xp.asarray(flat[offset:offset + p.size].reshape(p.shape))
            offset += p.size

    def allreduce_gradients(self, grads: dict, loss, count: int):
        """Average ``grads`` (a {name: array} dict) and ``loss`` over the global batch with one
        collective; returns the global batch's loss as a float.

        ``count`` is this rank's number of samples: each rank contributes ``count * grad``, and
        the sum is divided by the global count, so the result is the gradient of the mean loss
        over the global batch even when shards differ in size.  Gradients are packed into one
        flat buffer (plus two slots for the loss and the count), reused while the names, shapes
        and dtype stay the same, and summed with MPI ``Allreduce`` on the host for NumPy arrays
        or NCCL on the GPU for CuPy arrays.  Afterwards the dict's entries are views into that
        buffer (no copy back, as DDP's gradient buckets): valid until the next call.
        """
        if self.size == 1:
            return float(loss)
        buf, layout = self._flat_buffer(grads)
        xp = get_array_module(buf)
        n = buf.size - 2
        xp.concatenate([grads[name].ravel() for name, _, _ in layout], out=buf[:n])
        buf[:n] *= count
        buf[n] = loss * count
        buf[n + 1] = count
        self._sum_in_place(buf)
        buf /= buf[n + 1].copy()  # a copy: CuPy does not guard a divisor that aliases the output
        offset = 0
        for name, shape, size in layout:
            grads[name] = buf[offset:offset + size].reshape(shape)
            offset += size
        return float(buf[n])

    def _flat_buffer(self, grads: dict):
        layout = tuple((name, tuple(g.shape), int(g.size)) for name, g in grads.items())
        dtypes = {np.dtype(g.dtype) for g in grads.values()}
        if len(dtypes) != 1:
            raise TypeError(f"gradients have dtypes {sorted(map(str, dtypes))}: expected one "
                            f"floating dtype for the flat all-reduce buffer")
        xp = get_array_module(*grads.values())
        dtype = dtypes.pop()
        if (self._layout != layout or self._buffer.dtype != dtype
                or get_array_module(self._buffer) is not xp):
            self._buffer = xp.empty(sum(n for _, _, n in layout) + 2, dtype=dtype)
            self._layout = layout
        return self._buffer, layout

    def _sum_in_place(self, buf) -> None:
        """Sum ``buf`` over all ranks, in place: NCCL for a CuPy buffer, MPI for a NumPy one."""
        if get_array_module(buf) is np:
            self.comm.Allreduce(_import_mpi().IN_PLACE, buf, op=_import_mpi().SUM)
            return
        import cupy
        from cupy.cuda import nccl

        if self._nccl is None:
            uid = nccl.get_unique_id() if self.is_root else None
            uid = self.comm.bcast(uid, root=0)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        dtype = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                 np.dtype(np.float64): nccl.NCCL_FLOAT64}.get(np.dtype(buf.dtype))
        if dtype is None:
            raise TypeError(f"gradient dtype {buf.dtype}: expected float32 or float64 for NCCL")
        stream = cupy.cuda.get_current_stream()
        self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dtype, nccl.NCCL_SUM, stream.ptr)

    def local_loss(self, model, X, y, **options):
        """``model.loss(X, y, **options)`` on this rank's shard; an empty shard (a last partial
        batch smaller than the world) contributes zero loss and zero gradients."""
        if len(X):
            return model.loss(X, y, **options)
        return 0.0, {k: get_array_module(p).zeros_like(p) for k, p in model.parameters().items()}

    def sum(self, value):
        """The sum over ranks of a number (e.g. correct predictions), on every rank."""
        if self.size == 1:
            return value
        return self.comm.allreduce(value, op=_import_mpi().SUM)

    def bcast(self, obj, root: int = 0):
        """``obj`` from ``root`` on every rank (pickled)."""
        return obj if self.size == 1 else self.comm.bcast(obj, root=root)

    def gather(self, obj, root: int = 0):
        """A list of every rank's ``obj`` on ``root`` (rank order); None elsewhere."""
        return [obj] if self.size == 1 else self.comm.gather(obj, root=root)

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    # -- failure -------------------------------------------------------------------------------

    def abort(self, error: BaseException, code: int = 1, brief: bool = False) -> None:
        """Print ``rank R: <error>`` (after the traceback unless ``brief``) and stop every rank
        of the job."""
        tb = "" if brief else "".join(traceback.format_exception(type(error), error,
                                                                 error.__traceback__))
        sys.stderr.write(f"{tb}rank {self.rank}: {type(error).__name__}: {error}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        self.comm.Abort(code)

    @contextlib.contextmanager
    def guard(self, brief: tuple = ()):
        """Inside, an exception on any rank of a multi-rank world aborts the whole job with that
        rank's error instead of leaving the other ranks waiting in a collective; in a world of
        size 1 exceptions pass through unchanged.  Errors of the ``brief`` types are reported in
        one line, without a traceback."""
        if self.size == 1:
            yield
            return
        try:
            yield
        except BaseException as e:  # noqa: BLE001 - every failure must stop the other ranks
            self.abort(e, 130 if isinstance(e, KeyboardInterrupt) else 1, isinstance(e, brief))

    # -- devices -------------------------------------------------------------------------------

    def gather_local(self, obj) -> list:
        """Every rank's ``obj`` on this host, in local rank order, on each of them."""
        return [obj] if self.local_comm is None else self.local_comm.allgather(obj)

    def use_local_gpu(self, exclusive: bool = True) -> int:
        """Make GPU ``local_rank % visible GPUs`` CuPy's current device; returns its ordinal.

        Whatever each rank sees: all of the host's GPUs (rank r takes GPU r) or one GPU of its
        own (CUDA_VISIBLE_DEVICES per rank, as Slurm's --gpus-per-task=1 sets it: GPU 0 of
        each).  ``exclusive`` (data parallelism): NCCL rejects two ranks on one GPU, so the
        ranks of this host compare the physical GPUs they took and refuse, in one line, to
        share one; NCCL itself must be installed.  Both are checked here, before any work,
        rather than failing at the first all-reduce.  Independent runs (``exclusive=False``)
        may share GPUs.
        """
        count = visible_gpus()
        if count == 0:
            raise RuntimeError("CUDA shows this process no GPU (is CUDA_VISIBLE_DEVICES empty?)")
        device = self.local_rank % count
        if exclusive:
            taken = self.gather_local(gpu_identity(device))  # physical GPUs, by local rank
            if len(set(taken)) < len(taken):
                first, second = next((a, b) for b in range(len(taken)) for a in range(b)
                                     if taken[a] == taken[b])
                raise RuntimeError(
                    f"{self.local_size} ranks on this host but {len(set(taken))} GPUs among "
                    f"them (local ranks {first} and {second} took the same GPU; each sees "
                    f"{count}): expected one GPU per rank (NCCL rejects two ranks on one GPU); "
                    f"start at most {len(set(taken))} ranks here, or give each its own GPU")
            if not nccl_available():
                raise RuntimeError(f"multi-GPU training needs NCCL, and cupy.cuda.nccl cannot "
                                   f"load it; {NCCL_INSTALL_HINT}")
        use_gpu(device)
        return device


def rank_device(device: str | None = None) -> str:
    """:func:`gpucnn.device.resolve_device` for this process, once it has taken its GPU.

    Under an MPI launcher with several ranks, where CUDA is asked for or may be picked
    (``"cuda"``, ``"auto"``), this rank first makes GPU ``local rank % visible GPUs`` its
    current device, so the CUDA probe and everything after it run there: a rank that probed
    GPU 0 first kept a context, a cuBLAS handle and pool blocks on it (0.3-0.5 GiB), and on a
    GPU in exclusive-process mode failed the probe and, with ``auto``, trained on the CPU.
    """
    job = get_world()
    if job.size > 1 and requested_device(device)[0] != "cpu":
        count = visible_gpus()
        if count:
            use_gpu(job.local_rank % count)
    return resolve_device(device)


_world: World | None = None
# True while gpucnn.distributed.map_runs runs its items: Trainers made there train alone.
_independent_runs = False


def get_world() -> World:
    """The job's world: MPI's COMM_WORLD when an MPI launcher started more than one rank (mpi4py
    imported then, an excepthook installed that aborts the job on an uncaught error), else the
    trivial world of size 1 without importing mpi4py."""
    global _world
    if _world is None:
        if launched_world_size() > 1:
            _world = World(_import_mpi().COMM_WORLD)
            _install_excepthook(_world)
        else:
            _world = World()
    return _world


def _install_excepthook(world: World) -> None:
    previous = sys.excepthook

    def excepthook(kind, error, tb):
        world.abort(error.with_traceback(tb), 130 if issubclass(kind, KeyboardInterrupt) else 1)
        previous(kind, error, tb)  # reached only if Abort returned, which MPI does not promise

    sys.excepthook = excepthook


def training_world(distributed: bool | None = None, device: str | None = None) -> World:
    """The world a Trainer trains in.

    ``distributed`` None (auto): the job's world when launched under MPI, except inside
    :func:`gpucnn.distributed.map_runs`, whose runs are independent; True: the job's world (size
    1 without a launcher); False: the trivial world.  When ``device`` (resolved) is CUDA and the
    job has several ranks, each rank takes the GPU of its local rank: exclusively (and with NCCL
    checked) for data parallelism, shared if need be for independent runs.
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed={distributed!r}: expected True, False or None (auto)")
    if distributed is True and _independent_runs:
        raise ValueError("distributed=True inside distributed.map_runs: its runs are "
                         "independent, one per rank; expected distributed=None or False there")
    if distributed is False or (distributed is None and _independent_runs):
        job = get_world()
        if job.size > 1 and device == "cuda":
            job.use_local_gpu(exclusive=False)
        return World()
    world = get_world()
    if world.size > 1 and device == "cuda":
        world.use_local_gpu(exclusive=True)
    return world


def rank_stream(stream: int, rank: int) -> int:
    """Rank ``rank``'s version of random stream ``stream``: rank 0 keeps the single-process
    stream; every other rank gets a disjoint one fixed by (stream, rank)."""
    return stream % RANK_STREAM_STRIDE + rank * RANK_STREAM_STRIDE


def spread_random_streams(model, rank: int) -> None:
    """Move every random stream ``model`` owns (``model.named_generators()``: dropout masks...)
    to rank ``rank``'s version (same seed and counter), so ranks draw differently, each
    reproducibly.  Idempotent; rank 0 leaves the model as is."""
    for _, g in model.named_generators():
        stream = rank_stream(g.stream, rank)
        if stream != g.stream:
            g.set_state({"seed": g.seed, "stream": stream, "counter": g.counter,
                         "host": np.random.default_rng([g.seed, stream]).bit_generator.state})
