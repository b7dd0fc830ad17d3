"""Softmax cross-entropy on logits, loss and gradient from one computation (torch.nn.CrossEntropyLoss).

Shapes: logits z (N, K) or (N, K, d1, ...) (K classes on axis 1); targets either integer class
indices y (N,) or (N, d1, ...), or probabilities T with the logits' shape. Each of the
M = N * d1 * ... positions is one "element": a row z_n of K logits.

    log p = z - logsumexp(z)      over K; stable: the row max is subtracted before exp (no overflow)

Every case is one formula with a per-element target vector t (K,):

    class index y, class weights w (ones if none), label smoothing e:
        q = (1 - e) onehot(y) + e / K           t = w * q      (t = 0 when y == ignore_index)
        loss_n = -sum_k t_k log p_k = (1 - e) w_y (-log p_y) + (e / K) sum_k w_k (-log p_k)
    probabilities T:
        t = w * ((1 - e) T + e / K)             loss_n = -sum_k t_k log p_k

Reductions (torch's): 'none' -> the losses (N, d1, ...); 'sum' -> sum_n loss_n; 'mean' -> sum_n
loss_n / D with D = sum of w_y over the elements not ignored (class indices: the *target classes'*
weights; smoothing does not change D; without weights D counts the elements not ignored), or
D = M (probabilities: weights do not enter D). An empty batch, or one whose every target is
ignored, has D = 0 and a mean of NaN, as in torch; its gradient is all zeros (no element counts).

Gradient: d(-log p_k)/dz_j = p_j - [j = k], so for each element

    dloss_n/dz = p * sum_k t_k - t          (= p - t when t sums to 1: plain labels)

times the upstream gradient (a scalar, over D for 'mean'; per element for 'none').
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

REDUCTIONS = ("mean", "sum", "none")


@dataclass
class SoftmaxCECache:
    probs: np.ndarray                 # (M, K) softmax of the logits, class axis last
    targets: np.ndarray               # (M, K) the target vectors t (weighted, smoothed; 0 rows ignored)
    ignored: np.ndarray | None        # (M,) bool, True where the label is ignore_index; None: none can be
    denominator: float                # D for 'mean' (see the module docstring), 1 otherwise
    logits_shape: tuple               # (N, K, d1, ...)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z: (N, K) -> log softmax along K, stable for any finite z."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy:
    """Softmax cross-entropy, ``torch.nn.CrossEntropyLoss``'s arguments and values.

    ``forward(logits, labels)``: logits (N, K) or (N, K, d1, ...); labels int (N,) / (N, d1, ...)
    class indices or float probabilities of the logits' shape. Returns a float for 'mean' (the
    default) and 'sum', the per-element losses (N, d1, ...) for 'none'.

    ``backward(grad=None)``: the gradient with respect to the logits, shape of the logits. For
    'mean' and 'sum', ``grad`` is the upstream scalar (default 1). For 'none', ``grad`` is the
    upstream gradient of the per-element losses, shape (N, d1, ...) (default all ones: the
    gradient of ``losses.sum()``); a scalar is taken for every element.

    weight: (K,) finite class weights >= 0, or None. ignore_index: an integer label to skip
    (class indices only; torch refuses an ignore_index >= 0 with probability targets, and so does
    this). label_smoothing: in [0, 1]. 1-D (unbatched) logits are not accepted: pass (1, K).
    """

    def __init__(self, weight: ArrayLike | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        self._cache: SoftmaxCECache | None = None
        name = "SoftmaxCrossEntropy"
        if weight is not None:
            w = np.asarray(weight)
            if w.dtype.kind not in "fiu" or w.ndim != 1:
                raise TypeError(f"{name}: weight must be a 1-D array of K class weights (numbers), got "
                                f"{'dtype ' + str(w.dtype) if w.dtype.kind not in 'fiu' else 'shape ' + str(w.shape)}")
            if not np.isfinite(w).all() or (w < 0).any():
                i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
                raise ValueError(f"{name}: class weights must be finite and >= 0, got weight[{i}] = {w[i]!r}")
            weight = np.array(w, dtype=np.float64)
        self.weight: np.ndarray | None = weight
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(f"{name}: ignore_index must be an integer, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        if reduction not in REDUCTIONS:
            raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        if (isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing, numbers.Real)):
            raise TypeError(f"{name}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        if not (math.isfinite(label_smoothing) and 0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"{name}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __repr__(self):
        args = []
        if self.weight is not None:
            args.append("weight=[" + ", ".join(f"{x:g}" for x in self.weight) + "]")
        if self.ignore_index != -100:
            args.append(f"ignore_index={self.ignore_index}")
        if self.reduction != "mean":
            args.append(f"reduction={self.reduction!r}")
        if self.label_smoothing:
            args.append(f"label_smoothing={self.label_smoothing:g}")
        return f"SoftmaxCrossEntropy({', '.join(args)})"

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float | np.ndarray:
        logits = np.asarray(logits)
        if logits.dtype.kind != "f":
            raise TypeError(f"{self!r}: logits dtype is {logits.dtype}, but a floating array is needed")
        if logits.ndim < 2:
            raise ValueError(f"{self!r}: expected logits of shape (N, K), got shape {logits.shape} "
                             f"((N, K, d1, ...) is accepted too, classes on axis 1)")
        k = logits.shape[1]
        if k == 0:
            raise ValueError(f"{self!r}: logits of shape {logits.shape} have no classes (K = 0)")
        if self.weight is not None and self.weight.shape[0] != k:
            raise ValueError(f"{self!r}: {self.weight.shape[0]} class weights but the logits have K = {k} "
                             f"classes (shape {logits.shape})")
        dtype = logits.dtype
        # rows z_n: (M, K), class axis last, C order whatever the caller's layout (the row sums'
        # summation order depends on it)
        z = np.ascontiguousarray(np.moveaxis(logits, 1, -1).reshape(-1, k))
        m = z.shape[0]
        element_shape = logits.shape[:1] + logits.shape[2:]           # (N, d1, ...)
        labels = np.asarray(labels)
        logp = log_softmax(z)                                            # (M, K)
        w = None if self.weight is None else self.weight.astype(dtype)  # (K,)
        e = self.label_smoothing
        if labels.dtype.kind in "iu":
            y = self._check_indices(labels, element_shape, k).reshape(-1)   # (M,)
            ignored = y == self.ignore_index
            y_safe = np.where(ignored, 0, y)
            rows = np.arange(m)
            w_y = np.ones(m, dtype=dtype) if w is None else w[y_safe]        # (M,)
            w_y[ignored] = 0
            # Pick the true class's log-probability (as torch's nll_loss does) rather than summing
            # one-hot * logp: a -inf logit of another class would give 0 * -inf = NaN there.
            nll = np.where(ignored, 0, -logp[rows, y_safe] * w_y)           # (M,)
            targets = np.zeros((m, k), dtype=dtype)
            targets[rows, y_safe] = w_y * (1 - e) if e else w_y
            if e:
                wk = np.ones(k, dtype=dtype) if w is None else w
                smooth = np.where(ignored, 0, -(logp * wk).sum(axis=1))     # (M,) sum_k w_k (-log p_k)
                targets += np.where(ignored[:, None], 0, wk * (e / k)).astype(dtype)
            denominator = w_y.sum() if w is not None else dtype.type(m - int(ignored.sum()))
            if self.reduction == "none":
                loss = (1 - e) * nll + (e / k) * smooth if e else nll
                out = loss.reshape(element_shape)
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    d = denominator if self.reduction == "mean" else 1
                    out = nll.sum() / d
                    if e:
                        out = (1 - e) * out + (e / k) * (smooth.sum() / d)
                out = float(out)
            self._cache = SoftmaxCECache(probs=np.exp(logp), targets=targets, ignored=ignored,
                                         denominator=float(denominator), logits_shape=logits.shape)
            return out
        t = self._check_probabilities(labels, logits.shape, k)          # (M, K)
        if e:
            t = t * (1 - e) + e / k
        if w is not None:
            t = t * w
        t = np.ascontiguousarray(t, dtype=dtype)
        self._cache = SoftmaxCECache(probs=np.exp(logp), targets=t, ignored=None, denominator=float(m),
                                     logits_shape=logits.shape)
        if self.reduction == "none":
            return -(t * logp).sum(axis=1).reshape(element_shape)
        total = -(t * logp).sum()
        if self.reduction == "sum":
            return float(total)
        return float(total / m) if m else math.nan

    # -- backward --------------------------------------------------------------------------------

    def backward(self, grad: float | np.ndarray | None = None) -> np.ndarray:
        """Gradient of the loss with respect to the logits, the logits' shape.

        'mean' / 'sum': ``grad`` is the upstream scalar (None: 1). 'none': the upstream gradient of
        the per-element losses, shape (N, d1, ...), or a scalar for all (None: ones).
        """
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        c = self._cache
        p, t = c.probs, c.targets
        dtype = p.dtype
        shape = c.logits_shape
        element_shape = shape[:1] + shape[2:]
        if self.reduction == "none":
            if grad is None:
                g = np.ones((p.shape[0], 1), dtype=dtype)
            else:
                g = np.asarray(grad)
                if g.dtype.kind not in "fiu":
                    raise TypeError(f"{self!r}: backward got a grad of dtype {g.dtype}; a number or a float array "
                                    f"of shape {element_shape} is needed")
                if g.ndim == 0:
                    g = np.full((p.shape[0], 1), g, dtype=dtype)
                elif g.shape != element_shape:
                    raise ValueError(f"{self!r}: backward got grad of shape {g.shape}, but the losses have shape "
                                     f"{element_shape}")
                else:
                    g = np.ascontiguousarray(g, dtype=dtype).reshape(-1, 1)
            scale = g                                                     # (M, 1)
        else:
            if grad is None:
                grad = 1.0
            if isinstance(grad, np.ndarray) and grad.ndim == 0:
                grad = grad.item()
            if isinstance(grad, (bool, np.bool_)) or not isinstance(grad, numbers.Real):
                raise TypeError(f"{self!r}: backward takes the upstream gradient of the scalar loss (a number), "
                                f"got {type(grad).__name__}")
            if self.reduction == "mean":
                if self.weight is None and c.ignored is None:
                    scale = dtype.type(grad) / p.shape[0] if p.shape[0] else dtype.type(math.nan)
                else:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        scale = dtype.type(grad) / dtype.type(c.denominator)
            else:
                scale = dtype.type(grad)
        with np.errstate(invalid="ignore"):
            rows = (p * t.sum(axis=1, keepdims=True) - t) * scale           # (M, K)
        if c.ignored is not None and c.ignored.any():
            rows[c.ignored] = 0                                              # ignored elements: no gradient
        # back to (N, K, d1, ...): rows are (N, d1, ..., K)
        out = rows.reshape(element_shape + (shape[1],))
        return np.ascontiguousarray(np.moveaxis(out, -1, 1))

    # -- checks ----------------------------------------------------------------------------------

    def _check_indices(self, labels, element_shape, k):
        if labels.shape != element_shape:
            if len(element_shape) == 1:
                if labels.ndim != 1:
                    raise ValueError(f"{self!r}: integer labels must be 1-D (N,), got shape {labels.shape}")
                raise ValueError(f"{self!r}: logits hold {element_shape[0]} samples but labels hold {labels.shape[0]}")
            raise ValueError(f"{self!r}: integer labels must have shape {element_shape} (the logits' shape "
                             f"without the class axis 1), got {labels.shape}")
        bad = ((labels < 0) | (labels >= k)) & (labels != self.ignore_index)
        if bad.any():
            i = tuple(int(j) for j in np.unravel_index(int(np.flatnonzero(bad)[0]), labels.shape))
            where = i[0] if len(i) == 1 else i
            raise ValueError(f"{self!r}: label {int(labels[i])} at index {where} is out of range "
                             f"for {k} classes (valid: 0..{k - 1}"
                             + (f", or ignore_index={self.ignore_index})" if self.ignore_index != -100 else ")"))
        return labels

    def _check_probabilities(self, labels, shape, k):
        if labels.dtype.kind != "f":
            raise TypeError(f"{self!r}: labels must be integer class indices (N,) or float probabilities "
                            f"(N, K); got dtype {labels.dtype}")
        if labels.ndim == 1:
            raise TypeError(f"{self!r}: labels are 1-D {labels.dtype}; pass class indices as an integer "
                            f"array (e.g. labels.astype(np.int64)) or probabilities of shape (N, {k})")
        if labels.shape != shape:
            raise ValueError(f"{self!r}: probability labels must have the logits' shape {shape}, "
                             f"got {labels.shape}")
        if self.ignore_index >= 0:
            raise ValueError(f"{self!r}: ignore_index={self.ignore_index} applies to class indices only; "
                             f"probability targets cannot ignore a class (torch refuses this too)")
        if (labels < 0).any():                  # NaN targets propagate to a NaN loss, as in torch
            raise ValueError(f"{self!r}: probability labels must be >= 0")
        return np.moveaxis(labels, 1, -1).reshape(-1, k)
