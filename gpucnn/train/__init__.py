"""Training: the loop (:mod:`.trainer`), what it measures (:mod:`.history`) and the state it
saves (:mod:`.checkpoint`: resumable checkpoints and a model's weights)."""
from .checkpoint import CHECKPOINT_NAME, load_weights, save_weights
from .history import History
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = ["CHECKPOINT_NAME", "History", "Trainer", "TrainingDiverged", "TrainingInterrupted",
           "load_weights", "save_weights"]
