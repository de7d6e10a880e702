"""Data-parallel training on the stand-in CuPy: ``mpirun -n N python gpu_placement.py OUT
[isolated]``, or alone for the one-process reference.  The host has FAKECUPY_GPUS GPUs; with
``isolated`` each rank sees only GPU <local rank> (CUDA_VISIBLE_DEVICES, as Slurm's
--gpus-per-task=1 sets it).  Two epochs of a float64 Trainer on device "cuda", the gradients
summed by the stand-in's NCCL (over MPI); each rank writes OUT.<rank>.json: the device ordinal
it used, the host GPUs it created a context on, its losses and final parameters."""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakecupy
if "isolated" in sys.argv:
    os.environ["CUDA_VISIBLE_DEVICES"] = os.environ["OMPI_COMM_WORLD_LOCAL_RANK"]

import numpy as np  # noqa: E402
from fakecupy.plugin import installed  # noqa: E402

with installed() as cp:
    from fakecupy import _devices
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import Trainer

    rng = np.random.default_rng(1)
    data = {"X_train": rng.standard_normal((40, 1, 6, 6)), "y_train": rng.integers(0, 10, 40),
            "X_val": rng.standard_normal((8, 1, 6, 6)), "y_val": rng.integers(0, 10, 8)}
    model = ThreeLayerConvNet((1, 6, 6), num_filters=3, filter_size=3, hidden_dim=8,
                              weight_scale=0.1, reg=0.01, dtype=np.float64, seed=0)
    trainer = Trainer(model, data, optimizer="momentum", optim_config={"lr": 0.1},
                      batch_size=20, epochs=2, device="cuda", progress=False)
    history = trainer.train()
    rank = trainer.world.rank
    with open(f"{sys.argv[1]}.{rank}.json", "w") as f:
        json.dump({"device": cp.cuda.Device().id, "contexts": _devices.host.contexts,
                   "loss": history.loss,
                   "params": {k: v.tolist() for k, v in model.state_dict().items()}}, f)
