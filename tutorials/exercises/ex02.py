"""Checks for the exercises of tutorial 2 (backpropagation)."""
from __future__ import annotations

import numpy as np

from tinycnn.gradcheck import check_layer

from . import exercise


def _away_from(x, points, margin=0.01):
    """Push every entry of x at least ``margin`` away from each value in ``points`` (the kinks)."""
    for p in points:
        close = np.abs(x - p) < margin
        x = np.where(close, p + np.sign(x - p + 1e-300) * margin, x)
    return x


@exercise("2.1 (the backward pass of tanh)")
def check_tanh(TanhLayer) -> list[str]:
    """TanhLayer: a tc.Layer subclass with forward(x) = tanh(x) and backward(grad_y) = dL/dx."""
    rng = np.random.default_rng(2)
    problems = []
    layer = TanhLayer()
    x = rng.standard_normal((3, 4, 5)) * 2
    y = layer(x)
    if not np.allclose(y, np.tanh(x), rtol=0, atol=1e-15):
        problems.append("forward(x) is not tanh(x)")
    report = check_layer(TanhLayer(), x, rng=rng)
    if not report.ok:
        problems.append(f"gradient check failed: {report}")
    return problems


@exercise("2.2 (find the planted bug with a per-element check)")
def check_find_bug(find_bad_entries) -> list[str]:
    """find_bad_entries(analytic, numeric) -> boolean mask (same shape) of the entries whose per-element
    relative error exceeds 1e-6 (entries where both are below 1e-8 times the largest count as correct)."""
    rng = np.random.default_rng(3)
    problems = []
    for shape, bad in [((4, 5), [(1, 2)]), ((2, 3, 6, 6), [(0, 1, 2, 3), (1, 2, 5, 0)]), ((50,), [(7,)])]:
        numeric = rng.standard_normal(shape)
        analytic = numeric + rng.standard_normal(shape) * 1e-11 * np.abs(numeric)   # agree to rounding
        for i in bad:
            analytic[i] = -analytic[i] if abs(analytic[i]) > 0.1 else 1.0            # a planted bug
        tiny = rng.integers(0, numeric.size)
        numeric.flat[tiny], analytic.flat[tiny] = 1e-20, 3e-20                       # tiny entries: not a bug
        if tiny in [np.ravel_multi_index(i, shape) for i in bad]:
            continue
        expected = np.zeros(shape, dtype=bool)
        for i in bad:
            expected[i] = True
        got = np.asarray(find_bad_entries(analytic, numeric), dtype=bool)
        if got.shape != shape:
            problems.append(f"shape {shape}: your mask has shape {got.shape}")
        elif not np.array_equal(got, expected):
            problems.append(f"shape {shape}: you flag {[tuple(int(j) for j in i) for i in np.argwhere(got)]}, "
                            f"the planted bugs are at {bad}")
    return problems


@exercise("2.3 (the backward pass of LeakyReLU)")
def check_leaky_relu(LeakyReLULayer) -> list[str]:
    """LeakyReLULayer(slope): forward(x) = x where x > 0, slope * x elsewhere; backward(grad_y) = dL/dx,
    with the derivative at exactly 0 taken as ``slope`` (as PyTorch does)."""
    rng = np.random.default_rng(4)
    problems = []
    for slope in (0.01, 0.2):
        x = _away_from(rng.standard_normal((2, 3, 4, 4)), [0.0])
        layer = LeakyReLULayer(slope)
        if not np.array_equal(layer(x), np.where(x > 0, x, slope * x)):
            problems.append(f"slope {slope}: forward(x) is not x for x > 0 and slope * x otherwise")
        report = check_layer(LeakyReLULayer(slope), x, rng=rng)
        if not report.ok:
            problems.append(f"slope {slope}: gradient check failed: {report}")
        layer = LeakyReLULayer(slope)
        layer(np.array([[0.0, 1.0, -1.0]]))
        g = layer.backward(np.array([[1.0, 1.0, 1.0]]))
        if not np.allclose(g, [[slope, 1.0, slope]]):
            problems.append(f"slope {slope}: at x = [0, 1, -1] your gradient is {g.tolist()}, expected "
                            f"[[{slope}, 1.0, {slope}]]")
    return problems
