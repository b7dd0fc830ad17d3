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
# # Tutorial 8: the CIFAR-10 speedrun
#
# How fast can a network learn CIFAR-10? Keller Jordan's *airbench* (2024, "94% on CIFAR-10 in 3.29
# Seconds on a Single GPU", arXiv 2404.00498) reaches 94 % test accuracy in about 3.3 seconds on one
# A100 GPU, with about 3.6 x 10^14 floating-point operations of training work. It gets there with a
# small network and a set of techniques, each of which makes every training step count for more.
# tinycnn has them as ordinary features, put together in one recipe:
#
# ```bash
# python -m tinycnn train --dataset cifar10 --model airbench --recipe speedrun
# ```
#
# (`--without NAME` removes one technique, `--widths` changes the network's widths, `--tta` and
# `--flip` the data side; `tinycnn train --help` lists them.) This tutorial takes the recipe apart:
#
# 1. **The network** (`zoo.airbench`).
# 2. **Patch whitening**: the first convolution's filters computed from the training images, frozen.
# 3. **Identity initialisation**: every block starts by passing its input on.
# 4. **The alternating flip and reflection padding**: the data augmentation.
# 5. **The triangle schedule and Lookahead**.
# 6. **Test-time augmentation**: averaging the logits of six views of each test image.
# 7. **The head scale folded into the learning rate**, and the rest of the recipe.
# 8. **Where the time goes**: one training step of the network, op by op.
# 9. **The ablation**: each technique removed in turn, as measured by the accuracy benchmark.
#
# Every demonstration below runs in seconds (on real CIFAR-10 images wherever the images matter), and
# every claim is checked by an `assert` when the page is made. The page trains no network itself: the
# measured accuracies come from the accuracy benchmark's recorded runs (section 9).

# %%
import json
import shlex
import textwrap
import time

import matplotlib.pyplot as plt
import numba
import numpy as np
from threadpoolctl import threadpool_limits

import tinycnn as tc
from tinycnn import data, init, speedrun, tta, zoo
from tinycnn.lookahead import Lookahead

from helpers import FAST, SHARED_DATASETS, TUTORIALS_DIR, assert_agree, load_dataset, quote, rounding_bound, save_figure

# One thread for Numba's kernels and the BLAS products: the profile in section 8 then times one op
# after another, and a machine shared with other work is not made busier.
numba.set_num_threads(1)
threadpool_limits(1)
recipe = speedrun.Speedrun()                 # the recipe's constants (airbench's)
print("mode:", "fast" if FAST else "full")

# %% [markdown]
# ## 1. The data and the network
#
# The images come through `tinycnn.data`, as in tutorial 4: the shared dataset folder next to the
# repository when it is there (its CIFAR-10 copy was decoded from JPEG files, so its pixels differ a
# little from the original), otherwise tinycnn's cache, which a full-mode run fills by downloading
# the original files once. The fast mode uses the shared folder's 1,000 lossless training images when
# they are there and never downloads; without any copy the tutorial stops with a message saying what
# to do.
#
# Every technique below works on images **normalised per channel** with the training images' mean and
# standard deviation, as the network sees them.

# %%
lossless = SHARED_DATASETS / "cifar10" / "train_lossless_subset.npz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
if FAST and lossless.is_file():          # 1,000 lossless training images are all the fast mode needs
    with np.load(lossless) as f:
        x_train_u8 = np.ascontiguousarray(f["x"].transpose(0, 3, 1, 2))      # (1000, 3, 32, 32) uint8
    x_test_u8 = x_train_u8[-8:]                                             # stand-ins for test images
    print("CIFAR-10: the lossless subset of the shared folder (1,000 training images)")
else:
    ds, source = load_dataset("cifar10", download=not FAST)
    x_train_u8, x_test_u8 = ds.x_train, ds.x_test[::1250]                  # 8 test images, 8 classes
    print(f"CIFAR-10 from {'the shared folder' if source == 'shared' else 'the tinycnn.data cache'}: "
          f"{len(ds.y_train)} training, {len(ds.y_test)} test images")
normalize = data.Normalizer.fit(x_train_u8)            # per-channel mean and std of the training images
N_WHITEN = min(recipe.whiten_images, len(x_train_u8))  # airbench whitens from 5,000 training images
rng = np.random.default_rng(8)
sample = np.sort(rng.choice(len(x_train_u8), N_WHITEN, replace=False))
x_white = normalize(x_train_u8[sample])                # (N_WHITEN, 3, 32, 32) float32
print(f"whitening sample: {x_white.shape}, channel means after normalising "
      f"{np.array2string(x_white.mean(axis=(0, 2, 3)), precision=2)}")

net = zoo.airbench((3, 32, 32), 10, np.random.default_rng(0))
n_params = sum(p.data.size for p in net.parameters())
print(f"zoo.airbench: {len(net.layers)} layers, {n_params:,} parameters")
for layer in net.layers:
    print("  ", layer)

# %% [markdown]
# The network is short: a 2x2 convolution with 24 filters (the whitening layer) and a GELU, then
# three blocks of two 3x3 convolutions, each block halving the image with a max pool and each
# convolution followed by batch norm and a GELU, then a 3x3 max pool and one dense layer. The 3x3
# convolutions have no bias (batch norm's shift does that job). Every technique below is about
# making the few epochs this network gets count.
#
# ## 2. Patch whitening: the first layer computed, not learned
#
# Neighbouring pixels of a photo are strongly correlated: a 2x2 patch of three colours has 12 numbers,
# but most of its variation lies along a few directions (overall brightness first). A gradient step
# on a layer that sees such inputs is badly conditioned: it moves quickly along the few large
# directions and slowly along the many small ones. **Whitening** removes that: find the patches'
# second-moment matrix $S = \frac1M \sum_m p_m p_m^\top$ (12 x 12, over all M patches of the sample),
# its eigenvectors $v_k$ and eigenvalues $\lambda_k$, and use the filters
#
# $$F_k = \frac{v_k}{\sqrt{\lambda_k + \epsilon}}, \qquad k = 1 \dots 12.$$
#
# Then the filter outputs $F p$ have second moment
# $F S F^\top = \operatorname{diag}(\lambda_k / (\lambda_k + \epsilon))$: uncorrelated, each of
# size about 1 (less where $\lambda_k$ is not much larger than $\epsilon$).
# airbench takes the 12 filters **and their negatives** (24 filters: after the GELU both signs of every
# component survive), computes them from 5,000 training images with $\epsilon = 5 \times 10^{-4}$, and
# never trains them; their bias trains for the first 3 epochs, then is frozen too.
# `tinycnn.init.patch_whitening_` does this for a `Conv2D`. Here it is on the sample, in float64 so that
# the check is tight, and the covariance of the outputs of the convolution itself, measured on every
# patch:

# %%
eps = recipe.whiten_eps
conv64 = tc.Conv2D(3, 24, 2, dtype=np.float64, rng=np.random.default_rng(1))
x_white64 = x_white.astype(np.float64)
pw = init.patch_whitening_(conv64, x_white64, np.random.default_rng(1), num_images=N_WHITEN, eps=eps)
lam, F = pw.eigenvalues, conv64.weight.data[:12].reshape(12, 12)       # F: (12 filters, 12 patch values)
print(f"{pw.num_patches:,} patches of 2x2x3 from {N_WHITEN} images; eigenvalues of S:")
print("  ", np.array2string(lam, precision=4, max_line_width=100))
print(f"largest / smallest: {lam[0] / lam[-1]:.0f}; the three largest hold "
      f"{lam[:3].sum() / lam.sum():.1%} of the patches' second moment")

# the whitening convolution's outputs on all the patches, accumulated over chunks of images
second = np.zeros((24, 24))
for start in range(0, N_WHITEN, 250):
    out = conv64(x_white64[start:start + 250])                         # (b, 24, 31, 31)
    flat = out.transpose(1, 0, 2, 3).reshape(24, -1)                    # (24, b*961)
    second += flat @ flat.T
second /= pw.num_patches
d = lam / (lam + eps)
predicted = np.block([[np.diag(d), -np.diag(d)], [-np.diag(d), np.diag(d)]])      # F and -F
# rounding: the convolution's 12-term sums and the M-term accumulation (Higham's bound, with the
# sums of absolute values); eigh's backward error, at most D^2 u |S| per entry, scaled by |F|^2
abs_moment, _ = init.patch_second_moment(np.abs(x_white64), (2, 2))
F24 = conv64.weight.data.reshape(24, 12)
bound = (rounding_bound(pw.num_patches + 12, np.abs(F24) @ abs_moment @ np.abs(F24).T)
         + 12 ** 2 * np.finfo(np.float64).eps * lam[0] / (lam[-1] + eps))
assert_agree("second moment of the whitening conv's outputs vs diag(lam / (lam + eps))", second, predicted, bound)
print("its diagonal (the first 12 filters):", np.round(np.diag(second)[:12], 3).tolist())
off_diagonal = second[:12, :12] - np.diag(np.diag(second)[:12])
large = lam > 10 * eps                                                 # directions well above eps
print(f"{large.sum()} of the 12 eigenvalues exceed 10 eps; their outputs have second moment "
      f">= {np.diag(second)[:12][large].min():.3f}; the smallest eigenvalue is {lam[-1] / eps:.2f} eps")
assert lam[0] / lam[-1] > 100 and (np.diag(second)[:12][large] > 0.9).all() and np.abs(off_diagonal).max() < 1e-9

# the network's own (float32) whitening layer gets the same filters, and is frozen
speedrun.prepare(net, x_white, np.random.default_rng(1), recipe)
assert_agree("the recipe's float32 filters vs the float64 ones", net.layers[0].weight.data, conv64.weight.data,
             np.finfo(np.float32).eps * np.abs(conv64.weight.data))
assert not net.layers[0].weight.requires_grad and net.layers[0].bias.requires_grad
print("whitening weight frozen:", not net.layers[0].weight.requires_grad,
      "| its bias trains for the first", recipe.whiten_bias_epochs, "epochs")

# %%
fig = plt.figure(figsize=(13, 7.6))
grid = fig.add_gridspec(2, 3, height_ratios=[0.8, 1.3])
ax_f = fig.add_subplot(grid[0, :])
tiles = np.ones((2 * 3 + 1, 12 * 3 + 1, 3))                 # filters as 2x2 RGB tiles, 1 px white gaps
for k in range(24):
    f = conv64.weight.data[k].transpose(1, 2, 0)            # (2, 2, 3)
    r, c = divmod(k, 12)
    tiles[1 + 3 * r:3 + 3 * r, 1 + 3 * c:3 + 3 * c] = 0.5 + 0.5 * f / np.abs(f).max()
ax_f.imshow(tiles, interpolation="nearest")
ax_f.set_title("the 24 whitening filters (2x2 pixels, RGB), largest eigenvalue first; row 2 = row 1 negated; "
               "each scaled to its own largest |value| (grey = 0)", fontsize=9)
ax_f.axis("off")
ax_l = fig.add_subplot(grid[1, 0])
ax_l.semilogy(np.arange(1, 13), lam, "o-", label="eigenvalue $\\lambda_k$ of S")
ax_l.axhline(eps, color="gray", ls=":", label="$\\epsilon$ = 5e-4")
ax_l.set(xlabel="k", ylabel="(log scale)")
ax_l.set_title("the patches' second moment\nalong each eigenvector", fontsize=9)
ax_l.legend(fontsize=8)
ax_l.grid(alpha=0.3)
corr = pw.second_moment / np.sqrt(np.outer(np.diag(pw.second_moment), np.diag(pw.second_moment)))
for j, (m, title) in enumerate(((corr, "before: correlation of the 12 values of a patch\n(3 channels x 4 pixels)"),
                                (second[:12, :12], "after: second moment of the\n12 whitened outputs"))):
    ax = fig.add_subplot(grid[1, 1 + j])
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
save_figure(fig, "08_whitening",
            "The whitening filters computed from CIFAR-10 patches, the eigenvalues of the patches' second "
            "moment, and the patch correlation before and the whitened outputs' second moment after (~identity)")

# %% [markdown]
# The first filter measures the patch's overall brightness; then come colour contrasts, brightness
# gradients (up-down, left-right) and a brightness checkerboard; the last ones are gradients and
# checkerboards in colour, the fine colour detail photos have least of. The eigenvalues fall by orders
# of magnitude from the first to the last, which is the badly conditioned input a learned first layer
# would face. After whitening
# the 12 outputs are uncorrelated, and those of every direction well above $\epsilon$ have second
# moment near 1. The last eigenvalues come close to $\epsilon$ or below it (on the JPEG-decoded
# copy more so than on the lossless images: JPEG discards fine colour detail, exactly these
# directions), and their outputs are damped by $\lambda / (\lambda + \epsilon)$ instead of being
# blown up by $1/\sqrt\lambda$: that is what $\epsilon$ is for. The network trains from there, on
# inputs whose informative directions are all equally large.
#
# ## 3. Identity initialisation: a fresh block passes its input on
#
# Section 4 of tutorial 7 showed why residual connections help a deep network learn: the gradient has
# a path around every block. airbench has no residual connections, but starts each 3x3 convolution
# as if it had one: its first $C_{in}$ filters are the identity on the input channels (a 1 at the
# centre tap of filter $d$, input channel $d$; the rest random), so a fresh block passes its input on
# and training starts from a network that already carries the whitened image to the top.
# `tinycnn.init.partial_identity_` does that (`dirac_` is torch's `dirac_`):

# %% tags=["same-output"]
quote(init.partial_identity_)

# %%
x_in = net.layers[1](net.layers[0](x_white[:32]))           # (32, 24, 31, 31): what block 1 receives
conv_a, conv_b = net.layers[2], net.layers[6]               # block 1's convolutions: 24 -> 64, 64 -> 64
out_a = conv_a(x_in)
assert np.array_equal(out_a[:, :24], x_in)
print(f"block 1's first conv (24 -> 64): output channels 0..23 equal its input, bit for bit; "
      f"channels 24..63 are random filters (std {out_a[:, 24:].std():.2f})")
h = net.layers[5](net.layers[4](net.layers[3](out_a)))      # pool, batch norm, GELU
assert np.array_equal(conv_b(h), h)
print("block 1's second conv (64 -> 64): the identity on all 64 channels, bit for bit")


def block_correlation(model, x):
    """Mean over channels 0..23 of the correlation between block 1's pooled input and its output."""
    out = x
    for layer in model.layers[2:9]:                          # conv, pool, BN, GELU, conv, BN, GELU
        out = layer(out)
    ref = tc.MaxPool2D(2)(x)                                 # (N, 24, 15, 15)
    return np.mean([np.corrcoef(ref[:, c].ravel(), out[:, c].ravel())[0, 1] for c in range(24)])


default_net = zoo.airbench((3, 32, 32), 10, np.random.default_rng(0))     # tinycnn's default init
r_identity, r_default = block_correlation(net, x_in), block_correlation(default_net, x_in)
print(f"correlation of block 1's output with its (pooled) input, channels 0..23: identity init "
      f"{r_identity:.2f}, default init {r_default:.2f}")
assert r_identity > 0.8 and abs(r_default) < 0.3

# %% [markdown]
# With the identity, block 1's output is its pooled input passed through batch norm and two GELUs,
# monotone functions, so the two are strongly correlated; with the default initialisation the block
# starts as a random mixture of its channels and the whitened image has to be found again by training.
#
# ## 4. The data side: the alternating flip, and translation with reflection padding
#
# A horizontal mirror of a photo of a cat is still a cat, so training on mirrored copies is free
# extra data. The usual way mirrors each image with probability 1/2 afresh every epoch, so in any two
# epochs half of the images are seen the same way twice. airbench's **alternating flip** draws the
# mirror once, in the first epoch, and then alternates: an image mirrored in one epoch is not mirrored
# in the next. Every image is then seen both ways in every two consecutive epochs; the paper reports
# that this beats the random flip in every setting where flipping helps at all. tinycnn keeps the
# state per image index, not per batch position, so it works with shuffling:

# %% tags=["same-output"]
quote(data.AlternatingFlip.flips)

# %% [markdown]
# To see it through the real pipeline (`Batches`, shuffled, in batches of 512), give each of 50,000
# "images" of 1x2 pixels its index on the left and -1 on the right: a mirrored image shows -1 on the
# left, and its index tells which image it was. Eight epochs, as the recipe trains, with the
# alternating and with the random flip:

# %%
N, EPOCHS = 50000, 8
codes = np.full((N, 1, 1, 2), -1.0)
codes[:, 0, 0, 0] = np.arange(N)                              # (N, 1, 1, 2): [index, -1]


def flips_seen(flip, seed=3):
    """bool (EPOCHS, N): whether image i was mirrored in epoch e, read back from the batches."""
    batches = data.Batches(codes, np.zeros(N, np.int64), 512, shuffle=True, rng=np.random.default_rng(seed),
                           augment=data.Augment(pad=0, flip=flip), normalizer=lambda xb: xb)
    seen = np.zeros((EPOCHS, N), bool)
    for e in range(EPOCHS):
        count = 0
        for xb, _ in batches:
            mirrored = xb[:, 0, 0, 0] == -1                   # (B,)
            seen[e, xb[:, 0, 0].max(axis=1).astype(np.int64)] = mirrored
            count += len(xb)
        assert count == N
    return seen


alternating, random_flip = flips_seen("alternate"), flips_seen("random")
assert (alternating[1:] != alternating[:-1]).all()            # every image, every pair of epochs
same_twice = (random_flip[0] == random_flip[1]).mean()
never = (~random_flip[:2]).all(axis=0).mean()
never_8 = (~random_flip).all(axis=0).mean()
print(f"alternating flip: every image mirrored in exactly one of epochs e and e+1, for all e < {EPOCHS - 1}; "
      f"mirrored in epoch 0: {alternating[0].mean():.1%}")
print(f"random flip: seen the same way in epochs 0 and 1: {same_twice:.1%}; never mirrored in epochs 0-1: "
      f"{never:.1%}; never mirrored in all {EPOCHS} epochs: {never_8:.2%} ({int(never_8 * N)} images)")
se = lambda p: np.sqrt(p * (1 - p) / N)                      # binomial standard errors
assert abs(same_twice - 0.5) < 5 * se(0.5) and abs(never - 0.25) < 5 * se(0.25)
assert abs(never_8 - 0.5 ** EPOCHS) < 5 * se(0.5 ** EPOCHS)

# %% [markdown]
# The recipe also **translates** each training image by up to 2 pixels in each direction. The pixels
# that come in at the border are taken from the image mirrored about its edge (**reflection
# padding**, as torch's `ReflectionPad2d`) rather than black: a black stripe is a feature no test
# image has. `data.translate_flip(x, sy, sx)` gives out[r, s] = x[r + sy, s + sx] (so a shift of +2
# moves the content up and left), the flip and the border included, in one gather:

# %%
show = x_train_u8[:3]                                          # (3, 3, 32, 32) uint8
shift = np.array([2, -2, 2])
zeros = data.translate_flip(show, shift, shift, padding_mode="zeros")
reflect = data.translate_flip(show, shift, shift, padding_mode="reflect")
assert (zeros[0, :, 30:] == 0).all()                          # shifted up by 2: two black rows at the bottom
# reflection about the edge pixel: row 31 + 2 of the image is row 29, row 30 + 2 is row 30
assert np.array_equal(reflect[0, :, 31, :28], show[0, :, 29, 2:30])
assert np.array_equal(reflect[0, :, 30, :28], show[0, :, 30, 2:30])

fig, axes = plt.subplots(3, 6, figsize=(11, 5.6))
first = data.AlternatingFlip(3, np.random.default_rng(0))
for i in range(3):
    for e in range(4):
        img = show[i][:, :, ::-1] if first.flips(np.array([i]), e)[0] else show[i]
        axes[i, e].imshow(img.transpose(1, 2, 0))
        axes[i, e].set_title(f"epoch {e}" + (" (mirrored)" if first.flips(np.array([i]), e)[0] else ""), fontsize=8)
    axes[i, 4].imshow(zeros[i].transpose(1, 2, 0))
    axes[i, 5].imshow(reflect[i].transpose(1, 2, 0))
    axes[i, 4].set_title(f"shift ({shift[i]}, {shift[i]}), zeros", fontsize=8)
    axes[i, 5].set_title(f"shift ({shift[i]}, {shift[i]}), reflect", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
fig.suptitle("alternating flip over four epochs (left); a translation with black and with reflection padding (right)",
             fontsize=10)
fig.tight_layout()
save_figure(fig, "08_flip_translate",
            "Three training images over four epochs of the alternating flip, and each shifted by two pixels "
            "with zero padding and with reflection padding")

# %% [markdown]
# ## 5. The schedule: a triangle, and Lookahead
#
# The learning rate follows a **triangle** over the steps (`schedules.PiecewiseLinearLR`): from 0.2 of
# its peak up to the peak at 23 % of the run, then down to 0.07 of the peak at the end. The warm-up
# keeps the first steps, while batch norm's statistics and the freshly initialised weights settle,
# from being too large; the long linear decay does what a decaying rate does, trading the noise of
# the steps for progress at the end.
#
# **Lookahead** (Zhang et al., 2019) wraps the optimizer: every $k = 5$ steps the weights move only a
# fraction $\alpha$ of the way from where they were 5 steps ago to where SGD took them, and SGD
# continues from there. Averaging over the last five steps cancels part of their noise. airbench makes
# $\alpha$ itself a schedule, $\alpha = 1 - 0.95^5 (t/T)^3$: at first Lookahead does nothing
# ($\alpha = 1$), towards the end it keeps less than a quarter of each 5-step move, an averaging that
# grows as the rate falls. At the end the weights are the slow ones. One synchronisation by hand:

# %% tags=["same-output"]
quote(Lookahead.step)
quote(speedrun.LookaheadSchedule.on_train_batch_begin)

# %%
p = tc.Parameter(np.array([1.0, -2.0]))
la = Lookahead(tc.SGD([p], lr=0.1), k=5, alpha=0.5)
for _ in range(5):
    p.grad[...] = [1.0, 1.0]                                 # a constant gradient: SGD moves 5 * 0.1 in 5 steps
    la.step()
assert np.allclose(p.data, [1.0 - 0.5 * 0.5, -2.0 - 0.5 * 0.5], rtol=0, atol=4 * np.finfo(float).eps)
print(f"after 5 SGD steps of 0.1 from (1, -2): SGD alone would be at (0.5, -2.5); Lookahead (alpha 0.5) at {p.data}")

# the recipe's optimizer on a narrow airbench, stepped through a whole run (8 epochs of 98 batches of 512)
STEPS = 8 * int(np.ceil(50000 / 512))
small = zoo.airbench((3, 32, 32), 10, np.random.default_rng(0), widths=(8, 8, 8))
speedrun.prepare(small, x_white[:200], np.random.default_rng(1), recipe)
lr0, wd0 = zoo.MODELS["airbench"].recipe.lr, zoo.MODELS["airbench"].recipe.weight_decay
run = speedrun.setup(small, recipe, lr=lr0, weight_decay=wd0, total_steps=STEPS)
la_schedule = next(c for c in run.callbacks if isinstance(c, speedrun.LookaheadSchedule))
lrs, alphas = [], []
for t in range(STEPS):                                       # what fit does per batch, without the data
    la_schedule.on_train_batch_begin(t)
    lrs.append([g["lr"] for g in run.optimizer.param_groups])
    alphas.append(run.optimizer.alpha)
    run.optimizer.step()                                     # the gradients are zero: only the state moves
    run.schedule.step()
lrs, alphas = np.array(lrs), np.array(alphas)                # (STEPS, 3 groups): BN shifts, head, the rest
rest = lrs[:, 2]
peak = int(np.argmax(rest))
print(f"{STEPS} steps; rate of the convolutions: {rest[0]:.3f} at step 0, peak {rest[peak]:.3f} at step {peak} "
      f"({peak / STEPS:.0%} of the run), {rest[-1]:.3f} at the last step")
print(f"groups: batch-norm shifts {lrs[0, 0] / rest[0]:.0f}x the convolutions' rate, the head "
      f"1/{rest[0] / lrs[0, 1]:.0f} of it; Lookahead alpha {alphas[0]:.3f} at the start, {alphas[-1]:.3f} at the end")
triangle = lr0 * np.interp(np.arange(STEPS), [0, 0.23 * STEPS, STEPS], [0.2, 1.0, 0.07])   # the docstring's shape
assert np.allclose(rest, triangle, rtol=1e-12, atol=0) and abs(peak - 0.23 * STEPS) <= 1
assert np.allclose(lrs[:, 0] / rest, recipe.bias_lr_scale) and np.allclose(lrs[:, 1] / rest, recipe.head_scale ** 2)
assert abs(alphas[-1] - (1 - 0.95 ** 5)) < 1e-12 and alphas[0] > 0.999

fig, ax = plt.subplots(figsize=(9, 3.8))
ax.plot(rest / lr0, label="learning rate / peak (convolutions; the other groups are multiples)")
ax.plot(alphas, label="Lookahead's alpha (the share of each 5-step move kept)")
ax.axvline(peak, color="gray", ls=":", lw=1)
ax.set(xlabel=f"step (8 epochs x 98 batches of 512 = {STEPS} steps)", ylim=(0, 1.05),
       title="the recipe's schedules, read from its optimizer over a whole run")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "08_schedules", "The triangular learning-rate schedule and Lookahead's alpha over the steps of a run")

# %% [markdown]
# ## 6. Test-time augmentation: six views of each test image
#
# A network trained on mirrored and shifted images can be asked about a test image in those forms too,
# and the answers averaged. The recipe's `--tta flip-translate` evaluates six views of each test
# image: the image, shifted one pixel up-left and one pixel down-right (reflection padding), and the
# mirror of each of the three, with weights 1/4 for the image and its mirror and 1/8 for the four
# shifted ones. What is averaged is the **logits**, as airbench does; the predicted probabilities are
# the softmax of that average. It costs six forward passes per test image, at the end only.

# %%
x_tta = normalize(x_test_u8)                                 # (8, 3, 32, 32) float32
views = tta.views(x_tta, "flip-translate")                   # [(weight, (8, 3, 32, 32)), ...]
assert abs(sum(w for w, _ in views) - 1) < 1e-15 and len(views) == 6
assert np.array_equal(views[2][1], data.translate_flip(x_tta, -1, -1, padding_mode="reflect"))
net.eval()
manual = sum(w * net(v) for w, v in views)                   # (8, 10): the weighted mean of the views' logits
averaged = tta.tta_logits(net, x_tta, "flip-translate")
assert np.array_equal(averaged, manual)
print("tta_logits = the weighted mean of the six views' logits, bit for bit")
probs = net.predict(x_tta, tta="flip-translate")
z = manual.astype(np.float64) - manual.max(axis=1, keepdims=True)
softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
assert_agree("predict(tta='flip-translate') vs softmax(mean logits)", probs, softmax,
             rounding_bound(10 + 6, 1.0, np.float32))
plain = net(x_tta)
print(f"(an untrained network: the views' logits differ from the image's alone by up to "
      f"{np.abs(averaged - plain).max():.2f})")
net.train()

fig, axes = plt.subplots(1, 6, figsize=(11, 2.4))
names = ["image", "mirrored", "moved 1 px down-right", "down-right, mirrored", "moved 1 px up-left",
         "up-left, mirrored"]
for ax, (w, v), name in zip(axes, views, names):
    img = v[0].transpose(1, 2, 0) * normalize.std.astype(np.float32) + normalize.mean.astype(np.float32)
    ax.imshow(np.clip(img / 255, 0, 1))
    ax.set_title(f"{name}\nweight {w:g}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
save_figure(fig, "08_tta_views", "The six test-time views of one test image and their weights")

# %% [markdown]
# ## 7. The head scale, folded into the learning rate, and the rest of the recipe
#
# airbench's last layer computes $z = s\,W h$ with $s = 1/9$: logits smaller than the features would
# make them, at the start and through training. tinycnn has no such layer, and needs none: train
# $W' = s W$ instead. SGD's step on $W$ is $-\eta\,(s\,g h^\top + \lambda W)$ (g the loss gradient at
# z, coupled weight decay $\lambda$), which moves $W' = sW$ by $-\eta s^2 g h^\top - \eta \lambda W'$. A
# plain layer $z = W' h$ with learning rate $\eta s^2$ and weight decay $\lambda / s^2$ takes exactly
# that step; momentum and Nesterov's look-ahead are linear in the gradient, so they carry over. So
# the recipe scales the dense layer's initial weights by $s$ and gives it its own parameter group.
# Checked by running both for 50 steps with the recipe's SGD (Nesterov, momentum 0.85) and label
# smoothing, on random features, in float64, next to a plausible wrong folding ($\eta s$, $\lambda / s$):

# %%
s, K, FEAT, B, HEAD_STEPS = recipe.head_scale, 10, 32, 64, 50
r = np.random.default_rng(5)
W0 = r.standard_normal((K, FEAT)) * 0.1
batches = [(r.standard_normal((B, FEAT)), r.integers(0, K, B)) for _ in range(HEAD_STEPS)]
ce = tc.SoftmaxCrossEntropy(label_smoothing=recipe.label_smoothing)


def head_run(scale_in_forward, lr, wd, w_init):
    """HEAD_STEPS SGD steps on z = scale * W h; returns the effective weights scale * W."""
    w = tc.Parameter(w_init.copy())
    opt = tc.SGD([w], lr=lr, momentum=recipe.momentum, nesterov=True, weight_decay=wd)
    for h, y in batches:
        ce(scale_in_forward * (h @ w.data.T), y)
        w.grad[...] = scale_in_forward * ce.backward().T @ h  # (K, FEAT): dL/dW
        opt.step()
    return scale_in_forward * w.data


airbench_way = head_run(s, lr0, wd0, W0)                     # z = s W h, the recipe's lr and weight decay
folded = head_run(1.0, lr0 * s ** 2, wd0 / s ** 2, s * W0)   # z = W' h, lr s^2, wd / s^2
wrong = head_run(1.0, lr0 * s, wd0 / s, s * W0)              # a wrong folding
assert_agree("s W (airbench's head) vs W' (folded), after 50 steps", folded, airbench_way,
             rounding_bound(HEAD_STEPS * (B + 8), np.abs(airbench_way).max()))
print(f"with lr s and wd / s instead, the weights end {np.abs(wrong - airbench_way).max():.1e} apart")
assert np.abs(wrong - airbench_way).max() > 1e3 * np.abs(folded - airbench_way).max()

# %% [markdown]
# The other techniques of the recipe are one line each in `tinycnn.speedrun`, whose docstring is the
# reference:
#
# - **Frozen batch-norm scale**: every batch norm keeps $\gamma = 1$ and trains only its shift $\beta$
#   (`requires_grad = False`; the optimizer and the executor skip a frozen parameter). With a GELU
#   after it, the scale mostly duplicates what the next convolution's weights can do.
# - **The shifts' learning rate**: the batch-norm shifts train with a 64 times larger rate (and 64
#   times smaller weight decay), a parameter group of their own.
# - **Label smoothing** 0.2: the loss's target is 0.8 on the right class plus 0.02 on each class, so
#   the network is not pushed to ever larger logits on the training images.
# - **Nesterov SGD** with momentum 0.85 on the mean loss; airbench states its rates for the summed
#   loss at batch 1024, converted as the docstring says.

# %% tags=["same-output"]
print("# tinycnn/speedrun.py (docstring, first paragraph)")
print(speedrun.__doc__.strip().split("\n\n")[0])
print("techniques --without can remove:", ", ".join(speedrun.TECHNIQUES))

# %% [markdown]
# ## 8. Where the time goes: one training step, op by op
#
# The paper's 3.3 seconds are on a GPU; on a CPU the same arithmetic takes minutes, and what limits
# it is where the time of a step goes. The executor runs the network as a plan of ops (tutorial 6):
# `model.plan()` is the compiled network, one op per node, in order. Timing each op's forward and
# backward inside one training step shows which layers cost what: here at a small batch (64 images,
# 16 in fast mode; the recipe's batches are 512 images, eight times as many), on one thread, after one untimed
# step that compiles the kernels, the median of a few steps. The whitening layer's weight is frozen,
# so its backward only sums the bias gradient (the bias trains for the first 3 epochs); once the bias
# is frozen too, the executor's prune pass drops the backward of everything before block 1.

# %%
P_BATCH, P_STEPS = (16, 1) if FAST else (64, 3)
xb = normalize(x_train_u8[:P_BATCH])
yb = np.random.default_rng(6).integers(0, 10, P_BATCH)
plan = net.plan()                                              # the network as the executor runs it
timings: dict = {}


def timed(i, kind, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        timings.setdefault((i, kind), []).append(time.perf_counter() - t0)
        return result
    return wrapper


for i, op in enumerate(plan.lanes[0]):
    op.forward, op.backward = timed(i, "forward", op.forward), timed(i, "backward", op.backward)
loss_fn, step_times = run.loss, []
optimizer = tc.SGD(speedrun.param_groups(net, lr0, wd0, recipe), lr=lr0, momentum=recipe.momentum, nesterov=True)
for step in range(P_STEPS + 1):
    if step == 1:
        timings.clear()                                        # step 0 compiles: not counted
    t0 = time.perf_counter()
    loss_fn(plan.forward(xb), yb)
    plan.backward(loss_fn.backward(), input_grad=False)
    t1 = time.perf_counter()
    optimizer.step()
    step_times.append((t1 - t0, time.perf_counter() - t1))
step_times = np.array(step_times[1:])
assert len(plan.last.slices) == 1                              # one lane: the ops ran one after another


def label(node):
    layer = node.layer
    if isinstance(layer, tc.Conv2D):
        k = layer.kernel_size[0]
        return f"Conv2D {k}x{k} {layer.in_channels}->{layer.out_channels}"
    if isinstance(layer, tc.BatchNorm2D):
        return f"BatchNorm2D({layer.num_features})" + (" + GELU" if "GELU fused" in node.notes else "")
    return type(layer).__name__


rows = []
for i, node in enumerate(plan.graph.nodes):
    fwd = float(np.median(timings[(i, "forward")])) if (i, "forward") in timings else 0.0
    bwd = float(np.median(timings[(i, "backward")])) if (i, "backward") in timings else 0.0
    rows.append((f"{i:2d} {label(node)}", fwd, bwd))
total_ops = sum(f + b for _, f, b in rows)
fb, opt_t = np.median(step_times, axis=0)
print(f"one training step at batch {P_BATCH}: forward + backward {fb * 1e3:.0f} ms "
      f"(the ops: {total_ops * 1e3:.0f} ms), optimizer step {opt_t * 1e3:.0f} ms")
print(f"{'node':34s} {'forward ms':>10s} {'backward ms':>11s} {'share':>6s}")
for name, f, b in rows:
    print(f"{name:34s} {f * 1e3:10.2f} {b * 1e3:11.2f} {(f + b) / total_ops:6.1%}")
conv_share = sum(f + b for (name, f, b) in rows if "Conv2D" in name) / total_ops
print(f"the convolutions: {conv_share:.0%} of the ops' time")
per_step_ops = np.sum([t for t in timings.values()], axis=0)    # (P_STEPS,): every op ran once per step
assert (per_step_ops <= step_times[:, 0]).all()                 # the ops ran inside the step's time

# from epoch 3 on the whitening bias is frozen too: then nothing before block 1 needs a backward pass
net.layers[0].bias.requires_grad = False
timings.clear()
loss_fn(plan.forward(xb), yb)
plan.backward(loss_fn.backward(), input_grad=False)
pruned = sorted(i for i, kind in timings if kind == "backward")
net.layers[0].bias.requires_grad = True
print(f"with the whitening bias frozen as well, the backward runs nodes {pruned[0]}..{pruned[-1]} only")
assert pruned[0] == 2
conv_fwd = sum(f for (name, f, _) in rows if "Conv2D" in name)
conv_bwd = sum(b for (name, _, b) in rows if "Conv2D" in name)
print(f"the convolutions' backward / forward: {conv_bwd / conv_fwd:.1f}")
assert conv_share > 0.5 and conv_bwd > conv_fwd and opt_t < 0.2 * fb

fig, ax = plt.subplots(figsize=(10, 6))
ypos = np.arange(len(rows))[::-1]
ax.barh(ypos, [f * 1e3 for _, f, _ in rows], color="#6baed6", label="forward")
ax.barh(ypos, [b * 1e3 for _, _, b in rows], left=[f * 1e3 for _, f, _ in rows], color="#08519c", label="backward")
ax.set_yticks(ypos, [name for name, _, _ in rows], fontsize=8)
ax.set_xlabel(f"ms (median of {P_STEPS} step{'s' if P_STEPS > 1 else ''}, batch {P_BATCH}, one thread)")
ax.set_title(f"one training step of zoo.airbench, by op: the convolutions take {conv_share:.0%}")
ax.legend()
ax.grid(alpha=0.3, axis="x")
fig.tight_layout()
save_figure(fig, "08_profile", "Time of one training step of the airbench network by op, forward and backward")

# %% [markdown]
# Look for where the long bars are: the 3x3 convolutions, and among them the ones with many channels
# and the first one, which runs at 31x31 pixels before its pool. Batch norm with its GELU, pooling and
# the dense layer are short bars; the optimizer's step over the 2 M parameters is small next to the
# whole. So on this engine the speedrun is a matter of convolution speed, forward and (about twice as
# long) backward, which is what benchmarks/PERFORMANCE.md measures; the recipe's techniques are the
# other lever: they cut the number of steps needed.
#
# ## 9. The ablation: what each technique is worth, measured
#
# The accuracy benchmark (`python -m benchmarks.accuracy`) runs the recipe's `tinycnn train` commands
# on the full CIFAR-10 and records each run in `benchmarks/accuracy/results.json`: the command, the
# test accuracy, the wall time of the whole command and the machine's load. The ablation rows are the
# same command with `--without NAME`, each technique removed in turn on the same budget, and the full
# recipe is run with several `--seed`s, so that its spread shows how large a difference must be before
# it means anything. This cell reads those rows (keys starting with `cifar10_speedrun`) and shows
# whatever is there, nothing else.

# %%
RESULTS = TUTORIALS_DIR.parent / "benchmarks" / "accuracy" / "results.json"
recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def row_args(row):
    """The arguments after `tinycnn train` of a results.json row."""
    if isinstance(row.get("args"), list):
        return [str(a) for a in row["args"]]
    words = shlex.split(str(row.get("command", "")))
    return words[2:] if words[:2] == ["tinycnn", "train"] else words


def split_args(args):
    """-> (the command without --seed / --without / --data-dir / --out, seed, techniques removed)."""
    rest, seed, without, i = [], 0, (), 0
    while i < len(args):
        a = args[i]
        if a in ("--seed", "--without", "--data-dir", "--out") and i + 1 < len(args):
            if a == "--seed":
                seed = int(args[i + 1])
            elif a == "--without":
                without = tuple(sorted(args[i + 1].split(",")))
            i += 2
            continue
        rest.append(a)
        i += 1
    return " ".join(rest), seed, without


speed_rows = [r for r in recorded if str(r.get("row", r.get("key", ""))).startswith("cifar10_speedrun")]
usable = [r for r in speed_rows if r.get("exit_status", 0) == 0 and isinstance(r.get("accuracy"), (int, float))]
latest = {}                                                    # (command, without, seed) -> the newest row
for r in sorted(usable, key=lambda r: str(r.get("date", ""))):
    base, seed, without = split_args(row_args(r))
    latest[(base, without, seed)] = r
groups = {}                                                    # (command, without) -> rows over seeds
for (base, without, _seed), r in sorted(latest.items()):
    groups.setdefault((base, without), []).append(r)
commands = sorted({base for base, _ in groups})
print(f"{RESULTS.relative_to(TUTORIALS_DIR.parent)}: {len(speed_rows)} cifar10_speedrun rows "
      f"({len(speed_rows) - len(usable)} failed or without an accuracy, left out)")
if not groups:
    print("No speedrun runs are recorded yet: there is nothing measured to show. The table and the "
          "chart appear here once the accuracy benchmark's rows are published.")
summary = []
for base in commands:
    print(f"\ncommand: tinycnn train {base} [--without NAME] [--seed N]")
    full = groups.get((base, ()))
    full_mean = np.mean([r["accuracy"] for r in full]) if full else None
    print(f"  {'variant':34s} {'seeds':>5s} {'test accuracy':>14s} {'spread (min-max)':>17s} "
          f"{'vs full':>8s} {'wall time':>10s}")
    for (b, without), rs in sorted(groups.items(), key=lambda kv: (kv[0][1] != (), kv[0][1])):
        if b != base:
            continue
        acc = np.array([r["accuracy"] for r in rs])
        wall = np.array([r.get("wall_seconds", np.nan) for r in rs], dtype=float)
        name = "full recipe" if not without else "without " + ", ".join(without)
        spread = f"{acc.min():.2%}-{acc.max():.2%}" if len(acc) > 1 else "one seed"
        delta = "" if full_mean is None or not without else f"{(acc.mean() - full_mean) * 100:+.2f}"
        print(f"  {name:34s} {len(acc):5d} {acc.mean():14.2%} {spread:>17s} {delta:>8s} "
              f"{np.nanmean(wall) / 60:8.1f} min")
        summary.append((base, name, acc, wall))
    if full is not None and len(full) > 1:                     # each difference against the seeds' spread
        full_acc = np.array([r["accuracy"] for r in full])
        spread = (full_acc.max() - full_acc.min()) * 100
        print(f"  the full recipe's seeds spread over {spread:.2f} points:")
        for (b, without), rs in sorted(groups.items()):
            if b == base and without:
                delta = (np.mean([r["accuracy"] for r in rs]) - full_acc.mean()) * 100
                verdict = "larger than" if abs(delta) > spread else "within"
                print(f"    without {', '.join(without)}: {delta:+.2f} points, {verdict} that spread")

n_panels = max(1, len(commands))
fig, axes = plt.subplots(n_panels, 2, figsize=(12, 1.2 + 0.45 * max(4, len(summary)) + 1.5 * n_panels),
                         squeeze=False)
if not summary:
    for ax in axes[0]:
        ax.axis("off")
    axes[0, 0].text(0.5, 0.5, "no cifar10_speedrun rows in benchmarks/accuracy/results.json yet:\n"
                    "nothing measured to show", ha="center", va="center", transform=axes[0, 0].transAxes)
for k, base in enumerate(commands):
    mine = [(name, acc, wall) for b, name, acc, wall in summary if b == base]
    ypos = np.arange(len(mine))[::-1]
    ax_a, ax_t = axes[k]
    for y, (name, acc, wall) in zip(ypos, mine):
        color = "#08519c" if name == "full recipe" else "#6baed6"
        ax_a.barh(y, acc.mean() * 100, color=color)
        if len(acc) > 1:
            low, high = (acc.mean() - acc.min()) * 100, (acc.max() - acc.mean()) * 100
            ax_a.errorbar(acc.mean() * 100, y, xerr=[[low], [high]], color="k", capsize=3)
        ax_a.plot(acc * 100, np.full(len(acc), y), "k.", ms=4)
        ax_t.barh(y, np.nanmean(wall) / 60, color=color)
    lo = min(acc.min() for _, acc, _ in mine) * 100
    ax_a.set_xlim(max(0, lo - 3), min(100, max(acc.max() for _, acc, _ in mine) * 100 + 1))
    ax_a.set_yticks(ypos, [f"{name} ({len(acc)} seed{'s' if len(acc) > 1 else ''})" for name, acc, _ in mine],
                    fontsize=8)
    ax_t.set_yticks(ypos, [""] * len(mine))
    ax_a.set_xlabel("test accuracy, % (bar: mean; dots: seeds; line: min-max)")
    ax_t.set_xlabel("wall time of the whole command, minutes (mean over seeds)")
    ax_a.set_title("\n".join(textwrap.wrap(f"tinycnn train {base}", 80)), fontsize=8)
    for ax in (ax_a, ax_t):
        ax.grid(alpha=0.3, axis="x")
fig.tight_layout()
save_figure(fig, "08_ablation", "The ablation as recorded by the accuracy benchmark: test accuracy and wall time "
            "of the full recipe and of the recipe with each technique removed")

# %% [markdown]
# **Reading the ablation.** Compare each "without" row's accuracy with the full recipe's spread over
# seeds: a difference inside that spread is not evidence either way, a difference several times
# larger is; the last lines of the cell's output make that comparison for each row. The techniques
# are of two kinds. Whitening, the identity initialisation, the shifts' rate, the frozen scale and
# Lookahead change how fast the network learns, so removing one is expected to cost accuracy at the
# same number of epochs (the verdict lines say for which ones the recorded runs show it) while the
# time stays about the same (without whitening the
# first layer's weights train, which adds their gradient to every step). Label smoothing changes what
# is learned. The data side (the alternating flip, the translation, test-time augmentation) is set with `--flip`,
# `--crop-pad` and `--tta`; the six test views cost six forward passes over the test images, once, at
# the end. The wall-time column is the whole command on a 2-core machine shared with other work: its
# load when each row was measured is in `results.json`. The "without" rows that are missing from the
# table have not been measured yet.
#
# **What you have seen.** The first layer can be computed from the data (whitening: its outputs'
# covariance is the identity), the other layers can start as the identity, every image can be shown
# both ways in every two epochs, the rate can rise and fall in a triangle while Lookahead averages the
# last steps, the test can average six views' logits, and a fixed output scale is the same as a
# rescaled learning rate and weight decay. On a CPU, the time of a step is the time of its
# convolutions.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function for you to complete, and a check that runs it on
# cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs. As shipped,
# the functions only raise `NotImplementedError`, so the checks say "not attempted yet". Reference
# solutions are in [`solutions/solutions_08.py`](solutions/solutions_08.py); try first.
#
# **Exercise 8.1: whitening filters.** Given patches (M, D) (one flattened patch per row) and $\epsilon$,
# return the (D, D) matrix whose rows are the whitening filters $v_k / \sqrt{\lambda_k + \epsilon}$ of
# section 2, largest eigenvalue first. (`np.linalg.eigh` returns the eigenvalues in ascending order.)

# %%
from exercises import ex08


def whitening_filters(patches, eps):
    """(D, D): row k = v_k / sqrt(lam_k + eps), lam_k the k-th largest eigenvalue of patches.T @ patches / M."""
    raise NotImplementedError      # your code here


ex08.check_whitening_filters(whitening_filters)

# %% [markdown]
# **Exercise 8.2: the alternating flip.** Return a bool array (epochs, n): which of n images to
# mirror in each epoch, random (probability 1/2, from `rng`) in epoch 0, and each image mirrored in
# exactly one of any two consecutive epochs. Then: what fraction of the images does the *random* flip
# never show mirrored in 8 epochs?

# %%
def alternating_flips(n, epochs, rng):
    """bool (epochs, n): out[e, i] = whether image i is mirrored in epoch e."""
    raise NotImplementedError      # your code here


ex08.check_alternating_flips(alternating_flips)

# %% [markdown]
# **Exercise 8.3: test-time augmentation by hand.** Without `tinycnn.tta`, write the six-view average
# of section 6: `logits_fn` maps images (B, C, H, W) to logits (B, K); return the weighted mean of the
# logits of the image, its mirror, the image shifted one pixel up-left and one pixel down-right with
# reflection padding (`np.pad(..., mode="reflect")`), and their mirrors. Which view would you drop
# first if the test had to be faster, and why?

# %%
def tta_six_views(logits_fn, x):
    """(B, K): 1/4 f(x) + 1/4 f(mirror x) + 1/8 of each shifted view and its mirror."""
    raise NotImplementedError      # your code here


ex08.check_tta_six_views(tta_six_views)
