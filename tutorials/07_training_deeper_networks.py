# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 7: training deeper networks
#
# Stack more layers and a network can represent more, but it also becomes harder to train: the
# gradient that reaches the first layers is a product of one factor per layer, and a product of many
# factors is easily tiny or huge. This tutorial measures that and the three tools that tamed it:
#
# 1. **Initialisation**: choose the scale of the initial weights so that each layer keeps the size
#    of the signal, forward and backward; measured as per-layer gradient norms of a deep network.
# 2. **Batch normalisation**: normalise every feature over the batch; its forward and backward passes
#    derived, checked against tinycnn's `BatchNorm2D` and against finite differences.
# 3. **Dropout's backward pass**, short but easy to get wrong.
# 4. **Residual blocks**, $y = x + F(x)$: a fork whose two gradients add, so the gradient has a path
#    around every block. A deep plain network against the same depth with residual blocks, trained on
#    the same budget.
#
# As in every tutorial, each claim below is checked by an `assert` when the page is made.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinycnn as tc
from tinycnn import data
from tinycnn.gradcheck import check_layer, numerical_gradient

from helpers import FAST, assert_agree, rounding_bound, save_figure

rng = np.random.default_rng(77)
print("mode:", "fast" if FAST else "full")

digits = data.load("embedded")                                    # MNIST digits shipped with tinycnn
n_train = 2000 if FAST else 10000
x_all = digits.x_train[:n_train].reshape(n_train, -1).astype(np.float64) / 255   # (N, 784)
x_all = (x_all - x_all.mean()) / x_all.std()                       # one mean and std for all pixels
y_all = digits.y_train[:n_train]
print(f"{n_train} digits as vectors of 784 pixels, standardised")

# %% [markdown]
# ## 1. Initialisation: keeping the signal's size
#
# A dense layer computes $y_j = \sum_{i=1}^{n} w_{ji} x_i$ (bias 0 at the start). With weights drawn
# independently, with mean 0 and variance $\sigma^2$, and inputs independent of them,
# $\operatorname{Var}(y_j) = n \sigma^2\, \mathbb{E}[x_i^2]$. After a ReLU, which zeroes the negative
# half of a symmetric $y$, $\mathbb{E}[\mathrm{relu}(y)^2] = \tfrac12 \operatorname{Var}(y)$. So one
# Dense + ReLU layer multiplies the mean square of the signal by $n \sigma^2 / 2$, and $L$ layers by
# $(n \sigma^2 / 2)^L$. Only $\sigma^2 = 2/n$ keeps it constant: **He initialisation** (He et al.,
# 2015). The backward pass is the same product with the transposed weights (and the ReLU's mask,
# which again keeps half), so the gradient's norm changes by $\sqrt{n \sigma^2 / 2}$ per layer: it is
# halved per layer at $\sigma^2 = 1/(2n)$ and doubled at $\sigma^2 = 8/n$.
#
# tinycnn's default, PyTorch's, is `kaiming_uniform` with $a = \sqrt 5$: uniform on
# $\pm 1/\sqrt n$, variance $1/(3n)$, six times smaller than He's. That is harmless for a few layers
# and a slow death for many. Measure it: a plain network of 20 Dense(64) + ReLU layers, one batch, and
# the norm of each layer's weight gradient, for four scales.

# %%
DEPTH, WIDTH, BATCH = 20, 64, 128


def plain_net(depth, weight_std=None, seed=0):
    """784 -> depth x (Dense(64) + ReLU) -> Dense(10). weight_std(fan_in) -> std of the normal init;
    None keeps tinycnn's default init (PyTorch's kaiming_uniform, variance 1 / (3 fan_in))."""
    r = np.random.default_rng(seed)
    layers, n = [], 784
    for _ in range(depth):
        layer = tc.Dense(n, WIDTH, dtype=np.float64, rng=r)
        if weight_std is not None:
            layer.weight.data[...] = r.standard_normal(layer.weight.shape) * weight_std(n)
            layer.bias.data[...] = 0.0
        layers += [layer, tc.ReLU()]
        n = WIDTH
    return tc.Sequential(*layers, tc.Dense(n, 10, dtype=np.float64, rng=r))


def gradient_norms(model, x, y):
    """One backward pass, layer by layer. Returns, for every Dense layer (first to last), the norm of
    dL/d(its input), the gradient the backward pass hands down, and the norm of its weight gradient."""
    loss_fn = tc.SoftmaxCrossEntropy()
    out = x
    for layer in model.layers:                 # each layer's own code, so each keeps its cache
        out = layer(out)
    loss_fn(out, y)
    g, signal, weights = loss_fn.backward(), [], []
    for layer in reversed(model.layers):
        g = layer.backward(g)
        if isinstance(layer, tc.Dense):
            signal.append(np.linalg.norm(g))
            weights.append(np.linalg.norm(layer.weight.grad))
    return np.array(signal[::-1]), np.array(weights[::-1])


scales = {"default (1/(3n))": None, "He (2/n)": lambda n: np.sqrt(2 / n),
          "too small (1/(2n))": lambda n: np.sqrt(0.5 / n), "too large (8/n)": lambda n: np.sqrt(8 / n)}
xb, yb = x_all[:BATCH], y_all[:BATCH]
norms = {name: gradient_norms(plain_net(DEPTH, std), xb, yb) for name, std in scales.items()}
# Dense layers 2 .. DEPTH are 64 -> 64: between their inputs lie DEPTH - 2 identical layers
ratio = {name: g[1] / g[DEPTH - 1] for name, (g, _) in norms.items()}
print(f"|dL/dx| at the input of Dense layer 2 / at Dense layer {DEPTH}, and the weight-gradient norm of layer 2:")
for name, (g, gw) in norms.items():
    factor = ratio[name] ** (1 / (DEPTH - 2))
    print(f"  {name:20s} ratio {ratio[name]:9.2e}: a factor {factor:.2f} per layer downwards; "
          f"|dL/dW| of layer 2: {gw[1]:.1e}")
assert ratio["too small (1/(2n))"] < 1e-3 and ratio["default (1/(3n))"] < 1e-3      # vanishing
assert ratio["too large (8/n)"] > 1e3                                              # exploding
assert 0.1 < ratio["He (2/n)"] < 10                                                # kept
# the predicted factor per layer on the gradient's norm, sqrt(n sigma^2 / 2), against the measured one
for name, predicted in (("too small (1/(2n))", 0.5), ("He (2/n)", 1.0), ("too large (8/n)", 2.0),
                        ("default (1/(3n))", np.sqrt(1 / 6))):
    measured = ratio[name] ** (1 / (DEPTH - 2))
    assert abs(np.log(measured / predicted)) < np.log(1.25), (name, measured, predicted)
print("measured factors within 25 % of the predicted sqrt(n sigma^2 / 2) = 0.5, 1, 2 and sqrt(1/6) = 0.41")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.2))
for name, (g, gw) in norms.items():
    ax0.semilogy(np.arange(1, len(g) + 1), g, "o-", ms=3, label=name)
    ax1.semilogy(np.arange(1, len(gw) + 1), gw, "o-", ms=3, label=name)
ax0.set(xlabel="Dense layer (1 = nearest the input)", ylabel="|dL/d(layer input)| (log scale)",
        title="the gradient handed down the network")
ax1.set(xlabel="Dense layer (1 = nearest the input)", ylabel="|dL/dW| (log scale)",
        title="the weight gradients the optimizer sees")
for ax in (ax0, ax1):
    ax.legend(title="weight variance", fontsize=8)
    ax.grid(alpha=0.3)
fig.suptitle(f"{DEPTH} Dense(64) + ReLU layers, one batch of {BATCH}, four initial scales", fontsize=11)
fig.tight_layout()
save_figure(fig, "07_init_gradient_norms",
            "Per-layer gradient norms of a 20-layer ReLU network for four initial scales: the gradient "
            "handed down shrinks or grows by a constant factor per layer except with He's scale; the weight "
            "gradients are then level but uniformly tiny or huge, or, with the default init, vanish towards the input")

# %% [markdown]
# Left: the lines are straight on the log scale, a constant factor per layer, and the measured factors
# match the predicted $\sqrt{n \sigma^2 / 2}$ (the first layer, 784 wide, and the last, 10 wide, are
# different and left out of the ratio). Right: the weight gradients, which is what the optimizer uses,
# need a second look. A weight gradient is the product of the layer's input (forward) and the gradient
# at its output (backward); without biases, at the too-small scale, the first shrinks going up and
# the second shrinks going down, so their product is the same at every layer, but uniformly tiny (and
# uniformly huge at the too-large scale): a learning rate that suits one scale is wrong by orders of
# magnitude for the other. With the default initialisation the biases keep the forward signal from
# shrinking, so only the backward factor is left, and the weight gradients vanish towards the input:
# plain SGD moves the first layers hardly at all. (Adam divides each weight's step by its own gradient
# size, which hides part of the problem; only part.)
#
# ## 2. Batch normalisation: forward, backward, checked
#
# Initialisation fixes the scale at the start; training then changes the weights, and the scales
# drift. Batch normalisation (Ioffe and Szegedy, 2015) normalises every feature during training,
# using the batch itself. For one feature with values $x_1 \dots x_N$ over a batch (for images, over
# the batch and every pixel of a channel, $M = N H W$ values):
#
# $$\mu = \frac1M \sum_i x_i, \quad \sigma^2 = \frac1M \sum_i (x_i - \mu)^2, \quad
#   \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad y_i = \gamma \hat x_i + \beta.$$
#
# **Backward.** $\partial L/\partial \beta = \sum_i g_i$ and $\partial L/\partial \gamma = \sum_i g_i \hat x_i$,
# as for any scale and shift. The input is the interesting part: every $x_j$ moves $\mu$ and $\sigma$,
# and through them every $\hat x_i$. With $\hat g_i = \gamma g_i$ and $s = 1/\sqrt{\sigma^2 + \epsilon}$,
# $\partial \hat x_i / \partial x_j = s\,(\delta_{ij} - \tfrac1M - \tfrac1M \hat x_i \hat x_j)$, so
#
# $$\frac{\partial L}{\partial x_j} = \frac{s}{M}\Big(M \hat g_j - \sum_i \hat g_i - \hat x_j \sum_i \hat g_i \hat x_i\Big).$$
#
# The two sums subtract from the gradient its mean and its component along $\hat x$: the directions in
# which a change of the input is undone by the normalisation. Written out, and compared with tinycnn's
# `BatchNorm2D` in training mode:

# %%
def batchnorm_forward(x, gamma, beta, eps):
    """Training-mode batch norm of x (N, C, H, W) over (N, H, W) per channel; returns y and x_hat."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)                   # (1, C, 1, 1)
    var = x.var(axis=(0, 2, 3), keepdims=True)                     # biased, as in training
    x_hat = (x - mean) / np.sqrt(var + eps)
    return gamma[None, :, None, None] * x_hat + beta[None, :, None, None], x_hat, var


def batchnorm_backward(g, x_hat, var, gamma, eps):
    """The formula above, per channel; g, x_hat: (N, C, H, W) -> dx, dgamma, dbeta."""
    m = g.shape[0] * g.shape[2] * g.shape[3]
    s = 1 / np.sqrt(var + eps)                                      # (1, C, 1, 1)
    g_hat = g * gamma[None, :, None, None]
    dx = s / m * (m * g_hat - g_hat.sum(axis=(0, 2, 3), keepdims=True)
                  - x_hat * (g_hat * x_hat).sum(axis=(0, 2, 3), keepdims=True))
    return dx, (g * x_hat).sum(axis=(0, 2, 3)), g.sum(axis=(0, 2, 3))


bn = tc.BatchNorm2D(3, dtype=np.float64)
bn.weight.data[...] = rng.standard_normal(3)
bn.bias.data[...] = rng.standard_normal(3)
x = rng.standard_normal((4, 3, 5, 5)) * 3 + 2
g = rng.standard_normal(x.shape)
y_tc = bn(x)
dx_tc = bn.backward(g)
y_ours, x_hat, var = batchnorm_forward(x, bn.weight.data, bn.bias.data, bn.eps)
dx, dgamma, dbeta = batchnorm_backward(g, x_hat, var, bn.weight.data, bn.eps)
M = 4 * 5 * 5
tol = rounding_bound(3 * M, np.abs(g).max() * M * np.abs(bn.weight.data).max() * 4 / np.sqrt(var.min() + bn.eps))
assert_agree("forward: ours vs BatchNorm2D", y_ours, y_tc, rounding_bound(4 * M, 10 * np.abs(y_tc).max()))
assert_agree("dx: the formula vs BatchNorm2D.backward", dx, dx_tc, tol)
assert_agree("dgamma", dgamma, bn.weight.grad, rounding_bound(M, np.abs(g * x_hat).sum(axis=(0, 2, 3))))
assert_agree("dbeta", dbeta, bn.bias.grad, rounding_bound(M, np.abs(g).sum(axis=(0, 2, 3))))
report = check_layer(tc.BatchNorm2D(3, dtype=np.float64), x, rng=rng)
print(report)
assert report.ok

# %% [markdown]
# One consequence is worth seeing, because it is why batch norm rescues a bad initialisation: the
# output does not depend on the scale of the layer before. Multiply a convolution's weights and bias
# by 10 and the normalised output is the same (up to the $\epsilon$ in the square root); its gradient
# with respect to those weights is ten times *smaller*, which is what keeps large weights from
# growing further.

# %%
conv = tc.Conv2D(2, 3, 3, dtype=np.float64, rng=rng)
images = rng.standard_normal((8, 2, 6, 6))
out1 = tc.BatchNorm2D(3, dtype=np.float64, eps=0.0)(conv(images))
conv.weight.data *= 10
conv.bias.data *= 10
out10 = tc.BatchNorm2D(3, dtype=np.float64, eps=0.0)(conv(images))
assert_agree("batch norm of conv(x) vs of (10 conv)(x)", out10, out1, 1e-12 * np.abs(out1).max())

# %% [markdown]
# ## 3. Dropout's backward pass
#
# Inverted dropout (tutorial 4) keeps each value with probability $1 - p$ and divides the kept ones by
# $1 - p$, so the expected output is the input: $y = x \odot m / (1 - p)$ with a random 0/1 mask $m$.
# For a fixed mask this is a linear map, diagonal, so the backward pass is the same multiplication:
# $\partial L / \partial x = g \odot m / (1 - p)$. The mask must be the one of the forward pass, which
# is why `Dropout` keeps it. Checked: the expectation, by averaging over many masks, and the backward
# pass against finite differences with the random generator reset before every forward pass (so every
# evaluation draws the same mask).

# %%
x = rng.standard_normal((1, 6))
drop = tc.Dropout(0.3, rng=np.random.default_rng(0))
many = np.stack([drop(x) for _ in range(20000)])                 # (20000, 1, 6)
se = many.std(axis=0) / np.sqrt(len(many))
print("mean of 20,000 dropout outputs / input:", np.round(many.mean(axis=0)[0] / x[0], 3))
assert np.all(np.abs(many.mean(axis=0) - x) < 5 * se)            # E[y] = x, within 5 standard errors

seeded = tc.Dropout(0.3, rng=np.random.default_rng(1))
report = check_layer(seeded, rng.standard_normal((3, 8)), rng=rng,
                     before_forward=lambda: setattr(seeded, "rng", np.random.default_rng(1)))
print(report)
assert report.ok

# %% [markdown]
# ## 4. Residual blocks: a fork whose gradients add
#
# A residual block (He et al., 2016) computes $y = x + F(x)$, where $F$ is a small stack of layers
# (here Dense, ReLU, Dense). The input is used twice: once by $F$, once by the identity path. When a
# value feeds two places, the chain rule adds the two contributions, because a change of $x$ changes
# $L$ through both:
#
# $$\frac{\partial L}{\partial x} = \underbrace{g}_{\text{identity path}} + \underbrace{\Big(\frac{\partial F}{\partial x}\Big)^\top g}_{\text{through } F}.$$
#
# So however small the gradient through $F$ is, $g$ itself reaches the block's input unchanged. Stack
# $D$ blocks and the gradient at the bottom contains $g$ from the top plus corrections, instead of a
# product of $D$ factors. tinycnn has a residual container, `tc.Residual`; to see that nothing is
# hidden in it, here is one written from scratch, as a `Layer` subclass with a hand-written backward
# pass: the sum at the fork is one line. It is then checked against finite differences and against
# `tc.Residual`.

# %%
class Residual(tc.Layer):
    """y = x + F(x), with F a list of layers that keep the shape. x: (N, ...) -> y: same shape."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def __repr__(self):
        return f"Residual({', '.join(map(repr, self.layers))})"

    def forward(self, x):
        out = x
        for layer in self.layers:
            out = layer(out)
        return x + out                                   # the identity path plus the branch F

    def backward(self, grad_y):
        g = grad_y
        for layer in reversed(self.layers):
            g = layer.backward(g)                        # (dF/dx)^T grad_y, through the branch
        return grad_y + g                                # the fork: the two gradients add

    def named_parameters(self):
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"{i}.{name}", p

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self


block = Residual(tc.Dense(5, 7, dtype=np.float64, rng=rng), tc.ReLU(), tc.Dense(7, 5, dtype=np.float64, rng=rng))
report = check_layer(block, rng.standard_normal((4, 5)), rng=rng)
print(report)
assert report.ok

# the same block through tinycnn's container: the same numbers, forward and backward
theirs = tc.Residual(tc.Sequential(*block.layers))
x5, g5 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
y_ours, dx_ours = block(x5), block.backward(g5)
w_grads_ours = [p.grad.copy() for p in block.parameters()]
y_theirs, dx_theirs = theirs(x5), theirs.backward(g5)
assert np.array_equal(y_ours, y_theirs) and np.array_equal(dx_ours, dx_theirs)
assert all(np.array_equal(a, p.grad) for a, p in zip(w_grads_ours, theirs.parameters()))
print("our Residual and tc.Residual: the same outputs, input gradient and weight gradients, bit for bit")

# dropping the identity path's gradient is exactly the bug the check must catch
class ResidualForgettingTheFork(Residual):
    def backward(self, grad_y):
        return super().backward(grad_y) - grad_y                   # BUG: only the branch's gradient


report = check_layer(ResidualForgettingTheFork(*block.layers), rng.standard_normal((4, 5)), rng=rng)
print("without the identity path's gradient:", "OK" if report.ok else "NOT OK (as it should be)")
assert not report.ok

# %% [markdown]
# Now the experiment. Two networks of the same depth on the same digits: a **plain** one, 784 → 64,
# then 30 Dense(64) + ReLU layers, then → 10; and a **residual** one with the same 30 hidden Dense
# layers paired into 15 blocks `Residual(Dense, ReLU, Dense)` with a ReLU after each block. Both start
# from tinycnn's default initialisation (whose vanishing gradients section 1 measured), both train with
# the same optimizer (SGD with momentum 0.9, learning rate 0.02), batch, seed and number of steps.
# First the per-layer gradient norms at the start, then the training curves.

# %%
HIDDEN = 30
STEPS = 150 if FAST else 600


def deep_net(residual, seed=0):
    r = np.random.default_rng(seed)
    layers = [tc.Dense(784, WIDTH, dtype=np.float64, rng=r), tc.ReLU()]
    for _ in range(HIDDEN // 2):
        a, b = tc.Dense(WIDTH, WIDTH, dtype=np.float64, rng=r), tc.Dense(WIDTH, WIDTH, dtype=np.float64, rng=r)
        layers += [Residual(a, tc.ReLU(), b), tc.ReLU()] if residual else [a, tc.ReLU(), b, tc.ReLU()]
    return tc.Sequential(*layers, tc.Dense(WIDTH, 10, dtype=np.float64, rng=r))


def dense_layers(model):
    found = []
    for layer in model.layers:
        found += [l for l in layer.layers if isinstance(l, tc.Dense)] if isinstance(layer, Residual) else (
            [layer] if isinstance(layer, tc.Dense) else [])
    return found


def train(model, steps, seed=0):
    """SGD with momentum; returns the loss of every step and the per-layer gradient norms at the start."""
    r = np.random.default_rng(seed)
    opt = tc.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn, losses, first_norms = tc.SoftmaxCrossEntropy(), [], None
    for step in range(steps):
        batch = r.integers(0, n_train, BATCH)
        losses.append(float(loss_fn(model(x_all[batch]), y_all[batch])))
        for p in model.parameters():
            p.grad[...] = 0
        model.backward(loss_fn.backward())
        if first_norms is None:
            first_norms = np.array([np.linalg.norm(l.weight.grad) for l in dense_layers(model)])
        opt.step()
    return np.array(losses), first_norms


plain_losses, plain_norms = train(deep_net(residual=False), STEPS)
res_losses, res_norms = train(deep_net(residual=True), STEPS)
tail = max(STEPS // 10, 10)
print(f"{HIDDEN} hidden layers, {STEPS} steps of {BATCH}:")
for name, losses, g in (("plain", plain_losses, plain_norms), ("residual", res_losses, res_norms)):
    print(f"  {name:8s} first-layer / last-layer gradient norm at the start {g[0] / g[-2]:.2e}; "
          f"loss {losses[:tail].mean():.3f} over the first {tail} steps, {losses[-tail:].mean():.3f} over the last")
assert res_norms[0] / res_norms[-2] > 100 * plain_norms[0] / plain_norms[-2]   # the gradient reaches the bottom
assert res_losses[-tail:].mean() < 0.5 * plain_losses[-tail:].mean()           # and the residual net learns
assert plain_losses[-tail:].mean() > 0.8 * np.log(10) or FAST                 # the plain one hardly does

# %%
def smooth(v, w=20):
    return np.convolve(v, np.ones(w) / w, mode="valid")


fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.2))
ax0.semilogy(np.arange(1, len(plain_norms) + 1), plain_norms, "o-", ms=3, label="plain")
ax0.semilogy(np.arange(1, len(res_norms) + 1), res_norms, "s-", ms=3, label="residual")
ax0.set(xlabel="Dense layer (1 = nearest the input)", ylabel="weight-gradient norm, first step (log)",
        title=f"{HIDDEN + 2} Dense layers, tinycnn's default init")
ax0.legend()
ax0.grid(alpha=0.3)
ax1.plot(np.arange(len(smooth(plain_losses))) + 20, smooth(plain_losses), label="plain")
ax1.plot(np.arange(len(smooth(res_losses))) + 20, smooth(res_losses), label="residual")
ax1.axhline(np.log(10), color="gray", ls=":", lw=1, label="ln 10: a uniform guess")
ax1.set(xlabel="step", ylabel="training loss (running mean of 20 steps)",
        title=f"same depth, same budget: SGD + momentum, batch {BATCH}")
ax1.legend()
ax1.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "07_plain_vs_residual",
            "Per-layer gradient norms at the first step and training loss of a 32-layer plain network and "
            "the same depth with residual blocks, trained on the same budget")

# %% [markdown]
# The left panel is section 1 again for the plain network: with the default initialisation, the
# gradient shrinks by a constant factor per layer towards the input, and the first layers get a
# gradient many orders of magnitude below the last's. In the residual network the norms stay within a
# small range from top to bottom: through every block the identity path hands $g$ down unchanged. The
# right panel is the consequence: on the same budget the plain network's loss hardly leaves
# $\ln 10$, the loss of a uniform guess, while the residual one learns (the numbers are printed above).
# He initialisation would let the plain network start too; batch norm and residual blocks are what
# keep a deep network trainable when its weights change, and the three are used together in modern
# CNNs (tinycnn's zoo has a `vgg-bn` network with batch norm).
#
# **What you have seen.** The size of a gradient changes by a factor per layer, which initialisation
# sets ($\sigma^2 = 2/n$ for ReLU keeps it at 1); batch norm's backward pass removes from the gradient
# the directions the normalisation undoes, and makes a layer insensitive to the scale of the one
# before; dropout's backward pass reuses the forward mask; and at a fork the gradients add, which in a
# residual block gives the gradient a path around every block.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function for you to complete, and a check that runs it on
# cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs. As shipped,
# the functions only raise `NotImplementedError`, so the checks say "not attempted yet". Reference
# solutions are in [`solutions/solutions_07.py`](solutions/solutions_07.py); try first.
#
# **Exercise 7.1: batch norm's backward pass, for vectors.** Write the backward pass of training-mode
# batch norm for x of shape (N, F) (normalised over the batch, per feature), from the formula of
# section 2. The check compares with central differences.

# %%
from exercises import ex07


def batchnorm_backward_2d(x, gamma, g, eps):
    """(dx, dgamma, dbeta) for y = gamma * (x - mean) / sqrt(var + eps) + beta over axis 0 of x (N, F)."""
    raise NotImplementedError      # your code here


ex07.check_batchnorm_backward(batchnorm_backward_2d)

# %% [markdown]
# **Exercise 7.2: dropout's backward pass.** Given the upstream gradient, the keep-mask of the forward
# pass and $p$, return $\partial L / \partial x$.

# %%
def dropout_backward(g, keep, p):
    """dL/dx for y = x * keep / (1 - p)."""
    raise NotImplementedError      # your code here


ex07.check_dropout_backward(dropout_backward)

# %% [markdown]
# **Exercise 7.3: a residual block by hand.** Without tinycnn's layers, write the backward pass of
# $y = x + \mathrm{relu}(x W_1^\top) W_2^\top$ for a batch x (N, F). Where does the fork's sum appear?
# Then try: what happens to the plain network of section 4 with He initialisation instead?

# %%
def residual_backward(x, w1, w2, g):
    """(dx, dw1, dw2) for y = x + relu(x @ w1.T) @ w2.T; w1 (H, F), w2 (F, H)."""
    raise NotImplementedError      # your code here


ex07.check_residual_backward(residual_backward)
