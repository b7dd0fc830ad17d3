"""Normalisation layers: BatchNorm1D, LayerNorm, GroupNorm (torch's ``nn.BatchNorm1d``, ``nn.LayerNorm``,
``nn.GroupNorm``). They differ only in WHICH values share a mean and a variance:

    BatchNorm1D  x: (N, C) or (N, C, L)   one group per channel c: its N (or N*L) values
    LayerNorm    x: (..., *S)             one group per leading index: the D = prod(S) values of the
                                          trailing dims S = normalized_shape
    GroupNorm    x: (N, C, *)             one group per (sample n, group g): the C/G channels of g,
                                          all their positions

Forward, per group of M values (mean and variance biased, i.e. divided by M)::

    mu = mean(x);  var = mean((x - mu)^2);  sigma = sqrt(var + eps);  x_hat = (x - mu) / sigma
    y  = weight * x_hat + bias     weight, bias: per channel (C,) for BatchNorm1D and GroupNorm,
                                   of shape S for LayerNorm (elementwise)

Backward. With a = dL/dx_hat = weight * g, the derivation in batchnorm.py (d mu/dx_j = 1/M,
d sigma/dx_j = x_hat_j / M) holds for any group::

    dx = (1 / sigma) * (a - mean(a) - x_hat * mean(a * x_hat))        # means over the group
    dweight = sum(g * x_hat),  dbias = sum(g)                          # over everything else

With running statistics (BatchNorm1D in eval mode) mu and sigma are constants: dx = a / sigma.

Running statistics (BatchNorm1D only, training with ``track_running_stats``), torch's rule::

    num_batches_tracked += 1;  f = momentum, or 1 / num_batches_tracked when momentum is None
    running_mean = (1 - f) running_mean + f mu;  running_var = (1 - f) running_var + f var M / (M - 1)

Statistics and gradients are computed in float64 and rounded once to the layer's dtype. An empty
batch (N = 0) gives an empty output; BatchNorm1D in training then leaves the running statistics
as they are and still counts the batch in num_batches_tracked, as torch does.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .base import Layer, Parameter, float_dtype, positive_int
from .batchnorm import init_batch_norm


def _check_eps(owner, eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0 <= float(eps) < math.inf):
        raise ValueError(f"{owner}: eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def _floating(layer, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed; convert "
                        f"it first, e.g. x.astype(np.float32)")
    return x


@dataclass
class NormCache:
    x_hat: np.ndarray         # float64, the input's shape: the normalised values
    invstd: np.ndarray        # float64, 1 / sigma, shaped to broadcast against x_hat
    axes: tuple               # the axes each group's statistics reduce over
    batch_stats: bool         # True: x_hat used the input's own statistics (the full gradient)
    shape: tuple              # the input's (and output's) shape


def _normalise(x64: np.ndarray, axes: tuple, eps: float):
    """(x_hat, invstd, mean, var) with the statistics over ``axes`` kept as size-1 dims (float64)."""
    mean = x64.mean(axis=axes, keepdims=True)
    centred = x64 - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)             # biased
    invstd = 1.0 / np.sqrt(var + eps)
    return centred * invstd, invstd, mean, var


def _normalise_backward(a: np.ndarray, cache: NormCache) -> np.ndarray:
    """dL/dx from a = dL/dx_hat (float64), by the formula in the module docstring."""
    if not cache.batch_stats:
        return a * cache.invstd
    x_hat, axes = cache.x_hat, cache.axes
    return cache.invstd * (a - a.mean(axis=axes, keepdims=True)
                           - x_hat * (a * x_hat).mean(axis=axes, keepdims=True))


class BatchNorm1D(Layer):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, torch's ``nn.BatchNorm1d``.

    weight (C,) ones, bias (C,) zeros (when ``affine``); buffers (when ``track_running_stats``):
    running_mean (C,) zeros, running_var (C,) ones, num_batches_tracked int64 0-d, updated in place.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: DTypeLike = np.float32) -> None:
        init_batch_norm(self, "BatchNorm1D", num_features, eps, momentum, affine, track_running_stats, dtype)
        self._cache: NormCache | None = None

    def __repr__(self) -> str:
        extra = "" if self.affine else ", affine=False"
        extra += "" if self.track_running_stats else ", track_running_stats=False"
        return f"BatchNorm1D({self.num_features}, eps={self.eps:g}, momentum={self.momentum}{extra})"

    def named_buffers(self) -> dict[str, np.ndarray]:
        if not self.track_running_stats:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var,
                "num_batches_tracked": self.num_batches_tracked}

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C,) or (C, L) per sample -> the same, checking C."""
        in_shape = tuple(in_shape)
        if len(in_shape) not in (1, 2):
            raise ValueError(f"{self!r}: expects (C,) or (C, L) per sample (input (N, C) or (N, C, L)), got "
                             f"per-sample shape {in_shape}")
        if in_shape[0] != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels, got {in_shape[0]} "
                             f"(per-sample shape {in_shape})")
        return in_shape

    def _per_channel(self, v, ndim):
        """(C,) -> (1, C) or (1, C, 1), to broadcast over the input."""
        return np.asarray(v).reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _floating(self, x)
        if x.ndim not in (2, 3):
            raise ValueError(f"{self!r}: expected a 2-D (N, C) or 3-D (N, C, L) input, got {x.ndim}-D input of "
                             f"shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels, got {x.shape[1]} "
                             f"(input shape {x.shape})")
        axes = (0,) if x.ndim == 2 else (0, 2)
        count = x.shape[0] * (x.shape[2] if x.ndim == 3 else 1)               # M values per channel
        batch_stats = self.training or not self.track_running_stats
        x64 = x.astype(np.float64)
        if batch_stats and count == 0:                                        # empty batch: torch's shapes
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
            self._cache = NormCache(x64, np.ones((1, self.num_features) + (1,) * (x.ndim - 2)), axes, True,
                                    x.shape)
            return np.zeros(x.shape, dtype=self.dtype)
        if batch_stats:
            if count == 1:
                raise ValueError(f"{self!r}: Expected more than 1 value per channel when training, got input "
                                 f"of shape {x.shape}: {count} value per channel")
            x_hat, invstd, mean, var = _normalise(x64, axes, self.eps)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.reshape(-1), var.reshape(-1), count)
        else:
            mean = self._per_channel(self.running_mean.astype(np.float64), x.ndim)
            var = self._per_channel(self.running_var.astype(np.float64), x.ndim)
            invstd = 1.0 / np.sqrt(var + self.eps)
            x_hat = (x64 - mean) * invstd
        self._cache = NormCache(x_hat=x_hat, invstd=invstd, axes=axes, batch_stats=batch_stats, shape=x.shape)
        if not self.affine:
            return x_hat.astype(self.dtype)
        y = x_hat * self._per_channel(self.weight.data.astype(np.float64), x.ndim) \
            + self._per_channel(self.bias.data.astype(np.float64), x.ndim)
        return y.astype(self.dtype)

    def _update_running_stats(self, mean, var, count):
        """Torch's update, in place; ``mean``, ``var``: (C,) float64 batch statistics (var biased)."""
        self.num_batches_tracked += 1
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean[...] = (1.0 - f) * self.running_mean + f * mean
        self.running_var[...] = (1.0 - f) * self.running_var + f * var * (count / (count - 1))   # unbiased

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.shape).astype(np.float64)
        ndim = g.ndim
        if self.affine:
            self.weight.grad = (g * cache.x_hat).sum(axis=cache.axes).astype(self.dtype)    # (C,)
            self.bias.grad = g.sum(axis=cache.axes).astype(self.dtype)                      # (C,)
            a = g * self._per_channel(self.weight.data.astype(np.float64), ndim)            # dL/dx_hat
        else:
            a = g
        if g.size == 0:
            return np.zeros(cache.shape, dtype=self.dtype)
        return _normalise_backward(a, cache).astype(self.dtype)


class LayerNorm(Layer):
    """Normalise over the trailing dims ``normalized_shape`` (torch's ``nn.LayerNorm``).

    x: (..., *S) -> y: same shape. weight (S) ones and bias (S) zeros when ``elementwise_affine``
    (bias only if ``bias``). E.g. LayerNorm((C, H, W)) normalises each image over all its values,
    LayerNorm(F) each feature vector of (N, T, F).
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, *, dtype: DTypeLike = np.float32) -> None:
        name = "LayerNorm"
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
        try:
            shape = tuple(shape)
        except TypeError:
            raise TypeError(f"{name}: normalized_shape must be an int or a tuple of ints, got "
                            f"{normalized_shape!r}") from None
        if not shape:
            raise ValueError(f"{name}: normalized_shape must name at least one dimension, got {normalized_shape!r}")
        self.normalized_shape = tuple(positive_int(d, "normalized_shape entries", name) for d in shape)
        self.eps = _check_eps(name, eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.dtype = float_dtype(dtype, name)
        s = self.normalized_shape
        self.weight = Parameter(np.ones(s, dtype=self.dtype)) if self.elementwise_affine else None
        self.bias = Parameter(np.zeros(s, dtype=self.dtype)) if self.elementwise_affine and bias else None
        self._cache: NormCache | None = None

    def __repr__(self) -> str:
        extra = "" if self.elementwise_affine else ", elementwise_affine=False"
        extra += "" if (self.bias is not None or not self.elementwise_affine) else ", bias=False"
        return f"LayerNorm({self.normalized_shape}, eps={self.eps:g}{extra})"

    def _check_shape(self, shape, what):
        k = len(self.normalized_shape)
        if len(shape) < k or tuple(shape[len(shape) - k:]) != self.normalized_shape:
            raise ValueError(f"{self!r}: the trailing dimensions of the {what} {tuple(shape)} must be "
                             f"normalized_shape {self.normalized_shape}")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_shape(tuple(in_shape), "per-sample shape")
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _floating(self, x)
        self._check_shape(x.shape, "input shape")
        k = len(self.normalized_shape)
        axes = tuple(range(x.ndim - k, x.ndim))                                # the trailing dims
        if x.size == 0:
            self._cache = NormCache(x.astype(np.float64), np.ones(x.shape[:x.ndim - k] + (1,) * k), axes, True,
                                    x.shape)
            return np.zeros(x.shape, dtype=self.dtype)
        x_hat, invstd, _, _ = _normalise(x.astype(np.float64), axes, self.eps)   # stats (..., 1, ..., 1)
        self._cache = NormCache(x_hat=x_hat, invstd=invstd, axes=axes, batch_stats=True, shape=x.shape)
        y = x_hat
        if self.weight is not None:
            y = y * self.weight.data.astype(np.float64)                         # (S) broadcasts on the right
        if self.bias is not None:
            y = y + self.bias.data.astype(np.float64)
        return y.astype(self.dtype)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.shape).astype(np.float64)
        lead = tuple(range(g.ndim - len(self.normalized_shape)))                # the axes the affine spans
        if self.weight is not None:
            self.weight.grad = (g * cache.x_hat).sum(axis=lead).astype(self.dtype)   # (S)
            a = g * self.weight.data.astype(np.float64)                        # dL/dx_hat
        else:
            a = g
        if self.bias is not None:
            self.bias.grad = g.sum(axis=lead).astype(self.dtype)                # (S)
        if g.size == 0:
            return np.zeros(cache.shape, dtype=self.dtype)
        return _normalise_backward(a, cache).astype(self.dtype)


class GroupNorm(Layer):
    """Normalise each sample's channels in ``num_groups`` groups (torch's ``nn.GroupNorm``).

    x: (N, C, *) -> y: same shape, C = num_channels divisible by num_groups. weight (C,) ones and
    bias (C,) zeros when ``affine``: per channel, not per group. num_groups = 1 normalises each sample
    over all its values (LayerNorm over (C, *) with per-channel affine); num_groups = C is instance norm.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 dtype: DTypeLike = np.float32) -> None:
        name = "GroupNorm"
        self.num_groups = positive_int(num_groups, "num_groups", name)
        self.num_channels = positive_int(num_channels, "num_channels", name)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{name}: num_channels must be divisible by num_groups, got num_channels = "
                             f"{self.num_channels}, num_groups = {self.num_groups} "
                             f"({self.num_channels} % {self.num_groups} = {self.num_channels % self.num_groups})")
        self.eps = _check_eps(name, eps)
        self.affine = bool(affine)
        self.dtype = float_dtype(dtype, name)
        c = self.num_channels
        self.weight = Parameter(np.ones(c, dtype=self.dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(c, dtype=self.dtype)) if self.affine else None
        self._cache: NormCache | None = None

    def __repr__(self) -> str:
        extra = "" if self.affine else ", affine=False"
        return f"GroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps:g}{extra})"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(in_shape)
        if len(in_shape) < 1 or in_shape[0] != self.num_channels:
            raise ValueError(f"{self!r}: expected {self.num_channels} channels first in the per-sample shape "
                             f"(C, *), got {in_shape}")
        return in_shape

    def _grouped(self, shape):
        """(N, C, *) -> (N, G, C/G, prod(*)): each group's values along the last two axes."""
        n = shape[0]
        return (n, self.num_groups, self.num_channels // self.num_groups, int(np.prod(shape[2:], dtype=np.int64)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _floating(self, x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r}: expected an input (N, {self.num_channels}, *) with at least 2 dimensions, "
                             f"got shape {x.shape}")
        grouped = self._grouped(x.shape)
        if grouped[0] * grouped[2] * grouped[3] == 1:           # torch's check (F.group_norm), same words
            raise ValueError(f"{self!r}: Expected more than 1 value per channel when training, got input of "
                             f"shape {x.shape}: N * C/G * (spatial size) = {grouped[0]} * {grouped[2]} * "
                             f"{grouped[3]} = 1")
        axes = (2, 3)
        x64 = x.astype(np.float64).reshape(grouped)                               # (N, G, C/G, P)
        if x.size == 0:
            self._cache = NormCache(x64, np.ones(grouped[:2] + (1, 1)), axes, True, x.shape)
            return np.zeros(x.shape, dtype=self.dtype)
        x_hat, invstd, _, _ = _normalise(x64, axes, self.eps)                       # stats (N, G, 1, 1)
        self._cache = NormCache(x_hat=x_hat, invstd=invstd, axes=axes, batch_stats=True, shape=x.shape)
        y = x_hat.reshape(x.shape)
        if self.affine:
            per_channel = (1, -1) + (1,) * (x.ndim - 2)                             # (C,) -> (1, C, 1, ...)
            y = y * self.weight.data.astype(np.float64).reshape(per_channel) \
                + self.bias.data.astype(np.float64).reshape(per_channel)
        return y.astype(self.dtype)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.shape).astype(np.float64)                 # (N, C, *)
        grouped = self._grouped(cache.shape)
        if self.affine:
            per_channel = (1, -1) + (1,) * (g.ndim - 2)
            not_c = tuple(k for k in range(g.ndim) if k != 1)
            x_hat = cache.x_hat.reshape(cache.shape)                                 # (N, C, *)
            self.weight.grad = (g * x_hat).sum(axis=not_c).astype(self.dtype)        # (C,)
            self.bias.grad = g.sum(axis=not_c).astype(self.dtype)                    # (C,)
            a = g * self.weight.data.astype(np.float64).reshape(per_channel)         # dL/dx_hat
        else:
            a = g
        if g.size == 0:
            return np.zeros(cache.shape, dtype=self.dtype)
        return _normalise_backward(a.reshape(grouped), cache).reshape(cache.shape).astype(self.dtype)
