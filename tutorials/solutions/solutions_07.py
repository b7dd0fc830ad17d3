"""Reference solutions to the exercises of tutorial 7."""
import _run  # noqa: F401  (sys.path)

import numpy as np

from exercises import ex07


def batchnorm_backward(x, gamma, g, eps):
    n = x.shape[0]
    mean, var = x.mean(axis=0), x.var(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std                         # (N, F)
    dgamma, dbeta = np.sum(g * x_hat, axis=0), np.sum(g, axis=0)
    g_hat = g * gamma                                    # dL/dx_hat
    dx = inv_std / n * (n * g_hat - g_hat.sum(axis=0) - x_hat * np.sum(g_hat * x_hat, axis=0))
    return dx, dgamma, dbeta


def dropout_backward(g, keep, p):
    return g * keep / (1 - p)


def residual_backward(x, w1, w2, g):
    pre = x @ w1.T                                       # (N, H)
    a = np.maximum(pre, 0)
    dw2 = g.T @ a                                        # (F, H)
    da = g @ w2                                          # (N, H)
    dpre = da * (pre > 0)
    dw1 = dpre.T @ x                                     # (H, F)
    dx = g + dpre @ w1                                   # the fork: the skip's gradient plus the branch's
    return dx, dw1, dw2


SOLUTIONS = [(ex07.check_batchnorm_backward, batchnorm_backward), (ex07.check_dropout_backward, dropout_backward),
             (ex07.check_residual_backward, residual_backward)]
WRONG = [(ex07.check_batchnorm_backward,                 # treats mean and variance as constants
          lambda x, gamma, g, eps: (g * gamma / np.sqrt(x.var(axis=0) + eps),
                                    np.sum(g * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps), axis=0),
                                    g.sum(axis=0))),
         (ex07.check_dropout_backward, lambda g, keep, p: g * keep),                 # forgot the 1 / (1 - p)
         (ex07.check_residual_backward, lambda x, w1, w2, g: (residual_backward(x, w1, w2, g)[0] - g,
                                                              *residual_backward(x, w1, w2, g)[1:]))]  # no skip

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
