"""The Keras-style front end of ``Sequential``: compile, fit, evaluate, predict.

Arrays in, NCHW as everywhere in tinycnn (a Keras user's NHWC images need ``x.transpose(0, 3, 1, 2)``
once, at the edge). Inside, the model produces logits and ``SoftmaxCrossEntropy`` turns them into a
loss; a trailing ``Softmax`` layer is *fused* into that loss: ``fit`` and ``evaluate`` stop at the
layer before it and feed its logits to the loss, ``predict`` runs it, so probabilities come out
exactly once. (Without a trailing Softmax, ``predict`` applies softmax to the model's output itself.)

``fit`` in one paragraph: the last ``validation_split`` fraction of ``x``/``y`` is set aside *before*
any shuffling (Keras' rule; ``validation_data`` overrides it); every epoch the rest is shuffled with a
``np.random.Generator`` (by default the one ``compile`` seeded with ``DEFAULT_SEED`` = 0, so
``fit(epochs=1)`` twice equals ``fit(epochs=2)``), cut into batches of ``batch_size`` (the last one
smaller), and each batch does zero_grad, forward, loss, backward, step. Before the backward pass of
every batch the loss is checked: a NaN or infinite loss raises ``NonFiniteLossError`` naming the epoch
and step, and that batch's update never happens. After each epoch the model is evaluated on the
validation data, and ``History`` records the epoch's numbers:

    "loss", <metric>     mean over the epoch's batches, as training went (train mode, moving weights;
                         Keras reports the same running numbers)
    "val_loss", "val_<metric>"   on the validation data, in eval mode, after the epoch
    "lr"                 the optimizer's learning rate at the start of the epoch

Metrics (compile(metrics=[...])): "accuracy" (or "acc"), "top_k_accuracy" (k = 5; "top_3_accuracy"
etc. for other k), "precision", "recall", "f1" (macro averages over all classes), or any function
``f(labels (N,), probabilities (N, K)) -> float`` (logged under its ``__name__``); all from
``tinycnn.metrics``.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np

from . import metrics as M
from .layers.softmax import Softmax
from .losses import SoftmaxCrossEntropy, log_softmax
from .optim import SGD, Adam
from .progress import Progress

DEFAULT_SEED = 0                       # seeds the shuffling generator compile() creates
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite. ``epoch`` and ``step`` are 1-based (as printed);
    ``global_step`` counts batches from the start of the fit (1-based); ``loss`` is the bad value."""

    def __init__(self, epoch: int, epochs: int, step: int, steps: int, global_step: int, loss: float, lr: float):
        self.epoch, self.step, self.global_step, self.loss = epoch, step, global_step, loss
        super().__init__(
            f"fit: the training loss is {loss} at epoch {epoch}/{epochs}, step {step}/{steps} "
            f"(batch {global_step} of this fit; learning rate {lr:g}). Training stopped before this "
            f"step's update, so the model holds the weights of the last finite step, and checkpoints "
            f"already written are untouched. Usual causes: a learning rate too high, or NaN/inf in the input."
        )


@dataclass
class Metric:
    name: str                          # the key in History and logs
    fn: object                         # f(labels (N,), probabilities (N, K)) -> float


@dataclass
class Compiled:
    """What ``compile`` chose. ``rng`` shuffles the training data in every ``fit`` (unless fit gets one)."""
    optimizer: object
    loss_name: str
    loss_fn: SoftmaxCrossEntropy
    metrics: list = field(default_factory=list)
    rng: np.random.Generator = None


class History:
    """Per-epoch numbers of one ``fit``: ``history.history["loss"][e]`` etc.; ``epoch``: 0-based indices."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# -- compile ---------------------------------------------------------------------------------------

def _metric(spec) -> Metric:
    if callable(spec):
        return Metric(getattr(spec, "__name__", "metric"), spec)
    if spec in ("accuracy", "acc"):
        return Metric("accuracy", lambda y, p: M.accuracy(y, p))
    found = re.fullmatch(r"top_(k|\d+)_accuracy", str(spec))
    if found:
        k = 5 if found.group(1) == "k" else int(found.group(1))
        return Metric(str(spec), lambda y, p: M.top_k_accuracy(y, p, k=min(k, p.shape[1])))
    if spec in ("precision", "recall", "f1"):
        index = ("precision", "recall", "f1").index(spec)
        return Metric(spec, lambda y, p: M.precision_recall_f1(y, p.argmax(axis=1), p.shape[1], "macro")[index])
    raise ValueError(f"compile: unknown metric {spec!r}; use 'accuracy', 'top_k_accuracy', 'top_3_accuracy', "
                     f"'precision', 'recall', 'f1', or a function f(labels, probabilities) -> float")


def _optimizer(model, optimizer, lr):
    params = model.parameters()
    if isinstance(optimizer, str):
        if not params:
            raise ValueError("compile: the model has no parameters to train")
        if optimizer.lower() == "sgd":
            return SGD(params, lr=0.01 if lr is None else lr)          # Keras' SGD default rate
        if optimizer.lower() == "adam":
            return Adam(params, lr=1e-3 if lr is None else lr)
        raise ValueError(f"compile: unknown optimizer {optimizer!r}; use 'sgd', 'adam' or an optimizer object")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"compile: optimizer must be 'sgd', 'adam' or an optimizer object, got {optimizer!r}")
    if lr is not None:
        raise ValueError("compile: lr= only applies to an optimizer given by name; "
                         "set the rate when you build the optimizer object")
    mine = {id(p) for p in params}
    foreign = [i for i, p in enumerate(getattr(optimizer, "params", [])) if id(p) not in mine]
    if foreign or len(getattr(optimizer, "params", params)) != len(params):
        raise ValueError(f"compile: the optimizer was built on other parameters than this model's "
                         f"({len(getattr(optimizer, 'params', []))} given, {len(params)} in the model, "
                         f"{len(foreign)} not the model's); build it with model.parameters()")
    return optimizer


def compile_model(model, optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=None, *,
                  lr=None, seed: int = DEFAULT_SEED) -> Compiled:
    """Resolve optimizer, loss and metric names into objects for ``fit``."""
    if loss not in LOSSES:
        raise ValueError(f"compile: unknown loss {loss!r}; use one of {LOSSES} (integer labels (N,) or "
                         f"one-hot/probability labels (N, K)); both are softmax cross-entropy on logits")
    specs = [] if metrics is None else ([metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics))
    return Compiled(optimizer=_optimizer(model, optimizer, lr), loss_name=loss, loss_fn=SoftmaxCrossEntropy(),
                    metrics=[_metric(s) for s in specs], rng=np.random.default_rng(seed))


# -- shared helpers --------------------------------------------------------------------------------

def _compiled(model, what: str) -> Compiled:
    if getattr(model, "compiled", None) is None:
        raise RuntimeError(f"Sequential.{what}: call model.compile(optimizer=..., loss=...) first")
    return model.compiled


def _logit_layers(model) -> list:
    """The layers that produce the logits: all of them, or all but a trailing Softmax (fused)."""
    layers = model.layers
    return layers[:-1] if layers and isinstance(layers[-1], Softmax) else layers


def _run(model, layers, x):
    """The logits of ``layers`` (the model's, maybe without a trailing Softmax) for the batch ``x``,
    through the model's plan for them (``Sequential.plan``); returns (output, plan) for a backward."""
    from . import fast
    plan = model.plan(layers, plain=not fast.runs_fast(x))
    return plan.forward(x), plan


def _softmax(logits):
    return np.exp(log_softmax(logits))


def _check_x(model, x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: x must be a non-empty batch (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{what}: x has dtype {x.dtype}, but a floating array is needed; convert it first, "
                        f"e.g. x.astype(np.float32) / 255 for raw pixels")
    model.build(x.shape[1:], source=f"the x of shape {x.shape} passed to {what}")
    return x


def _check_y(model, compiled: Compiled, x, y, what: str):
    """Return (y as given to the loss, y as class indices (N,) for the metrics)."""
    y = np.asarray(y)
    n = x.shape[0]
    if y.shape[:1] != (n,):
        raise ValueError(f"{what}: x holds {n} samples but y has shape {y.shape}")
    records = model.build(x.shape[1:])
    logit_shape = records[len(_logit_layers(model)) - 1].out_shape if records else x.shape[1:]
    if len(logit_shape) != 1:
        raise ValueError(f"{what}: the model's logits have per-sample shape {logit_shape}; a classifier must "
                         f"end in (K,) (add Flatten() and Dense(..., K))")
    k = logit_shape[0]
    if compiled.loss_name == "sparse_categorical_crossentropy":
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise TypeError(f"{what}: loss 'sparse_categorical_crossentropy' needs integer class indices (N,), "
                            f"got dtype {y.dtype} shape {y.shape}; for one-hot labels (N, K) compile with "
                            f"loss='categorical_crossentropy'")
        bad = (y < 0) | (y >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}: y[{i}] = {int(y[i])} is out of range for the model's {k} classes (0..{k - 1})")
        return y, y.astype(np.int64)
    if y.shape != (n, k) or y.dtype.kind != "f":
        raise TypeError(f"{what}: loss 'categorical_crossentropy' needs float one-hot/probability labels "
                        f"of shape ({n}, {k}), got dtype {y.dtype} shape {y.shape}; for class indices "
                        f"compile with loss='sparse_categorical_crossentropy'")
    return y, y.argmax(axis=1)


def _positive(value, name: str, what: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _split(x, y, validation_split, validation_data):
    """(x_train, y_train, validation or None). validation_split: the LAST fraction, before shuffling."""
    if validation_data is not None:
        x_val, y_val = validation_data
        return x, y, (np.asarray(x_val), np.asarray(y_val))
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must lie in [0, 1), got {validation_split}")
    if validation_split == 0:
        return x, y, None
    n_train = int(math.floor(len(x) * (1.0 - validation_split)))      # Keras' split point
    if n_train < 1 or n_train == len(x):
        raise ValueError(f"fit: validation_split={validation_split} of {len(x)} samples leaves "
                         f"{n_train} for training and {len(x) - n_train} for validation; both must be >= 1")
    return x[:n_train], y[:n_train], (x[n_train:], y[n_train:])


def _generator(rng, compiled: Compiled) -> np.random.Generator:
    if rng is None:
        return compiled.rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"fit: rng must be a np.random.Generator or an integer seed, got {rng!r}")


def _snapshot_buffers(layers) -> list:
    """Copies of every buffer (batch-norm running statistics): a forward in train mode updates them,
    so a batch whose loss turns out non-finite must put them back."""
    return [(layer, name, np.array(buf, copy=True)) for layer in layers
            for name, buf in layer.named_buffers().items()]


def _restore_buffers(saved: list):
    for layer, name, copy in saved:
        layer.named_buffers()[name][...] = copy


def _call(callbacks, hook: str, *args):
    for cb in callbacks:
        getattr(cb, hook)(*args)


class _EpochMeter:
    """Running loss and metrics of one epoch, weighted by batch size."""

    def __init__(self, metrics):
        self.metrics, self.n, self.loss_sum = metrics, 0, 0.0
        self.sums = {m.name: 0.0 for m in metrics}
        self.labels, self.probs = [], []

    def add(self, loss: float, labels, logits):
        b = len(labels)
        probs = _softmax(logits)
        self.n += b
        self.loss_sum += loss * b
        for m in self.metrics:
            self.sums[m.name] += float(m.fn(labels, probs)) * b
        self.labels.append(labels)
        self.probs.append(probs)

    def running(self) -> dict:
        return {"loss": self.loss_sum / self.n, **{k: v / self.n for k, v in self.sums.items()}}

    def result(self) -> dict:
        """Loss: the batch-weighted mean; metrics: computed once on all the epoch's predictions."""
        labels, probs = np.concatenate(self.labels), np.concatenate(self.probs)
        return {"loss": self.loss_sum / self.n, **{m.name: float(m.fn(labels, probs)) for m in self.metrics}}


# -- fit / evaluate / predict ----------------------------------------------------------------------

def fit(model, x, y, *, epochs=1, batch_size=32, validation_split=0.0, validation_data=None, shuffle=True,
        callbacks=None, verbose=1, rng=None, progress_file=None) -> History:
    """Train ``model`` (compiled) on ``x`` (N, C, H, W) float and ``y``; return a ``History``.

    ``rng``: a ``np.random.Generator`` (or an int seed) for shuffling; default the compiled one.
    Raises ``NonFiniteLossError`` when a batch's loss is NaN or infinite (before its update).
    """
    what = "fit"
    c = _compiled(model, what)
    epochs, batch_size = _positive(epochs, "epochs", what), _positive(batch_size, "batch_size", what)
    x = _check_x(model, x, what)
    x_train, y_train, val = _split(x, np.asarray(y), validation_split, validation_data)
    y_loss, y_idx = _check_y(model, c, x_train, y_train, what)
    if val is not None:
        _check_x(model, val[0], "fit (validation_data)")
        _check_y(model, c, val[0], val[1], "fit (validation_data)")
    gen = _generator(rng, c)
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    layers = _logit_layers(model)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params({"epochs": epochs, "steps": steps, "samples": n, "batch_size": batch_size, "rng": gen})
    history = History()
    progress = Progress(verbose, epochs, n, steps, file=progress_file)
    model.stop_training = False
    _call(callbacks, "on_train_begin", {})
    global_step = 0
    try:
        for epoch in range(epochs):
            model.train()
            _call(callbacks, "on_epoch_begin", epoch, {})
            lr = float(c.optimizer.lr)
            order = gen.permutation(n) if shuffle else np.arange(n)
            meter = _EpochMeter(c.metrics)
            progress.start_epoch(epoch)
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]            # (B,)
                _call(callbacks, "on_train_batch_begin", step, {})
                global_step += 1
                c.optimizer.zero_grad()
                buffers = _snapshot_buffers(layers)
                logits, plan = _run(model, layers, x_train[idx])                  # (B, K)
                loss = c.loss_fn.forward(logits, y_loss[idx])
                if not math.isfinite(loss):
                    _restore_buffers(buffers)
                    raise NonFiniteLossError(epoch + 1, epochs, step + 1, steps, global_step, loss,
                                             float(c.optimizer.lr))
                # parameters' gradients only: the input gradient is never used here
                plan.backward(c.loss_fn.backward(), input_grad=False)
                c.optimizer.step()
                meter.add(loss, y_idx[idx], logits)
                running = meter.running()
                progress.update(len(idx), running)
                _call(callbacks, "on_train_batch_end", step, running)
            logs = meter.result()
            if val is not None:
                logs.update({f"val_{k}": v for k, v in _evaluate(model, c, *val, batch_size).items()})
            logs["lr"] = lr
            history.append(epoch, logs)
            progress.end_epoch(epoch, logs)
            _call(callbacks, "on_epoch_end", epoch, logs)
            if model.stop_training:
                break
    finally:
        progress.close()
    _call(callbacks, "on_train_end", {})
    return history


def _batched(x, batch_size):
    for start in range(0, len(x), batch_size):
        yield slice(start, start + batch_size)


def _eval_mode(model):
    """Switch to eval mode; return the previous mode to restore."""
    was = model.training
    model.eval()
    return was


def _evaluate(model, c: Compiled, x, y, batch_size) -> dict:
    x = _check_x(model, x, "evaluate")
    y_loss, y_idx = _check_y(model, c, x, y, "evaluate")
    layers = _logit_layers(model)
    was = _eval_mode(model)
    try:
        loss_sum, probs = 0.0, []
        for s in _batched(x, batch_size):
            logits, _ = _run(model, layers, x[s])
            loss_sum += c.loss_fn.forward(logits, y_loss[s]) * len(logits)
            probs.append(_softmax(logits))
    finally:
        model.train(was)
    probs = np.concatenate(probs)
    return {"loss": loss_sum / len(x), **{m.name: float(m.fn(y_idx, probs)) for m in c.metrics}}


def evaluate(model, x, y, *, batch_size=32, verbose=0, return_dict=False):
    """Loss and compiled metrics on ``(x, y)``, in eval mode.

    Keras's convention: the loss (a float) when no metrics were compiled, else the list
    ``[loss, metric1, ...]`` in compile order; ``return_dict=True`` gives ``{"loss": ..., "accuracy": ...}``.
    """
    c = _compiled(model, "evaluate")
    result = _evaluate(model, c, x, y, _positive(batch_size, "batch_size", "evaluate"))
    if verbose:
        from .progress import format_logs
        print(f"evaluate: {len(x)} samples - {format_logs(result)}")
    if return_dict:
        return result
    values = list(result.values())                       # "loss" first, then the metrics in order
    return values[0] if len(values) == 1 else values


def predict(model, x, *, batch_size=32) -> np.ndarray:
    """Class probabilities (N, K), in eval mode. Softmax is applied once: by the model's trailing
    Softmax layer if it has one, else here. Needs no compile."""
    x = _check_x(model, x, "predict")
    batch_size = _positive(batch_size, "batch_size", "predict")
    fused = len(_logit_layers(model)) < len(model.layers)
    was = _eval_mode(model)
    try:
        outs = [_run(model, model.layers, x[s])[0] for s in _batched(x, batch_size)]
    finally:
        model.train(was)
    out = np.concatenate(outs)
    if out.ndim != 2:
        raise ValueError(f"predict: the model's output has per-sample shape {out.shape[1:]}; a classifier "
                         f"must end in (K,)")
    return out if fused else _softmax(out)
