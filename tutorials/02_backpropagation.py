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
# # Tutorial 2: backpropagation through every layer
#
# Training needs the gradient of the loss with respect to every weight. tinycnn has no automatic
# differentiation: every layer's backward pass is written by hand. This tutorial derives each one
# (ReLU, Sigmoid, dense, softmax cross-entropy, convolution, max and average pooling), shows it next to
# the lines of tinycnn that implement it, and then checks it numerically. At the end you will know how
# to read a gradient check, why it runs in float64, and why it fails at a "kink" even when the code is
# right.
#
# **The one idea.** A network is a chain of layers, $x \to y = f(x) \to \dots \to L$. Suppose we already
# know the *upstream gradient* $g = \partial L / \partial y$ (it has the shape of $y$). The chain rule
# gives
#
# $$\frac{\partial L}{\partial x_i} = \sum_j \frac{\partial L}{\partial y_j} \frac{\partial y_j}{\partial x_i}
# = \sum_j g_j \frac{\partial y_j}{\partial x_i}.$$
#
# That is what every `backward(grad_y)` computes: it returns $\partial L / \partial x$ (the shape of $x$)
# for the layer below, and writes $\partial L / \partial w$ into each parameter's `.grad`. Running the
# layers' backward passes in reverse order is backpropagation.
#
# **How we check.** Pick a random $u$ with the shape of $y$ and define the number
# $L(x) = \sum_j y_j(x)\, u_j$. Then $\partial L / \partial y = u$ exactly, so `backward(u)` must return
# $\partial L / \partial x$. We estimate that derivative one entry at a time by *central differences*,
#
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + h e_i) - L(x - h e_i)}{2h}, \qquad h = 10^{-6},$$
#
# and compare. `tinycnn.gradcheck.check_layer` does exactly this for the input and every parameter,
# and prints one row per tensor: the largest absolute difference, the *relative error*
# $\lVert a - n \rVert / \max(\lVert a \rVert, \lVert n \rVert)$ between the analytic gradient $a$ and the
# numerical one $n$, and where they differ most. The check passes when the relative error is below
# $10^{-7}$; section 8 explains that number.

# %%
import re

import matplotlib.pyplot as plt
import numpy as np

import tinycnn as tc
from tinycnn import kernels
from tinycnn.kernels import elementwise
from tinycnn.gradcheck import GradcheckReport, check_layer, check_loss, compare, numerical_gradient

from helpers import FAST, assert_agree, quote, rounding_bound, save_figure

rng = np.random.default_rng(7)


def away_from_zero(shape, margin=0.01):
    """Random normal numbers pushed at least ``margin`` away from 0 (section 9 says why)."""
    x = rng.standard_normal(shape)
    return np.sign(x) * (np.abs(x) + margin)


print("mode:", "fast" if FAST else "full")

# %% [markdown]
# ## 1. ReLU
#
# $y = \max(x, 0)$ elementwise. Each output depends only on its own input, so the chain rule has one
# term: $\partial L / \partial x_i = g_i \cdot \mathrm{ReLU}'(x_i)$, with $\mathrm{ReLU}'(x) = 1$ for
# $x > 0$ and $0$ for $x < 0$. At exactly $x = 0$ there is no derivative (the slope jumps from 0 to 1);
# tinycnn, like PyTorch, uses $\mathrm{ReLU}'(0) = 0$. The forward pass remembers where $x > 0$ (the
# mask `positive`); the backward pass lets the gradient through only there. Here are those two steps as
# tinycnn's plain NumPy reference functions, on the activation flattened to one vector:

# %% tags=["same-output"]
quote(elementwise.relu_forward_reference)
quote(elementwise.relu_backward_reference)
quote(tc.ReLU.forward)
quote(tc.ReLU.backward)

# %% [markdown]
# `tc.ReLU` computes exactly this on the activation as it is (any shape): `np.maximum(x, 0)` and the
# mask `x > 0` forward, `np.where(positive, g, 0)` backward. When a network runs, the executor
# (`tinycnn.fast`, tutorial 6) uses Numba twins of these two functions, `relu_forward` and
# `relu_backward` in the same file, which compute $y$ and the mask in one pass over the memory; the
# test suite checks on random inputs, zeros and NaNs included, that they give exactly what the
# references give. Taking a maximum and selecting round nothing, so "agree" here means bit for bit,
# which we check on an input with exact zeros:

# %%
relu = tc.ReLU()
x = np.array([[-1.5, 0.0, 2.0]])
g = rng.standard_normal(x.shape)
relu(x)
grad_x = relu.backward(g)
print("x      =", x[0], "\ng      =", g[0].round(3), "\ngrad_x =", grad_x[0].round(3))
assert grad_x[0, 0] == 0 and grad_x[0, 1] == 0 and grad_x[0, 2] == g[0, 2]   # ReLU'(0) = 0

x = rng.standard_normal((2, 3, 4, 4)).round(1)                  # .round(1) makes some inputs exactly 0
g = rng.standard_normal(x.shape)
y_ref, positive = elementwise.relu_forward_reference(x.ravel())
assert np.array_equal(relu(x).ravel(), y_ref) and np.array_equal(
    relu.backward(g).ravel(), elementwise.relu_backward_reference(positive, g.ravel()))
print(f"tc.ReLU vs the references on {x.size} inputs ({np.sum(x == 0)} of them 0): identical, forward and backward")

report = check_layer(tc.ReLU(), away_from_zero((2, 3, 4, 4)), rng=rng)
print(report)
assert report.ok

# %% [markdown]
# ## 2. Sigmoid
#
# $\sigma(x) = 1 / (1 + e^{-x})$. Differentiate:
#
# $$\sigma'(x) = \frac{e^{-x}}{(1 + e^{-x})^2} = \frac{1}{1 + e^{-x}} \cdot \frac{e^{-x}}{1 + e^{-x}}
# = \sigma(x)\,\big(1 - \sigma(x)\big).$$
#
# The derivative is written in terms of the *output*, so the forward pass caches $y = \sigma(x)$ and
# the backward pass needs no exponential at all:

# %% tags=["same-output"]
quote(tc.Sigmoid.backward)

# %%
report = check_layer(tc.Sigmoid(), rng.standard_normal((2, 3, 4, 4)) * 3, rng=rng)
print(report)
assert report.ok

s = tc.Sigmoid()
y = s(np.arange(-600, 601)[None] / 100)               # -6 to 6 in steps of 0.01, with an exact 0
slope = y * (1 - y)
assert slope.max() == 0.25 and y[0, np.argmax(slope)] == 0.5
print(f"largest slope of the sigmoid: {slope.max()} (at x = 0)")

# %% [markdown]
# Note the largest slope: $1/4$. Every sigmoid a gradient passes through multiplies it by
# $\sigma'(x) \le 1/4$: that factor alone shrinks it at least fourfold. But between two sigmoids sits a
# weight layer, and the gradient is multiplied by the weights too, so one layer's total factor is
# $w\,\sigma'(x)$, which exceeds 1 as soon as $|w| > 4$ where $\sigma' = 1/4$. Whether gradients vanish
# in a deep stack of sigmoids depends on the weights as well (tutorial 7 measures it layer by layer);
# with the usual small initial weights they do, which is one reason deep sigmoid networks trained
# slowly and ReLU, with slope 1, replaced them. Both halves, on a chain of 10 scalar layers
# $x \mapsto \sigma(w x) - \tfrac12$, started at $x = 0$ (the shift by $\tfrac12$ keeps every layer at
# its steepest point, $\sigma' = 1/4$, so each layer's factor is exactly $w/4$):

# %%
def chain_gradient(w, depth=10, x=0.0):
    """d(output)/d(input) of `depth` scalar layers x -> sigmoid(w * x) - 1/2, by the chain rule."""
    grad = 1.0
    for _ in range(depth):
        y = 1 / (1 + np.exp(-w * x))
        grad *= w * y * (1 - y)             # this layer's factor: w * sigma'(w x)
        x = y - 0.5
    return grad


for w in (1.0, 8.0):
    print(f"w = {w:g}: gradient through 10 sigmoid layers = {chain_gradient(w):.3e} (= (w/4)^10 = {(w / 4) ** 10:.3e})")
assert chain_gradient(1.0) <= 0.25 ** 10 * (1 + 1e-12)      # small weights: it vanishes
assert chain_gradient(8.0) > 1000                           # |w| > 4: it grows, though every sigma' <= 1/4
print("(away from x = 0 the sigmoids saturate, sigma' falls towards 0, and large weights no longer help)")

# %% [markdown]
# ## 3. Dense (fully connected)
#
# $y = x W^\top + b$ with $x$: (N, in), $W$: (out, in), $b$: (out,), that is
# $y_{no} = \sum_i x_{ni} W_{oi} + b_o$. Each weight $W_{oi}$ appears in the outputs $y_{no}$ of every
# sample $n$, multiplied by $x_{ni}$; each input $x_{ni}$ appears in every output $y_{no}$, multiplied by
# $W_{oi}$. So
#
# $$\frac{\partial L}{\partial W_{oi}} = \sum_n g_{no}\, x_{ni}, \qquad
# \frac{\partial L}{\partial b_o} = \sum_n g_{no}, \qquad
# \frac{\partial L}{\partial x_{ni}} = \sum_o g_{no}\, W_{oi},$$
#
# or with matrices: `dW = g.T @ x`, `db = g.sum(0)`, `dx = g @ W`. A handy sanity check: each gradient
# has the shape of its tensor, and there is only one way to multiply `g` (N, out) with `x` (N, in) or
# `W` (out, in) to get (out, in) or (N, in).

# %% tags=["same-output"]
quote(tc.Dense.backward)

# %%
report = check_layer(tc.Dense(6, 4, dtype=np.float64, rng=rng), rng.standard_normal((3, 6)), rng=rng)
print(report)
assert report.ok

# %% [markdown]
# ## 4. Softmax cross-entropy: the $p - y$ result
#
# The last layer produces one score ("logit") $z_k$ per class. Softmax turns them into probabilities
# $p_k = e^{z_k} / \sum_j e^{z_j}$, and the cross-entropy of a sample whose true class is $c$ is
# $-\log p_c$. Write $t$ for the one-hot target ($t_c = 1$, the rest 0), so the loss is
# $-\sum_k t_k \log p_k$ with $\log p_k = z_k - \log \sum_j e^{z_j}$. Differentiate with respect to $z_j$:
#
# $$\frac{\partial}{\partial z_j}\Big(-\sum_k t_k \log p_k\Big) = -\sum_k t_k\,(\delta_{kj} - p_j)
# = -t_j + p_j \sum_k t_k = p_j - t_j.$$
#
# All the exponentials and logarithms cancel: the gradient is *predicted probability minus target*. (It
# only needs $\sum_k t_k = 1$, so it holds for soft targets too.) tinycnn's loss is the mean over a batch
# of N samples, hence a factor $1/N$:

# %% tags=["same-output"]
quote(tc.SoftmaxCrossEntropy.backward)

# %%
N, K = 5, 4
z = rng.standard_normal((N, K)) * 2
labels = rng.integers(0, K, N)
loss_fn = tc.SoftmaxCrossEntropy()
loss = loss_fn(z, labels)
grad_z = loss_fn.backward()

p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)       # softmax, written directly
t = np.eye(K)[labels]                                       # one-hot targets
print(f"loss = {loss:.4f}\nN * grad_z (= p - t):\n{(N * grad_z).round(3)}")
# tinycnn reaches p through log-sum-exp, we went straight: two routes, different roundings. Each p is
# an exponential over a sum of K exponentials (about K + 3 roundings); log-sum-exp also rounds log p,
# which exp turns into a relative error of up to 2 max|z| units. Then p - t and the 1/N round once or
# twice more. So they agree to 2 gamma_(K + 3 + 2 max|z|) p / N + 2 gamma_2 |p - t| / N:
bound = rounding_bound(K + 3 + int(np.ceil(2 * np.abs(z).max())), p / N) + rounding_bound(2, np.abs(p - t) / N)
assert_agree("tinycnn's gradient vs (p - t) / N", grad_z, (p - t) / N, bound)
assert np.all(grad_z[np.arange(N), labels] < 0) and np.all(np.delete(grad_z, labels + K * np.arange(N)) > 0)
print("the true class gets p - 1 < 0 (push its score up), every other class p > 0 (push it down)")

report = check_loss(tc.SoftmaxCrossEntropy(), z, labels)
print(report)
assert report.ok

# %% [markdown]
# ## 5. Convolution: its backward pass is a convolution
#
# One channel, stride 1, no padding first (tutorial 1: tinycnn computes cross-correlation):
#
# $$y_{ij} = \sum_{m,n} x_{i+m,\,j+n}\, w_{mn} + b.$$
#
# **Weights.** $w_{mn}$ multiplies $x_{i+m,j+n}$ in output $(i, j)$, for every $(i, j)$:
#
# $$\frac{\partial L}{\partial w_{mn}} = \sum_{i,j} g_{ij}\, x_{i+m,\,j+n},$$
#
# a cross-correlation of the input with the upstream gradient (g plays the kernel), and
# $\partial L / \partial b = \sum_{ij} g_{ij}$.
#
# **Input.** Pixel $x_{pq}$ is used by every output whose window covers it, $(i, j) = (p - m, q - n)$,
# with weight $w_{mn}$:
#
# $$\frac{\partial L}{\partial x_{pq}} = \sum_{m,n} g_{p-m,\,q-n}\, w_{mn}.$$
#
# Look at the indices: this is the *true* convolution from tutorial 1 (the kernel walked backwards),
# of $g$ with $w$, over every position where they overlap at all (a "full" convolution, taking $g$ as
# 0 outside its range). Equivalently: pad $g$ with $K - 1$ zeros on each side and cross-correlate with
# the *flipped* kernel. With several channels, input channel $c$ collects from every output channel $o$
# through $w_{o,c}$, so the backward pass is a convolution from O channels to C channels whose weights
# are the forward weights with the two channel axes swapped and each kernel flipped. Padding $p$ in the
# forward pass trims $p$ from each side of the result (so pad $g$ by $K - 1 - p$); stride $s$ spreads $g$
# out with $s - 1$ zeros between its entries first. (If the stride left rows or columns over at the end,
# they get zero gradient: add that many zero rows to the spread-out $g$. The shapes below leave none.)
#
# tinycnn never builds that second convolution. Its forward pass was one matrix multiply (tutorial 1),
# `out = w2d @ cols + b`. By the dense-layer rule the gradients are `dW = g2d @ cols.T`,
# `db = g2d.sum(axis=1)` (the sum of $g$ over every image and position, $\partial L / \partial b$ from
# above) and `dcols = w2d.T @ g2d`, with `g2d` the upstream gradient as an (O, N·OH·OW) matrix.
# `dcols` holds, for every window, the gradient of each pixel *copy*; `col2im` adds each copy back onto
# the pixel it came from (pixels in several windows collect several contributions). That sum is the
# backward of the copy that `im2col` made.
#
# The code below is that, line for line. `kernels.col2im` is a parallel Numba loop (one thread per
# image and channel, so no two threads add into the same pixel); rather than that loop nest, read its
# plain NumPy reference, `col2im_reference` (one strided slice per kernel offset, added onto the padded
# image): the test suite checks on random shapes that the two agree up to the order of the additions,
# and below we compute the layer's input gradient again with it. (The executor of tutorial 6 runs the
# same mathematics faster, with the bias folded into the multiply and a channel-major layout.)

# %% tags=["same-output"]
quote(tc.Conv2D.backward)
quote(kernels.col2im_reference)

# %% [markdown]
# Two routes, then, to the same $\partial L / \partial x$: tinycnn's `col2im(W^T g)` (spelled out below with
# `col2im_reference`, the function quoted above), and a convolution
# of $g$ with the flipped, channel-swapped kernel, which we can build from tinycnn's own `Conv2D`. We
# check they agree for padding 0 (the "full" convolution), padding 1 and stride 2, with a non-square
# kernel so that a mix-up of height and width could not hide. Each entry is a sum of $O K_H K_W$
# products, computed in two different orders, so they must agree within the rounding bound
# $2\gamma_n S$ of tutorial 1, with $S$ the same convolution run on $|g|$ and $|w|$.

# %%
x = rng.standard_normal((2, 3, 7, 6))                     # (N, C, H, W)
for stride, padding in [(1, (0, 0)), (1, (1, 0)), (2, (1, 0))]:
    conv = tc.Conv2D(3, 4, (3, 2), stride=stride, padding=padding, dtype=np.float64, rng=rng)
    y = conv(x)                                           # (N, O, OH, OW)
    g = rng.standard_normal(y.shape)                      # a random upstream gradient
    grad_x = conv.backward(g)                             # (N, C, H, W)

    # the im2col route, spelled out with the plain reference: col2im(W^T g)
    n, o, oh, ow = y.shape
    g2d = g.transpose(1, 0, 2, 3).reshape(o, -1)          # (O, N*OH*OW)
    w2d = conv.weight.data.reshape(o, -1)                 # (O, C*KH*KW)
    via_col2im = kernels.col2im_reference(w2d.T @ g2d, 2, 3, 7, 6, 3, 2, stride, stride, *padding)  # (N, C, H, W)

    # the convolution route: spread g out by the stride, pad by K-1-p, cross-correlate with the flipped kernel
    g_spread = np.zeros((n, o, (oh - 1) * stride + 1, (ow - 1) * stride + 1))
    g_spread[:, :, ::stride, ::stride] = g
    back = tc.Conv2D(4, 3, (3, 2), padding=(3 - 1 - padding[0], 2 - 1 - padding[1]), bias=False,
                     dtype=np.float64, rng=rng)
    flipped = conv.weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)   # (C, O, KH, KW)
    back.weight.data[...] = flipped
    via_convolution = back(g_spread)
    back.weight.data[...] = np.abs(flipped)
    S = back(np.abs(g_spread))                            # sum of |terms| for every entry
    print(f"stride {stride}, padding {padding}:")
    bound = rounding_bound(4 * 3 * 2, S)                  # O * KH * KW terms per entry
    assert_agree("   Conv2D.backward vs col2im_reference(W^T g)", grad_x, via_col2im, bound)
    assert_agree("   Conv2D.backward vs conv of g with flip(W)", grad_x, via_convolution, bound)

# %% [markdown]
# And the weight gradient is the cross-correlation of the input with $g$, summed over the batch. For
# stride 1 and no padding, with the loop written straight from the formula, and the bias gradient
# against $g$ summed over images and positions:

# %%
conv = tc.Conv2D(3, 4, (3, 2), dtype=np.float64, rng=rng)
y = conv(x)
g = rng.standard_normal(y.shape)
conv.backward(g)
oh, ow = y.shape[2:]
dW = np.zeros(conv.weight.data.shape)                      # (O, C, KH, KW)
S = np.zeros(conv.weight.data.shape)
for m in range(3):
    for n in range(2):
        window = x[:, :, m:m + oh, n:n + ow]               # x[i+m, j+n] for every output (i, j): (N, C, OH, OW)
        dW[:, :, m, n] = np.einsum("noij,ncij->oc", g, window)
        S[:, :, m, n] = np.einsum("noij,ncij->oc", np.abs(g), np.abs(window))
assert_agree("conv.weight.grad vs sum over (n, i, j) of g[n, o, i, j] * x[n, c, i+m, j+n]",
             conv.weight.grad, dW, rounding_bound(x.shape[0] * oh * ow, S))
assert_agree("conv.bias.grad   vs sum over (n, i, j) of g[n, o, i, j]", conv.bias.grad, g.sum(axis=(0, 2, 3)),
             rounding_bound(x.shape[0] * oh * ow, np.abs(g).sum(axis=(0, 2, 3))))

# %% [markdown]
# Finally, the numerical check of the layer as a whole, on a setting with stride, padding and a
# non-square kernel:

# %%
conv = tc.Conv2D(2, 3, (3, 2), stride=2, padding=1, dtype=np.float64, rng=rng)
report = check_layer(conv, rng.standard_normal((2, 2, 5, 6)), rng=rng)
print(report)
assert report.ok

# %% [markdown]
# ## 6. Pooling: max routes, average spreads
#
# **Max pooling.** $y = \max$ of the window. Nudging the winning pixel moves $y$ by the same amount;
# nudging any other pixel does nothing (as long as it stays below the winner). So the derivative is 1
# for the winner and 0 for the rest: the backward pass *routes* each window's gradient to the pixel that
# won, and nothing else. Where windows overlap, a pixel that wins several windows collects the sum of
# their gradients. The forward pass remembers each winner's position (`argmax`).
#
# When several pixels tie for the maximum, the derivative does not exist (section 9) and a rule must
# pick one. tinycnn's rule is PyTorch's: scan the window row by row, left to right, and replace the
# running maximum only by a *strictly* greater value, so the **first** maximum in reading order wins
# and takes the whole gradient.

# %% tags=["same-output"]
quote(kernels.maxpool2d_forward_reference)
quote(kernels.maxpool2d_backward_reference)

# %%
x = np.array([[1, 3, 2, 2],
               [3, 0, 2, 1],
               [0, 5, 4, 4],
               [1, 2, 4, 4]], dtype=np.float64)[None, None]          # (1, 1, 4, 4), ties on purpose
pool = tc.MaxPool2D(2)
y = pool(x)
g = rng.standard_normal(y.shape).round(1)
grad_x = pool.backward(g)
print("x:\n", x[0, 0], "\ny = maxpool2x2(x):\n", y[0, 0], "\ng:\n", g[0, 0], "\ngrad_x:\n", grad_x[0, 0])
# The winners by the rule, worked out by hand: window (0,0) holds 3 at (0,1) and (1,0): the first, (0,1).
# Window (0,1) holds three 2s: the first is (0,2). Window (1,0): 5 at (2,1). Window (1,1): four 4s: (2,2).
expected = np.zeros((4, 4))
expected[0, 1], expected[0, 2], expected[2, 1], expected[2, 2] = g[0, 0].ravel()
assert np.array_equal(grad_x[0, 0], expected)
print("each window's gradient went to its first maximum in reading order: True")

x = rng.uniform(0, 1, (1, 1, 4, 4))
x[0, 0, 1, 2] = 5.0                                         # the largest pixel, inside all four 3x3 windows
pool = tc.MaxPool2D(3, stride=1)                            # overlapping windows: 2x2 outputs
y = pool(x)
g = rng.standard_normal(y.shape)
grad_x = pool.backward(g)
assert np.count_nonzero(grad_x) == 1
assert_agree("overlapping windows: gradient of the pixel that won all 4 vs the sum of their gradients",
             grad_x[0, 0, 1, 2], g.sum(), rounding_bound(4, np.abs(g).sum()))

# %% [markdown]
# **Average pooling.** $y = \frac{1}{K_H K_W} \sum$ of the window, so every pixel of the window has
# derivative $1 / (K_H K_W)$: the backward pass *spreads* each window's gradient evenly over it. (tinycnn
# follows PyTorch and counts padded zeros in the average, so the divisor is always $K_H K_W$, and the share
# that would go to a padded cell goes nowhere.)

# %% tags=["same-output"]
quote(kernels.avgpool2d_backward_reference)

# %%
x = rng.standard_normal((1, 1, 4, 4))
pool = tc.AvgPool2D(2)
y = pool(x)
g = rng.standard_normal(y.shape)
grad_x = pool.backward(g)
assert_agree("avg-pool gradient vs g / 4 copied over each 2x2 window", grad_x[0, 0],
             np.kron(g[0, 0], np.ones((2, 2))) / 4, 0.0)

for layer in (tc.MaxPool2D((3, 2), stride=(2, 1), padding=1), tc.AvgPool2D((3, 2), stride=(2, 1), padding=1)):
    report = check_layer(layer, rng.standard_normal((2, 2, 7, 6)), rng=rng)   # overlapping windows, padding
    print(report)
    assert report.ok

# %% [markdown]
# ## 7. A whole network, end to end
#
# Backpropagation is nothing more than these backward passes run in reverse order, each handing its
# $\partial L / \partial x$ to the layer below as that layer's upstream gradient. `Sequential.backward`
# does exactly that. Check a small CNN, loss included, against central differences of the loss itself
# with respect to every weight and the input.
#
# One change from the layer checks: the step is $h = 10^{-5}$. The loss is a mean over the batch and
# passes through a sigmoid and an average, so its gradient with respect to one input pixel is small
# (the cell prints its size), while the rounding error of the difference quotient, about
# $\varepsilon \lvert L \rvert / h$ with $\lvert L \rvert \approx 1$, does not shrink with it. With the usual
# $h = 10^{-6}$ the input row lands near or above the bar of $10^{-7}$ (the cell prints that too);
# section 8 shows how to choose $h$.

# %%
N, C = (2, 2) if FAST else (4, 3)
model = tc.Sequential(
    tc.Conv2D(C, 4, 3, padding=1, dtype=np.float64, rng=rng), tc.ReLU(), tc.MaxPool2D(2),   # 8x8 -> 4x4
    tc.Conv2D(4, 5, 3, padding=1, dtype=np.float64, rng=rng), tc.Sigmoid(), tc.AvgPool2D(2),  # -> 2x2
    tc.Flatten(), tc.Dense(5 * 2 * 2, 3, dtype=np.float64, rng=rng),
)
x = rng.standard_normal((N, C, 8, 8))
labels = rng.integers(0, 3, N)
loss_fn = tc.SoftmaxCrossEntropy()

loss_fn(model(x), labels)
grad_x = model.backward(loss_fn.backward())                 # fills every parameter's .grad
print(f"typical size of one entry of dL/dx: {np.sqrt(np.mean(grad_x ** 2)):.1e}")
at_1e6 = compare("grad x", grad_x, numerical_gradient(lambda: loss_fn(model(x), labels), x, h=1e-6), 1e-7)
print(f"relative error of dL/dx with h = 1e-6: {at_1e6.rel_error:.1e}")

report = GradcheckReport(f"loss(model(x)), input {x.shape}, float64, h = 1e-5", 1e-7)
report.rows.append(compare("grad x", grad_x, numerical_gradient(lambda: loss_fn(model(x), labels), x, h=1e-5), 1e-7))
for name, param in model.named_parameters():
    numeric = numerical_gradient(lambda: loss_fn(model(x), labels), param.data, h=1e-5)
    report.rows.append(compare(f"grad {name}", param.grad, numeric, 1e-7))
print(report)
assert report.ok

# %% [markdown]
# ## 8. Reading a gradient check: relative error, h, float64
#
# **Why relative error.** An absolute difference of $10^{-8}$ is tiny for a gradient of size 100 and
# huge for one of size $10^{-9}$. Dividing by the gradient's size makes the number mean the same thing
# everywhere. Why the *norm* of the whole tensor, not each entry? Individual entries can be nearly 0,
# and a tiny entry divided by a tiny entry is noise.
#
# **What a bug looks like.** Correct code lands near $10^{-10}$; a bug that touches the whole tensor
# lands far above the bar, often near 1. Two classic bugs: averaging the weight gradient over the batch
# when the loss already did (off by a factor N), and writing the sigmoid's derivative with the input
# instead of the output:

# %%
class DenseAveragingTwice(tc.Dense):
    def backward(self, grad_y):
        grad_x = super().backward(grad_y)
        self.weight.grad = self.weight.grad / grad_y.shape[0]     # BUG: the loss already took the mean
        return grad_x


class SigmoidFromInput(tc.Sigmoid):
    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, grad_y):
        return grad_y * self.x * (1 - self.x)                    # BUG: sigma'(x) is y(1 - y), not x(1 - x)


for buggy, x in [(DenseAveragingTwice(6, 4, dtype=np.float64, rng=rng), rng.standard_normal((3, 6))),
                 (SigmoidFromInput(), rng.standard_normal((2, 5)))]:
    report = check_layer(buggy, x, rng=rng)
    print(type(buggy).__name__, report, sep=": ")
    assert not report.ok and max(r.rel_error for r in report.rows) > 0.1

# %% [markdown]
# A bug confined to a few entries is another matter. The relative error is one number for the whole
# tensor, $\lVert a - n \rVert / \max(\lVert a \rVert, \lVert n \rVert)$, so an error in a few entries is
# diluted by all the correct ones. Plant one: a `Conv2D` whose backward pass forgets the gradient of
# the input's first column of pixels. The norm-wide relative error is far above the bar, so the check
# fails, but it is nowhere near 1, and in a larger tensor it would be smaller still. The *per-element*
# relative error, $|a_i - n_i| / \max(|a_i|, |n_i|)$ (over entries that are not tiny), is 1 exactly at
# the dropped entries: it says *where* the bug is.

# %%
class ConvDroppingAColumn(tc.Conv2D):
    def backward(self, grad_y):
        grad_x = super().backward(grad_y).copy()
        grad_x[:, :, :, 0] = 0.0                                  # BUG: the first column's gradient is lost
        return grad_x


buggy = ConvDroppingAColumn(2, 3, 3, padding=1, dtype=np.float64, rng=rng)
x = rng.standard_normal((2, 2, 6, 6))
u = rng.standard_normal((2, 3, 6, 6))                            # upstream gradient: L = sum(buggy(x) * u)
buggy(x)
analytic = buggy.backward(u)
numeric = numerical_gradient(lambda: float(np.sum(buggy(x) * u)), x)
norm_wide = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic), np.linalg.norm(numeric))
size = np.maximum(np.abs(analytic), np.abs(numeric))
per_element = np.where(size > 1e-8 * size.max(), np.abs(analytic - numeric) / np.maximum(size, 1e-300), 0.0)
bad = np.argwhere(per_element > 1e-6)
print(f"norm-wide relative error: {norm_wide:.3f} (fails the bar of 1e-7, but is far from 1)")
print(f"per-element relative error: largest {per_element.max():.3f}; {len(bad)} entries above 1e-6, "
      f"all in column {sorted(set(bad[:, 3].tolist()))} of the input")
assert 1e-3 < norm_wide < 0.5 and per_element.max() > 0.999
assert set(bad[:, 3].tolist()) == {0} and len(bad) == x[:, :, :, 0].size

# %% [markdown]
# **Why $h = 10^{-6}$, and why float64.** The central difference has two errors that pull in opposite
# directions. *Truncation*: the formula is exact for a parabola, so its error comes from the third
# derivative and shrinks like $h^2$. *Rounding*: $L(x \pm h e_i)$ is computed with a relative error of
# a few units of the unit roundoff $u$ (half the machine epsilon $\varepsilon$; $u = 2^{-53}$ in
# float64, $2^{-24}$ in float32), and dividing by $2h$ blows that up to about $\varepsilon \lvert L \rvert / h$.
# For a function whose value and derivatives are of order 1, the total is smallest near
# $h \approx \varepsilon^{1/3}$, where both are about $\varepsilon^{2/3}$ (larger or smaller values and
# curvatures shift both numbers; these are orders of magnitude, and using $u$ instead of
# $\varepsilon$ would change them by a factor below 2):
#
# | dtype | $u$ | $\varepsilon=2u$ | best $h\approx \varepsilon^{1/3}$ | best rel. error $\approx \varepsilon^{2/3}$ |
# |---|---|---|---|---|
# | float64 | $1.1\times10^{-16}$ | $2.2\times10^{-16}$ | $6\times10^{-6}$ | $4\times10^{-11}$ |
# | float32 | $6.0\times10^{-8}$ | $1.2\times10^{-7}$ | $5\times10^{-3}$ | $2\times10^{-5}$ |
#
# In float64 a correct backward pass lands orders of magnitude below our bar of $10^{-7}$ and a bug lands
# near 1: the check separates them cleanly. In float32 even a *correct* gradient cannot get below about
# $10^{-5}$, so the check could not tell a correct gradient from a slightly wrong one. Let us measure the
# whole curve on a small convolution + sigmoid, once in each dtype:

# %%
hs = np.logspace(-11, -1, 11 if FAST else 31)
model32 = tc.Sequential(tc.Conv2D(2, 2, 3, dtype=np.float32, rng=rng), tc.Sigmoid())
model64 = tc.Sequential(tc.Conv2D(2, 2, 3, dtype=np.float64, rng=rng), tc.Sigmoid())
model64.load_state_dict(model32.state_dict())          # the same weights (float32 -> float64 is exact)
x32 = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
x64 = x32.astype(np.float64)                           # the same input
u = rng.standard_normal((1, 2, 3, 3))                  # upstream gradient: L = sum(model(x) * u)

model64(x64)
analytic = model64.backward(u)                         # the float64 backward pass is the reference


def loss_of(model, x):
    """L = sum(model(x) * u) in float64, as a function of nothing (numerical_gradient nudges x in place)."""
    return lambda: float(np.sum(model(x).astype(np.float64) * u))


errors = {}
for name, model, x in [("float64", model64, x64), ("float32", model32, x32)]:
    errors[name] = np.array([compare("grad x", analytic, numerical_gradient(loss_of(model, x), x, h=float(h)),
                                     1e-7).rel_error
                             for h in hs])
i6 = np.argmin(np.abs(np.log10(hs) + 6))                                 # the point h = 1e-6
print(f"float64: relative error {errors['float64'][i6]:.1e} at h = 1e-6, best {errors['float64'].min():.1e} "
      f"at h = {hs[np.argmin(errors['float64'])]:.0e}")
print(f"float32: relative error {errors['float32'][i6]:.1e} at h = 1e-6, best {errors['float32'].min():.1e} "
      f"at h = {hs[np.argmin(errors['float32'])]:.0e}")
assert errors["float64"][i6] < 1e-7
assert errors["float32"].min() > 1e-7      # float32 never reaches the bar, at any h

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(hs, errors["float64"], "o-", ms=4, label="float64")
ax.loglog(hs, errors["float32"], "s-", ms=4, label="float32")
ax.axhline(1e-7, color="gray", ls=":", lw=1, label="pass bar 1e-7")
ax.axvline(1e-6, color="k", ls="--", lw=0.8, label="h = 1e-6 (check_layer's default)")
ax.set_xlabel("step h of the central difference")
ax.set_ylabel("relative error vs the analytic gradient")
ax.set_title("Rounding (left, ~u/h) against truncation (right, ~h^2)", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "02_relative_error_vs_h",
            "Relative error of a central-difference gradient against the step h: float64 reaches 1e-10 "
            "around h = 1e-5, float32 never gets below the pass bar")

# %% [markdown]
# That is why `check_layer` insists on float64 and tells you so:

# %%
try:
    check_layer(tc.Conv2D(1, 1, 3, rng=rng), np.zeros((1, 1, 4, 4), dtype=np.float32), rng=rng)
except TypeError as err:
    assert re.search(r"finite differences need float64", str(err)), err
    print("TypeError:", err)
else:
    raise AssertionError("check_layer accepted a float32 layer")

# %% [markdown]
# ## 9. Kinks: where a correct gradient "fails" the check
#
# ReLU at 0 and a max-pool tie are *kinks*: the function has a corner, the slope on one side differs from
# the slope on the other, and there is no derivative. The backward pass must still return something, and
# for one layer it returns one of the one-sided slopes (ReLU'(0) = 0; the tied winner listed first takes
# everything). Through a whole network that is no longer guaranteed: each layer picks a side by its own
# rule, and the product of those choices need not be the slope on either side of the point (tutorial 5
# meets such pixels in a trained network, and prints one).
# The central difference straddles the corner and returns the *average* of the two slopes. They disagree,
# and the check fails, though nothing is wrong with the code.
#
# ReLU with some inputs exactly 0: the numerical derivative there is $(\max(h, 0) - \max(-h, 0)) / 2h = 1/2$,
# the backward pass says 0. Then the same check with every input at least 0.01 away from 0 ($\gg h$):

# %%
x = away_from_zero((2, 8))
x[0, [1, 4]] = 0.0                                           # two inputs right on the kink
at_kink = check_layer(tc.ReLU(), x, rng=rng)
print("inputs with exact zeros:", at_kink, sep="\n")
assert not at_kink.ok and at_kink.rows[0].worst_index in [(0, 1), (0, 4)]

x[0, [1, 4]] = [0.3, -0.2]
away = check_layer(tc.ReLU(), x, rng=rng)
print("every input at least 0.01 from 0:", away, sep="\n")
assert away.ok

# %% [markdown]
# A max-pool tie: in a window where two pixels share the maximum, nudging either one *up* raises the
# output, nudging it *down* hands the win to the other and leaves the output unchanged. The central
# difference gives each of them 1/2; the backward pass gives the first one 1 and the other 0:

# %%
x = rng.uniform(0, 1, (1, 1, 2, 4))
x[0, 0, 0, 0] = x[0, 0, 1, 1] = 2.0                           # a tie in the left 2x2 window
pool = tc.MaxPool2D(2)
y = pool(x)
u = rng.standard_normal(y.shape)
analytic = pool.backward(u)
numeric = numerical_gradient(lambda: float(np.sum(pool(x) * u)), x)
print("analytic gradient of the left window / upstream gradient:\n", (analytic[0, 0, :, :2] / u[0, 0, 0, 0]).round(6))
print("numerical gradient of the left window / upstream gradient:\n", (numeric[0, 0, :, :2] / u[0, 0, 0, 0]).round(6))
# (2 + h) - 2 is not exactly h in floating point: the quotient is off by about u * 2 / h = 4e-10
assert np.all(np.abs(numeric[0, 0, [0, 1], [0, 1]] / u[0, 0, 0, 0] - 0.5) < 1e-8)
tie = check_layer(tc.MaxPool2D(2), x, rng=rng)
print(tie)
assert not tie.ok

x[0, 0, 1, 1] = 2.0 - 1e-3                                    # break the tie by far more than h
no_tie = check_layer(tc.MaxPool2D(2), x, rng=rng)
print(no_tie)
assert no_tie.ok

# %% [markdown]
# So when a check fails, first ask whether an input sits on a kink: an exact 0 into a ReLU, or equal
# values in a pooling window (common after a ReLU, which makes many exact zeros). The tests of tinycnn
# draw inputs that stay away from kinks, and test the tie rule and ReLU'(0) separately, by their
# definitions, as we did in sections 1 and 6.
#
# Are kinks harmful in training? A tempting argument says no: "any slope between the two one-sided ones
# (a *subgradient*) still points gradient descent downhill". That is false, even for a convex function.
# Take $f(x, y) = |x| + 2|y|$ at $(1, 0)$: $g = (1, 2)$ is a subgradient there ($1$ is the slope in $x$,
# and $2$ lies between the one-sided slopes $-2$ and $2$ in $y$), yet a step along $-g$ *raises* $f$:

# %%
f = lambda p: abs(p[0]) + 2 * abs(p[1])
point, g_sub = np.array([1.0, 0.0]), np.array([1.0, 2.0])
for t in (1e-3, 1e-2, 1e-1):
    print(f"f(point - {t:g} g) - f(point) = {f(point - t * g_sub) - f(point):+.4f}")
    assert f(point - t * g_sub) > f(point)                       # uphill, for every small step

# %% [markdown]
# What is true is weaker: for a convex function, a small enough step along minus a subgradient brings
# the point closer to the minimum, even when $f$ goes up (here the minimum is $(0, 0)$, and
# $(1 - t, -2t)$ is closer to it than $(1, 0)$ for $t < 0.4$), which is why subgradient methods converge
# with step sizes that shrink. Networks are not convex, so not even that is guaranteed. In practice the
# kinks cost little because training rarely sits *exactly* on one: with real-valued data and weights an
# input is almost never exactly 0 and exact ties are rare, except where a ReLU has made many exact zeros
# that then meet in a pooling window, and there the gradient is 0 either way.
#
# **What you have seen.** Every backward pass is the chain rule applied to one layer's formula: ReLU
# masks, Sigmoid multiplies by $y(1-y)$, dense multiplies by the transposed weights, softmax
# cross-entropy gives $p - t$, convolution's input gradient is a convolution of $g$ with the flipped
# kernel (which tinycnn computes as `col2im(W^T g)`), max pooling routes and average pooling spreads. A
# float64 central-difference check confirms each to about $10^{-10}$, and fails, as it should, at kinks.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function (or class) for you to complete, and a check that
# runs it on cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs.
# As shipped, the functions only raise `NotImplementedError`, so the checks say "not attempted yet".
# Reference solutions are in [`solutions/solutions_02.py`](solutions/solutions_02.py); try first.
#
# **Exercise 2.1: tanh.** Write a layer `Tanh(tc.Layer)` whose `forward(x)` returns $\tanh x$ and whose
# `backward(grad_y)` returns $\partial L / \partial x$. Derive $\tanh'$ in terms of the output, as
# section 2 did for the sigmoid. The check runs `check_layer` on it.

# %%
from exercises import ex02


class Tanh(tc.Layer):
    def forward(self, x):
        raise NotImplementedError  # your code here

    def backward(self, grad_y):
        raise NotImplementedError  # your code here


ex02.check_tanh(Tanh)

# %% [markdown]
# **Exercise 2.2: find a planted bug.** Section 8 showed that a norm-wide relative error dilutes a
# bug in a few entries. Write `find_bad_entries(analytic, numeric)`: a boolean mask of the entries
# whose per-element relative error $|a_i - n_i| / \max(|a_i|, |n_i|)$ exceeds $10^{-6}$, ignoring entries
# where both are below $10^{-8}$ times the largest (there a relative error is noise). The check
# plants bugs and asks where they are.

# %%
def find_bad_entries(analytic, numeric):
    """Boolean mask, shape of the inputs: True where the per-element relative error exceeds 1e-6."""
    raise NotImplementedError      # your code here


ex02.check_find_bug(find_bad_entries)

# %% [markdown]
# **Exercise 2.3: LeakyReLU.** $y = x$ for $x > 0$ and $y = a x$ otherwise, with a small slope $a$.
# Write `LeakyReLU(slope)` with its backward pass; at exactly $x = 0$ use the slope $a$ (PyTorch's
# choice, like ReLU'(0) = 0). The check runs `check_layer` away from the kink and tests the kink by the
# rule.

# %%
class LeakyReLU(tc.Layer):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        raise NotImplementedError  # your code here

    def backward(self, grad_y):
        raise NotImplementedError  # your code here


ex02.check_leaky_relu(LeakyReLU)
