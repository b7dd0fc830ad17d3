"""Pointwise layers beyond ReLU/Sigmoid/Tanh: LeakyReLU, GELU, SiLU and Identity (torch's names).

Each y_i depends on x_i alone, so the Jacobian is diagonal and backward is ``dx = g * f'(x)``.
Any shape in, the same shape out (the empty batch included).

LeakyReLU(negative_slope=a):   y = x if x > 0 else a * x
                               f'(x) = 1 if x > 0 else a          (f'(0) = a, as torch's backward)
GELU(approximate='none'):      y = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt 2)   (the normal CDF)
                               f'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
GELU(approximate='tanh'):      y = 0.5 x (1 + t),  t = tanh(k (x + c x^3)),  k = sqrt(2 / pi), c = 0.044715
                               f'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
SiLU:                          y = x * s,  s = sigmoid(x) = 1 / (1 + exp(-x))
                               f'(x) = s + x s (1 - s) = s (1 + x (1 - s))
Identity:                      y = x,  dx = g  (the same arrays, as torch's nn.Identity)

Phi is written with erfc rather than 0.5 (1 + erf(x / sqrt 2)): for very negative x, 1 + erf(...)
cancels to nothing while erfc keeps full relative accuracy. NumPy has no erf, so ``math.erfc`` is
applied element by element (``np.vectorize``: plain and slow; GELU is rare in CNNs). GELU, SiLU
and their derivatives are evaluated in float64 and rounded once to the input's dtype (as Tanh), so a
float32 result is within half a unit in the last place of the float64 value.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .base import Layer

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_K_TANH = math.sqrt(2.0 / math.pi)
_C_TANH = 0.044715


def _floating(layer, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed")
    return np.ascontiguousarray(x)


@dataclass
class PointwiseCache:
    x: np.ndarray             # the input, any shape (f'(x) is evaluated from it in backward)


class _Pointwise(Layer):
    """y = f(x) elementwise; subclasses give f and f' on float64 arrays."""

    def __init__(self) -> None:
        self._cache: PointwiseCache | None = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def _f(self, x64):  # pragma: no cover - abstract
        raise NotImplementedError

    def _df(self, x64):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _floating(self, x)
        self._cache = PointwiseCache(x=x)
        return self._f(x.astype(np.float64)).astype(x.dtype)          # float64, rounded once

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.x.shape)
        gx = g.astype(np.float64) * self._df(cache.x.astype(np.float64))   # dx = g * f'(x)
        return gx.astype(cache.x.dtype)


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise (torch's ``nn.LeakyReLU``, default 0.01).

    No float64 detour: y and dx are one product each (a * x, a * g), correctly rounded in x's dtype.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) \
                or not math.isfinite(float(negative_slope)):
            raise ValueError(f"LeakyReLU: negative_slope must be a finite number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self._cache: PointwiseCache | None = None

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope:g})"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _floating(self, x)
        self._cache = PointwiseCache(x=x)
        a = x.dtype.type(self.negative_slope)
        return np.where(x > 0, x, a * x)                               # NaN: a * NaN = NaN

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.x.shape).astype(cache.x.dtype, copy=False)
        a = g.dtype.type(self.negative_slope)
        return np.where(cache.x > 0, g, a * g)                         # f'(0) = a, f'(NaN) = a


class GELU(_Pointwise):
    """Gaussian error linear unit, torch's ``nn.GELU(approximate='none' | 'tanh')``."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        super().__init__()

    def __repr__(self) -> str:
        return "GELU()" if self.approximate == "none" else "GELU(approximate='tanh')"

    def _f(self, x):
        if self.approximate == "tanh":
            t = np.tanh(_K_TANH * (x + _C_TANH * x ** 3))
            return 0.5 * x * (1.0 + t)
        return x * (0.5 * _erfc(-x / _SQRT_2))                         # x * Phi(x)

    def _df(self, x):
        if self.approximate == "tanh":
            t = np.tanh(_K_TANH * (x + _C_TANH * x ** 3))
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _K_TANH * (1.0 + 3.0 * _C_TANH * x * x)
        phi = np.exp(-0.5 * x * x) / _SQRT_2PI                         # the normal density
        return 0.5 * _erfc(-x / _SQRT_2) + x * phi                     # Phi(x) + x phi(x)


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp of -|x| only (float64 arrays)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class SiLU(_Pointwise):
    """y = x * sigmoid(x) (torch's ``nn.SiLU``, also called swish)."""

    def __repr__(self) -> str:
        return "SiLU()"

    def _f(self, x):
        return x * _sigmoid(x)

    def _df(self, x):
        s = _sigmoid(x)
        return s * (1.0 + x * (1.0 - s))


class Identity(Layer):
    """y = x and dx = g, the very arrays (torch's ``nn.Identity``); accepts any input, as torch does."""

    def __init__(self, *args: object, **kwargs: object) -> None:   # torch's nn.Identity ignores them too
        self._cache = None

    def __repr__(self) -> str:
        return "Identity()"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = PointwiseCache(x=np.asarray(x))
        return x

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        return self._check_grad(grad_y, cache.x.shape)
