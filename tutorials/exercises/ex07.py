"""Checks for the exercises of tutorial 7 (training deeper networks)."""
from __future__ import annotations

import numpy as np

from tinycnn.gradcheck import numerical_gradient

from . import exercise


def _relative_error(a, n):
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return np.linalg.norm(a - n) / max(np.linalg.norm(a), np.linalg.norm(n), 1e-300)


@exercise("7.1 (batch norm's backward pass)")
def check_batchnorm_backward(batchnorm_backward) -> list[str]:
    """batchnorm_backward(x, gamma, g, eps) -> (dx, dgamma, dbeta) for training-mode batch norm of x
    (N, F) over the batch: y = gamma * (x - mean) / sqrt(var + eps) + beta, var the biased variance."""
    rng = np.random.default_rng(11)
    problems = []
    for n, f in [(8, 3), (5, 1), (32, 6)]:
        x, gamma, beta = rng.standard_normal((n, f)) * 2 + 1, rng.standard_normal(f), rng.standard_normal(f)
        u, eps = rng.standard_normal((n, f)), 1e-5

        def loss(x=x, gamma=gamma, beta=beta, u=u, eps=eps):       # this iteration's arrays (perturbed in place)
            mean, var = x.mean(axis=0), x.var(axis=0)
            return float(np.sum((gamma * (x - mean) / np.sqrt(var + eps) + beta) * u))

        numeric = [numerical_gradient(loss, a) for a in (x, gamma, beta)]
        got = batchnorm_backward(x, gamma, u, eps)
        for name, a, num in zip(("dx", "dgamma", "dbeta"), got, numeric):
            err = _relative_error(a, num)
            if np.shape(a) != num.shape or err > 1e-7:
                problems.append(f"N={n}, F={f}: {name} relative error {err:.1e} against central differences")
    return problems


@exercise("7.2 (dropout's backward pass)")
def check_dropout_backward(dropout_backward) -> list[str]:
    """dropout_backward(g, keep, p) -> dL/dx for inverted dropout y = x * keep / (1 - p), keep a boolean
    mask (True: kept)."""
    rng = np.random.default_rng(12)
    problems = []
    for p in (0.1, 0.5, 0.9):
        x, g = rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
        keep = rng.random((4, 7)) >= p
        numeric = numerical_gradient(lambda x=x, keep=keep, p=p, g=g: float(np.sum(x * keep / (1 - p) * g)), x)
        got = np.asarray(dropout_backward(g, keep, p))
        if got.shape != x.shape or _relative_error(got, numeric) > 1e-7:
            problems.append(f"p={p}: your gradient differs from central differences")
    return problems


@exercise("7.3 (a residual block's backward pass)")
def check_residual_backward(residual_backward) -> list[str]:
    """residual_backward(x, w1, w2, g) -> (dx, dw1, dw2) for y = x + relu(x @ w1.T) @ w2.T with x (N, F),
    w1 (H, F), w2 (F, H): the fork's two gradients add."""
    rng = np.random.default_rng(13)
    problems = []
    for n, f, h in [(4, 3, 5), (2, 6, 2)]:
        w1, w2, u = rng.standard_normal((h, f)), rng.standard_normal((f, h)), rng.standard_normal((n, f))
        x = rng.standard_normal((n, f))
        while np.min(np.abs(x @ w1.T)) < 1e-3:               # keep every ReLU input away from its kink
            x = rng.standard_normal((n, f))

        def loss(x=x, w1=w1, w2=w2, u=u):                       # this iteration's arrays (perturbed in place)
            return float(np.sum((x + np.maximum(x @ w1.T, 0) @ w2.T) * u))

        numeric = [numerical_gradient(loss, a) for a in (x, w1, w2)]
        got = residual_backward(x, w1, w2, u)
        for name, a, num in zip(("dx", "dw1", "dw2"), got, numeric):
            err = _relative_error(a, num)
            if np.shape(a) != num.shape or err > 1e-7:
                problems.append(f"N={n}, F={f}, H={h}: {name} relative error {err:.1e} against central differences")
    return problems
