"""Two epochs of Trainer on synthetic data in float64 (global batch 50, no dropout) on however
many ranks this was launched with; rank 0 saves the parameters, the loss history and the
accuracies to argv[1] (npz).  Alone it is the single-process reference."""
import sys

import numpy as np

from gpucnn.models import ThreeLayerConvNet
from gpucnn.train import Trainer

rng = np.random.default_rng(1)
data = {"X_train": rng.standard_normal((210, 1, 8, 8)), "y_train": rng.integers(0, 10, 210),
        "X_val": rng.standard_normal((33, 1, 8, 8)), "y_val": rng.integers(0, 10, 33)}
model = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=16,
                          weight_scale=0.1, reg=0.01, dtype=np.float64, seed=0)
trainer = Trainer(model, data, optimizer="sgd", optim_config={"lr": 0.1, "momentum": 0.9},
                  batch_size=50, epochs=2, train_samples=100, device="cpu",
                  progress=False, log=print)
history = trainer.train()
if trainer.world.is_root:
    np.savez(sys.argv[1], loss=history.loss, train_acc=history.train_acc, val_acc=history.val_acc,
             **{f"param/{k}": v for k, v in model.state_dict().items()})
