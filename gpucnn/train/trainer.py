"""Training: the CS231n Solver's loop with seeded batching, checkpoints and exact resume.

``Trainer(model, data, optimizer="adam", optim_config={"lr": 1e-3}, ...).train()`` returns a
:class:`History`.  The settings are those of :data:`gpucnn.config.TRAINING`, under the same
names and defaults as the ``gpucnn train`` flags.  An *epoch* is ``iterations_per_epoch`` updates
(default: one pass over the training set).  Accuracy is measured before training (recorded as
epoch 0, where the source document's reg/dropout tables start) and after every epoch, on a fixed
random subset of ``train_samples`` training samples and on ``val_samples`` validation samples
(default all), in batches.

Checkpoints (``checkpoint_dir/checkpoint.npz``, after epoch 0 and every ``checkpoint_every``
epochs) hold the parameters and buffers, the optimizer state, every random stream's state (the
model's own, e.g. dropout, and the batch order), the position in training, the history and the
settings (see :mod:`gpucnn.train.checkpoint`), so that a run resumed from one gives the same
history as one never stopped (bit-identical on the CPU).  Ctrl-C (or SIGTERM, what a batch
scheduler sends) finishes the current iteration, writes a checkpoint and raises
:class:`TrainingInterrupted`, whose message says how to resume.  A NaN or infinite loss raises :class:`TrainingDiverged`.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from ..data import BatchIterator, random_subset
from ..distributed import rank_device, spread_random_streams, training_world
from .. import config
from ..optim import make_optimizer
from .checks import (check_batch_size, check_epochs_left, check_model, check_outputs,
                     check_split, data_checksum, optim_settings, quiet_numerics, recorded_diff,
                     unpack_data)
from .checkpoint import (CHECKPOINT_NAME, checkpoint_file, load_checkpoint, prefixed,
                         restore_checkpoint, save_checkpoint)
from .folder import PYTHON, check_run_folder, new_run_id
from .graph import GraphStep, notice, unavailable
from .history import History

# Settings that shape the history: a checkpoint resumes only under the same values.
RESUME_KEYS = (*(s.name for s in config.TRAINING if s.resume), "optim_config", "num_train",
               "num_val")


# Signals that stop training after the current iteration, with a checkpoint; each with what a
# second one does (and what it is reset to when no Python handler was installed before).
STOP_SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the signal ``signum``) stopped training; ``checkpoint`` is where the state of
    completed update ``iteration`` was saved (None when nothing was)."""

    def __init__(self, message: str, checkpoint: str | None, iteration: int,
                 signum: int = signal.SIGINT):
        super().__init__(message)
        self.checkpoint, self.iteration, self.signum = checkpoint, iteration, signum


def _progress_wanted(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


class Trainer:
    """Trains a :class:`gpucnn.models.Classifier` (anything with ``loss(X, y, l2_in_grads=)``,
    ``weight_decay()``, ``train_step(X, y, optimizer)``, ``predict(X, batch_size)``,
    ``parameters()`` and ``to()``).

    data: a ``gpucnn.data.Dataset`` or ``{"X_train", "y_train", "X_val", "y_val"}``, X (N, ...)
    and integer labels (N,), on the host; batches are moved to ``device`` one at a time.
    settings: those of :data:`gpucnn.config.TRAINING` (optimizer, batch_size, epochs,
    iterations_per_epoch, train_samples, val_samples, seed, device, checkpoint_every,
    cuda_graph), each with its one default; ``cuda_graph=True`` replays each step as one CUDA
    graph where it can, else says why once on stderr (see :mod:`gpucnn.train.graph`).
    optim_config: the optimizer's settings (lr, lr_decay, momentum, ...;
    default :data:`gpucnn.config.OPTIMIZATION`'s).  seed fixes the batch order and the accuracy
    subsets; the model's own seed fixes its initialisation and dropout.  log, if given, is called
    with the header and then one table row per epoch.  run_info: JSON-able facts stored in
    checkpoints (the CLI records the dataset there).  distributed: data parallelism over MPI
    ranks (None: when launched by mpirun), batch_size being the global batch; see
    :mod:`gpucnn.distributed`.
    """

    def __init__(self, model, data, *, optim_config=None, checkpoint_dir=None, progress=True,
                 log=None, run_info=None, distributed=None, overwrite=False, **settings):
        X_train, y_train, X_val, y_val = unpack_data(data)
        check_split("X_train", X_train, "y_train", y_train)
        check_split("X_val", X_val, "y_val", y_val)
        optim = {k: settings.pop(k) for k in config.OPTIMIZATION.names() if k in settings}
        self.settings = config.TRAINING.resolve((settings, {}), where="Trainer")
        s = self.settings
        self.batch_size, self.epochs, self.seed = s["batch_size"], s["epochs"], s["seed"]
        self.checkpoint_every = s["checkpoint_every"]
        # the rank's GPU is taken before CUDA is probed, the check that no two share one after
        self.device = s["device"] = rank_device(s["device"])
        self.world = training_world(distributed, self.device)
        check_model(model)
        self.model = model.to(self.device)
        check_outputs(self.model, data, X_train, y_train, y_val)
        self.world.broadcast_parameters(self.model)
        spread_random_streams(self.model, self.world.rank)
        self.optimizer_name = s["optimizer"]
        self.optim_config = optim_settings(optim_config, optim)
        self.optimizer = make_optimizer(self.optimizer_name, model.parameters(),
                                        **self.optim_config)
        self._graph = None  # with cuda_graph: the step as a CUDA graph (gpucnn.train.graph)
        why = unavailable(self.device, self.world.size, self.optimizer) if s["cuda_graph"] else ""
        if why and self.world.is_root:
            notice(why)
        elif s["cuda_graph"] and not why:
            self._graph = GraphStep(self.model, self.optimizer)
        if self.world.size > 1:  # every rank reads its shard of each global batch
            self.world.check_batch_size(self.batch_size)
        check_batch_size("batch_size", self.batch_size, len(X_train))
        self.batches = BatchIterator(X_train, y_train, self.batch_size, seed=self.seed,
                                     device=self.device,
                                     shard=self.world.shard if self.world.size > 1 else None)
        if s["iterations_per_epoch"] is None:
            s["iterations_per_epoch"] = len(self.batches)
        self.iterations_per_epoch = s["iterations_per_epoch"]
        train_samples, val_samples = s["train_samples"], s["val_samples"]
        self.train_subset = random_subset(X_train, y_train, min(train_samples, len(X_train)),
                                          self.seed)
        self.val_subset = ((X_val, y_val) if val_samples is None or val_samples >= len(X_val)
                           else random_subset(X_val, y_val, val_samples, self.seed))
        self.checkpoint_dir, self.overwrite = checkpoint_dir, bool(overwrite)
        self.progress, self.log = progress, log
        self.run_info = {"run_id": new_run_id(), **(run_info or {})}  # a resume keeps its id
        # the checkpoint resumed from; (path, iteration) of the last one written; what stops
        self._resumed_from, self._saved, self._stop_signal = None, None, signal.SIGINT
        self._sizes = (len(X_train), len(X_val))
        self._checksum = data_checksum(X_train, y_train, X_val, y_val)
        self.history = History()
        self.epoch = 0        # epochs completed
        self.iteration = 0    # updates completed
        self._epoch_elapsed = 0.0  # seconds already spent in the current, unfinished epoch
        self._stop_requested = False

    # -- settings and state ----------------------------------------------------------------------
    def config(self) -> dict:
        """The settings, JSON-able, as stored in checkpoints: the :data:`gpucnn.config.TRAINING`
        settings under their names (``epochs`` as it is now), ``optim_config``, the split
        sizes, the model's description and ``run_info``."""
        return {**self.settings, "epochs": self.epochs, "optim_config": self.optim_config,
                "num_train": self._sizes[0], "num_val": self._sizes[1],
                "data_checksum": self._checksum,
                "model": self.model.config() if hasattr(self.model, "config") else None,
                "run_info": self.run_info}

    @property
    def run_id(self) -> str:
        """This run's id, kept by its checkpoints and by resumes (:mod:`gpucnn.train.folder`)."""
        return self.run_info["run_id"]

    @property
    def checkpoint_path(self) -> str | None:
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    # -- the loop --------------------------------------------------------------------------------
    def check_accuracy(self, X, y) -> float:
        """Fraction of ``X`` classified as ``y``, predicted ``batch_size`` samples at a time."""
        n = len(y)
        X, y = self.world.shard(X, y)  # each rank scores its part; the correct counts are summed
        return self.world.sum(int(np.sum(self.model.predict(X, self.batch_size) == y))) / n

    def _record_accuracies(self, started: float) -> None:
        h = self.history
        h.train_acc.append(self.check_accuracy(*self.train_subset))
        h.val_acc.append(self.check_accuracy(*self.val_subset))
        h.epoch_time.append(self._epoch_elapsed + time.perf_counter() - started)
        self._epoch_elapsed = 0.0
        if h.val_acc[-1] > h.best_val_acc:
            h.best_val_acc, h.best_epoch = h.val_acc[-1], len(h.val_acc) - 1
            h.best_params = self.model.state_dict()
        if self.log and self.world.is_root:
            if len(h.val_acc) == 1:
                self.log(History.HEADER)
            self.log(h.row(len(h.val_acc) - 1))

    def train(self) -> History:
        """Train until ``num_epochs`` epochs are complete (continuing where it stopped);
        returns the history."""
        self._stop_requested = False
        on_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if on_main:  # SIGTERM is what a batch scheduler sends before killing: same as Ctrl-C
            for sig in STOP_SIGNALS:
                previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._request_stop)
        try:
            with self.world.guard():  # an error on one rank stops them all
                self.check_output()
                with quiet_numerics():
                    self._train()
        except KeyboardInterrupt as e:
            if isinstance(e, TrainingInterrupted):
                raise
            raise self._stopped_at_once() from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, STOP_SIGNALS[sig] if handler is None else handler)
        return self.history

    def _request_stop(self, signum, frame):
        """First Ctrl-C or SIGTERM: stop after this iteration; a second one interrupts at once."""
        self.request_stop(signum)
        signal.signal(signum, STOP_SIGNALS[signum])

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop as Ctrl-C does, the TrainingInterrupted carrying ``signum`` (SIGPIPE, say)."""
        self._stop_requested, self._stop_signal = True, signum

    def check_output(self) -> None:
        """Refuse a ``checkpoint_dir`` that cannot be written or holds another run's files
        (deleted here with ``overwrite=True``): :func:`gpucnn.train.folder.check_run_folder`."""
        if self.checkpoint_dir is not None and self.world.is_root:
            for path in check_run_folder(self.checkpoint_dir, self.run_id, PYTHON,
                                         iteration=self.iteration, overwrite=self.overwrite,
                                         resumed_from=self._resumed_from):
                os.remove(path)

    def _stopped_at_once(self) -> TrainingInterrupted:
        """A second Ctrl-C stopped a step midway: resume the last checkpoint written (a write
        it interrupted left the previous file whole)."""
        path, at = self._saved or (None, self.iteration)
        how = f"; resume with Trainer.from_checkpoint({path!r}, model, data)" if path else ""
        return TrainingInterrupted(f"training stopped at once by an interrupt; last checkpoint: "
                                   f"{path} (after iteration {at}){how}", path, at,
                                   self._stop_signal)

    def _train(self) -> None:
        h, model, ipe = self.history, self.model, self.iterations_per_epoch
        if h.val_acc and self.log and self.world.is_root:  # resumed: the rows need their header
            self.log(History.HEADER)
        if not h.val_acc:
            started = time.perf_counter()
            h.lr.append(self.optimizer.lr)
            h.epoch_loss.append(None)
            self._record_accuracies(started)
            self._save_checkpoint()
        while self.epoch < self.epochs:
            started = time.perf_counter()
            model.train()
            done = self.iteration - self.epoch * ipe
            bar = None
            if _progress_wanted(self.progress) and self.world.is_root:
                from tqdm import tqdm

                bar = tqdm(total=ipe, initial=done, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                           leave=False, dynamic_ncols=True)
            try:
                for _ in range(done, ipe):
                    if self._stop_requested:
                        self._epoch_elapsed += time.perf_counter() - started
                        self._interrupt()
                    self._step()
                    if bar is not None:
                        bar.update()
                        bar.set_postfix(loss=f"{np.mean(h.loss[self.epoch * ipe:]):.4f}",
                                        refresh=False)
            finally:
                if bar is not None:
                    bar.close()
            self.epoch += 1
            h.lr.append(self.optimizer.lr)
            h.epoch_loss.append(float(np.mean(h.loss[-ipe:])))
            self.optimizer.end_epoch()
            self._record_accuracies(started)
            if self.epoch % self.checkpoint_every == 0 or self.epoch == self.epochs:
                self._save_checkpoint()

    def _step(self) -> None:
        if self._graph is not None:  # the update is in the graph: applied before the check
            X, y = self.batches.next_host_batch()
            loss = self._graph.step(X.astype(self.model.dtype, copy=False), y)
            self._check_loss(loss)
        else:
            X, y = self.batches.next_batch()
            # L2's gradient is left to the optimizer's update (weight_decay below): one pass
            # per weight instead of three; the loss still includes L2's term
            loss, grads = self.world.local_loss(self.model, X.astype(self.model.dtype,
                                                                     copy=False), y,
                                                l2_in_grads=False)
            loss = self.world.allreduce_gradients(grads, loss, len(y))  # global batch's mean
            self._check_loss(loss)
            self.optimizer.step(grads, weight_decay=self.model.weight_decay())
        self.history.loss.append(loss)
        self.iteration += 1

    def _check_loss(self, loss: float) -> None:
        if not math.isfinite(loss):
            where = (f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path
                     else "no checkpoint_dir was given")
            raise TrainingDiverged(
                f"training diverged: loss={loss} at iteration {self.iteration + 1} (epoch "
                f"{self.epoch + 1}) with lr={self.optimizer.lr:g} ({self.optimizer_name}); "
                f"try a smaller learning rate, or check that every label is in [0, classes) "
                f"(on CUDA an out-of-range label makes the loss NaN); {where}")

    def _interrupt(self):
        self._stop_requested = False
        where = self._save_checkpoint()
        done = f"epoch {self.epoch + 1}, iteration {self.iteration}"
        if where is None:
            msg = (f"training interrupted at {done}; no checkpoint_dir was given, so nothing was "
                   f"saved (calling train() again on this Trainer continues)")
        else:
            msg = (f"training interrupted at {done}; checkpoint written to {where}. Resume with "
                   f"Trainer.from_checkpoint({where!r}, model, data).train()")
        raise TrainingInterrupted(msg, where, self.iteration, self._stop_signal)

    # -- checkpoints -----------------------------------------------------------------------------
    def _save_checkpoint(self) -> str | None:
        path = self.checkpoint_path
        if path is None:
            return None
        if not self.world.is_root:
            return path  # rank 0 writes it
        try:
            save_checkpoint(path, model=self.model, optimizer=self.optimizer,
                            batches=self.batches, history=self.history, config=self.config(),
                            world_size=self.world.size,
                            position={"epoch": self.epoch, "iteration": self.iteration,
                                      "epoch_elapsed": self._epoch_elapsed})
        except OSError as e:  # a full disk, say: the write is atomic, so say what survived
            kept = ("the previous checkpoint there is intact" if os.path.exists(path)
                    else "no checkpoint was saved")
            raise OSError(e.errno, f"{e.strerror or e} while writing the checkpoint after "
                                   f"iteration {self.iteration}; {kept}", path) from e
        self._saved = (path, self.iteration)
        return path

    def resume(self, path: str) -> "Trainer":
        """Load the checkpoint at ``path`` into this trainer, its model and optimizer; returns self.

        The settings that shape the history (``RESUME_KEYS``) must equal the checkpoint's;
        ``num_epochs`` may be larger, to train on.
        """
        arrays, meta = load_checkpoint(path)
        try:
            saved = meta["config"]
            mine = json.loads(json.dumps(self.config()))  # compare as stored (tuples as lists)
            diff = [f"{k}={saved.get(k)!r} in the checkpoint, {mine[k]!r} here"
                    for k in RESUME_KEYS if saved.get(k) != mine[k]]
            diff += recorded_diff(saved, mine, "data_checksum")
            if diff:
                raise ValueError("settings differ: " + "; ".join(diff))
            if meta.get("world_size", 1) != self.world.size:
                raise ValueError(f"the checkpoint was written by {meta.get('world_size', 1)} "
                                 f"ranks, this run has {self.world.size}: expected the same "
                                 f"world size")
            restore_checkpoint(arrays, meta, model=self.model, optimizer=self.optimizer,
                               batches=self.batches)
            # After the parameters loaded (a shape mismatch names the parameter there): what
            # shapes do not show, e.g. another dropout or activation.
            diff = recorded_diff(saved, mine, "model")
            if diff:
                raise ValueError("; ".join(diff))
            spread_random_streams(self.model, self.world.rank)
            self.history = History.from_dict(meta["history"], prefixed(arrays, "best"))
            self.epoch, self.iteration = int(meta["epoch"]), int(meta["iteration"])
            self._epoch_elapsed = float(meta["epoch_elapsed"])
            self.run_info["run_id"] = (saved.get("run_info") or {}).get("run_id", self.run_id)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {e}") from None
        check_epochs_left("epochs", self.epochs, self.epoch, path)
        self._resumed_from, self._saved = path, (path, self.iteration)
        return self

    @classmethod
    def from_checkpoint(cls, path: str, model, data, **overrides) -> "Trainer":
        """A Trainer with the settings saved in ``path`` (``overrides`` replace some, e.g. a larger
        ``epochs`` or another device), resumed from it.  ``checkpoint_dir`` defaults to the
        checkpoint's folder.  ``path`` may be the run's folder."""
        path = checkpoint_file(path)
        _, meta = load_checkpoint(path)
        try:
            saved = meta["config"]
            # a setting added since the checkpoint was written takes its default, unless it
            # shapes the history
            names = [k for k in config.TRAINING.names() if k in saved or config.TRAINING[k].resume]
            settings = {k: saved[k] for k in (*names, "optim_config", "run_info")}
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: cannot resume from this checkpoint: missing setting {e}") from None
        settings["checkpoint_dir"] = os.path.dirname(os.path.abspath(path))
        settings.update(overrides)
        return cls(model, data, **settings).resume(path)
