"""The epoch loop behind ``tinycnn train``: the explicit PyTorch-style step over the data pipeline.

``Sequential.fit`` takes whole arrays; the command trains from ``tinycnn.data.make_loaders``'
batches instead, because those are augmented afresh every epoch (random crop and flip for CIFAR) and
normalised batch by batch. One step, for a batch xb: float32 (B, C, H, W), yb: int64 (B,)::

    optimizer.zero_grad()
    logits = model.forward(xb)                      # (B, K), train mode
    loss   = loss_fn.forward(logits, yb)            # mean softmax cross-entropy; NaN/inf stops here
    model.backward(loss_fn.backward(), input_grad=False)   # every parameter's .grad (no input grad)
    optimizer.step();  schedule.step() if it runs per batch

Per epoch the logs are fit's: "loss" and "accuracy" (running over the epoch's batches, train mode),
"val_loss" and "val_accuracy" (eval mode, after the epoch), "lr" (at the start of the epoch), plus
"seconds" and "images_per_s" of the training pass. The progress bar is ``tinycnn.progress``'.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..losses import SoftmaxCrossEntropy, log_softmax
from ..progress import Progress
from ..training import History, NonFiniteLossError


@dataclass
class Evaluation:
    """A model's predictions on one split."""
    loss: float                # mean cross-entropy
    labels: np.ndarray         # int64 (N,) true classes
    probs: np.ndarray          # float (N, K) softmax probabilities

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)                          # (N,)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))


def evaluate(model, batches, loss_fn=None) -> Evaluation:
    """Run ``model`` in eval mode over ``batches`` (unshuffled, normalised); the mode is restored."""
    loss_fn = loss_fn or SoftmaxCrossEntropy()
    was = model.training
    model.eval()
    try:
        loss_sum, labels, probs = 0.0, [], []
        for xb, yb in batches:
            logits = model.forward(xb)                            # (B, K)
            loss_sum += loss_fn.forward(logits, yb) * len(yb)
            labels.append(yb)
            probs.append(np.exp(log_softmax(logits)))
    finally:
        model.train(was)
    labels = np.concatenate(labels)
    return Evaluation(loss_sum / len(labels), labels, np.concatenate(probs))


@dataclass
class Trainer:
    """What one training run steps. ``schedule``: a ``tinycnn.schedules`` object or None, stepped
    after every batch (``schedule_per="batch"``) or after every epoch (``"epoch"``)."""
    model: object
    optimizer: object
    loaders: object                     # tinycnn.data.Loaders
    schedule: object = None
    schedule_per: str = "epoch"
    loss_fn: SoftmaxCrossEntropy = field(default_factory=SoftmaxCrossEntropy)

    def train_epoch(self, epoch: int, epochs: int, progress: Progress, global_step: int) -> tuple[dict, int]:
        """One pass over the training batches. ``epoch`` is 0-based. Returns (logs, global_step)."""
        model, opt, batches = self.model, self.optimizer, self.loaders.train
        steps = len(batches)
        model.train()
        lr = float(opt.lr)
        progress.start_epoch(epoch)
        seen, loss_sum, correct = 0, 0.0, 0
        t0 = time.perf_counter()
        for step, (xb, yb) in enumerate(batches):
            global_step += 1
            opt.zero_grad()
            logits = model.forward(xb)                            # (B, K)
            loss = self.loss_fn.forward(logits, yb)
            if not math.isfinite(loss):
                raise NonFiniteLossError(epoch + 1, epochs, step + 1, steps, global_step, loss, float(opt.lr))
            model.backward(self.loss_fn.backward(), input_grad=False)
            opt.step()
            if self.schedule is not None and self.schedule_per == "batch":
                self.schedule.step()
            b = len(yb)
            seen += b
            loss_sum += loss * b
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            progress.update(b, {"loss": loss_sum / seen, "accuracy": correct / seen})
        seconds = time.perf_counter() - t0
        if self.schedule is not None and self.schedule_per == "epoch":
            self.schedule.step()
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        if self.loaders.val is not None:
            val = evaluate(model, self.loaders.val, self.loss_fn)
            logs.update(val_loss=val.loss, val_accuracy=val.accuracy)
        logs.update(lr=lr, seconds=seconds, images_per_s=seen / seconds if seconds > 0 else float("inf"))
        progress.end_epoch(epoch, {k: v for k, v in logs.items() if k not in ("seconds", "images_per_s")})
        return logs, global_step

    def run(self, first_epoch: int, epochs: int, *, history: History, verbose: int = 1,
            on_epoch_end=None) -> History:
        """Epochs ``first_epoch`` .. ``epochs - 1`` (0-based), appending to ``history``;
        ``on_epoch_end(epoch, logs)`` after each (the caller saves the checkpoint there)."""
        batches = self.loaders.train
        progress = Progress(verbose, epochs, batches.num_samples, len(batches))
        global_step = first_epoch * len(batches)
        try:
            for epoch in range(first_epoch, epochs):
                logs, global_step = self.train_epoch(epoch, epochs, progress, global_step)
                history.append(epoch, logs)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, logs)
        finally:
            progress.close()
        return history
