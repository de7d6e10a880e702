"""Training: the loop (:mod:`.trainer`), what it measures (:mod:`.history`), the state it
saves (:mod:`.checkpoint`: resumable checkpoints and a model's weights) and the folder a run
writes to (:mod:`.folder`: whose run each file is, the check before writing, the results)."""
from .checkpoint import CHECKPOINT_NAME, load_weights, save_weights
from .folder import save_results
from .history import History
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = ["CHECKPOINT_NAME", "History", "Trainer", "TrainingDiverged", "TrainingInterrupted",
           "load_weights", "save_results", "save_weights"]
