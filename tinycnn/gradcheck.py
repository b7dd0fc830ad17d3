"""Numerical gradient checks a learner can run on any layer.

The idea: pick a random upstream gradient ``u`` (never all ones: ones hide a transposed or permuted
gradient) and the scalar ``L(x) = sum(layer(x) * u)``. Then ``dL/dx`` is exactly what
``layer.backward(u)`` must return, and ``dL/dw`` what it must write into each ``parameter.grad``.
Central finite differences approximate each of those derivatives one element at a time::

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2h)      error O(h^2) + O(eps / h)

In float64 with h = 1e-6 both error terms are around 1e-10, so a correct backward pass agrees to
about that; a wrong one is off by order 1. In float32 (eps ~ 1e-7) the same check is hopeless, which
is why gradient checks run in float64. Near a kink (ReLU at 0, a max-pool tie) the function is not
differentiable and the two sides of the difference see different slopes: keep inputs away from kinks.

Relative error here is norm-wise: ``||analytic - numeric|| / max(||analytic||, ||numeric||)``, which
stays meaningful when single entries are near zero. A NaN or inf anywhere is NOT OK.

Resolution: each evaluation of L is rounded by about eps * (size of its intermediate values), so
the difference quotient carries an error of about eps * |intermediates| / h ~ 1e-10 whatever the
true derivative is. Where the derivative itself is that small (a saturated sigmoid, |x| > 10; a
softmax that is already confidently right) a correct layer can show NOT OK: check on moderate inputs.

Inputs away from kinks: ``away_from_zero`` (for ReLU) and ``distinct_values`` (for max pooling: every
pair of values differs by a spacing much larger than h, so no perturbation can change a winner).

Try it::

    import numpy as np, tinycnn as tc
    from tinycnn.gradcheck import check_layer
    rng = np.random.default_rng(0)
    layer = tc.Conv2D(2, 3, (3, 2), stride=2, padding=1, dtype=np.float64, rng=rng)
    print(check_layer(layer, rng.standard_normal((2, 2, 5, 6)), rng=rng, adjoint=True))
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._typing import Shape

if TYPE_CHECKING:
    from .layers import Layer
    from .losses import SoftmaxCrossEntropy


@dataclass
class GradRow:
    tensor: str               # e.g. "grad x", "grad weight"
    shape: tuple
    max_abs_diff: float
    rel_error: float
    worst_index: tuple        # where |analytic - numeric| is largest
    ok: bool


@dataclass
class GradcheckReport:
    title: str
    tol: float
    rows: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def table(self) -> str:
        tw = max([16] + [len(r.tensor) + 2 for r in self.rows])     # long names: "grad block.0.weight"
        lines = [f"gradcheck {self.title}   (OK when relative error < {self.tol:.0e})",
                 f"  {'tensor':<{tw}}{'shape':<20}{'max|diff|':>12}{'rel. error':>12}  {'worst at':<18}status"]
        for r in self.rows:
            lines.append(f"  {r.tensor:<{tw}}{str(r.shape):<20}{r.max_abs_diff:>12.2e}{r.rel_error:>12.2e}  "
                         f"{str(r.worst_index):<18}{'OK' if r.ok else 'NOT OK'}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored exactly afterwards (indexing
    element by element, so this also works when ``x`` is a non-contiguous view).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray, tol: float) -> GradRow:
    """One table row: how far ``analytic`` is from ``numeric``."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        return GradRow(name, analytic.shape, np.inf, np.inf, (), False)
    diff = np.abs(analytic - numeric)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    norms = (float(np.linalg.norm(analytic)), float(np.linalg.norm(numeric)))
    if not all(np.isfinite(norms)):
        rel = float("nan")                               # a NaN or inf gradient is never OK
    else:
        scale = max(norms)
        rel = float(np.linalg.norm(analytic - numeric) / scale) if scale > 0 else 0.0
    max_abs = float(np.max(diff)) if diff.size else 0.0  # np.max, not argmax: NaN shows as NaN
    ok = bool(np.isfinite(rel) and rel < tol)
    return GradRow(name, analytic.shape, max_abs, rel, tuple(int(i) for i in worst), ok)


def _require_float64(layer, x):
    bad = [name for name, p in layer.named_parameters() if p.data.dtype != np.float64]
    if x.dtype != np.float64 or bad:
        raise TypeError(
            f"gradcheck {layer!r}: finite differences need float64 (float32 rounding, ~1e-7, swamps "
            f"the check); build the layer with dtype=np.float64 and pass a float64 input "
            f"(input dtype {x.dtype}, float32 parameters: {bad or 'none'})")


def check_layer(layer: Layer, x: np.ndarray, *, rng: np.random.Generator, h: float = 1e-6, tol: float = 1e-7,
                before_forward: Callable[[], object] | None = None, adjoint: bool = False,
                verbose: bool = False) -> GradcheckReport:
    """Check ``layer.backward`` against central differences, for the input and every parameter.

    ``x``: a float64 input the layer accepts. ``rng``: a ``np.random.Generator`` for the random
    upstream gradient. ``before_forward``: optional callable run before every forward (e.g. to reset
    a dropout layer's random generator so every evaluation uses the same mask). ``adjoint=True`` adds
    one dot-product row per tensor (``adjoint x``, ``adjoint weight``, ...; see ``adjoint_check``).
    """
    x = np.asarray(x)
    _require_float64(layer, x)                           # before any cast: a float32 input must be refused
    x = np.array(x, copy=True)
    prep = before_forward or (lambda: None)

    prep()
    y = layer.forward(x)
    u = rng.standard_normal(y.shape)                     # random upstream gradient, shape of y
    grad_x = layer.backward(u)
    params = dict(layer.named_parameters())
    analytic = {"x": np.array(grad_x, copy=True)}
    for name, p in params.items():
        analytic[name] = np.array(p.grad, copy=True)

    def objective():
        prep()
        return float(np.sum(layer.forward(x) * u))

    report = GradcheckReport(f"{layer!r}  input {x.shape} float64", tol)
    report.rows.append(compare("grad x", analytic["x"], numerical_gradient(objective, x, h), tol))
    for name, p in params.items():
        report.rows.append(compare(f"grad {name}", analytic[name], numerical_gradient(objective, p.data, h), tol))
    if adjoint:
        for wrt in ["x", *params]:
            lhs, rhs, rel = adjoint_check(layer, x, rng=rng, h=h, before_forward=before_forward, wrt=wrt)
            ok = bool(np.isfinite(rel) and rel < tol)
            report.rows.append(GradRow(f"adjoint {wrt}", (), abs(lhs - rhs), rel, (), ok))
    prep()
    layer.forward(x)                                     # leave the layer as a plain forward(x) would
    if verbose:
        print(report.table())
    return report


def adjoint_check(layer: Layer, x: np.ndarray, *, rng: np.random.Generator, h: float = 1e-6,
                  before_forward: Callable[[], object] | None = None, wrt: str = "x") -> tuple[float, float, float]:
    """The dot-product test <J v, u> = <v, J^T u> at the point ``x``, with random ``u`` and ``v``.

    ``wrt``: ``"x"`` (J = dy/dx, J^T u = ``layer.backward(u)``) or a parameter name such as
    ``"weight"`` (J = dy/dweight, J^T u = the ``.grad`` that backward writes). ``J v`` is a central
    directional difference of the forward pass. Returns ``(lhs, rhs, relative_difference)``.

    The difference is relative to the Cauchy-Schwarz scale max(||Jv|| ||u||, ||v|| ||J^T u||), which
    bounds both sides: unlike max(|lhs|, |rhs|) it does not blow up when a random pair happens to
    give a dot product near 0. A wrong J^T u still shows: random vectors make the error about
    1/sqrt(size) of that scale, orders of magnitude above the ~1e-10 of a correct float64 layer.
    """
    x = np.asarray(x)
    _require_float64(layer, x)                           # before any cast: a float32 input must be refused
    x = np.array(x, copy=True)
    prep = before_forward or (lambda: None)
    params = dict(layer.named_parameters())
    if wrt != "x" and wrt not in params:
        raise ValueError(f"adjoint_check {layer!r}: wrt={wrt!r} is neither 'x' nor one of its "
                         f"parameters {list(params)}")
    target = x if wrt == "x" else params[wrt].data       # the tensor J differentiates with respect to
    v = rng.standard_normal(target.shape)
    prep()
    y = layer.forward(x)
    u = rng.standard_normal(y.shape)
    grad_x = layer.backward(u)
    jtu = np.array(grad_x if wrt == "x" else params[wrt].grad, dtype=np.float64)   # J^T u
    original = target.copy()
    target += h * v
    prep()
    y_plus = np.array(layer.forward(x), dtype=np.float64)    # a copy: y may be a view of x (Flatten)
    target[...] = original - h * v
    prep()
    y_minus = np.array(layer.forward(x), dtype=np.float64)
    target[...] = original                               # restore exactly
    jv = (y_plus - y_minus) / (2 * h)                    # J v, shape of y
    lhs = float(np.sum(jv * u))
    rhs = float(np.sum(v * jtu))
    scale = max(np.linalg.norm(jv) * np.linalg.norm(u), np.linalg.norm(v) * np.linalg.norm(jtu))
    rel = abs(lhs - rhs) / scale if scale > 0 else 0.0
    return lhs, rhs, float(rel)


def check_loss(loss: SoftmaxCrossEntropy, logits: np.ndarray, labels: np.ndarray, *, h: float = 1e-6, tol: float = 1e-7,
               verbose: bool = False) -> GradcheckReport:
    """Check a loss's ``backward()`` (gradient of the mean loss w.r.t. the logits) by central differences."""
    logits = np.array(logits, dtype=np.float64, copy=True)
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits, h)
    report = GradcheckReport(f"{loss!r}  logits {logits.shape} float64", tol)
    report.rows.append(compare("grad logits", analytic, numeric, tol))
    if verbose:
        print(report.table())
    return report


# ----------------------------------------------------------------------------------------------
# Inputs kept away from kinks
# ----------------------------------------------------------------------------------------------

def away_from_zero(shape: Shape, rng: np.random.Generator, *, margin: float = 1e-2, scale: float = 2.0) -> np.ndarray:
    """float64 values with |value| in [margin, margin + scale), random signs: ReLU's kink at 0 is
    never within reach of a finite-difference step h << margin."""
    magnitude = margin + scale * rng.random(shape)
    return np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def distinct_values(shape: Shape, rng: np.random.Generator, *, spacing: float = 1e-2) -> np.ndarray:
    """A random permutation of the grid ``spacing * (k - size/2)``: every two values differ by at least
    ``spacing``, so a max-pool window never holds a tie, and a step h << spacing never changes a winner."""
    size = int(np.prod(shape))
    return (spacing * (rng.permutation(size) - size / 2)).reshape(shape)
