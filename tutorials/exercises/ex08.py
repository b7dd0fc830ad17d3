"""Checks for the exercises of tutorial 8 (the CIFAR-10 speedrun)."""
from __future__ import annotations

import numpy as np

from . import exercise


def _correlated_patches(rng, m: int, d: int) -> np.ndarray:
    """(m, d) patches with a spread of eigenvalues (as neighbouring pixels have), distinct ones."""
    mix = rng.standard_normal((d, d)) * np.logspace(0, -2, d)[None, :]     # columns of falling size
    return rng.standard_normal((m, d)) @ mix.T


@exercise("8.1 (whitening filters)")
def check_whitening_filters(whitening_filters) -> list[str]:
    """whitening_filters(patches (M, D), eps) -> (D, D), row k = v_k / sqrt(lam_k + eps), lam descending.

    The rows are then determined up to their signs (the eigenvalues here are distinct): F F^T must be
    diag(1 / (lam + eps)) and F S F^T diag(lam / (lam + eps)), with lam descending."""
    rng = np.random.default_rng(81)
    problems = []
    for m, d, eps in [(4000, 12, 5e-4), (600, 4, 1e-2), (2000, 27, 1e-3)]:
        p = _correlated_patches(rng, m, d)
        s = p.T @ p / m
        lam = np.sort(np.linalg.eigvalsh(s))[::-1]                          # descending
        f = np.asarray(whitening_filters(p.copy(), eps), dtype=np.float64)
        if f.shape != (d, d):
            problems.append(f"M={m}, D={d}: expected a ({d}, {d}) matrix, got shape {f.shape}")
            continue
        # eigh's accuracy: entries of S and F within a few D u of their norms; compare relative to 1
        tol = 100 * d * np.finfo(np.float64).eps * lam[0] / (lam[-1] + eps)
        out_moment = f @ s @ f.T
        want = np.diag(lam / (lam + eps))
        if np.abs(out_moment - want).max() > tol:
            problems.append(f"M={m}, D={d}, eps={eps}: the second moment of your filters' outputs F S F^T differs "
                            f"from diag(lam / (lam + eps)) (lam descending) by {np.abs(out_moment - want).max():.1e}; "
                            f"its diagonal is {np.round(np.diag(out_moment)[:4], 4).tolist()}..., expected "
                            f"{np.round(np.diag(want)[:4], 4).tolist()}...")
        gram = (f @ f.T) * (lam + eps)[:, None]                             # should be the identity
        if np.abs(gram - np.eye(d)).max() > tol:
            problems.append(f"M={m}, D={d}: F F^T is not diag(1 / (lam + eps)): the rows are not eigenvectors "
                            f"scaled by 1 / sqrt(lam + eps) (max deviation {np.abs(gram - np.eye(d)).max():.1e})")
    return problems


@exercise("8.2 (the alternating flip)")
def check_alternating_flips(alternating_flips) -> list[str]:
    """alternating_flips(n, epochs, rng) -> bool (epochs, n): epoch 0 random (p = 1/2, from rng), and every
    image mirrored in exactly one of any two consecutive epochs."""
    problems = []
    for n, epochs in [(20000, 8), (5000, 3)]:
        out = np.asarray(alternating_flips(n, epochs, np.random.default_rng(82)))
        if out.shape != (epochs, n) or out.dtype != np.bool_:
            problems.append(f"n={n}, epochs={epochs}: expected a bool array ({epochs}, {n}), got "
                            f"{out.dtype} {out.shape}")
            continue
        bad = np.flatnonzero((out[1:] == out[:-1]).any(axis=0))
        if bad.size:
            e = int(np.argmax(out[1:, bad[0]] == out[:-1, bad[0]]))
            problems.append(f"n={n}: image {bad[0]} is seen the same way in epochs {e} and {e + 1} "
                            f"({bad.size} images have such a pair)")
        share = out[0].mean()
        if abs(share - 0.5) > 5 * np.sqrt(0.25 / n):                   # 5 binomial standard errors
            problems.append(f"n={n}: {share:.1%} of the images are mirrored in epoch 0; expected about 50 %")
        again = np.asarray(alternating_flips(n, epochs, np.random.default_rng(82)))
        other = np.asarray(alternating_flips(n, epochs, np.random.default_rng(83)))
        if not np.array_equal(out, again):
            problems.append("the same rng seed gives different flips: draw them only from the rng passed in")
        elif np.array_equal(out, other):
            problems.append("different rng seeds give the same flips: epoch 0 must be drawn from the rng")
    return problems


def _reflect_shift(x: np.ndarray, d: int) -> np.ndarray:
    """x (B, C, H, W) shifted by d along both axes, out[..., r, s] = x[..., R(r + d), R(s + d)], reflected."""
    h, w = x.shape[-2:]
    p = abs(d)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    return padded[:, :, p + d:p + d + h, p + d:p + d + w]


@exercise("8.3 (test-time augmentation by hand)")
def check_tta_six_views(tta_six_views) -> list[str]:
    """tta_six_views(logits_fn, x) -> (B, K): 1/4 f(x) + 1/4 f(m(x)) + 1/8 f(t(x, d)) + 1/8 f(m(t(x, d)))
    for d = -1, +1 (t: shift with reflection padding, m: mirror). The logits here come from a fixed
    random linear map, which is neither mirror- nor shift-invariant, so every view counts."""
    rng = np.random.default_rng(84)
    problems = []
    for b, c, h, w, k in [(3, 3, 8, 8, 5), (2, 1, 5, 7, 4)]:
        x = rng.standard_normal((b, c, h, w))
        weights = rng.standard_normal((c * h * w, k))
        calls = []

        def logits_fn(v, weights=weights, calls=calls):
            v = np.asarray(v)
            calls.append(v.shape)
            return v.reshape(len(v), -1) @ weights

        expected = np.zeros((b, k))
        for weight, view in [(0.25, x), (0.25, x[..., ::-1])] + [
                (0.125, v) for d in (-1, 1) for v in (_reflect_shift(x, d), _reflect_shift(x, d)[..., ::-1])]:
            expected += weight * (view.reshape(b, -1) @ weights)
        got = np.asarray(tta_six_views(logits_fn, x.copy()), dtype=np.float64)
        if got.shape != (b, k):
            problems.append(f"x {x.shape}: expected logits ({b}, {k}), got shape {got.shape}")
            continue
        # 6 views of c*h*w-term products each: a few hundred roundings of float64
        tol = 4 * (6 + c * h * w) * np.finfo(np.float64).eps * np.abs(expected).max()
        err = np.abs(got - expected).max()
        if err > tol:
            problems.append(f"x {x.shape}: your average differs from the six-view average by {err:.2e} "
                            f"(padding must reflect about the edge pixel; weights 1/4, 1/4 and 1/8 x 4; "
                            f"logits, not probabilities, are averaged)")
        if len(calls) not in (1, 6):
            problems.append(f"x {x.shape}: logits_fn was called {len(calls)} times; one call per view (6) "
                            f"or one call on all views together is expected")
    return problems
