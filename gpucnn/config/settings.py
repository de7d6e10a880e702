"""The settings of every command and of the Trainer, declared once: one schema per concept.

:data:`TRAINING` (the Trainer's settings: the loop, the schedule, augmentation, early stopping,
regularisers), :data:`OPTIMIZATION` (its ``optim_config``), :data:`MODEL` (the network the
commands build), :data:`DATA`, :data:`RUN` (where results go, progress), :data:`EVALUATION`
(``gpucnn evaluate``) and :data:`EXPERIMENT` (what only experiments have).
"""
from __future__ import annotations

from ..data import DATASETS
from ..lr_scheduler import SCHEDULES
from ..models import ACTIVATIONS
from ..optim import OPTIMIZERS
from .schema import Schema, Setting

TRAINING = Schema(
    "training",
    Setting("optimizer", "choice", "adam", "update rule", choices=tuple(OPTIMIZERS), resume=True),
    Setting("batch_size", "int", 50, "samples per batch (training: per update, the global batch "
            "with several ranks)", low=1, resume=True),
    Setting("epochs", "int", 5, "epochs to train", low=1, aliases=("num_epochs",)),
    Setting("iterations_per_epoch", "int", None, "updates per epoch", low=1, optional=True,
            resume=True, aliases=("iterations",), none_means="one pass over the training set"),
    Setting("train_samples", "int", 1000, "training samples scored after each epoch", low=1,
            resume=True, aliases=("num_train_samples",)),
    Setting("val_samples", "int", None, "validation samples scored after each epoch", low=1,
            optional=True, resume=True, aliases=("num_val_samples",), none_means="all"),
    Setting("seed", "int", 0, "seed of the model, dropout, the batch order and the scored "
            "subsets", resume=True),
    Setting("device", "text", None, "cpu, cuda or auto", optional=True,
            none_means="$GPUCNN_DEVICE, else auto"),
    Setting("checkpoint_every", "int", 1, "write a checkpoint every this many epochs", low=1),
    Setting("cuda_graph", "switch", False, "replay each training step as one CUDA graph (SGD "
            "on one GPU; elsewhere a notice and eager steps)"),
    # the learning-rate schedule (gpucnn.lr_scheduler): may change on resume, noted in the history
    Setting("schedule", "choice", "constant", "learning-rate schedule by epoch: constant (times "
            "--lr-decay each epoch), step, multistep, cosine or plateau", choices=SCHEDULES),
    Setting("step_size", "int", None, "step: epochs between cuts by --gamma", low=1,
            optional=True, none_means="none; needed by --schedule step"),
    Setting("milestones", "epochs", None, "multistep: epochs after which the rate is cut by "
            "--gamma, e.g. 30,60", optional=True, none_means="none; needed by --schedule "
            "multistep"),
    Setting("gamma", "real", 0.1, "step, multistep, plateau: the factor of each cut",
            low_open=True, high=1.0),
    Setting("min_lr", "real", 0.0, "cosine, plateau: the lowest rate"),
    Setting("plateau_patience", "int", 10, "plateau: epochs without improvement of --monitor "
            "before a cut"),
    Setting("warmup_epochs", "int", 0, "epochs rising linearly to --lr before the schedule"),
    Setting("early_stop", "int", None, "stop after this many epochs without improvement of "
            "--monitor, keeping the best epoch's weights", low=1, optional=True,
            none_means="off"),
    Setting("monitor", "choice", "val_acc", "the validation metric that picks the best epoch, "
            "early stopping and plateau cuts", choices=("val_acc", "val_loss"), resume=True),
    Setting("augment", "augment", (), "augmentations of each training batch, on its device: "
            "flip, crop (comma separated; from Python also functions (X, rng) -> X)",
            resume=True),
    Setting("crop_pad", "int", 4, "crop: zero padding on each side before the random crop",
            low=1, resume=True),
    Setting("label_smoothing", "real", 0.0, "cross-entropy against (1 - e) one-hot + e / "
            "classes (as torch's CrossEntropyLoss)", high=1.0, resume=True),
    Setting("clip_grad_norm", "real", None, "scale the gradients down to this global L2 norm "
            "(as torch.nn.utils.clip_grad_norm_)", low_open=True, optional=True, resume=True,
            none_means="off"),
    Setting("init_weights", "file", None, "start from the parameters of this weights.npz (or "
            "checkpoint.npz) instead of a random init (fine-tuning)", optional=True,
            none_means="random init"),
)

OPTIMIZATION = Schema(
    "optimization",
    Setting("lr", "real", 3e-3, "learning rate", low_open=True),
    Setting("lr_decay", "real", 1.0, "constant schedule: learning-rate multiplier after each "
            "epoch", low_open=True, high=1.0, high_open=False),
    Setting("momentum", "real", None, "momentum/nesterov: momentum", high=1.0, optional=True,
            none_means="the optimizer's, 0.9"),
    Setting("weight_decay", "real", None, "adamw: decoupled weight decay on every parameter "
            "(--reg is L2 on the weights, for any optimizer)", optional=True,
            none_means="the optimizer's, 0.01"),
)

MODEL = Schema(
    "model",
    Setting("model", "text", "three-layer", "'three-layer' or a TOML file of [[layers]] tables"),
    Setting("filters", "int", 16, "three-layer: conv filters", low=1, aliases=("num_filters",)),
    Setting("filter_size", "int", 3, "three-layer: odd conv filter size", low=1, odd=True),
    Setting("hidden", "int", 100, "three-layer: hidden units", low=1, aliases=("hidden_dim",)),
    Setting("weight_scale", "real", None, "init std", low_open=True, optional=True,
            none_means="He, sqrt(2/fan_in)"),
    Setting("activation", "choice", "relu", "three-layer: activation", choices=ACTIVATIONS),
    Setting("reg", "real", 0.0, "L2 strength on weights"),
    Setting("dropout", "probability", 0.0, "three-layer: drop probability"),
)

DATA = Schema(
    "data",
    Setting("dataset", "dataset", "digits", f"{', '.join(DATASETS)}, or the path of an .npz "
            f"file (x_train, y_train, ...) or of a folder with a subfolder of images per class"),
    Setting("data_dir", "text", None, "data folder", optional=True,
            none_means="$GPUCNN_DATA or ~/.cache/gpucnn"),
)

RUN = Schema(
    "run",
    Setting("output", "text", None, "output folder", optional=True, aliases=("out",),
            none_means="the command's own"),
    Setting("progress", "switch", True, "no progress bar (it is off anyway when stderr is not a "
            "terminal)"),
)

EXPERIMENT = Schema(
    "experiment",
    Setting("grid", "grid", [[0.0, 0.0], [0.01, 0.0], [0.01, 0.4]],
            "reproduce: REG:DROPOUT pairs, one run each"),
    # reproduce's: on the digits, 200 training samples make the unregularised gap about +0.07
    # (8 seeds, interval +/-0.01), and 8 seeds x 2 sizes x 3 runs fit 60 s on a 2-core CPU
    # (README).  sanity and sweep set their own (gpucnn/cli/experiments.py).
    Setting("seeds", "seeds", list(range(8)),
            "replicates, a count N (seeds 0..N-1) or a comma list; a seed fixes a run's init, "
            "batch order, dropout masks and training subset; --seed still fixes the data split"),
    Setting("train_sizes", "sizes", ["full", 200],
            "training-set sizes, 'full' or sample counts, comma separated"),
)


EVALUATION = Schema(
    "evaluation",
    Setting("top_k", "int", 5, "evaluate: also count a sample right when its class is among "
            "the k highest scores", low=1),
)


def optim_config(values: dict) -> dict:
    """The Trainer's ``optim_config`` from :data:`OPTIMIZATION` values (momentum and
    weight_decay only if set, so each optimizer keeps its own default)."""
    config = {"lr": values["lr"], "lr_decay": values["lr_decay"]}
    for name in ("momentum", "weight_decay"):
        if values.get(name) is not None:
            config[name] = values[name]
    return config


def three_layer_kwargs(values: dict) -> dict:
    """:class:`gpucnn.models.ThreeLayerConvNet` keywords (CS231n names) from :data:`MODEL`
    values."""
    return {"num_filters": values["filters"], "filter_size": values["filter_size"],
            "hidden_dim": values["hidden"], "weight_scale": values["weight_scale"],
            "reg": values["reg"], "dropout": values["dropout"],
            "activation": values.get("activation", "relu")}
