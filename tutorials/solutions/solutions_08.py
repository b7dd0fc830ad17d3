"""Reference solutions to the exercises of tutorial 8."""
import _run  # noqa: F401  (sys.path)

import numpy as np

from exercises import ex08


def whitening_filters(patches, eps):
    s = patches.T @ patches / len(patches)                    # (D, D) second moment
    lam, vec = np.linalg.eigh(s)                              # ascending
    lam, vec = lam[::-1], vec[:, ::-1]                        # largest first
    return (vec / np.sqrt(lam + eps)).T                       # row k = v_k / sqrt(lam_k + eps)


def alternating_flips(n, epochs, rng):
    first = rng.random(n) < 0.5                               # epoch 0: each image with probability 1/2
    return np.array([first ^ bool(e % 2) for e in range(epochs)])


def _shift(x, d):
    h, w = x.shape[-2:]
    p = abs(d)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    return padded[:, :, p + d:p + d + h, p + d:p + d + w]


def tta_six_views(logits_fn, x):
    total = 0.25 * logits_fn(x) + 0.25 * logits_fn(x[..., ::-1])
    for d in (-1, 1):
        v = _shift(x, d)
        total = total + 0.125 * logits_fn(v) + 0.125 * logits_fn(v[..., ::-1])
    return total


def _tta_zero_padding(logits_fn, x):                          # the typical mistake: a black border
    def shift(v, d):
        padded = np.pad(v, ((0, 0), (0, 0), (1, 1), (1, 1)))
        h, w = v.shape[-2:]
        return padded[:, :, 1 + d:1 + d + h, 1 + d:1 + d + w]
    total = 0.25 * logits_fn(x) + 0.25 * logits_fn(x[..., ::-1])
    for d in (-1, 1):
        v = shift(x, d)
        total = total + 0.125 * logits_fn(v) + 0.125 * logits_fn(v[..., ::-1])
    return total


SOLUTIONS = [(ex08.check_whitening_filters, whitening_filters), (ex08.check_alternating_flips, alternating_flips),
             (ex08.check_tta_six_views, tta_six_views)]
WRONG = [(ex08.check_whitening_filters,                       # eigh's ascending order kept
          lambda p, eps: (np.linalg.eigh(p.T @ p / len(p))[1] / np.sqrt(np.linalg.eigh(p.T @ p / len(p))[0] + eps)).T),
         (ex08.check_alternating_flips,                       # a fresh random flip every epoch
          lambda n, epochs, rng: rng.random((epochs, n)) < 0.5),
         (ex08.check_tta_six_views, _tta_zero_padding)]

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
