"""The baseline: a careful plain-NumPy im2col CNN, the engine a user would write by hand.

No Numba, no tricks beyond what a careful NumPy user knows: ``sliding_window_view`` for im2col, one
matrix multiply per convolution, a loop over kernel offsets for col2im, reshape-and-reduce max
pooling with first-maximum argmax (PyTorch's tie rule), float32 throughout, and a stable softmax.
Only what the benchmark networks need: Conv (stride 1, zero padding, optional bias), ReLU, MaxPool
(kernel == stride, no padding), Flatten, Dense, BatchNorm (per-channel batch statistics in training,
running statistics in evaluation), Dropout (inverted), softmax cross-entropy and SGD with momentum
(torch's rule). ``Net.train()`` / ``Net.eval()`` switch the layers that care (BatchNorm, Dropout).

Layout NCHW, weights in PyTorch's shapes, so the same ``state_dict`` loads into all three contenders.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Conv:
    """x: (N, C, H, W) -> (N, O, OH, OW); weight (O, C, K, K), bias (O,) or None; stride 1, zero padding p."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, padding: int):
        self.weight, self.bias, self.padding = weight, bias, padding
        self.names = ["weight"] + ([] if bias is None else ["bias"])
        self.params = [weight] + ([] if bias is None else [bias])
        self.grads = [np.zeros_like(a) for a in self.params]

    def forward(self, x):
        o, c, k, _ = self.weight.shape
        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x      # (N, C, H+2p, W+2p)
        win = sliding_window_view(xp, (k, k), axis=(2, 3))                 # (N, C, OH, OW, K, K) view
        n, _, oh, ow = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)   # (N*OH*OW, C*K*K) copy
        out = cols @ self.weight.reshape(o, -1).T                          # (N*OH*OW, O)
        if self.bias is not None:
            out += self.bias
        self.cache = (cols, x.shape)
        return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)            # (N, O, OH, OW) view

    def backward(self, g):
        cols, (n, c, h, w) = self.cache
        o, _, k, _ = self.weight.shape
        p = self.padding
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, o)                        # (N*OH*OW, O)
        self.grads[0][...] = (g2.T @ cols).reshape(self.weight.shape)     # (O, C*K*K)
        if self.bias is not None:
            self.grads[1][...] = g2.sum(axis=0)
        dcols = g2 @ self.weight.reshape(o, -1)                            # (N*OH*OW, C*K*K)
        oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
        d6 = dcols.reshape(n, oh, ow, c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=g.dtype)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + oh, j:j + ow] += d6[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w]


class ReLU:
    names, params, grads = [], [], []

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, g):
        return g * self.mask


class MaxPool:
    """Non-overlapping k x k max pooling (stride k, no padding); H and W are cropped to multiples of k."""
    names, params, grads = [], [], []

    def __init__(self, k: int):
        self.k = k

    def forward(self, x):
        n, c, h, w = x.shape
        k = self.k
        oh, ow = h // k, w // k
        xw = x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k).transpose(0, 1, 2, 4, 3, 5)
        xw = xw.reshape(n, c, oh, ow, k * k)                               # (N, C, OH, OW, K*K) copy
        self.arg = xw.argmax(axis=-1)[..., None]                           # first maximum wins
        self.x_shape = x.shape
        return np.take_along_axis(xw, self.arg, axis=-1)[..., 0]

    def backward(self, g):
        n, c, h, w = self.x_shape
        k = self.k
        oh, ow = h // k, w // k
        gw = np.zeros((n, c, oh, ow, k * k), dtype=g.dtype)
        np.put_along_axis(gw, self.arg, g[..., None], axis=-1)
        dx = np.zeros(self.x_shape, dtype=g.dtype)
        dx[:, :, :oh * k, :ow * k] = gw.reshape(n, c, oh, ow, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, c, oh * k, ow * k)
        return dx


class Flatten:
    names, params, grads = [], [], []

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, g):
        return g.reshape(self.shape)


class Dense:
    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias
        self.names = ["weight", "bias"]
        self.params = [weight, bias]
        self.grads = [np.zeros_like(weight), np.zeros_like(bias)]

    def forward(self, x):
        self.x = x
        return x @ self.weight.T + self.bias                               # (N, out)

    def backward(self, g):
        self.grads[0][...] = g.T @ self.x
        self.grads[1][...] = g.sum(axis=0)
        return g @ self.weight


class BatchNorm:
    """Batch normalisation of (N, C, H, W) per channel, torch's BatchNorm2d (eps 1e-5, momentum 0.1).

    Training: mean and biased variance over the M = N*H*W values of each channel, x_hat = (x - mean)
    / sqrt(var + eps), y = gamma * x_hat + beta; the running statistics move by momentum towards the
    batch mean and the unbiased variance var * M / (M - 1), and num_batches_tracked counts the
    batches. Backward through the batch statistics, per channel::

        dbeta = sum(g),  dgamma = sum(g * x_hat),  dx = gamma / sqrt(var + eps) / M * (M*g - dbeta - x_hat*dgamma)

    Evaluation: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta (forward only here).
    """
    STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")   # state_dict order

    def __init__(self, weight, bias, running_mean, running_var, num_batches_tracked,
                 eps: float = 1e-5, momentum: float = 0.1):
        self.weight, self.bias = weight, bias                              # gamma, beta: (C,)
        self.running_mean, self.running_var = running_mean, running_var    # (C,)
        self.num_batches_tracked = num_batches_tracked                     # int64, 0-d
        self.eps, self.momentum = eps, momentum
        self.names = ["weight", "bias"]
        self.params = [weight, bias]
        self.grads = [np.zeros_like(weight), np.zeros_like(bias)]
        self.training = True

    def forward(self, x):
        t = x.dtype.type                                                   # constants in x's dtype
        if not self.training:
            scale = self.weight / np.sqrt(self.running_var + t(self.eps))     # (C,)
            self.cache = None
            return (x - self.running_mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]
        n, _, h, w = x.shape
        m = n * h * w
        mean = x.mean(axis=(0, 2, 3))                                      # (C,)
        xc = x - mean[:, None, None]                                       # (N, C, H, W)
        var = (xc * xc).mean(axis=(0, 2, 3))                               # (C,) biased
        invstd = 1 / np.sqrt(var + t(self.eps))                            # (C,)
        x_hat = xc * invstd[:, None, None]                                 # (N, C, H, W)
        f = t(self.momentum)
        self.running_mean *= 1 - f
        self.running_mean += f * mean
        self.running_var *= 1 - f
        self.running_var += f * var * t(m / (m - 1))
        self.num_batches_tracked += 1
        self.cache = (x_hat, invstd, m)
        return x_hat * self.weight[:, None, None] + self.bias[:, None, None]

    def backward(self, g):
        if self.cache is None:
            raise NotImplementedError("numpy_engine.BatchNorm: backward after an evaluation-mode forward "
                                      "is not implemented (the benchmark only trains in training mode)")
        x_hat, invstd, m = self.cache
        t = g.dtype.type
        dbeta = g.sum(axis=(0, 2, 3))                                      # (C,)
        dgamma = (g * x_hat).sum(axis=(0, 2, 3))                           # (C,)
        self.grads[0][...] = dgamma
        self.grads[1][...] = dbeta
        k = (self.weight * invstd / t(m))[:, None, None]                   # (C, 1, 1)
        return k * (t(m) * g - dbeta[:, None, None] - x_hat * dgamma[:, None, None])


class Dropout:
    """Inverted dropout: in training y = x * keep / (1 - p), keep ~ Bernoulli(1 - p) per element, drawn
    from ``rng``; dx = g * keep / (1 - p). The identity in evaluation and for p = 0."""
    names, params, grads = [], [], []

    def __init__(self, p: float, rng: np.random.Generator):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"numpy_engine.Dropout: p must lie in [0, 1), got {p!r}")
        self.p, self.rng = p, rng
        self.training = True

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.scaled_mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) < np.float32(1 - self.p)   # bool, shape of x
        self.scaled_mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.p))     # 0 or 1/(1-p)
        return x * self.scaled_mask

    def backward(self, g):
        return g if self.scaled_mask is None else g * self.scaled_mask


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy and its gradient (N, K), from one log-sum-exp."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    grad = np.exp(logp)
    grad[np.arange(n), labels] -= 1
    return float(-logp[np.arange(n), labels].mean()), grad / np.float32(n)


@dataclass
class Net:
    layers: list

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g

    def train(self, mode: bool = True) -> Net:
        for layer in self.layers:
            if hasattr(layer, "training"):
                layer.training = bool(mode)
        return self

    def eval(self) -> Net:
        return self.train(False)

    def named_grads(self) -> dict[str, np.ndarray]:
        """Parameter gradients keyed as the state_dict ("3.weight", ...)."""
        return {f"{i}.{name}": g for i, layer in enumerate(self.layers) for name, g in zip(layer.names, layer.grads)}


class SGDMomentum:
    """torch.optim.SGD(lr, momentum): buf = m*buf + g (buf = g on the first step); p -= lr*buf."""

    def __init__(self, net: Net, lr: float, momentum: float):
        self.pairs = [(p, g) for layer in net.layers for p, g in zip(layer.params, layer.grads)]
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)
        self.bufs = None

    def step(self):
        if self.bufs is None:
            self.bufs = [g.copy() for _, g in self.pairs]
        else:
            for buf, (_, g) in zip(self.bufs, self.pairs):
                buf *= self.momentum
                buf += g
        for buf, (p, _) in zip(self.bufs, self.pairs):
            p -= self.lr * buf


def train_step(net: Net, opt: SGDMomentum, x, labels) -> float:
    loss, grad = softmax_cross_entropy(net.forward(x), labels)
    net.backward(grad)
    opt.step()
    return loss
