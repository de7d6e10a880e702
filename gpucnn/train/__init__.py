"""Training: the loop (:mod:`.trainer`), what it measures (:mod:`.history`, :mod:`.metrics`),
the learning rate it follows (:mod:`.schedule`, over the schedules of
:mod:`gpucnn.lr_scheduler`, re-exported here under torch's names), the state it saves
(:mod:`.checkpoint`: resumable checkpoints and a model's weights) and the folder a run writes to
(:mod:`.folder`: whose run each file is, the check before writing, the results)."""
from ..lr_scheduler import (CosineAnnealingLR, ExponentialLR, MultiStepLR, ReduceLROnPlateau,
                            StepLR, Warmup, make_schedule)
from .checkpoint import CHECKPOINT_NAME, load_parameters, load_weights, save_weights
from .folder import save_results
from .history import History
from .metrics import evaluate
from .signals import TrainingInterrupted
from .trainer import Trainer, TrainingDiverged

__all__ = ["CHECKPOINT_NAME", "CosineAnnealingLR", "ExponentialLR", "History", "MultiStepLR",
           "ReduceLROnPlateau", "StepLR", "Trainer", "TrainingDiverged", "TrainingInterrupted",
           "Warmup", "evaluate", "load_parameters", "load_weights", "make_schedule",
           "save_results", "save_weights"]
