"""K SGD steps of a small conv net in float64 with a global batch of 50 over however many ranks
this was launched with; rank 0 saves the final parameters to argv[1] (npz).

Run alone it is the single-process reference; under ``mpirun -n 2`` each rank computes 25 samples.
"""
import sys

import numpy as np

from gpucnn import distributed
from gpucnn.models import ThreeLayerConvNet
from gpucnn.optim import SGD

GLOBAL_BATCH, STEPS = 50, 4


def main(out_path):
    world = distributed.get_world()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((GLOBAL_BATCH * STEPS, 1, 8, 8))
    y = rng.integers(0, 10, GLOBAL_BATCH * STEPS)
    # Each rank seeds differently, so the broadcast is what makes the initial weights agree.
    model = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=16,
                              weight_scale=0.1, reg=0.01, dtype=np.float64, seed=world.rank)
    world.broadcast_parameters(model)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    world.check_batch_size(GLOBAL_BATCH)
    buffers = set()
    for step in range(STEPS):
        xb, yb = world.shard(x[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH],
                             y[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH])
        loss, grads = model.loss(xb, yb)
        world.allreduce_gradients(grads, loss, len(xb))
        opt.step(grads)
        buffers.add(id(world._buffer))
    assert len(buffers) == 1, "the flat all-reduce buffer should be reused between steps"
    if world.is_root:
        np.savez(out_path, **model.state_dict())


if __name__ == "__main__":
    main(sys.argv[1])
