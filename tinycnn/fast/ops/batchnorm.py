"""BatchNorm2D in the executor: statistics and normalisation as passes over channel-major rows.

The layer's formulas (``tinycnn.layers.batchnorm``), with the activation read as (C, M) memory,
M = H*W*N, one contiguous row per channel (``tinycnn.kernels.batchnorm``): a statistics pass
(mean, then squared deviations, float64 accumulators; the error bound is in that module), one pass
that writes x_hat and y, and in backward one pass for the two sums and one for dx. Where the layer's
NumPy code makes ~8 full-size temporaries per call (float64 ones among them), this makes none but
x_hat, y and dx.

Fusion (``cfg.fuse_relu``): a ReLU that followed the batch norm runs inside its passes: y is
max(., 0) as it is written, and backward masks g by y > 0 (the same as ReLU's x > 0 on the value
before it) as it reads it. The running statistics are updated by the layer's own method, so the rule
(momentum, cumulative average, unbiased variance) is written once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ..layout import as_view, to_channel_major
from .base import Op


@dataclass
class BatchNormOpCache:
    x_hat: np.ndarray         # (C, M) normalised input, layer dtype
    y: np.ndarray             # (C, M) the output (read by backward for the fused ReLU's mask)
    invstd: np.ndarray        # (C,) float64
    batch_stats: bool         # True: normalised with the batch's own statistics
    x_shape: tuple            # (N, C, H, W)


class BatchNormOp(Op):
    @property
    def per_sample(self):
        return not self.layer.training and self.layer.track_running_stats

    def forward(self, x):
        layer, cfg = self.layer, self.cfg
        self.cache = None
        n, c, h, w = x.shape
        count = n * h * w
        batch_stats = layer.training or not layer.track_running_stats
        if batch_stats and count <= 1:
            return layer.forward(x)                 # the layer raises its own error (one value per channel)
        dt = layer.dtype
        xs = to_channel_major(x, dt).reshape(c, -1)                    # (C, M), M = H*W*N
        if batch_stats:
            mean, var = self.launch(kernels.bn_stats, xs.size, xs)      # float64 (C,) each, var biased
            if layer.training and layer.track_running_stats:
                layer.update_running_stats(mean, var, count)
        else:
            mean = layer.running_mean.astype(np.float64)
            var = layer.running_var.astype(np.float64)
        invstd = 1.0 / np.sqrt(var + layer.eps)                        # (C,) float64
        if layer.affine:
            gamma, beta = layer.weight.data, layer.bias.data
        else:
            gamma = beta = np.zeros(c, dt)                             # unused
        x_hat = cfg.alloc.empty(xs.shape, dt)
        y = cfg.alloc.empty(xs.shape, dt)
        self.launch(kernels.bn_normalize, xs.size, xs, mean, invstd, gamma, beta, layer.affine,
                    cfg.fuse_relu, dt.type(0), x_hat, y)
        self.cache = BatchNormOpCache(x_hat=x_hat, y=y, invstd=invstd, batch_stats=batch_stats,
                                      x_shape=(n, c, h, w))
        out = as_view(y.reshape(c, h, w, n))                           # (N, C, H, W) view
        return out if cfg.channel_major else np.ascontiguousarray(out)

    def backward(self, g, input_grad=True):
        layer, cfg, cache = self.layer, self.cfg, self.cache
        dt = layer.dtype
        n, c, h, w = cache.x_shape
        gs = to_channel_major(g, dt).reshape(c, -1)                    # (C, M)
        zero = dt.type(0)
        sum_g, sum_gx = self.launch(kernels.bn_backward_sums, gs.size, gs, cache.x_hat, cache.y,
                                    cfg.fuse_relu, zero)               # float64 (C,) each
        self.grads = {}
        if layer.affine:
            self.grads = {"weight": sum_gx.astype(dt), "bias": sum_g.astype(dt)}
        if not input_grad:
            return None
        gamma = layer.weight.data.astype(np.float64) if layer.affine else 1.0
        m = n * h * w
        if cache.batch_stats:
            coef = (gamma * cache.invstd / m).astype(dt)               # (C,) gamma / (M sigma)
        else:
            coef = np.broadcast_to(gamma * cache.invstd, (c,)).astype(dt)   # (C,) gamma / sigma
        gx = cfg.alloc.empty(gs.shape, dt)
        self.launch(kernels.bn_backward_dx, gs.size, gs, cache.x_hat, cache.y, cfg.fuse_relu, zero, coef,
                    sum_g.astype(dt), sum_gx.astype(dt), dt.type(m), cache.batch_stats, gx)
        out = as_view(gx.reshape(c, h, w, n))
        return out if cfg.channel_major else np.ascontiguousarray(out)
