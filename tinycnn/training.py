"""The Keras-style front end of ``Sequential``: compile, fit, evaluate, predict -- and the one training
loop of tinycnn (``tinycnn train`` runs through ``fit`` too, see ``tinycnn.commands.train``).

Data comes in two forms, NCHW as everywhere in tinycnn (a Keras user's NHWC images need
``x.transpose(0, 3, 1, 2)`` once, at the edge):

* arrays ``fit(x, y)``: float ``x`` (N, C, H, W) and labels ``y``; ``fit`` shuffles and batches them;
* batches ``fit(batches)``: any iterable of ``(x, y)`` (or ``(x, y, sample_weight)``) batches, such as
  a ``tinycnn.data.Batches`` (shuffled and augmented afresh every epoch by its own generator) or a
  list of tuples. It is iterated once per epoch, so it must be re-iterable (a one-shot generator
  runs out after the first epoch, which is an error). ``batch_size``, ``shuffle`` and
  ``validation_split`` belong to the arrays form; the batches bring their own.

Inside, the model produces logits and ``SoftmaxCrossEntropy`` turns them into a loss; a trailing
``Softmax`` layer is *fused* into that loss: ``fit`` and ``evaluate`` stop at the layer before it and
feed its logits to the loss, ``predict`` runs it, so probabilities come out exactly once. (Without a
trailing Softmax, ``predict`` applies softmax to the model's output itself.)

``fit`` in one paragraph: the last ``validation_split`` fraction of ``x``/``y`` is set aside *before*
any shuffling (Keras' rule; ``validation_data`` overrides it); every epoch the rest is shuffled with a
``np.random.Generator`` (by default the one ``compile`` seeded with ``DEFAULT_SEED`` = 0, so
``fit(epochs=1)`` twice equals ``fit(epochs=2)``, and equals ``fit(epochs=1)`` then
``fit(epochs=2, initial_epoch=1)``), cut into batches of ``batch_size`` (the last one smaller), and
each batch does zero_grad, forward, loss, backward, step. Before the backward pass of every batch the
loss is checked: a NaN or infinite loss raises ``NonFiniteLossError`` naming the epoch and step, and
that batch's update never happens (batch-norm running statistics are put back as they were before
the batch). After each epoch the model is evaluated on the validation data, and the epoch's logs are
handed to the callbacks' ``on_epoch_end`` (which may add entries, e.g. timings) and then recorded in
the ``History``:

    "loss", <metric>     mean over the epoch's batches, as training went (train mode, moving weights;
                         Keras reports the same running numbers)
    "val_loss", "val_<metric>"   on the validation data, in eval mode, after the epoch
    "lr"                 the optimizer's learning rate at the start of the epoch

Weights (Keras' definitions): ``sample_weight`` (N,) and ``class_weight`` {class index: weight}
(classes not in the dict weigh 1; with both, the weights multiply) scale each sample's loss, and a
batch's loss is ``sum_i w_i * loss_i / B`` (Keras' "sum over batch size": the batch size, not the sum
of the weights, divides). They act on training only; validation is weighted only by a third element
of ``validation_data``. Metrics are unweighted. ``initial_epoch``: the epoch to start at (0-based; for
resuming), ``epochs`` being the index to stop before, as in Keras.

Metrics (compile(metrics=[...])): "accuracy" (or "acc"), "top_k_accuracy" (k = 5; "top_3_accuracy"
etc. for other k), "precision", "recall", "f1" (macro averages over all classes), or any function
``f(labels (N,), probabilities (N, K)) -> float`` (logged under its ``__name__``); all from
``tinycnn.metrics``. Predictions holding NaN give NaN metrics.

Test-time augmentation: ``evaluate``, ``evaluate_batches`` and ``predict`` take ``tta=`` ("flip",
"flip-translate"; ``tinycnn.tta``): each batch's logits are averaged over transformed copies of it (the
mirror image; one-pixel translations with reflection padding) and the loss, metrics and probabilities
are those of the averaged logits. ``fit``'s validation stays plain.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import metrics as M
from .layers.softmax import Softmax
from .losses import SoftmaxCrossEntropy, log_softmax
from .optim import SGD, Adam
from .progress import Progress
from .tta import check_tta, tta_logits

DEFAULT_SEED = 0                       # seeds the shuffling generator compile() creates
DEFAULT_BATCH_SIZE = 32                # for arrays, when batch_size is not given (Keras' default)
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite. ``epoch`` and ``step`` are 1-based (as printed);
    ``global_step`` counts batches from the start of the fit (1-based); ``loss`` is the bad value."""

    def __init__(self, epoch: int, epochs: int, step: int, steps: int | str, global_step: int, loss: float,
                 lr: float) -> None:
        self.epoch, self.step, self.global_step, self.loss = epoch, step, global_step, loss
        super().__init__(
            f"fit: the training loss is {loss} at epoch {epoch}/{epochs}, step {step}/{steps} "
            f"(batch {global_step} of this fit; learning rate {lr:g}). Training stopped before this "
            f"step's update, so the model holds the weights of the last finite step, and checkpoints "
            f"already written are untouched. Usual causes: a learning rate too high, or NaN/inf in the input."
        )


class NonFiniteStateError(FloatingPointError):
    """An epoch ended with NaN or infinite weights, optimizer state or losses (``nonfinite_state``):
    training diverged, and that state must not be saved as a good checkpoint. ``epoch`` is 1-based;
    ``found`` lists what is not finite."""

    def __init__(self, epoch: int, epochs: int, found: list[str]) -> None:
        self.epoch, self.found = epoch, list(found)
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        super().__init__(
            f"training diverged: epoch {epoch}/{epochs} ended with non-finite values ({shown}), so its "
            f"state was not saved as a checkpoint. Usual causes: a learning rate too high, or NaN/inf "
            f"in the input.")


def nonfinite_state(model, optimizer=None, logs: dict | None = None) -> list[str]:
    """What is NaN or infinite among the model's weights and buffers (``state_dict`` keys), the
    optimizer's state arrays and float scalars (``"optimizer exp_avg[3]"``, ``"optimizer lr"``) and
    the losses in ``logs`` (keys ending in "loss", ``"val_loss = nan"``). Empty when all are finite."""
    found = [key for key, value in model.state_dict().items() if not np.isfinite(value).all()]
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            if isinstance(value, np.ndarray) and not np.isfinite(value).all():
                found.append(f"optimizer {key}")
            elif isinstance(value, (list, tuple)):
                found += [f"optimizer {key}[{i}]" for i, v in enumerate(value)
                          if isinstance(v, np.ndarray) and not np.isfinite(v).all()]
            elif isinstance(value, float) and not math.isfinite(value):
                found.append(f"optimizer {key} = {value}")
    for key, value in (logs or {}).items():
        if key.endswith("loss") and not math.isfinite(float(value)):
            found.append(f"{key} = {float(value)}")
    return found


@dataclass
class Metric:
    name: str                          # the key in History and logs
    fn: object                         # f(labels (N,), probabilities (N, K)) -> float


@dataclass
class Compiled:
    """What ``compile`` chose. ``rng`` shuffles the training data in every ``fit`` (unless fit gets one)."""
    optimizer: object
    loss_name: str | None             # one of LOSSES, or None: the labels' form decides (a loss object)
    loss_fn: SoftmaxCrossEntropy
    metrics: list = field(default_factory=list)
    rng: np.random.Generator = None


class History:
    """Per-epoch numbers of one ``fit``: ``history.history["loss"][e]`` etc.; ``epoch``: 0-based indices."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


@dataclass
class Evaluation:
    """A model's predictions on one set of batches (``evaluate_batches``)."""
    loss: float                # mean cross-entropy (weighted as the batches say)
    labels: np.ndarray         # int64 (N,) true classes
    probs: np.ndarray          # float (N, K) softmax probabilities

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)                          # (N,)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))


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
    """Resolve optimizer, loss and metric names into objects for ``fit``.

    ``loss``: one of ``LOSSES`` (Keras's names; both are softmax cross-entropy on logits), or a
    ``SoftmaxCrossEntropy`` object with reduction 'mean' (torch's habit: the criterion with its options,
    e.g. ``SoftmaxCrossEntropy(label_smoothing=0.2)``); with an object, the labels' form (class indices
    or probabilities) is read from the labels themselves."""
    if isinstance(loss, SoftmaxCrossEntropy):
        if loss.reduction != "mean":
            raise ValueError(f"compile: the loss object must average over the batch (reduction='mean'), as fit "
                             f"reports the mean loss; got {loss!r}")
        loss_fn, loss_name = loss, None
    elif isinstance(loss, str) and loss in LOSSES:
        loss_fn, loss_name = SoftmaxCrossEntropy(), loss
    else:
        raise ValueError(f"compile: unknown loss {loss!r}; use one of {LOSSES} (integer labels (N,) or "
                         f"one-hot/probability labels (N, K)), both softmax cross-entropy on logits, or a "
                         f"SoftmaxCrossEntropy(...) object")
    specs = [] if metrics is None else ([metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics))
    return Compiled(optimizer=_optimizer(model, optimizer, lr), loss_name=loss_name, loss_fn=loss_fn,
                    metrics=[_metric(s) for s in specs], rng=np.random.default_rng(seed))


# -- shared helpers --------------------------------------------------------------------------------

def _compiled(model, what: str) -> Compiled:
    if getattr(model, "compiled", None) is None:
        raise RuntimeError(f"Sequential.{what}: call model.compile(optimizer=..., loss=...) first")
    return model.compiled


def _logit_layers(model) -> list:
    """The layers that produce the logits: all of them, or all but a trailing Softmax (fused)."""
    layers = model.layers
    fused = layers and isinstance(layers[-1], Softmax) and layers[-1].dim in (1, -1)   # over the classes
    return layers[:-1] if fused else layers


def _fused(model) -> bool:
    return len(_logit_layers(model)) < len(model.layers)


def _forward_logits(model, x):
    """The logits (B, K) for x (B, C, H, W): the model's forward, stopping before a trailing Softmax."""
    if _fused(model):
        return model.forward_through(_logit_layers(model), x)
    return model.forward(x)


def _backward_logits(model, grad):
    """Backward from the logits' gradient (B, K): every parameter's ``.grad``, no input gradient."""
    model.backward(grad, input_grad=False)


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


def _num_classes(model, sample_shape, what: str) -> int:
    """K, from the logits' per-sample shape (K,) for inputs of per-sample shape (C, H, W)."""
    records = model.build(sample_shape)
    logit_shape = records[len(_logit_layers(model)) - 1].out_shape if records else tuple(sample_shape)
    if len(logit_shape) != 1:
        raise ValueError(f"{what}: the model's logits have per-sample shape {logit_shape}; a classifier must "
                         f"end in (K,) (add Flatten() and Dense(..., K))")
    return int(logit_shape[0])


def _targets(y, n: int, k: int, loss_name: str | None, what: str):
    """Check labels ``y`` for n samples of k classes; return (y as given to the loss, y as class
    indices int64 (N,) for the metrics). ``loss_name`` None: integer labels mean class indices,
    float (N, K) labels probabilities."""
    y = np.asarray(y)
    if y.shape[:1] != (n,):
        raise ValueError(f"{what}: x holds {n} samples but y has shape {y.shape}")
    if loss_name is None:
        loss_name = LOSSES[1] if y.dtype.kind == "f" and y.ndim == 2 else LOSSES[0]
    if loss_name == "sparse_categorical_crossentropy":
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


def _check_y(model, compiled: Compiled, x, y, what: str):
    """Return (y as given to the loss, y as class indices (N,) for the metrics)."""
    return _targets(y, x.shape[0], _num_classes(model, x.shape[1:], what), compiled.loss_name, what)


def _sample_weights(w, n: int, what: str, name: str = "sample_weight") -> np.ndarray:
    """w: (n,) finite numbers >= 0, as float64."""
    w = np.asarray(w)
    if w.shape != (n,) or w.dtype.kind not in "iuf" or w.dtype == bool:
        raise ValueError(f"{what}: {name} must be numbers of shape ({n},), one per sample, got dtype "
                         f"{w.dtype} shape {w.shape}")
    w = w.astype(np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: {name} must be finite and >= 0, but {name}[{i}] = {w[i]}")
    return w


def _class_weights(class_weight, k: int, what: str) -> np.ndarray:
    """{class index: weight} -> weights (K,) float64; classes not in the dict weigh 1 (Keras' rule)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what}: class_weight must be a dict {{class index: weight}}, got {class_weight!r}")
    table = np.ones(k)
    for key, value in class_weight.items():
        if not isinstance(key, numbers.Integral) or isinstance(key, bool) or not 0 <= key < k:
            raise ValueError(f"{what}: class_weight has key {key!r}; keys must be class indices 0..{k - 1}")
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{what}: class_weight[{key}] = {value!r}; weights must be finite numbers >= 0")
        table[int(key)] = float(value)
    return table


def _positive(value, name: str, what: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")
    return int(value)


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


def _metric_values(metrics, labels, probs) -> dict:
    """Each metric on (labels (N,), probabilities (N, K)); NaN for all when a prediction is NaN."""
    if np.isnan(probs).any():
        return {m.name: math.nan for m in metrics}
    return {m.name: float(m.fn(labels, probs)) for m in metrics}


# -- the loss of one batch -------------------------------------------------------------------------

def _batch_loss(loss_fn: SoftmaxCrossEntropy, logits, y_loss, w) -> float:
    """The batch's loss; with sample weights w (B,), Keras' reduction sum_i w_i * loss_i / B.

    loss_i = -sum_k t_ik log p_ik (t: the one-hot or probability labels). ``loss_fn.forward`` runs in
    any case: its cache gives the gradient (``_batch_grad``)."""
    loss = loss_fn.forward(logits, y_loss)
    if w is None:
        return loss
    if loss_fn.weight is not None or loss_fn.label_smoothing or loss_fn.ignore_index != -100:
        raise ValueError(f"fit: sample or class weights cannot be combined with the loss's own options "
                         f"({loss_fn!r}): give the weights to SoftmaxCrossEntropy(weight=...) or to fit, not both")
    logp = log_softmax(np.ascontiguousarray(logits))                    # (B, K)
    if y_loss.dtype.kind in "iu":
        per = -logp[np.arange(len(logp)), y_loss]                          # (B,)
    else:
        per = -(y_loss * logp).sum(axis=1)                                 # (B,)
    return float((w.astype(per.dtype) * per).sum() / len(per))


def _batch_grad(loss_fn: SoftmaxCrossEntropy, w):
    """d loss / d logits (B, K): the unweighted gradient (p - t) / B, row i scaled by w_i."""
    grad = loss_fn.backward()
    return grad if w is None else grad * w.astype(grad.dtype)[:, None]


# -- where batches come from ------------------------------------------------------------------------

def _is_batches(data) -> bool:
    return not isinstance(data, (np.ndarray, str, bytes)) and hasattr(data, "__iter__")


class _BatchReader:
    """Checks the batches of an iterable as they come: ``(x, y)`` or ``(x, y, sample_weight)`` each;
    returns ``(x, y for the loss, class indices, weights or None)``. The model's shape check runs
    once per per-sample shape, the label checks on every batch."""

    def __init__(self, model, loss_name: str | None, what: str, class_weight=None):
        self.model, self.loss_name, self.what, self.class_weight = model, loss_name, what, class_weight
        self.classes: dict[tuple, int] = {}            # per-sample shape -> K
        self.class_table = None

    def __call__(self, batch, i: int):
        where = f"{self.what} (batch {i + 1})"
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            got = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            raise TypeError(f"{where}: each batch must be a pair (x, y) or a triple (x, y, sample_weight), "
                            f"got a {got}")
        xb = np.asarray(batch[0])
        shape = xb.shape[1:]
        if shape not in self.classes or xb.dtype.kind != "f" or len(xb) == 0:
            xb = _check_x(self.model, xb, where)
            self.classes[shape] = _num_classes(self.model, shape, where)
        k = self.classes[shape]
        y_loss, y_idx = _targets(batch[1], len(xb), k, self.loss_name, where)
        w = None if len(batch) == 2 or batch[2] is None else _sample_weights(batch[2], len(xb), where)
        if self.class_weight is not None:
            if self.class_table is None or len(self.class_table) != k:
                self.class_table = _class_weights(self.class_weight, k, self.what)
            w = self.class_table[y_idx] if w is None else w * self.class_table[y_idx]
        return xb, y_loss, y_idx, w


@dataclass
class _Data:
    """One source of batches for a fit or an evaluation. ``epoch()`` yields (x (B, C, H, W), y for
    the loss, class indices (B,), sample weights (B,) or None) for one pass."""
    epoch: Callable[[], Iterator]
    steps: int | None                  # batches per pass, when known
    samples: int | None                # samples per pass, when known
    rng: np.random.Generator | None    # the generator that shuffles them, when known


def _array_data(x, y_loss, y_idx, w, batch_size: int, *, shuffle=False, rng=None) -> _Data:
    """Arrays cut into batches: in order, or in a new permutation drawn from ``rng`` every pass."""
    n = len(x)

    def epoch():
        if not shuffle:
            for start in range(0, n, batch_size):
                s = slice(start, start + batch_size)
                yield x[s], y_loss[s], y_idx[s], None if w is None else w[s]
            return
        order = rng.permutation(n)                                         # (N,)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]                          # (B,)
            yield x[idx], y_loss[idx], y_idx[idx], None if w is None else w[idx]

    return _Data(epoch, math.ceil(n / batch_size), n, rng if shuffle else None)


def _iterable_data(batches, reader: _BatchReader) -> _Data:
    """The user's iterable, iterated afresh for every pass."""
    def epoch():
        for i, batch in enumerate(batches):
            yield reader(batch, i)

    try:
        steps = len(batches)
    except TypeError:                  # e.g. a generator
        steps = None
    samples = getattr(batches, "num_samples", None)
    rng = getattr(batches, "rng", None)
    return _Data(epoch, steps, samples if isinstance(samples, numbers.Integral) else None,
                 rng if isinstance(rng, np.random.Generator) else None)


def _eval_data(model, c: Compiled | None, data, y, sample_weight, batch_size: int, what: str) -> _Data:
    """Arrays ``(data, y[, sample_weight])`` or an iterable of batches, for evaluation (in order)."""
    loss_name = None if c is None else c.loss_name
    if y is None:
        if not _is_batches(data):
            raise TypeError(f"{what}: y is missing: pass labels y with an array x, or an iterable of "
                            f"(x, y) batches")
        if sample_weight is not None:
            raise ValueError(f"{what}: sample_weight applies to arrays; batches carry their own as "
                             f"(x, y, sample_weight) triples")
        return _iterable_data(data, _BatchReader(model, loss_name, what))
    x = _check_x(model, data, what)
    y_loss, y_idx = _targets(y, len(x), _num_classes(model, x.shape[1:], what), loss_name, what)
    w = None if sample_weight is None else _sample_weights(sample_weight, len(x), what)
    return _Data(_array_data(x, y_loss, y_idx, w, batch_size).epoch, math.ceil(len(x) / batch_size), len(x), None)


def _eval_mode(model):
    """Switch to eval mode; return the previous mode to restore."""
    was = model.training
    model.eval()
    return was


def _run_evaluation(model, data: _Data, loss_fn: SoftmaxCrossEntropy, what: str, tta: str = "none") -> Evaluation:
    """THE evaluation: every batch in eval mode (the mode is restored), loss weighted by batch size.
    tta: a level of ``tinycnn.tta``; the loss and probabilities are those of the averaged logits."""
    was = _eval_mode(model)
    try:
        loss_sum, labels, probs = 0.0, [], []
        for xb, y_loss, y_idx, w in data.epoch():
            logits = tta_logits(lambda v: _forward_logits(model, v), xb, tta)  # (B, K)
            loss_sum += _batch_loss(loss_fn, logits, y_loss, w) * len(y_idx)
            labels.append(y_idx)
            probs.append(_softmax(logits))
    finally:
        model.train(was)
    if not labels:
        raise ValueError(f"{what}: the batches are empty (a generator already used up?); nothing to evaluate")
    labels = np.concatenate(labels)
    return Evaluation(loss_sum / len(labels), labels, np.concatenate(probs))


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
        for name, value in _metric_values(self.metrics, labels, probs).items():
            self.sums[name] += value * b
        self.labels.append(labels)
        self.probs.append(probs)

    def running(self) -> dict:
        return {"loss": self.loss_sum / self.n, **{k: v / self.n for k, v in self.sums.items()}}

    def result(self) -> dict:
        """Loss: the batch-weighted mean; metrics: computed once on all the epoch's predictions."""
        labels, probs = np.concatenate(self.labels), np.concatenate(self.probs)
        return {"loss": self.loss_sum / self.n, **_metric_values(self.metrics, labels, probs)}


# -- fit / evaluate / predict ----------------------------------------------------------------------

def _train_data(model, c: Compiled, x, y, *, batch_size, validation_split, validation_data, shuffle,
                class_weight, sample_weight, gen, what: str):
    """(training _Data, validation _Data or None) from fit's arguments; every check before any epoch."""
    if y is None:                                                      # an iterable of batches
        if not _is_batches(x):
            raise TypeError(f"{what}: y is missing: pass labels y with an array x, or an iterable of "
                            f"(x, y) batches such as a tinycnn.data.Batches")
        for name, value, default in (("batch_size", batch_size, None), ("validation_split", validation_split, 0.0),
                                     ("sample_weight", sample_weight, None)):
            if value != default:
                raise ValueError(f"{what}: {name}={value!r} applies to arrays; an iterable of batches brings "
                                 f"its own batches" + (" (yield (x, y, sample_weight) triples for weights)"
                                                       if name == "sample_weight" else ""))
        train = _iterable_data(x, _BatchReader(model, c.loss_name, what, class_weight))
        val_batch_size = DEFAULT_BATCH_SIZE
    else:
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else _positive(batch_size, "batch_size", what)
        x = _check_x(model, x, what)
        y = np.asarray(y)
        if y.shape[:1] != x.shape[:1]:                 # before any split, which would hide it
            raise ValueError(f"{what}: x holds {len(x)} samples but y has shape {y.shape}")
        w = None if sample_weight is None else _sample_weights(sample_weight, len(x), what)
        if validation_data is None and validation_split:
            if not 0.0 <= validation_split < 1.0:
                raise ValueError(f"{what}: validation_split must lie in [0, 1), got {validation_split}")
            n_train = math.floor(len(x) * (1.0 - validation_split))      # Keras' split point
            if n_train < 1 or n_train == len(x):
                raise ValueError(f"{what}: validation_split={validation_split} of {len(x)} samples leaves "
                                 f"{n_train} for training and {len(x) - n_train} for validation; both must be >= 1")
            validation_data = (x[n_train:], y[n_train:]) + (() if w is None else (w[n_train:],))
            x, y, w = x[:n_train], y[:n_train], None if w is None else w[:n_train]
        elif not 0.0 <= validation_split < 1.0:
            raise ValueError(f"{what}: validation_split must lie in [0, 1), got {validation_split}")
        k = _num_classes(model, x.shape[1:], what)
        y_loss, y_idx = _targets(y, len(x), k, c.loss_name, what)
        if class_weight is not None:
            table = _class_weights(class_weight, k, what)[y_idx]
            w = table if w is None else w * table
        train = _array_data(x, y_loss, y_idx, w, batch_size, shuffle=shuffle, rng=gen)
        val_batch_size = batch_size
    val = None
    if validation_data is not None:
        vwhat = f"{what} (validation_data)"
        if isinstance(validation_data, tuple) and len(validation_data) in (2, 3):
            val = _eval_data(model, c, validation_data[0], validation_data[1],
                             validation_data[2] if len(validation_data) == 3 else None, val_batch_size, vwhat)
        elif _is_batches(validation_data):
            val = _eval_data(model, c, validation_data, None, None, val_batch_size, vwhat)
        else:
            raise TypeError(f"{vwhat}: expected a tuple (x_val, y_val[, sample_weight]) or an iterable of "
                            f"(x, y) batches, got {type(validation_data).__name__}")
    return train, val


def fit(model, x, y=None, *, epochs=1, batch_size=None, validation_split=0.0, validation_data=None,
        shuffle=True, class_weight: dict | None = None, sample_weight=None, initial_epoch: int = 0,
        callbacks=None, verbose=1, rng=None, progress_file=None) -> History:
    """Train ``model`` (compiled); return a ``History`` of the epochs trained.

    x, y: float arrays x (N, C, H, W) and labels y, batched by ``batch_size`` (default 32) and
    shuffled every epoch when ``shuffle``; or y None and x an iterable of (x, y) / (x, y, weight)
    batches, iterated once per epoch (see the module docstring).
    validation_data: (x_val, y_val), (x_val, y_val, sample_weight) or an iterable of batches.
    class_weight, sample_weight, initial_epoch: Keras' (module docstring). Trains epochs
    ``initial_epoch`` .. ``epochs - 1`` (0-based), as Keras counts them.
    rng: a ``np.random.Generator`` (or an int seed) for shuffling arrays; default the compiled one.
    Raises ``NonFiniteLossError`` when a batch's loss is NaN or infinite (before its update).
    A callback that sets ``model.stop_training = True`` ends training after the current batch (or
    epoch, from ``on_epoch_end``); the epoch's logs are still completed and recorded.
    """
    what = "fit"
    c = _compiled(model, what)
    epochs = _positive(epochs, "epochs", what)
    if not isinstance(initial_epoch, numbers.Integral) or isinstance(initial_epoch, bool) \
            or not 0 <= initial_epoch < epochs:
        raise ValueError(f"{what}: initial_epoch must be an integer in [0, epochs) = [0, {epochs}), got "
                         f"{initial_epoch!r} (epochs is the index of the epoch to stop before, as in Keras)")
    gen = _generator(rng, c)
    train, val = _train_data(model, c, x, y, batch_size=batch_size, validation_split=validation_split,
                             validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                             sample_weight=sample_weight, gen=gen, what=what)
    steps = train.steps
    callbacks = list(callbacks or [])
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params({"epochs": epochs, "initial_epoch": int(initial_epoch), "steps": steps,
                       "samples": train.samples, "rng": train.rng,
                       "batch_size": (batch_size or DEFAULT_BATCH_SIZE) if y is not None else None})
    history = History()
    if steps is None and verbose == 1:            # no length to draw a bar against: one line per epoch
        verbose = 2
    progress = Progress(verbose, epochs, train.samples or 0, steps or 0, file=progress_file)
    model.stop_training = False
    _call(callbacks, "on_train_begin", {})
    global_step = 0
    try:
        for epoch in range(int(initial_epoch), epochs):
            model.train()
            _call(callbacks, "on_epoch_begin", epoch, {})
            lr = float(c.optimizer.lr)
            meter = _EpochMeter(c.metrics)
            progress.start_epoch(epoch)
            for step, (xb, y_loss, y_idx, w) in enumerate(train.epoch()):
                _call(callbacks, "on_train_batch_begin", step, {})
                global_step += 1
                c.optimizer.zero_grad()
                buffers = _snapshot_buffers(model.layers)
                logits = _forward_logits(model, xb)                                # (B, K)
                loss = _batch_loss(c.loss_fn, logits, y_loss, w)
                if not math.isfinite(loss):
                    _restore_buffers(buffers)
                    raise NonFiniteLossError(epoch + 1, epochs, step + 1, "?" if steps is None else steps,
                                             global_step, loss, float(c.optimizer.lr))
                _backward_logits(model, _batch_grad(c.loss_fn, w))
                c.optimizer.step()
                meter.add(loss, y_idx, logits)
                running = meter.running()
                progress.update(len(y_idx), running)
                _call(callbacks, "on_train_batch_end", step, running)
                if model.stop_training:
                    break
            if meter.n == 0:
                raise ValueError(f"{what}: the training batches gave no batch in epoch {epoch + 1}; an iterable "
                                 f"is iterated once per epoch, and a generator is used up after one pass: pass "
                                 f"a re-iterable (a list, a tinycnn.data.Batches)")
            logs = meter.result()
            if val is not None:
                evaluation = _run_evaluation(model, val, c.loss_fn, f"{what} (validation_data)")
                logs.update({f"val_{k}": v for k, v in _evaluation_dict(evaluation, c).items()})
            logs["lr"] = lr
            progress.end_epoch(epoch, logs)
            _call(callbacks, "on_epoch_end", epoch, logs)
            history.append(epoch, logs)
            if model.stop_training:
                break
    finally:
        progress.close()
    _call(callbacks, "on_train_end", {})
    return history


def _evaluation_dict(evaluation: Evaluation, c: Compiled) -> dict:
    return {"loss": evaluation.loss, **_metric_values(c.metrics, evaluation.labels, evaluation.probs)}


def evaluate_batches(model, batches, loss_fn: SoftmaxCrossEntropy | None = None, *,
                     tta: str | None = None) -> Evaluation:
    """Loss, labels and probabilities of ``model`` (compiled or not) over an iterable of ``(x, y)``
    batches (e.g. a ``tinycnn.data.Batches``), in eval mode; the mode is restored. Integer labels are
    class indices, float (B, K) labels probabilities. ``evaluate`` and ``fit``'s validation use the
    same code. tta: None / "none", "flip" or "flip-translate": test-time augmentation, the logits
    averaged over transformed copies of each batch (``tinycnn.tta``)."""
    tta = check_tta(tta, "evaluate")
    data = _iterable_data(batches, _BatchReader(model, None, "evaluate"))
    return _run_evaluation(model, data, loss_fn or SoftmaxCrossEntropy(), "evaluate", tta)


def evaluate(model, x, y=None, *, batch_size=None, verbose=0, return_dict=False, sample_weight=None,
             tta: str | None = None):
    """Loss and compiled metrics on arrays ``(x, y)`` (batches of ``batch_size``, default 32) or on an
    iterable of batches ``x`` (y None), in eval mode.

    Keras's convention: the loss (a float) when no metrics were compiled, else the list
    ``[loss, metric1, ...]`` in compile order; ``return_dict=True`` gives ``{"loss": ..., "accuracy": ...}``.
    tta: None / "none", "flip" (the mean of the logits of x and its mirror image) or "flip-translate"
    (six views: also translated by one pixel both ways with reflection padding); the loss and the
    metrics are those of softmax(averaged logits). See ``tinycnn.tta``.
    """
    what = "evaluate"
    c = _compiled(model, what)
    tta = check_tta(tta, what)
    if batch_size is not None and y is None:
        raise ValueError(f"{what}: batch_size={batch_size!r} applies to arrays; an iterable of batches brings "
                         f"its own batches")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else _positive(batch_size, "batch_size", what)
    data = _eval_data(model, c, x, y, sample_weight, batch_size, what)
    evaluation = _run_evaluation(model, data, c.loss_fn, what, tta)
    result = _evaluation_dict(evaluation, c)
    if verbose:
        from .progress import format_logs
        print(f"evaluate: {len(evaluation.labels)} samples - {format_logs(result)}")
    if return_dict:
        return result
    values = list(result.values())                       # "loss" first, then the metrics in order
    return values[0] if len(values) == 1 else values


def predict(model, x, *, batch_size=DEFAULT_BATCH_SIZE, tta: str | None = None) -> np.ndarray:
    """Class probabilities (N, K), in eval mode. Softmax is applied once: by the model's trailing
    Softmax layer if it has one, else here. Needs no compile. tta ("flip", "flip-translate"):
    softmax of the logits averaged over the views of ``tinycnn.tta`` (a trailing Softmax is then
    applied to the average, not to each view)."""
    x = _check_x(model, x, "predict")
    batch_size = _positive(batch_size, "batch_size", "predict")
    tta = check_tta(tta, "predict")
    was = _eval_mode(model)
    try:
        if tta == "none":
            outs = [model.forward(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
        else:
            outs = [tta_logits(lambda v: _forward_logits(model, v), x[start:start + batch_size], tta)
                    for start in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    out = np.concatenate(outs)
    if out.ndim != 2:
        raise ValueError(f"predict: the model's output has per-sample shape {out.shape[1:]}; a classifier "
                         f"must end in (K,)")
    return out if (_fused(model) and tta == "none") else _softmax(out)
