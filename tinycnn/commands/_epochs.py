"""What ``tinycnn train`` adds to ``fit``: two callbacks, for its timings and its checkpoint.

The command trains through ``tinycnn.training.fit`` like any other caller: ``fit`` iterates the
``tinycnn.data`` loaders (shuffled and augmented afresh every epoch), checks every batch's loss,
restores batch-norm statistics after a non-finite one, evaluates the validation batches, draws the
progress bar and calls the callbacks. Per epoch the logs are fit's -- "loss" and "accuracy" (running
over the epoch's batches, train mode), "val_loss" and "val_accuracy" (eval mode, after the epoch), "lr"
(at the start of the epoch) -- plus, from ``EpochTimer``, "seconds" and "images_per_s" of the training
pass. The learning-rate schedule is a ``tinycnn.callbacks.LearningRateScheduler``.

``evaluate`` (the test split, ``tinycnn evaluate``) is ``tinycnn.training.evaluate_batches``: the same
evaluation ``fit`` runs on the validation batches.
"""
from __future__ import annotations

import time

from ..callbacks import Callback
from ..checkpoint import save_checkpoint
from ..training import Evaluation, History, NonFiniteStateError, nonfinite_state
from ..training import evaluate_batches as evaluate

__all__ = ["EpochTimer", "Evaluation", "RunCheckpoint", "evaluate"]


class EpochTimer(Callback):
    """Adds "seconds" (``time.perf_counter``, from the start of the epoch to the end of its last
    batch: data loading, augmentation and training steps, not validation) and "images_per_s" to
    every epoch's logs. Needs ``params["samples"]`` (a ``tinycnn.data.Batches`` tells it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, step, logs=None):
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._end - self._start
        images = self.params.get("samples") or 0
        logs.update(seconds=seconds, images_per_s=images / seconds if seconds > 0 else float("inf"))


class RunCheckpoint(Callback):
    """After every epoch: append its logs to ``history`` (the whole run's, including the epochs of a
    checkpoint being resumed) and save the run's checkpoint at ``path`` -- weights, optimizer state,
    the data generator's state, the schedule's state and ``extra`` (settings, data, model record) --
    but only when the weights, the optimizer state and the epoch's losses are all finite. Otherwise
    it raises ``NonFiniteStateError`` and the previous good checkpoint stays; ``saved_epoch`` is the
    number of epochs in the last good one (the first epoch of this fit before any is saved)."""

    def __init__(self, path, *, history: History, extra: dict, data_rng, schedule, first_epoch: int):
        self.path, self.history, self.extra = path, history, extra
        self.data_rng, self.schedule = data_rng, schedule
        self.saved_epoch = first_epoch

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.compiled.optimizer
        self.history.append(epoch, logs)
        found = nonfinite_state(self.model, optimizer, logs)
        if found:
            raise NonFiniteStateError(epoch + 1, self.params["epochs"], found)
        self.extra.update(history=self.history.history,
                          schedule=self.schedule.state_dict() if self.schedule is not None else None)
        save_checkpoint(self.path, self.model, optimizer, epoch=epoch + 1, rng=self.data_rng, extra=self.extra)
        self.saved_epoch = epoch + 1
