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
# # Tutorial 1: convolution by hand
#
# A convolutional layer slides a small grid of weights, the *kernel*, over an image and takes a
# weighted sum at every position. Section 0 asks why anyone would want that, on a real image. Then the
# sentence hides three questions this tutorial answers with code you can run:
#
# 1. Which way round is the kernel? The textbook formula *flips* it; CNN libraries (tinycnn, PyTorch)
#    do not. We compute both with plain loops, see them differ, and see why it does not matter once the
#    kernel is learned.
# 2. How big is the output? We derive the formula with padding and stride and check it against
#    tinycnn's `Conv2D` on hundreds of shapes.
# 3. How is it computed fast? With *im2col*, which copies every window into a column of a matrix, so
#    that the whole convolution becomes one matrix multiply.
#
# Every claim below is checked by an `assert`: if this page says it, the code proved it when the page
# was made.

# %%
import re

import matplotlib.pyplot as plt
import numpy as np

import tinycnn as tc
from tinycnn.kernels import conv_output_size, im2col

from helpers import FAST, assert_agree, quote, rounding_bound, save_figure

rng = np.random.default_rng(2024)
print("mode:", "fast" if FAST else "full")

# %% [markdown]
# ## 0. Why convolutions?
#
# Take one real image, a handwritten 7 from the MNIST digits that ship inside tinycnn (28x28 pixels,
# 0 = background, 255 = ink), and ask a simple question of it: where are its vertical edges, where the
# ink starts or stops as you go from left to right? A hand-made 3x3 filter answers it: weights $-1$ on
# the left column, $+1$ on the right (and twice that in the middle row, the Sobel filter). Laid on a
# patch, it sums the right column minus the left: large where the patch gets brighter to the right,
# negative where it gets darker, zero on flat ink or flat background. Slide it over every position:

# %%
from tinycnn import data

digits = data.load("embedded")
sevens = digits.x_test[digits.y_test == 7, 0]                                  # (500, 28, 28) uint8
fits = [im for im in sevens if im[-2:].max() == 0 and im[:, -3:].max() == 0]   # room to shift it (below)
seven = fits[0].astype(np.float64) / 255                                       # (28, 28), ink = 1
sobel_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])       # "brighter to the right"
edge_layer = tc.Conv2D(1, 1, 3, padding=1, bias=False, dtype=np.float64, rng=rng)
edge_layer.weight.data[0, 0] = sobel_x
edges = edge_layer(seven[None, None])[0, 0]                                     # (28, 28)
print(f"edge map: {np.sum(edges > 0.5)} pixels where ink starts (> 0.5), {np.sum(edges < -0.5)} where it "
      f"stops (< -0.5), {np.sum(np.abs(edges) < 1e-12)} of 784 exactly flat")
rows_with_ink = np.flatnonzero(seven.max(axis=1) > 0.5)
r = int(rows_with_ink[len(rows_with_ink) // 2])                                # a row through the digit
cols = np.flatnonzero(seven[r] > 0.5)
assert edges[r, cols[0] - 1] > 0 and edges[r, cols[-1] + 1] < 0                # left edge up, right edge down

# %% [markdown]
# **Few weights, shared.** The filter has 9 weights, and the same 9 are used at every position. A
# dense layer that computed the same kind of map, one output per pixel from all 784 input pixels, would
# need a weight for every (input pixel, output pixel) pair. For a layer with 8 such filters (8 output
# maps of 28x28, padding 1) the counts are:

# %%
conv8 = tc.Conv2D(1, 8, 3, padding=1, rng=rng)
dense_same = tc.Dense(28 * 28, 8 * 28 * 28, rng=rng)                          # the same input and output sizes
n_conv = sum(p.data.size for p in conv8.parameters())
n_dense = sum(p.data.size for p in dense_same.parameters())
print(f"Conv2D(1, 8, 3): {n_conv:,} parameters; Dense(784, {8 * 28 * 28:,}): {n_dense:,} parameters "
      f"({n_dense / n_conv:,.0f} times as many)")
assert n_conv == 8 * 9 + 8 and n_dense == 784 * 6272 + 6272
del dense_same                                                               # 19.7 MB of float32 weights

# %% [markdown]
# The dense layer *can* compute the edge map (put the 9 Sobel weights in the right places of each
# row, zeros elsewhere), but it would have to learn those weights separately for every position, from
# examples that show an edge at that position. The convolution learns one filter and applies it
# everywhere: a 7 written further to the left has the same edges, in other places.
#
# That is **translation equivariance**: shifting the input shifts the output by the same amount, and
# nothing else changes. Shift the 7 by 3 pixels to the right and 2 down (its border is background, so
# nothing falls off the edge) and compare. A random dense layer has no such property.

# %%
def shift(image, down, right):
    """Move an image (H, W) down and right, filling with background (0)."""
    out = np.zeros_like(image)
    out[down:, right:] = image[:image.shape[0] - down, :image.shape[1] - right]
    return out


assert seven[-2:].max() == 0 and seven[:, -3:].max() == 0          # nothing of the digit is shifted out
moved = shift(seven, 2, 3)
edges_moved = edge_layer(moved[None, None])[0, 0]
S = edge_layer.weight.data.__abs__().sum() * 1.0                     # |terms| sum to at most 8 per output
assert_agree("conv(shift(x)) vs shift(conv(x))", edges_moved[2:, 3:], edges[:-2, :-3],
             rounding_bound(9, np.full((26, 25), S)))
toy_dense = tc.Dense(28 * 28, 28 * 28, dtype=np.float64, rng=rng)
d0 = toy_dense(seven.reshape(1, -1)).reshape(28, 28)
d1 = toy_dense(moved.reshape(1, -1)).reshape(28, 28)
mismatch = np.abs(d1[2:, 3:] - d0[:-2, :-3]).max()
print(f"a random Dense(784, 784): |dense(shift(x)) - shift(dense(x))| up to {mismatch:.2f}, "
      f"against outputs of size {np.abs(d0).max():.2f}: no equivariance")
assert mismatch > 0.1 * np.abs(d0).max()

# %% [markdown]
# **Channels.** One filter finds one kind of pattern. A layer has many: `Conv2D(1, 8, 3)` has 8
# filters and returns 8 maps, the output's *channels*. The next layer's filters then span all
# channels: a filter of `Conv2D(8, 16, 3)` has shape (8, 3, 3) and adds up what 8 maps say in a 3x3
# neighbourhood. The extreme case is the **1x1 convolution**: a filter of shape (C, 1, 1) looks at one
# pixel, across all channels, so it mixes channels and nothing else, the same matrix at every pixel.
# It is a dense layer applied to every pixel's vector of channels:

# %%
maps = rng.standard_normal((2, 8, 5, 5))                     # (N, C, H, W): 8 channels
mix = tc.Conv2D(8, 3, 1, bias=False, dtype=np.float64, rng=rng)
w_mix = mix.weight.data[:, :, 0, 0]                          # (3, 8): one row per output channel
per_pixel = np.einsum("oc,nchw->nohw", w_mix, maps)         # the same (3, 8) matrix at every pixel
assert_agree("1x1 Conv2D vs the channel matrix at every pixel", mix(maps), per_pixel,
             rounding_bound(8, np.einsum("oc,nchw->nohw", np.abs(w_mix), np.abs(maps))))

# %% [markdown]
# **Receptive field.** One output of a 3x3 convolution depends on a 3x3 patch of its input, its
# *receptive field*. Stack two: each of the 3x3 inputs of the second depends on a 3x3 patch of the
# first's input, so together a 5x5 patch; $L$ stacked 3x3 convolutions see $(2L + 1)^2$ pixels. A 2x2
# pooling between them doubles the step: a width of $r$ pooled pixels covers $2r$ pixels before the
# pooling, and the 3x3 convolution before that adds 2, so the width grows as $r_L = 2 r_{L-1} + 2$,
# exponentially in depth. So a deep network of small filters ends up looking at large parts of the image. We measure
# the receptive field rather than trust the arithmetic: send a one-hot gradient back from the centre
# output, and count the input pixels that receive some of it (all weights positive, so nothing cancels).

# %%
def receptive_field(layers, size=160):
    """Width of the input square that the centre output of ``layers`` depends on, via one backward pass."""
    x = np.ones((1, 1, size, size))
    for layer in layers:
        x = layer(x)
    g = np.zeros_like(x)
    g[0, 0, x.shape[2] // 2, x.shape[3] // 2] = 1.0
    for layer in reversed(layers):
        g = layer.backward(g)
    hit = np.argwhere(g[0, 0] != 0)
    return int(hit[:, 1].max() - hit[:, 1].min() + 1)


def positive_conv():
    conv = tc.Conv2D(1, 1, 3, padding=1, dtype=np.float64, rng=rng)
    conv.weight.data[...] = np.abs(conv.weight.data) + 0.1
    return conv


depths = range(1, 6)
rf_plain = [receptive_field([positive_conv() for _ in range(L)]) for L in depths]
rf_pooled = [receptive_field(sum([[positive_conv(), tc.AvgPool2D(2)] for _ in range(L - 1)], []) + [positive_conv()])
             for L in depths]
print("receptive field of L stacked 3x3 convolutions:         ", rf_plain)
print("... with a 2x2 average pooling between each two of them:", rf_pooled)
assert rf_plain == [2 * L + 1 for L in depths]
assert rf_pooled == [5 * 2 ** (L - 1) - 2 for L in depths]          # r_L = 2 r_(L-1) + 2: 3, 8, 18, 38, 78

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
ax0.imshow(np.zeros((11, 11)), cmap="gray_r", vmin=0, vmax=1)
for L, color in zip((3, 2, 1), ("tab:green", "tab:orange", "tab:blue")):
    ax0.add_patch(plt.Rectangle((5 - L - 0.5, 5 - L - 0.5), 2 * L + 1, 2 * L + 1, fill=True, alpha=0.25,
                                color=color, label=f"{L} layer{'s' if L > 1 else ''}: {2 * L + 1}x{2 * L + 1}"))
ax0.plot(5, 5, "k*", ms=12, label="one output")
ax0.set_xticks(np.arange(-0.5, 11, 1), [])
ax0.set_yticks(np.arange(-0.5, 11, 1), [])
ax0.grid(color="0.7", lw=0.5)
ax0.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="3x3 convolutions")
ax0.set_title("input pixels one output depends on", fontsize=10)
ax1.plot(list(depths), rf_plain, "o-", label="3x3 convolutions")
ax1.plot(list(depths), rf_pooled, "s-", label="3x3 convolutions with 2x2 pooling between")
ax1.set(xlabel="number of 3x3 convolutions", ylabel="receptive field width (pixels)", yscale="log")
ax1.set_xticks(list(depths))
ax1.legend(fontsize=8)
ax1.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "01_receptive_field",
            "The input square one output depends on after 1, 2 and 3 stacked 3x3 convolutions, and its "
            "width against depth, measured by one backward pass, with and without pooling")

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
axes[0].imshow(seven, cmap="gray_r")
axes[0].set_title("a 7 from MNIST (ink dark)", fontsize=10)
limit = np.abs(edges).max()
im = axes[1].imshow(edges, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[1].set_title("Sobel filter: red = ink starts,\nblue = ink stops (left to right)", fontsize=10)
axes[2].imshow(edges_moved, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[2].set_title("the same filter on the 7 shifted\n2 down, 3 right: the map shifts", fontsize=10)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=list(axes), fraction=0.02, label="filter response")
save_figure(fig, "01_edge_filter",
            "A handwritten 7, its vertical edges found by a hand-made 3x3 filter, and the edge map of the "
            "shifted 7, which is the edge map shifted")

# %% [markdown]
# So a convolutional layer builds in two facts about images: what matters is local (a pattern is a
# small patch of neighbouring pixels), and it may appear anywhere (the same filter everywhere). That
# costs a tiny fraction of the weights of a dense layer (here 1 in 61,544) and gives translation
# equivariance for free; the
# channels let a layer look for many patterns at once, and depth lets later layers see large parts of
# the image. The rest of this tutorial looks at the operation itself.

# %% [markdown]
# ## 1. Two formulas that look alike
#
# The usual definition of the 2-D convolution of an image $x$ with a kernel $k$ is
#
# $$y(i, j) = \sum_{u, v} x(u, v)\, k(i - u,\ j - v).$$
#
# Read the indices: as the image index $u$ goes *up*, the kernel index $i - u$ goes *down*. The kernel
# is walked backwards, which is the same as walking a kernel that has been flipped upside down and left
# to right (rotated by 180 degrees).
#
# CNN libraries compute something slightly different, the *cross-correlation*:
#
# $$y(i, j) = \sum_{m, n} x(i + m,\ j + n)\, k(m, n).$$
#
# Both indices go up together: lay the kernel on the image with its top-left corner at $(i, j)$,
# multiply the entries that lie on top of each other, and add. No flip.
#
# Here are both, written as literally as possible. `convolve_full` is the first formula: for every
# output position it visits every image pixel and keeps the terms where the kernel index $(i-u, j-v)$
# falls inside the kernel. Its output is larger than the image (the kernel may hang over the edges);
# the part where the kernel lies fully inside the image is rows $K_H-1$ to $H-1$, the "valid" part.

# %%
def convolve_full(x, k):
    """True convolution, y(i, j) = sum_{u,v} x(u, v) k(i-u, j-v). x: (H, W), k: (KH, KW) -> (H+KH-1, W+KW-1)."""
    H, W = x.shape
    KH, KW = k.shape
    y = np.zeros((H + KH - 1, W + KW - 1))
    for i in range(H + KH - 1):
        for j in range(W + KW - 1):
            for u in range(H):
                for v in range(W):
                    if 0 <= i - u < KH and 0 <= j - v < KW:
                        y[i, j] += x[u, v] * k[i - u, j - v]
    return y


def convolve_valid(x, k):
    """The part of convolve_full where the kernel lies inside the image: (H-KH+1, W-KW+1)."""
    KH, KW = k.shape
    H, W = x.shape
    return convolve_full(x, k)[KH - 1:H, KW - 1:W]


def cross_correlate(x, k):
    """What CNN layers compute, y(i, j) = sum_{m,n} x(i+m, j+n) k(m, n). x: (H, W) -> (H-KH+1, W-KW+1)."""
    H, W = x.shape
    KH, KW = k.shape
    y = np.zeros((H - KH + 1, W - KW + 1))
    for i in range(H - KH + 1):
        for j in range(W - KW + 1):
            for m in range(KH):
                for n in range(KW):
                    y[i, j] += x[i + m, j + n] * k[m, n]
    return y


# %% [markdown]
# A tiny image with small whole numbers, and a kernel numbered 1 to 9 so you can follow where each
# entry goes. (With whole numbers every product and sum is exact in floating point, so "equal" below
# means *bit for bit* equal.)

# %%
image = rng.integers(0, 4, size=(5, 5)).astype(np.float64)
kernel = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
flipped = kernel[::-1, ::-1]          # upside down and left to right: a 180-degree rotation

print("image:\n", image)
print("kernel:\n", kernel)
print("flipped kernel:\n", flipped)
print("true convolution (valid part):\n", convolve_valid(image, kernel))
print("cross-correlation:\n", cross_correlate(image, kernel))

# %% [markdown]
# The two results differ. But the convolution with `kernel` is exactly the cross-correlation with the
# *flipped* kernel. To see why, look at one axis. The valid output number $i$ sits at position
# $i' = i + K_H - 1$ of the full output, so $y(i') = \sum_u x(u)\, k(i + K_H - 1 - u)$. Count the image
# pixels from the window's start instead, $u = i + m$: the kernel index becomes $K_H - 1 - m$, which is
# inside the kernel exactly when $0 \le m < K_H$, and
#
# $$y(i') = \sum_{m=0}^{K_H-1} x(i + m)\, k(K_H - 1 - m) = \sum_{m} x(i + m)\, \mathrm{flip}(k)(m),$$
#
# a cross-correlation with the flipped kernel. The same happens on the other axis. The code agrees:

# %%
assert not np.array_equal(convolve_valid(image, kernel), cross_correlate(image, kernel))
assert np.array_equal(convolve_valid(image, kernel), cross_correlate(image, flipped))
assert np.array_equal(cross_correlate(image, kernel), convolve_valid(image, flipped))
print("convolution with k == cross-correlation with flip(k): True (bit for bit)")

symmetric = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])   # a blur: flip(k) == k
assert np.array_equal(convolve_valid(image, symmetric), cross_correlate(image, symmetric))
print("for a kernel symmetric under the flip (a blur), the two are the same: True")

# %% [markdown]
# So which one does tinycnn compute? Put the kernel into a `Conv2D` layer (one input channel, one
# output channel, no bias) and compare. Its weight has PyTorch's shape `(out_channels, in_channels, KH, KW)`
# and its input is a batch in NCHW layout: `(N, C, H, W)`.

# %%
layer = tc.Conv2D(1, 1, 3, bias=False, dtype=np.float64, rng=rng)
layer.weight.data[0, 0] = kernel
y_tinycnn = layer(image[None, None])[0, 0]          # (1, 1, 5, 5) -> (1, 1, 3, 3) -> (3, 3)
assert np.array_equal(y_tinycnn, cross_correlate(image, kernel))
print("tinycnn.Conv2D computes the cross-correlation:\n", y_tinycnn)

try:
    import torch
except ImportError:
    print("(PyTorch is not installed here; skipping the comparison with torch.nn.functional.conv2d)")
else:
    y_torch = torch.nn.functional.conv2d(torch.from_numpy(image[None, None]),
                                         torch.from_numpy(kernel[None, None]))[0, 0].numpy()
    assert np.array_equal(y_torch, y_tinycnn)
    print("PyTorch's conv2d gives the same numbers: it computes the cross-correlation too")

# %%
def show_matrix(ax, a, title, fmt="{:g}", vmin=None, vmax=None):
    """Draw a small matrix as coloured cells with its numbers written in."""
    vmin = a.min() if vmin is None else vmin
    vmax = a.max() if vmax is None else vmax
    ax.imshow(a, cmap="viridis", vmin=vmin, vmax=vmax)
    for (r, c), v in np.ndenumerate(a):
        bright = (v - vmin) > 0.6 * (vmax - vmin)          # dark text on the bright end of viridis
        ax.text(c, r, fmt.format(v), ha="center", va="center", color="k" if bright else "w", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


fig, axes = plt.subplots(1, 5, figsize=(13, 3.4))
panels = [(image, "image x"), (kernel, "kernel k"), (flipped, "flip(k)"),
          (convolve_valid(image, kernel), "true convolution\nx * k"),
          (cross_correlate(image, kernel), "cross-correlation\n(what Conv2D computes)")]
for ax, (a, title) in zip(axes, panels):
    show_matrix(ax, a, title)
fig.tight_layout()
save_figure(fig, "01_convolution_vs_cross_correlation",
            "The image, the kernel, the flipped kernel, and the two results: true convolution and "
            "cross-correlation differ for a kernel that is not symmetric")

# %% [markdown]
# ## 2. Learning makes the difference disappear
#
# In a CNN nobody writes the kernel down: it is learned. Suppose the "right" filter for a task is a
# true convolution with `kernel`. A layer that computes cross-correlation can represent it exactly,
# with the weights `flip(kernel)`, so training should find those.
#
# Let us check. We make random images, compute targets with the *true convolution* (`convolve_valid`,
# the literal formula above), and train one `Conv2D(1, 1, 3, bias=False)` to reproduce them, with the
# mean squared error
#
# $$L(w) = \frac{1}{M} \sum_{\text{pixels}} \big(y(w) - t\big)^2, \qquad
# \frac{\partial L}{\partial y} = \frac{2}{M}(y - t),$$
#
# where $M$ is the number of output pixels. We write that gradient by hand, give it to the layer's
# `backward`, and let `tc.SGD` update the weights.
#
# How many steps? We do not have to guess. $y$ is linear in $w$, so $L$ is a quadratic bowl with
# Hessian $H = \frac{2}{M} A A^\top$, where $A$ holds one image window per column (the im2col matrix we
# meet in section 4). Plain gradient descent with learning rate $1/\lambda_{max}(H)$ shrinks the
# distance to the minimum by at least the factor $\rho = 1 - \lambda_{min}/\lambda_{max}$ per step:
#
# $$\lVert w_t - w^* \rVert \le \rho^t\, \lVert w_0 - w^* \rVert.$$
#
# The ratio $\lambda_{min}/\lambda_{max}$ depends on the images. In real photographs neighbouring pixels
# are alike, which makes some directions of the bowl much flatter than others (a small $\lambda_{min}$)
# and training slower. Our random images imitate that: white noise averaged over 2x2 blocks.
#
# We train in float64 so that rounding (about $10^{-16}$) stays far below the tolerance we ask for: the
# learned kernel must equal `flip(kernel)` to a relative error of $10^{-6}$, and we run exactly as many
# steps as the bound says that takes.

# %%
n_images, size = (8, 10) if FAST else (64, 16)
noise = rng.standard_normal((n_images, 1, size + 1, size + 1))
images = tc.AvgPool2D(2, stride=1)(noise)                                   # smooth images: (N, 1, H, W)
targets = np.stack([convolve_valid(im[0], kernel) for im in images])[:, None]  # (N, 1, H-2, W-2)

A = im2col(images, 3, 3, 1, 1, 0, 0)              # (9, M): every 3x3 window as a column
M = A.shape[1]
eigenvalues = np.linalg.eigvalsh(2 / M * A @ A.T)  # ascending
lam_min, lam_max = eigenvalues[0], eigenvalues[-1]
rho = 1 - lam_min / lam_max

student = tc.Conv2D(1, 1, 3, bias=False, dtype=np.float64, rng=rng)
w_star = flipped
tolerance = 1e-6 * np.linalg.norm(w_star)
e0 = np.linalg.norm(student.weight.data[0, 0] - w_star)
steps = int(np.ceil(np.log(tolerance / e0) / np.log(rho)))
print(f"{n_images} images of {size}x{size}: M = {M} windows; "
      f"lambda_min = {lam_min:.3f}, lambda_max = {lam_max:.3f}, rho = {rho:.3f}")
print(f"start: |w0 - flip(k)| = {e0:.2f}; the bound promises |w - flip(k)| < {tolerance:.1e} after {steps} steps")

opt = tc.SGD(student.parameters(), lr=1 / lam_max)
dist_flipped, dist_kernel, losses = [e0], [np.linalg.norm(student.weight.data[0, 0] - kernel)], []
for _ in range(steps):
    y = student(images)
    losses.append(np.mean((y - targets) ** 2))
    student.backward(2 * (y - targets) / y.size)    # dL/dy, shape (N, 1, H-2, W-2)
    opt.step()
    w = student.weight.data[0, 0]
    dist_flipped.append(np.linalg.norm(w - w_star))
    dist_kernel.append(np.linalg.norm(w - kernel))

bound = e0 * rho ** np.arange(steps + 1)
floor = 100 * np.finfo(np.float64).eps * np.linalg.norm(w_star)    # rounding in float64
assert all(d <= b * (1 + 1e-9) + floor for d, b in zip(dist_flipped, bound)), "the error broke its bound"
assert dist_flipped[-1] < tolerance
assert dist_kernel[-1] > 0.5 * np.linalg.norm(kernel)               # and it is NOT the unflipped kernel
print(f"after {steps} steps: |w - flip(k)| = {dist_flipped[-1]:.1e} (< {tolerance:.1e}), "
      f"|w - k| = {dist_kernel[-1]:.2f}")
print("learned kernel (rounded to 4 decimals):\n", np.round(student.weight.data[0, 0], 4))

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1, 1, 1, 1.8]})
for ax, (a, title) in zip(axes, [(kernel, "k (the true convolution)"), (flipped, "flip(k)"),
                                 (student.weight.data[0, 0], "learned Conv2D weight")]):
    show_matrix(ax, a, title, fmt="{:.2f}", vmin=0, vmax=10)
ax = axes[3]
ax.semilogy(dist_flipped, label="|w - flip(k)|")
ax.semilogy(dist_kernel, label="|w - k|")
ax.semilogy(bound, "k--", lw=1, label=r"bound $\rho^t\,|w_0 - $flip(k)$|$")
ax.axhline(tolerance, color="gray", lw=0.8, ls=":", label="tolerance")
ax.set_xlabel("gradient-descent step")
ax.legend(fontsize=8)
ax.set_title("distance of the weights during training", fontsize=10)
fig.tight_layout()
save_figure(fig, "01_learning_flips_the_kernel",
            "A Conv2D trained on true-convolution targets learns the flipped kernel; the distance to "
            "flip(k) falls below the bound at every step, the distance to k does not fall")

# %% [markdown]
# The distance to `flip(kernel)` first drops fast (the steep directions of the bowl are settled in a
# few steps), then falls along a straight line parallel to the bound: that is the flattest direction,
# shrinking by exactly $\rho$ per step. The layer learned `flip(kernel)`, to the tolerance the bound
# promised. Whether the formula flips the
# kernel only changes *which* weights get learned, never *what* the network can compute. That is why
# every CNN library skips the flip, and calls the result "convolution" anyway. From here on, so do we.

# %% [markdown]
# ## 3. How big is the output?
#
# Look at one axis of length $n$. Padding adds $p$ zeros at each end, so the kernel of length $k$ slides
# over a strip of length $n + 2p$. A window may start at $0, s, 2s, \dots$ (stride $s$) as long as it
# fits: its start $t \cdot s$ must satisfy $t \cdot s + k \le n + 2p$. The number of such starts is
#
# $$n_{out} = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1.$$
#
# The floor matters: when $n + 2p - k$ is not a multiple of $s$, the last few rows or columns are
# covered by no window and are simply left out. Two useful special cases: with $s = 1$ and
# $p = (k-1)/2$ (odd $k$), $n_{out} = n$ ("same" padding); with $s = k$ and $p = 0$ the windows tile the
# input without overlap, which is what 2x2 max pooling does.

# %%
fig, axes = plt.subplots(3, 1, figsize=(8, 4.6))
cases = [(7, 3, 2, 0, "n=7, k=3, s=2, p=0: (7-3)//2+1 = 3 windows, every pixel used"),
         (8, 3, 2, 0, "n=8, k=3, s=2, p=0: (8-3)//2+1 = 3 windows, the last pixel is left out"),
         (5, 3, 1, 1, "n=5, k=3, s=1, p=1: (5+2-3)//1+1 = 5 windows, 'same' size")]
for ax, (n, k, s, p, title) in zip(axes, cases):
    n_out = conv_output_size(n, k, s, p)
    for c in range(n + 2 * p):
        padded = c < p or c >= n + p
        ax.add_patch(plt.Rectangle((c, 0), 1, 1, fill=not padded, hatch="//" if padded else None,
                                   facecolor="0.85", edgecolor="k"))
    for t in range(n_out):
        ax.add_patch(plt.Rectangle((t * s + 0.08, -0.35 - 0.3 * t), k - 0.16, 0.22,
                                   color=plt.cm.tab10(t), alpha=0.8))
    ax.set_xlim(-0.5, 10.5)
    ax.set_ylim(-0.45 - 0.3 * n_out, 1.2)
    ax.set_title(title, fontsize=9, loc="left")
    ax.axis("off")
fig.tight_layout()
save_figure(fig, "01_output_size",
            "Windows (coloured bars) sliding over a padded strip (hatched cells are padding): the "
            "output length is (n + 2p - k) // s + 1")

# %% [markdown]
# Now check the formula against what tinycnn's layer actually returns, for every combination of input
# size 1 to 9, kernel 1 to 4, stride 1 to 3 and padding 0 to 2 (and a non-square kernel, stride and
# padding on the other axis, so height and width cannot be mixed up). Where the kernel does not fit even
# in the padded input, the layer must refuse with an error that shows the formula with your numbers.

# %%
checked = refused = 0
for n in range(1, 10):
    for k in range(1, 5):
        for s in range(1, 4):
            for p in range(3):
                kw, sw, pw = k + 1, s % 3 + 1, (p + 1) % 3        # a different setting for the width
                layer = tc.Conv2D(1, 2, (k, kw), stride=(s, sw), padding=(p, pw), dtype=np.float64, rng=rng)
                x = np.zeros((1, 1, n, 9))
                if n + 2 * p < k:
                    try:
                        layer(x)
                    except ValueError as err:
                        assert re.search(rf"kernel height {k} is larger than the padded input height "
                                         rf"{n} \+ 2\*{p} = {n + 2 * p}", str(err)), err
                        refused += 1
                        continue
                    raise AssertionError(f"Conv2D accepted an input of height {n} for kernel {k}, padding {p}")
                expected = ((n + 2 * p - k) // s + 1, (9 + 2 * pw - kw) // sw + 1)
                assert layer(x).shape == (1, 2, *expected), (n, k, s, p, layer(x).shape, expected)
                checked += 1
print(f"output shape matches (n + 2p - k) // s + 1 on both axes for {checked} settings; "
      f"{refused} impossible settings were refused with a clear error, for example:")
try:
    tc.Conv2D(1, 1, 5, rng=rng)(np.zeros((1, 1, 3, 3), dtype=np.float32))
except ValueError as err:
    print("   ", err)

# %% [markdown]
# ## 4. im2col: convolution as one matrix multiply
#
# The loops in section 1 do $C \cdot K_H K_W$ multiply-adds per output value (so
# $O \cdot C \cdot K_H K_W$ per output position, over all $O$ output channels), one Python operation at
# a time. Computers are fastest at one thing: multiplying big matrices. *im2col* ("image to
# columns") rearranges the input so that convolution *is* a matrix multiply:
#
# - copy every window of the input (all $C$ channels, $K_H \times K_W$ pixels) into one column: the
#   column matrix `cols` has shape $(C K_H K_W,\ N \cdot OH \cdot OW)$, one column per output pixel;
# - flatten the weights `(O, C, KH, KW)` to a matrix `w2d` of shape $(O,\ C K_H K_W)$, one row per
#   output channel;
# - then `w2d @ cols` has shape $(O,\ N \cdot OH \cdot OW)$: entry $(o, q)$ is the dot product of filter
#   $o$ with window $q$, which is exactly the cross-correlation sum.
#
# Here is the column matrix for a 4x4 image whose pixel values are their own positions 0 to 15, and a
# 3x3 kernel: 2x2 = 4 windows, so 4 columns of 9 entries.

# %%
x_small = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)       # (N, C, H, W) = (1, 1, 4, 4)
cols = im2col(x_small, 3, 3, 1, 1, 0, 0)                            # (C*KH*KW, N*OH*OW) = (9, 4)
print("cols =\n", cols.astype(int))
for q, (oh, ow) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    assert np.array_equal(cols[:, q], x_small[0, 0, oh:oh + 3, ow:ow + 3].ravel())
print("column q holds the window at output position (q // OW, q % OW), read row by row: True")

# %%
colors = [plt.cm.tab10(i) for i in range(4)]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [1, 1.1]})
ax0.imshow(np.ones((4, 4)), cmap="gray", vmin=0, vmax=1)
for (r, c), v in np.ndenumerate(x_small[0, 0]):
    ax0.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=12)
for q, (oh, ow) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    inset = 0.06 * (q + 1)
    ax0.add_patch(plt.Rectangle((ow - 0.5 + inset, oh - 0.5 + inset), 3 - 2 * inset, 3 - 2 * inset,
                                fill=False, edgecolor=colors[q], lw=2.5))
ax0.set_title("4x4 input, the four 3x3 windows", fontsize=10)
ax0.set_xticks(range(4))
ax0.set_yticks(range(4))
ax1.imshow(np.ones(cols.shape), cmap="gray", vmin=0, vmax=1, aspect="auto")
for (r, q), v in np.ndenumerate(cols):
    ax1.add_patch(plt.Rectangle((q - 0.5, r - 0.5), 1, 1, color=colors[q], alpha=0.25))
    ax1.text(q, r, f"{v:.0f}", ha="center", va="center", fontsize=11)
ax1.set_xticks(range(4), [f"window {q}\n(oh={q // 2}, ow={q % 2})" for q in range(4)], fontsize=8)
ax1.set_yticks(range(9), [f"k[{i}, {j}]" for i in range(3) for j in range(3)], fontsize=8)
ax1.set_title("cols: (C*KH*KW, N*OH*OW) = (9, 4)", fontsize=10)
fig.suptitle("im2col: each window becomes a column; conv = w2d (O, 9) @ cols (9, 4)", fontsize=11)
fig.tight_layout()
save_figure(fig, "01_im2col",
            "im2col on a 4x4 image with a 3x3 kernel: each of the four windows (left) becomes one "
            "column of the 9x4 matrix (right); row r multiplies kernel entry k[r // 3, r % 3]")

# %% [markdown]
# Padding and stride change only *which* pixels a column holds: padded positions become zeros. A 3x3
# image (values 1 to 9), kernel 3, stride 2, padding 1 gives $(3 + 2 - 3) // 2 + 1 = 2$ outputs per axis,
# so 4 columns, each a window around a corner of the image:

# %%
x_pad = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
cols_pad = im2col(x_pad, 3, 3, 2, 2, 1, 1)                 # (9, 4)
print(cols_pad.astype(int))
assert np.array_equal(cols_pad[:, 0], [0, 0, 0, 0, 1, 2, 0, 4, 5])   # window at the top-left corner

# %% [markdown]
# Now the real thing: several images, several input and output channels, a non-square kernel, stride 2,
# padding 1 and a bias. First the loops, straight from the definition:
#
# $$y[n, o, i, j] = b[o] + \sum_{c, m, l} x_{pad}[n, c,\ i s_h + m,\ j s_w + l]\; w[o, c, m, l].$$

# %%
def conv2d_loops(x, w, b, stride, pad):
    """x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) -> (N, O, OH, OW). Cross-correlation, by loops."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape                                   # noqa: E741 (O: output channels)
    (sh, sw), (ph, pw) = stride, pad
    OH, OW = conv_output_size(H, KH, sh, ph), conv_output_size(W, KW, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))    # (N, C, H+2ph, W+2pw)
    y = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * sh:i * sh + KH, j * sw:j * sw + KW]   # (C, KH, KW)
                    y[n, o, i, j] = b[o] + np.sum(window * w[o])
    return y


def conv2d_im2col(x, w, b, stride, pad):
    """The same convolution as one matrix multiply."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape                                   # noqa: E741 (O: output channels)
    (sh, sw), (ph, pw) = stride, pad
    OH, OW = conv_output_size(H, KH, sh, ph), conv_output_size(W, KW, sw, pw)
    cols = im2col(x, KH, KW, sh, sw, ph, pw)          # (C*KH*KW, N*OH*OW)
    out = w.reshape(O, -1) @ cols + b[:, None]        # (O, C*KH*KW) @ (C*KH*KW, N*OH*OW) -> (O, N*OH*OW)
    return out.reshape(O, N, OH, OW).transpose(1, 0, 2, 3)   # columns are ordered (n, oh, ow)


x = rng.standard_normal((2, 3, 7, 6))                  # (N, C, H, W)
layer = tc.Conv2D(3, 4, (3, 2), stride=2, padding=1, dtype=np.float64, rng=rng)
w, b = layer.weight.data, layer.bias.data              # (4, 3, 3, 2), (4,)

y_loops = conv2d_loops(x, w, b, (2, 2), (1, 1))
y_mm = conv2d_im2col(x, w, b, (2, 2), (1, 1))
y_layer = layer(x)
print("output shape:", y_loops.shape)

# %% [markdown]
# The three results cannot be expected to agree *bit for bit*: each output is a sum of
# $C K_H K_W + 1 = 19$ terms, and the loops, NumPy and the matrix multiply add them in different orders,
# rounding differently. How far apart may two orders be? A floating-point sum of $n$ terms is within
# $\gamma_n S$ of the exact sum, where $\gamma_n = n u / (1 - n u)$, $u$ is the unit roundoff
# ($u = 2^{-53} \approx 1.1 \times 10^{-16}$ in float64, $2^{-24} \approx 6.0 \times 10^{-8}$ in float32:
# half the machine epsilon $\varepsilon$, the gap between 1 and the next number, $2.2 \times 10^{-16}$
# and $1.2 \times 10^{-7}$) and $S$ is the sum of the terms' absolute values. So two orders
# differ by at most $2 \gamma_n S$, and we can compute $S$ by running the same convolution on $|x|$,
# $|w|$ and $|b|$:

# %%
S = conv2d_loops(np.abs(x), np.abs(w), np.abs(b), (2, 2), (1, 1))      # sum of |terms| per output
bound = rounding_bound(3 * 3 * 2 + 1, S)
assert_agree("im2col @ w2d  vs loops", y_mm, y_loops, bound)
assert_agree("tinycnn Conv2D vs loops", y_layer, y_loops, bound)
print(f"cols holds {im2col(x, 3, 2, 2, 2, 1, 1).size} numbers for an input of {x.size}: "
      f"im2col trades memory for one big, fast matrix multiply")

# %% [markdown]
# That is exactly the forward pass of tinycnn's `Conv2D`, which is written to read like this
# derivation: im2col, one matrix multiply, the bias added to every column, and the result put back
# in (N, O, OH, OW) order. Here it is, quoted from the source:

# %% tags=["same-output"]
quote(tc.Conv2D.forward)

# %% [markdown]
# When a network runs, `Sequential` does not call this code: it compiles the layers into a plan of
# faster operations (`tinycnn.fast`, the subject of tutorial 6) that compute the same numbers. Two of
# its tricks fit here. The bias rides inside the matrix multiply: `cols` gets one more row, all ones,
# and `w2d` the bias as one more column, so `[w2d | b] @ [cols; 1]` is `w2d @ cols + b` in a single
# call. And nothing is transposed back: ordering the columns with the images fastest, (oh, ow, n)
# instead of (n, oh, ow), makes the product, $(O,\ OH \cdot OW \cdot N)$, already *be* the output laid
# out as (O, OH, OW, N), a *channel-major* layout that the next layers of the plan read directly. The
# values do not depend on the layout, only the speed does. The first trick, and the plan against the
# layer, checked:

# %%
cols1 = np.vstack([im2col(x, 3, 2, 2, 2, 1, 1), np.ones((1, 2 * 4 * 4))])   # [cols; 1]: (C*KH*KW + 1, N*OH*OW)
out = np.hstack([w.reshape(4, -1), b[:, None]]) @ cols1                     # [w2d | b] @ [cols; 1]: (O, N*OH*OW)
assert_agree("[w2d | b] @ [cols; 1] vs loops", out.reshape(4, 2, 4, 4).transpose(1, 0, 2, 3), y_loops, bound)
plan = tc.fast.compile([layer])                                              # the executor's plan for this layer
assert_agree("tinycnn.fast plan vs loops", plan.forward(x), y_loops, bound)

# %% [markdown]
# How many copies of a pixel does im2col make? Along one axis, a pixel at position $t$ lies in the
# windows that start at $t - k + 1, \dots, t$ and are a multiple of $s$: at most $\lceil k / s \rceil$ of
# them. So an interior pixel is copied up to $\lceil K_H / s_h \rceil \lceil K_W / s_w \rceil$ times,
# while the *average* over the pixels is only about $K_H K_W / (s_h s_w)$ (each window holds $K_H K_W$
# pixels and there is about one window per $s_h s_w$ pixels). For $k = 3$, $s = 2$: up to 4 copies,
# 2.25 on average. Count them: put each pixel's own index in the image and tally the indices in `cols`.

# %%
for k, s, n in [(3, 1, 12), (3, 2, 13), (5, 2, 15), (2, 2, 8)]:
    index_image = np.arange(n * n, dtype=np.float64).reshape(1, 1, n, n)
    copies = np.bincount(im2col(index_image, k, k, s, s, 0, 0).astype(int).ravel(), minlength=n * n)
    most, average = copies.max(), copies.mean()
    print(f"k={k}, s={s}: each pixel copied at most {most} times (ceil(k/s)^2 = {int(np.ceil(k / s)) ** 2}), "
          f"on average {average:.2f} times (k^2/s^2 = {k * k / s / s:.2f}; fewer at the borders)")
    assert most == int(np.ceil(k / s)) ** 2
    assert average <= k * k / (s * s)

# %% [markdown]
# The memory im2col costs and what it buys (a matrix multiply runs at a large fraction of the
# machine's peak speed) are the subject of tutorial 6.
#
# **What you have seen.** The textbook convolution flips the kernel and CNN layers do not; it makes no
# difference once the kernel is learned (the network learns the flipped kernel). The output size is
# $\lfloor (n + 2p - k)/s \rfloor + 1$ per axis. And im2col turns convolution into one matrix multiply
# whose result matches the loops to within rounding. Next, tutorial 2 runs all of this backwards.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function (or class) for you to complete, and a check that
# runs it on cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs.
# As shipped, the functions only raise `NotImplementedError`, so the checks say "not attempted yet".
# Reference solutions are in [`solutions/solutions_01.py`](solutions/solutions_01.py); try first.
#
# **Exercise 1.1: the output size.** Write `output_size(n, k, s, p)`: the output length of a
# convolution with kernel $k$, stride $s$ and padding $p$ on an axis of length $n$, and a `ValueError`
# when the kernel does not fit even in the padded input. The check compares it with `Conv2D` on 495
# settings.

# %%
from exercises import ex01


def output_size(n, k, s, p):
    """Output length of one axis: n input, kernel k, stride s, padding p (raise ValueError if k does not fit)."""
    raise NotImplementedError      # your code here


ex01.check_output_size(output_size)

# %% [markdown]
# **Exercise 1.2: copies per pixel.** How many columns of im2col can one pixel of a large image appear
# in, at most, for a square kernel $k$ and stride $s$ (no padding)? Write it as a formula, not by
# counting; the check counts.

# %%
def max_copies(k, s):
    """The largest number of im2col columns that contain one pixel (kernel k x k, stride s)."""
    raise NotImplementedError      # your code here


ex01.check_max_copies(max_copies)

# %% [markdown]
# **Exercise 1.3: a 1x1 convolution.** A 1x1 convolution looks at one pixel at a time, so it mixes
# channels only. Write it as one matrix multiply (no loops over pixels): `conv1x1(x, w)` with x
# (N, C, H, W) and w (O, C), returning (N, O, H, W). The check compares with `Conv2D(C, O, 1)`.

# %%
def conv1x1(x, w):
    """x: (N, C, H, W), w: (O, C) -> (N, O, H, W)."""
    raise NotImplementedError      # your code here


ex01.check_conv1x1(conv1x1)
