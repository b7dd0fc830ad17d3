"""Reference solutions to the exercises of tutorial 2."""
import _run  # noqa: F401  (sys.path)

import numpy as np

import tinycnn as tc
from exercises import ex02


class Tanh(tc.Layer):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, grad_y):
        return grad_y * (1 - self.y ** 2)               # tanh' = 1 - tanh^2, from the cached output


def find_bad_entries(analytic, numeric):
    size = np.maximum(np.abs(analytic), np.abs(numeric))
    meaningful = size > 1e-8 * size.max()
    return meaningful & (np.abs(analytic - numeric) > 1e-6 * size)


class LeakyReLU(tc.Layer):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, self.slope * x)

    def backward(self, grad_y):
        return np.where(self.positive, grad_y, self.slope * grad_y)


class _TanhFromInput(Tanh):
    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, grad_y):
        return grad_y * (1 - self.x ** 2)               # the mistake: the input instead of the output


class _LeakyReLUSlopeOneAtZero(LeakyReLU):
    def forward(self, x):
        self.positive = x >= 0                          # the mistake: slope 1 at exactly 0
        return np.where(x > 0, x, self.slope * x)


SOLUTIONS = [(ex02.check_tanh, Tanh), (ex02.check_find_bug, find_bad_entries), (ex02.check_leaky_relu, LeakyReLU)]
WRONG = [(ex02.check_tanh, _TanhFromInput),
         (ex02.check_find_bug, lambda a, n: np.abs(a - n) > 1e-6 * np.abs(n)),    # flags the tiny entries too
         (ex02.check_leaky_relu, _LeakyReLUSlopeOneAtZero)]

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
