"""Training: the CS231n Solver's loop with seeded batching, checkpoints and exact resume.

``Trainer(model, data, optimizer="adam", optim_config={"lr": 1e-3}, ...).train()`` returns a
:class:`History`.  The settings are those of :data:`gpucnn.config.TRAINING`, under the same
names and defaults as the ``gpucnn train`` flags.  An *epoch* is ``iterations_per_epoch`` updates
(default: one pass over the training set).  Accuracy is measured before training (recorded as
epoch 0, where the source document's reg/dropout tables start) and after every epoch, on a fixed
random subset of ``train_samples`` training samples, and accuracy and loss on ``val_samples``
validation samples (default all), in batches.  The learning rate follows a schedule by epoch
(:mod:`gpucnn.train.schedule`); early stopping ends a run whose monitored metric stopped
improving, with the best epoch's weights.

Checkpoints (``checkpoint_dir/checkpoint.npz``, after epoch 0 and every ``checkpoint_every``
epochs) hold the parameters and buffers, the optimizer state, every random stream's state (the
model's own, e.g. dropout, and the batch order, which fixes the augmentation too), the
schedule's state, the position in training, the history and the settings (see
:mod:`gpucnn.train.checkpoint`), so that a run resumed from one gives the same history as one
never stopped (bit-identical on the CPU); ``metrics.csv`` beside it has a row per epoch.
Ctrl-C (or SIGTERM, what a batch scheduler sends) finishes the current iteration, writes a
checkpoint and raises :class:`TrainingInterrupted`, whose message says how to resume.  A NaN or
infinite loss raises :class:`TrainingDiverged`.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time

import numpy as np

from ..data import BatchIterator, random_subset
from ..data.augment import make_augment
from ..distributed import rank_device, spread_random_streams, training_world
from .. import config
from ..optim import clip_grad_norm_, make_optimizer
from .checks import (check_augment_images, check_batch_size, check_early_stop,
                     check_epochs_left, check_model, check_outputs, check_split,
                     check_stopped_early, data_checksum, optim_settings, quiet_numerics,
                     recorded_diff, unpack_data)
from .checkpoint import (CHECKPOINT_NAME, checkpoint_file, load_checkpoint, load_parameters,
                         prefixed, restore_checkpoint, save_checkpoint)
from .folder import PYTHON, check_run_folder, new_run_id
from .graph import GraphStep, notice, unavailable
from .history import History
from .metrics import METRICS_NAME, evaluate, write_metrics
from .progress import epoch_bar, in_notebook
from .resume import check_resumable, saved_settings, stored
from .schedule import RunSchedule, resumed_schedule, schedule_settings
from .signals import TrainingInterrupted, interrupted, stop_signals, stopped_at_once


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Trainer:
    """Trains a :class:`gpucnn.models.Classifier` (anything with ``loss(X, y=None,
    l2_in_grads=, label_smoothing=)``, ``weight_decay()``, ``train_step(X, y, optimizer,
    label_smoothing=, clip_grad_norm=)``, ``parameters()``, ``state_dict()``, ``dtype`` and
    ``to()``).

    data: a ``gpucnn.data.Dataset`` or ``{"X_train", "y_train", "X_val", "y_val"}``, X (N, ...)
    and integer labels (N,), on the host; batches are moved to ``device`` one at a time.
    settings: those of :data:`gpucnn.config.TRAINING`, each with its one default: the loop
    (optimizer, batch_size, epochs, iterations_per_epoch, train_samples, val_samples, seed,
    device, checkpoint_every, cuda_graph: each step replayed as one CUDA graph where it can,
    else a notice, see :mod:`gpucnn.train.graph`), the learning-rate schedule (schedule,
    step_size, milestones, gamma, min_lr, plateau_patience, warmup_epochs), early_stop and the
    monitor it watches, augment (built-in names and functions ``(X, rng) -> X``) and crop_pad,
    label_smoothing, clip_grad_norm, and init_weights (a weights file to start from).
    optim_config: the optimizer's settings (lr, lr_decay, momentum, weight_decay, ...;
    default :data:`gpucnn.config.OPTIMIZATION`'s), or those as keywords (``lr=``).
    checkpoint_dir: where checkpoints and metrics.csv go; one holding another run is refused
    unless ``overwrite`` (:mod:`gpucnn.train.folder`).  seed fixes the batch order, the
    augmentation and the accuracy subsets; the model's own seed fixes its initialisation and
    dropout.  progress: a bar per epoch where someone watches (a terminal or a notebook).  log,
    if given, is called with the header and then one table row per epoch.  run_info: JSON-able
    facts stored in checkpoints (the CLI records the dataset there).  distributed: data
    parallelism over MPI ranks (None: when launched by mpirun), batch_size being the global
    batch; see :mod:`gpucnn.distributed`.
    """

    def __init__(self, model, data, *, optim_config=None, checkpoint_dir=None, progress=True,
                 log=None, run_info=None, distributed=None, overwrite=False, **settings):
        X_train, y_train, X_val, y_val = unpack_data(data)
        check_split("X_train", X_train, "y_train", y_train)
        check_split("X_val", X_val, "y_val", y_val)
        optim = {k: settings.pop(k) for k in config.OPTIMIZATION.names() if k in settings}
        self.settings = config.TRAINING.resolve((settings, {}), where="Trainer")
        s = self.settings
        self.optim_config = optim_settings(optim_config, optim)
        config.check_together({**s, **self.optim_config})
        self.batch_size, self.epochs, self.seed = s["batch_size"], s["epochs"], s["seed"]
        check_early_stop("early_stop", s["early_stop"], "epochs", self.epochs)
        check_augment_images("augment", s["augment"], X_train.shape[1:])
        self.checkpoint_every = s["checkpoint_every"]
        # the rank's GPU is taken before CUDA is probed, the check that no two share one after
        self.device = s["device"] = rank_device(s["device"])
        self.world = training_world(distributed, self.device)
        check_model(model)
        self.model = model.to(self.device)
        self.num_classes = check_outputs(self.model, data, X_train, y_train, y_val)
        self.history = History()
        if s["init_weights"]:
            load_parameters(self.model, s["init_weights"], "init_weights")
            self.history.add_note(0, f"started from the weights of {s['init_weights']}")
        self.world.broadcast_parameters(self.model)
        spread_random_streams(self.model, self.world.rank)
        self.optimizer_name = s["optimizer"]
        self.optimizer = make_optimizer(self.optimizer_name, model.parameters(),
                                        **{k: v for k, v in self.optim_config.items()
                                           if k != "lr_decay"})  # the schedule's
        self.lr_schedule = RunSchedule(schedule_settings(s, self.optim_config), s["monitor"],
                                       self.optimizer.lr, 0, self.epochs)
        self.optimizer.lr = self.lr_schedule.lr(0)
        self.step_options = {"label_smoothing": s["label_smoothing"],
                             "clip_grad_norm": s["clip_grad_norm"]}
        self._graph = None  # with cuda_graph: the step as a CUDA graph (gpucnn.train.graph)
        why = unavailable(self.device, self.world.size, self.optimizer) if s["cuda_graph"] else ""
        if why and self.world.is_root:
            notice(why)
        elif s["cuda_graph"] and not why:
            self._graph = GraphStep(self.model, self.optimizer, **self.step_options)
        if self.world.size > 1:  # every rank reads its shard of each global batch
            self.world.check_batch_size(self.batch_size)
        check_batch_size("batch_size", self.batch_size, len(X_train))
        self.batches = BatchIterator(X_train, y_train, self.batch_size, seed=self.seed,
                                     device=self.device,
                                     augment=make_augment(s["augment"], s["crop_pad"]),
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
        self.epoch = 0        # epochs completed
        self.iteration = 0    # updates completed
        self._epoch_elapsed = 0.0  # seconds already spent in the current, unfinished epoch
        self._stop_requested = False

    # -- settings and state ----------------------------------------------------------------------
    def config(self) -> dict:
        """The settings, JSON-able, as stored in checkpoints: the :data:`gpucnn.config.TRAINING`
        settings under their names (``epochs`` as it is now, augmentation functions by name),
        ``optim_config``, the split sizes, the model's description and ``run_info``."""
        return {**stored(self.settings), "epochs": self.epochs,
                "optim_config": self.optim_config,
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

    @property
    def stopped_early(self) -> bool:
        """Early stopping has ended the run: the monitored metric has not improved for
        ``early_stop`` epochs."""
        patience, h = self.settings["early_stop"], self.history
        return patience is not None and h.epochs > 0 and h.epochs - h.best_epoch >= patience

    # -- the loop --------------------------------------------------------------------------------
    def check_accuracy(self, X, y) -> float:
        """Fraction of ``X`` classified as ``y``, predicted ``batch_size`` samples at a time."""
        return self._measure(X, y, loss=False)["accuracy"]

    def _measure(self, X, y, loss: bool = True) -> dict:
        return evaluate(self.model, X, y, self.batch_size, world=self.world, loss=loss,
                        label_smoothing=self.settings["label_smoothing"],
                        num_classes=self.num_classes)

    def _record_metrics(self, started: float) -> None:
        h = self.history
        h.train_acc.append(self.check_accuracy(*self.train_subset))
        val = self._measure(*self.val_subset)
        h.val_acc.append(val["accuracy"])
        h.val_loss.append(val["loss"])
        h.epoch_time.append(self._epoch_elapsed + time.perf_counter() - started)
        self._epoch_elapsed = 0.0
        if h.improved(self.settings["monitor"]):
            h.best_val_acc, h.best_epoch = h.val_acc[-1], len(h.val_acc) - 1
            h.best_params = self.model.state_dict()
        if self.log and self.world.is_root:
            if len(h.val_acc) == 1:
                self.log(History.HEADER)
            self.log(h.row(len(h.val_acc) - 1))

    def train(self) -> History:
        """Train until ``epochs`` epochs are complete or early stopping ends the run
        (continuing where it stopped); returns the history."""
        self._stop_requested = False
        try:
            with stop_signals(self.request_stop), self.world.guard():  # an error on one rank
                self.check_output()                                     # stops them all
                with quiet_numerics():
                    self._train()
        except KeyboardInterrupt as e:
            if isinstance(e, TrainingInterrupted):
                raise
            raise stopped_at_once(self._saved, self.iteration, self._stop_signal) from None
        if self.stopped_early:  # the run is over: it ends with the best epoch's weights
            self.model.load_state_dict(self.history.best_params)
        return self.history

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

    def _train(self) -> None:
        h, model, ipe = self.history, self.model, self.iterations_per_epoch
        if h.val_acc:  # resumed: the rows need their header
            if self.log and self.world.is_root:
                self.log(History.HEADER)
        else:
            started = time.perf_counter()
            h.lr.append(self.optimizer.lr)
            h.epoch_loss.append(None)
            self._record_metrics(started)
            self._save_checkpoint()
        self._write_metrics()  # resumed: the checkpoint's rows (a lost epoch's row goes)
        if not self.stopped_early:  # (a larger early_stop given on resume goes on)
            h.stopped_epoch = None
        while self.epoch < self.epochs and not self.stopped_early:
            started = time.perf_counter()
            model.train()
            done = self.iteration - self.epoch * ipe
            bar = epoch_bar(self.progress and self.world.is_root, ipe, done,
                            f"epoch {self.epoch + 1}/{self.epochs}",
                            leave=self.log is None and in_notebook())
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
                self._end_epoch(started, bar)
            finally:
                if bar is not None:
                    bar.close()

    def _end_epoch(self, started: float, bar) -> None:
        h = self.history
        self.epoch += 1
        h.lr.append(self.optimizer.lr)
        h.epoch_loss.append(float(np.mean(h.loss[-self.iterations_per_epoch:])))
        self._record_metrics(started)
        if bar is not None:
            bar.set_postfix(loss=f"{h.epoch_loss[-1]:.4f}", val_loss=f"{h.val_loss[-1]:.4f}",
                            val_acc=f"{h.val_acc[-1]:.3f}")
        self.lr_schedule.observe(h.metric(self.settings["monitor"]))
        self.optimizer.lr = self.lr_schedule.lr(self.epoch)
        if self.stopped_early:
            h.stopped_epoch = self.epoch
        if (self.epoch % self.checkpoint_every == 0 or self.epoch == self.epochs
                or self.stopped_early):
            self._save_checkpoint()
        self._write_metrics()

    def _step(self) -> None:
        if self._graph is not None:  # the update is in the graph: applied before the check
            X, y = self.batches.next_host_batch()
            loss = self._graph.step(X.astype(self.model.dtype, copy=False), y)
            self._check_loss(loss)
        else:
            X, y = self.batches.next_batch()
            # L2's gradient is left to the optimizer's update (weight_decay below): one pass
            # per weight instead of three; the loss still includes L2's term
            loss, grads = self.world.local_loss(
                self.model, X.astype(self.model.dtype, copy=False), y, l2_in_grads=False,
                label_smoothing=self.step_options["label_smoothing"])
            loss = self.world.allreduce_gradients(grads, loss, len(y))  # global batch's mean
            self._check_loss(loss)
            if self.step_options["clip_grad_norm"] is not None:  # on the global gradients
                clip_grad_norm_(grads, self.step_options["clip_grad_norm"])
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
        raise interrupted(self._save_checkpoint(), self.epoch, self.iteration, self._stop_signal)

    # -- checkpoints -----------------------------------------------------------------------------
    def _write_metrics(self) -> None:
        if self.checkpoint_dir is not None and self.world.is_root:
            write_metrics(os.path.join(self.checkpoint_dir, METRICS_NAME), self.history,
                          self.run_id)

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
                                      "epoch_elapsed": self._epoch_elapsed},
                            lr_schedule=self.lr_schedule.state())
        except OSError as e:  # a full disk, say: the write is atomic, so say what survived
            kept = ("the previous checkpoint there is intact" if os.path.exists(path)
                    else "no checkpoint was saved")
            raise OSError(e.errno, f"{e.strerror or e} while writing the checkpoint after "
                                   f"iteration {self.iteration}; {kept}", path) from e
        self._saved = (path, self.iteration)
        return path

    def resume(self, path: str) -> "Trainer":
        """Load the checkpoint at ``path`` into this trainer, its model and optimizer; returns self.

        The settings that shape the history (:mod:`gpucnn.train.resume`) must equal the
        checkpoint's; ``epochs`` may be larger, to train on; another learning rate or schedule
        starts here, noted in the history.
        """
        arrays, meta = load_checkpoint(path)
        try:
            saved = meta["config"]
            mine = json.loads(json.dumps(self.config()))  # compare as stored (tuples as lists)
            check_resumable(saved, mine, meta.get("world_size", 1), self.world.size)
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
            self.lr_schedule, note = resumed_schedule(
                meta.get("lr_schedule"), saved, schedule_settings(self.settings, self.optim_config),
                self.settings["monitor"], self.optim_config["lr"], self.optimizer, self.epoch,
                self.epochs)
            if note:
                self.history.add_note(self.iteration, note)
            self.run_info["run_id"] = (saved.get("run_info") or {}).get("run_id", self.run_id)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {e}") from None
        check_epochs_left("epochs", self.epochs, self.epoch, path)
        check_stopped_early("early_stop", self.settings["early_stop"], meta["history"], path)
        self._resumed_from, self._saved = path, (path, self.iteration)
        return self

    @classmethod
    def from_checkpoint(cls, path: str, model, data, **overrides) -> "Trainer":
        """A Trainer with the settings saved in ``path`` (``overrides`` replace some, e.g. a larger
        ``epochs``, another device, learning rate or schedule), resumed from it.
        ``checkpoint_dir`` defaults to the checkpoint's folder.  ``path`` may be the run's
        folder."""
        path = checkpoint_file(path)
        _, meta = load_checkpoint(path)
        overrides = {"checkpoint_dir": os.path.dirname(os.path.abspath(path)), **overrides}
        settings = saved_settings(meta.get("config", {}), path, overrides)
        return cls(model, data, **settings).resume(path)
