"""BatchNorm2D: PyTorch's ``nn.BatchNorm2d``, forward and backward by hand.

x: (N, C, H, W) -> y: (N, C, H, W). Every channel c is normalised over its M = N*H*W values.

Forward, per channel (mu, var, sigma, gamma, beta are (C,) and broadcast over N, H, W)::

    training:   mu  = mean(x)                     # over N, H, W
                var = mean((x - mu)**2)           # biased (divide by M): what normalises
    evaluation: mu, var = running_mean, running_var
    sigma = sqrt(var + eps);   x_hat = (x - mu) / sigma;   y = gamma * x_hat + beta

Running statistics (training mode with ``track_running_stats``), after each forward::

    num_batches_tracked += 1
    f = momentum                 (or 1 / num_batches_tracked when momentum is None: cumulative average)
    running_mean = (1 - f) * running_mean + f * mu
    running_var  = (1 - f) * running_var  + f * var * M / (M - 1)    # UNBIASED, as torch

With ``track_running_stats=False`` there are no running statistics and batch statistics are used in
both modes (as torch). Statistics are accumulated in float64 whatever the layer's dtype (torch's CPU
kernel accumulates float32 sums in double too); x_hat, y and the gradients are stored in the dtype.

Backward with batch statistics. Write g = dL/dy. The affine part gives
``dL/dbeta = sum(g)``, ``dL/dgamma = sum(g * x_hat)``, ``dL/dx_hat = gamma * g``. Then, within one
channel, with sums over its M values::

    d mu / d x_j    = 1/M
    d var / d x_j   = (2/M) * sum_i (x_i - mu) * (delta_ij - 1/M) = (2/M) * (x_j - mu)
                      (the 1/M part drops out because sum_i (x_i - mu) = 0)
    d sigma / d x_j = (1 / (2 sigma)) * d var / d x_j = x_hat_j / M
    d x_hat_i / d x_j = (delta_ij - 1/M) / sigma - (x_i - mu) / sigma**2 * x_hat_j / M
                      = (delta_ij - 1/M - x_hat_i * x_hat_j / M) / sigma

so  dx_j = sum_i gamma * g_i * d x_hat_i / d x_j
         = (gamma / sigma) * (g_j - sum(g) / M - x_hat_j * sum(g * x_hat) / M), i.e. the compact form

    dx = (1 / (N*H*W)) * gamma / sigma * (M * g - sum(g) - x_hat * sum(g * x_hat))      # (N, C, H, W)

the gradient through the mean and the variance both. With running statistics (evaluation mode) mu
and sigma are constants and the layer is the affine map x -> gamma / sigma * (x - mu) + beta:
``dx = gamma / sigma * g``; ``dgamma`` and ``dbeta`` as above.

Errors name the layer and the numbers: a non-4-D input, a wrong channel count, and (as torch)
batch statistics from a single value per channel, whose variance is 0/0 in the unbiased update.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .base import Layer, Parameter, check_input, float_dtype, positive_int

_AXES = (0, 2, 3)                      # the axes a channel's statistics reduce over: N, H, W


def _per_channel(v: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C, 1, 1), to broadcast over (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


@dataclass
class BatchNormCache:
    x_hat: np.ndarray          # (N, C, H, W) normalised input, layer dtype
    invstd: np.ndarray         # (C,) float64: 1 / sqrt(var + eps) of the statistics used
    batch_stats: bool          # True: normalised with the batch's own mean/var (full gradient)
    count: int                 # M = N*H*W values per channel


def init_batch_norm(layer, name: str, num_features, eps, momentum, affine, track_running_stats, dtype) -> None:
    """The constructor both batch norms share (BatchNorm2D here, BatchNorm1D in ``norm.py``): checks
    the arguments (naming ``name``) and sets torch's parameters and buffers on ``layer``: weight (C,)
    ones and bias (C,) zeros when ``affine``; running_mean (C,) zeros, running_var (C,) ones and
    num_batches_tracked (0-d int64) when ``track_running_stats``, else None."""
    layer.num_features = positive_int(num_features, "num_features", name)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0 <= float(eps) < np.inf):
        raise ValueError(f"{name}: eps must be a finite number >= 0, got {eps!r}")
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                 or not 0 <= float(momentum) <= 1):
        raise ValueError(f"{name}: momentum must be None (cumulative average) or a number in [0, 1], "
                         f"got {momentum!r}")
    layer.eps = float(eps)
    layer.momentum = None if momentum is None else float(momentum)
    layer.affine = bool(affine)
    layer.track_running_stats = bool(track_running_stats)
    layer.dtype = float_dtype(dtype, name)
    c = layer.num_features
    layer.weight = Parameter(np.ones(c, dtype=layer.dtype)) if layer.affine else None
    layer.bias = Parameter(np.zeros(c, dtype=layer.dtype)) if layer.affine else None
    if layer.track_running_stats:
        layer.running_mean = np.zeros(c, dtype=layer.dtype)          # (C,)
        layer.running_var = np.ones(c, dtype=layer.dtype)            # (C,)
        layer.num_batches_tracked = np.array(0, dtype=np.int64)      # 0-d
    else:
        layer.running_mean = layer.running_var = layer.num_batches_tracked = None


class BatchNorm2D(Layer):
    """Batch normalisation over NCHW input, PyTorch's ``BatchNorm2d``.

    weight (gamma): (C,), ones; bias (beta): (C,), zeros (only when ``affine``).
    Buffers (only when ``track_running_stats``): running_mean (C,) zeros, running_var (C,) ones,
    num_batches_tracked: int64, 0-d. They are updated in place, so references stay valid.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: DTypeLike = np.float32) -> None:
        init_batch_norm(self, "BatchNorm2D", num_features, eps, momentum, affine, track_running_stats, dtype)
        self._cache: BatchNormCache | None = None

    def __repr__(self) -> str:
        extra = "" if self.affine else ", affine=False"
        extra += "" if self.track_running_stats else ", track_running_stats=False"
        return f"BatchNorm2D({self.num_features}, eps={self.eps:g}, momentum={self.momentum}{extra})"

    def named_buffers(self) -> dict[str, np.ndarray]:
        if not self.track_running_stats:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var,
                "num_batches_tracked": self.num_batches_tracked}

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, H, W) -> (C, H, W), checking C."""
        if len(in_shape) != 3:
            raise ValueError(f"{self!r}: expects a (C, H, W) image per sample (input (N, C, H, W)), "
                             f"got per-sample shape {tuple(in_shape)}")
        if in_shape[0] != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels, got {in_shape[0]} "
                             f"(per-sample shape (C, H, W) = {tuple(in_shape)})")
        return tuple(in_shape)

    # -- forward -------------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self, x, 4, "(N, C, H, W)", self.dtype)
        n, c, h, w = x.shape
        if c != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels, got {c} "
                             f"(input shape (N, C, H, W) = {x.shape})")
        count = n * h * w                                            # M values per channel
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if count <= 1:
                raise ValueError(
                    f"{self!r}: Expected more than 1 value per channel when training, got input of "
                    f"shape {x.shape}: N*H*W = {n}*{h}*{w} = {count} value per channel")
            mean = x.mean(axis=_AXES, dtype=np.float64)              # (C,)
            centered = x - _per_channel(mean)                        # (N, C, H, W) float64
            var = np.mean(centered * centered, axis=_AXES)           # (C,) biased
            if self.training and self.track_running_stats:
                self.update_running_stats(mean, var, count)
        else:
            mean = self.running_mean.astype(np.float64)              # (C,)
            var = self.running_var.astype(np.float64)                # (C,)
            centered = x - _per_channel(mean)                        # (N, C, H, W) float64
        invstd = 1.0 / np.sqrt(var + self.eps)                       # (C,) float64
        x_hat = (centered * _per_channel(invstd)).astype(self.dtype)  # (N, C, H, W)
        self._cache = BatchNormCache(x_hat=x_hat, invstd=invstd, batch_stats=batch_stats, count=count)
        if not self.affine:
            return x_hat
        return x_hat * _per_channel(self.weight.data) + _per_channel(self.bias.data)

    def update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        """Torch's update, in place; ``mean``, ``var``: (C,) float64 batch statistics (var biased)."""
        self.num_batches_tracked += 1                                # in place on the 0-d array
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))                       # (C,)
        self.running_mean[...] = (1.0 - f) * self.running_mean + f * mean
        self.running_var[...] = (1.0 - f) * self.running_var + f * unbiased

    # -- backward ------------------------------------------------------------------------------

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.x_hat.shape)
        # C order whatever the caller's layout: the sums' rounding must not depend on it
        g = np.ascontiguousarray(g, dtype=self.dtype)                # (N, C, H, W)
        x_hat = cache.x_hat
        sum_g = g.sum(axis=_AXES, dtype=np.float64)                  # (C,)  = dL/dbeta
        sum_gx = (g * x_hat).sum(axis=_AXES, dtype=np.float64)       # (C,)  = dL/dgamma
        gamma = self.weight.data.astype(np.float64) if self.affine else 1.0
        if self.affine:
            self.weight.grad = sum_gx.astype(self.dtype)
            self.bias.grad = sum_g.astype(self.dtype)
        if not cache.batch_stats:                                    # affine map: dx = gamma/sigma * g
            coef = (gamma * cache.invstd).astype(self.dtype)         # (C,)
            return g * _per_channel(coef)
        m = cache.count
        coef = (gamma * cache.invstd / m).astype(self.dtype)         # (C,) gamma / (M sigma)
        inner = (m * g - _per_channel(sum_g.astype(self.dtype))
                 - x_hat * _per_channel(sum_gx.astype(self.dtype)))  # (N, C, H, W)
        return _per_channel(coef) * inner
