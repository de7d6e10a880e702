"""Independent runs (experiments, sweeps) spread over the ranks of an MPI job."""
from __future__ import annotations

from . import world


def map_runs(fn, items) -> list | None:
    """``[fn(item) for item in items]`` with the runs spread over the job's ranks.

    Rank ``r`` of ``W`` runs items ``r, r + W, r + 2W, ...``; rank 0 returns every result in the
    order of ``items``, the other ranks return None.  Results must be picklable.  Without an MPI
    launcher this is a plain loop in one process.  A Trainer made inside ``fn`` trains alone on
    its rank (``distributed=None`` means no data parallelism there), on the rank's local GPU
    with ``device="cuda"``.  An error in ``fn`` on any rank stops every rank with that error.
    """
    items = list(items)
    job = world.get_world()
    if world._independent_runs:
        raise RuntimeError("distributed.map_runs called inside another map_runs: expected one "
                           "level of run splitting")
    world._independent_runs = True
    try:
        with job.guard():
            mine = [(i, fn(items[i])) for i in range(job.rank, len(items), job.size)]
            gathered = job.gather(mine)
    finally:
        world._independent_runs = False
    if not job.is_root:
        return None
    results = [None] * len(items)
    for part in gathered:
        for i, result in part:
            results[i] = result
    return results
