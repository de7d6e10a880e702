"""Rank 1 raises in the middle of training while rank 0 waits in the next all-reduce; the
excepthook must stop the job with rank 1's error instead of leaving rank 0 waiting forever."""
import numpy as np

from gpucnn import distributed

world = distributed.get_world()
grads = {"w": np.ones(10)}
for step in range(5):
    if world.rank == 1 and step == 2:
        raise ValueError("batch 2 is corrupt (raised on purpose)")
    world.allreduce_gradients(grads, 1.0, 5)
