"""BatchNorm2D in the executor: statistics and normalisation as passes over channel-major rows.

The layer's formulas (``tinycnn.layers.batchnorm``), with the activation read as (C, M) memory,
M = H*W*N, one contiguous row per channel (``tinycnn.kernels.batchnorm``): a statistics pass
(mean, then squared deviations, float64 accumulators; the error bound is in that module), one pass
that writes x_hat and y, and in backward one pass for the two sums and one for dx. Where the layer's
NumPy code makes ~8 full-size temporaries per call (float64 ones among them), this makes none but
x_hat, y and dx.

Fusion (``cfg.fuse_relu``): a ReLU that followed the batch norm runs inside its passes: y is
max(., 0) as it is written, and backward masks g by y > 0 (the same as ReLU's x > 0 on the value
before it) as it reads it. Likewise ``cfg.fuse_gelu``, an exact GELU: y = GELU(z) of the batch
norm's output z as it is written, together with the slope GELU'(z) (one more array, in the dtype),
and backward multiplies g by the slope as it reads it (``tinycnn.kernels.gelu``). The running
statistics are updated by the layer's own method, so the rule
(momentum, cumulative average, unbiased variance) is written once.

In lanes (training), the statistics are the whole batch's: every lane's partial sums are gathered
(``tinycnn.fast.lanesync``), the means first, then the squared deviations from the whole batch's
mean, the same two passes as uncut; in backward sum(g) and sum(g x_hat) likewise. Lane 0 updates the
running statistics and reports the parameter gradients (the other lanes report zeros).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ...kernels.batchnorm import ACT_GELU, ACT_NONE, ACT_RELU
from ..layout import as_view, to_channel_major
from .base import Op


@dataclass
class BatchNormOpCache:
    x_hat: np.ndarray         # (C, M) normalised input, layer dtype
    y: np.ndarray             # (C, M) the output (read by backward for the fused ReLU's mask)
    slope: np.ndarray         # (C, M) GELU'(z) with a fused GELU, else y again (unread)
    invstd: np.ndarray        # (C,) float64
    batch_stats: bool         # True: normalised with the batch's own statistics
    x_shape: tuple            # (N, C, H, W) of this lane's rows
    count: int                # M: values per channel in the whole batch (all lanes)


class BatchNormOp(Op):
    @property
    def per_sample(self):
        return not self.layer.training and self.layer.track_running_stats

    @property
    def mixes_samples_in_lanes(self):
        return True

    def _act(self) -> int:
        """The fused activation's code for the kernels (``tinycnn.kernels.batchnorm``)."""
        return ACT_RELU if self.cfg.fuse_relu else ACT_GELU if self.cfg.fuse_gelu else ACT_NONE

    def _batch_stats(self, xs, count):
        """(mean, biased var, M) of the whole batch, float64 (C,): this lane's rows alone, or, in lanes,
        every lane's partial sums gathered (the mean first, then the squared deviations from it)."""
        if self.sync is None:
            mean, var = self.launch(kernels.bn_stats, xs.size, xs)
            return mean, var, count
        parts = self.sync.gather(self.lane, (self.launch(kernels.bn_sums, xs.size, xs), count))
        total = sum(n for _, n in parts)
        mean = sum(s for s, _ in parts) / total
        sq = self.sync.gather(self.lane, self.launch(kernels.bn_sqdev, xs.size, xs, mean))
        return mean, sum(sq) / total, total

    def forward(self, x):
        layer, cfg = self.layer, self.cfg
        self.cache = None
        n, c, h, w = x.shape
        batch_stats = layer.training or not layer.track_running_stats
        if batch_stats and self.sync is None and n * h * w <= 1:
            return layer.forward(x)                 # the layer raises its own error (one value per channel)
        dt = layer.dtype
        xs = to_channel_major(x, dt).reshape(c, -1)                    # (C, M), M = H*W*N
        count = n * h * w
        if batch_stats:
            mean, var, count = self._batch_stats(xs, count)            # float64 (C,) each, var biased
            if count <= 1:
                return layer.forward(np.zeros((1, c, 1, 1), dt))      # every lane: the layer's own error
            if layer.training and layer.track_running_stats and self.lane == 0:
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
        act = self._act()
        slope = cfg.alloc.empty(xs.shape, dt) if act == ACT_GELU else y
        self.launch(kernels.bn_normalize, xs.size, xs, mean, invstd, gamma, beta, layer.affine,
                    act, dt.type(0), x_hat, y, slope)
        self.cache = BatchNormOpCache(x_hat=x_hat, y=y, slope=slope, invstd=invstd, batch_stats=batch_stats,
                                      x_shape=(n, c, h, w), count=count)
        out = as_view(y.reshape(c, h, w, n))                           # (N, C, H, W) view
        return out if cfg.channel_major else np.ascontiguousarray(out)

    def backward(self, g, input_grad=True):
        layer, cfg, cache = self.layer, self.cfg, self.cache
        dt = layer.dtype
        n, c, h, w = cache.x_shape
        gs = to_channel_major(g, dt).reshape(c, -1)                    # (C, M)
        zero = dt.type(0)
        act = self._act()
        sum_g, sum_gx = self.launch(kernels.bn_backward_sums, gs.size, gs, cache.x_hat, cache.y, cache.slope,
                                    act, zero)                         # float64 (C,) each
        if self.sync is not None and cache.batch_stats:                # the whole batch's sums
            parts = self.sync.gather(self.lane, (sum_g, sum_gx))
            sum_g, sum_gx = sum(a for a, _ in parts), sum(b for _, b in parts)
        self.grads = {}
        if layer.affine and (self.sync is None or not cache.batch_stats or self.lane == 0):
            self.grads = {"weight": sum_gx.astype(dt), "bias": sum_g.astype(dt)}
        elif layer.affine:                                             # lane 0 reports the whole batch's
            self.grads = {"weight": np.zeros(c, dt), "bias": np.zeros(c, dt)}
        if not input_grad:
            return None
        gamma = layer.weight.data.astype(np.float64) if layer.affine else 1.0
        m = cache.count
        if cache.batch_stats:
            coef = (gamma * cache.invstd / m).astype(dt)               # (C,) gamma / (M sigma)
        else:
            coef = np.broadcast_to(gamma * cache.invstd, (c,)).astype(dt)   # (C,) gamma / sigma
        gx = cfg.alloc.empty(gs.shape, dt)
        self.launch(kernels.bn_backward_dx, gs.size, gs, cache.x_hat, cache.y, cache.slope, act, zero, coef,
                    sum_g.astype(dt), sum_gx.astype(dt), dt.type(m), cache.batch_stats, gx)
        out = as_view(gx.reshape(c, h, w, n))
        return out if cfg.channel_major else np.ascontiguousarray(out)
