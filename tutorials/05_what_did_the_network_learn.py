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
# # Tutorial 5: what did the network learn?
#
# A trained CNN is a few tens of thousands of numbers. This tutorial trains a small one on
# Fashion-MNIST (small grey photos of clothes, shoes and bags, 10 classes) and then looks inside it in
# five ways, each answering a different question:
#
# 1. **First-layer filters**: what patterns does the first layer look for?
# 2. **Feature maps**: where in an image does it find them?
# 3. **Saliency maps**: which pixels does a class score depend on? (The gradient of the score with
#    respect to the input, which tinycnn's backward pass gives for free.)
# 4. **The confusion matrix**: which classes does it mistake for which?
# 5. **Precision, recall and F1 per class**: how good is it at each class, and in which way is it bad?
#
# Every claim below is checked by an `assert` when the page is made.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinycnn as tc
from tinycnn import data
from tinycnn.gradcheck import compare
from tinycnn.kernels import conv_output_size

from helpers import FAST, TUTORIALS_DIR, assert_agree, rounding_bound, save_figure

print("mode:", "fast" if FAST else "full")

# %% [markdown]
# ## 0. A small CNN, trained
#
# In full mode we use all of Fashion-MNIST: 60,000 training and 10,000 test images of 28x28 pixels,
# read from the shared folder next to the repository if it is there and otherwise downloaded once
# into tinycnn's cache. In fast mode, the mode the test suite runs offline, we use a slice of the MNIST
# digits that ship inside tinycnn instead (4,000 training images, one epoch); everything below works
# the same on either, but the sentences about particular classes describe the full-mode run on this
# page, and the code checks them only on that run.
#
# The network is deliberately small, so its parts can be looked at one by one: two 5x5 convolutions
# (16 and 32 filters, padding 2 so the size is kept), each followed by ReLU and a 2x2 max pooling, and
# a Dense layer from the 32 maps of 7x7 to the 10 class scores (the *logits*). Four epochs of Adam
# take it to 89 % on the test set: far from perfect, which leaves plenty of mistakes to look at.

# %%
if FAST:
    ds = data.load("embedded")
    n_train, n_test, epochs = 4000, 1000, 1
else:
    shared = TUTORIALS_DIR.parent.parent / "shared" / "datasets"
    ds = (data.load("fashion_mnist", data_dir=shared) if (shared / "fashion_mnist").is_dir()
          else data.load("fashion_mnist"))
    n_train, n_test, epochs = 60000, 10000, 4
classes = ds.classes
normalize = data.Normalizer.fit(ds.x_train[:n_train])
x_train, y_train = normalize(ds.x_train[:n_train]), ds.y_train[:n_train]     # float32 (N, 1, 28, 28)
x_test, y_test = normalize(ds.x_test[:n_test]), ds.y_test[:n_test]
print(f"{ds.name}: {n_train} training and {n_test} test images; classes: {', '.join(classes)}")


def build(dtype=np.float32, rng=None):
    return tc.Sequential(
        tc.Conv2D(1, 16, 5, padding=2, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),    # (16, 14, 14)
        tc.Conv2D(16, 32, 5, padding=2, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),   # (32, 7, 7)
        tc.Flatten(), tc.Dense(32 * 7 * 7, 10, dtype=dtype, rng=rng),                        # logits (10,)
        input_shape=(1, 28, 28))


model = build(rng=np.random.default_rng(0))
initial_filters = model[0].weight.data.copy()                      # (16, 1, 5, 5), before training
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], seed=1)
history = model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
test_pred = model.predict_classes(x_test, batch_size=500)          # (n_test,)
test_acc = tc.metrics.accuracy(y_test, test_pred)
print("training accuracy per epoch:", [round(a, 4) for a in history.history["accuracy"]])
print(f"test accuracy: {test_acc:.4f} ({int(np.sum(test_pred != y_test))} mistakes in {n_test})")
assert test_acc >= (0.80 if FAST else 0.88)
assert FAST or round(test_acc, 2) == 0.89                           # what the text below says

# %% [markdown]
# ## 1. First-layer filters
#
# The first convolution has 16 filters of 5x5 weights, one input channel each. A filter's output at a
# position is the sum of the weights times the pixels under them (tutorial 1), so it is largest where
# the image patch *looks like the filter*: bright where the weights are positive, dark where they are
# negative. Drawing the weights as small images therefore shows what each filter looks for. Here they
# are before training (random, as initialised), after training, and the difference, what training
# added. Each row is drawn on one symmetric colour scale, shown by its colour bar (red positive, blue
# negative, white zero), so the filters of a row can be compared with each other; the third row has
# its own, smaller scale, because the change is smaller than the start:

# %%
learned_filters = model[0].weight.data                             # (16, 1, 5, 5)
added = learned_filters - initial_filters                           # what training changed
fig, axes = plt.subplots(3, 16, figsize=(15, 3.4), layout="constrained")
rows = ((initial_filters, "initial"), (learned_filters, "learned"), (added, "learned -\ninitial"))
for row, (filters, label) in enumerate(rows):
    limit = np.abs(filters).max()                                   # one scale for the whole row
    for k in range(16):
        im = axes[row, k].imshow(filters[k, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[row, k].set_xticks([])
        axes[row, k].set_yticks([])
    axes[row, 0].set_ylabel(label, fontsize=9)
    fig.colorbar(im, ax=list(axes[row]), fraction=0.01, pad=0.01)

save_figure(fig, "05_first_layer_filters",
            "The 16 first-layer 5x5 filters before training (random), after training, and the difference "
            "(red positive, blue negative): what training added is much smoother than the start")


def roughness(images):
    """Mean squared difference of neighbouring entries over twice their variance, per image: about 1
    for independent random entries, near 0 for a smooth image. images: (K, 1, H, W) -> (K,)."""
    w = images[:, 0].astype(np.float64)                            # (K, H, W)
    diffs = np.concatenate([(w[:, 1:, :] - w[:, :-1, :]).reshape(len(w), -1),
                            (w[:, :, 1:] - w[:, :, :-1]).reshape(len(w), -1)], axis=1)
    return (diffs ** 2).mean(axis=1) / (2 * w.reshape(len(w), -1).var(axis=1))


r_initial, r_learned, r_added = roughness(initial_filters), roughness(learned_filters), roughness(added)
print(f"roughness, median over the 16 filters: initial {np.median(r_initial):.2f}, "
      f"learned {np.median(r_learned):.2f}, learned - initial {np.median(r_added):.2f}")
print(f"mean |weight|: initial {np.abs(initial_filters).mean():.3f}, learned {np.abs(learned_filters).mean():.3f}; "
      f"mean |change| {np.abs(added).mean():.3f}")
assert np.median(r_added) < 0.75 * np.median(r_initial) and np.median(r_initial) > 0.9
assert np.abs(added).mean() < np.abs(initial_filters).mean()       # the change is smaller than the start

# %% [markdown]
# The initial filters are salt and pepper: neighbouring weights are unrelated, and their roughness (the
# mean squared difference of neighbouring weights, relative to their spread) is about 1, as it is for
# independent random numbers. The learned filters still look much like them: training did not erase
# the random start, it added to it, and the change is not larger than the start. But the change itself,
# in the third row, is much smoother: neighbouring weights moved together, into bars and blobs, the
# detectors of edges of one direction and of filled areas. That is no accident. The gradient of the
# loss with respect to a first-layer filter is a sum of image patches weighted by upstream gradients
# (tutorial 2, section 5), and neighbouring pixels of real images are alike,
# so the gradient is smooth. (Adam rescales the step of every weight separately, which roughens the
# steps somewhat; their sum is still far smoother than the random start.)
#
# ## 2. Feature maps
#
# A *feature map* is one filter's output over the whole image: where in the image the pattern was
# found. Here is how the first layer's maps come about, checked once by hand: the map of filter $k$
# is the cross-correlation of the (zero-padded) image with the filter, plus the bias, and then ReLU
# keeps the positive part. We take the layers of the model one at a time, so we can keep every
# intermediate output.

# %%
examples = [int(np.flatnonzero(y_test == c)[0]) for c in (0, 5, 8)]   # the first test image of 3 classes
assert FAST or [classes[c] for c in (0, 5, 8)] == ["T-shirt/top", "Sandal", "Bag"]
x_few = x_test[examples]                                              # (3, 1, 28, 28)
outputs = [x_few]
for layer in model.layers:
    outputs.append(layer(outputs[-1]))            # outputs[i + 1] = output of layer i
maps1, maps2 = outputs[2], outputs[5]             # after the first ReLU (3, 16, 28, 28), the second (3, 32, 14, 14)

# filter k = 3 on image 0, by the definition: y[i, j] = b + sum_{m, l} xpad[i + m, j + l] w[m, l]
k = 3
w, b = model[0].weight.data[k, 0].astype(np.float64), float(model[0].bias.data[k])
xpad = np.pad(x_few[0, 0].astype(np.float64), 2)                      # (32, 32)
by_hand = np.array([[b + np.sum(xpad[i:i + 5, j:j + 5] * w) for j in range(28)] for i in range(28)])
abs_sum = np.array([[abs(b) + np.sum(np.abs(xpad[i:i + 5, j:j + 5] * w)) for j in range(28)] for i in range(28)])
assert_agree("conv map of filter 3 vs the definition", outputs[1][0, k], by_hand,
             rounding_bound(26, abs_sum, np.float32) + rounding_bound(26, abs_sum))
assert np.array_equal(maps1[0, k], np.maximum(outputs[1][0, k], 0))
zeros1, zeros2 = np.mean(maps1 == 0), np.mean(maps2 == 0)
print(f"share of exact zeros after the first ReLU: {zeros1:.0%}, after the second: {zeros2:.0%}")
assert FAST or (0.4 < zeros1 < 0.6 and 0.7 < zeros2 < 0.8)                  # "half", "three quarters"

# which first-layer maps respond on the object, which on the background? (mean response, per image)
found_background_maps = 0
for n, i in enumerate(examples):
    ink = ds.x_test[i, 0] > 0                                         # (28, 28) object pixels
    on_object = maps1[n][:, ink].mean(axis=1)                         # (16,) mean response per map
    on_background = maps1[n][:, ~ink].mean(axis=1)
    object_maps = int(np.sum(on_object > 2 * on_background))
    background_maps = int(np.sum(on_background > 2 * on_object))
    print(f"{classes[y_test[i]]:>12}: {object_maps} maps respond mostly on the object, "
          f"{background_maps} mostly on the background (mean response at least twice as large)")
    assert object_maps >= 1
    found_background_maps += background_maps
assert FAST or found_background_maps >= 1

# %%
fig, axes = plt.subplots(6, 17, figsize=(15, 5.6), layout="constrained")
top1, top2 = maps1.max(), maps2[:, :16].max()                   # one colour scale per layer, over all 3 images
for row, i in enumerate(range(3)):
    r1, r2 = axes[2 * row], axes[2 * row + 1]
    r1[0].imshow(ds.x_test[examples[i], 0], cmap="gray_r")
    r1[0].set_title(classes[y_test[examples[i]]], fontsize=8)
    r2[0].axis("off")
    for k in range(16):
        im1 = r1[k + 1].imshow(maps1[i, k], cmap="magma", vmin=0, vmax=top1)
        im2 = r2[k + 1].imshow(maps2[i, k], cmap="magma", vmin=0, vmax=top2)
    for ax in list(r1) + list(r2[1:]):
        ax.set_xticks([])
        ax.set_yticks([])
    r1[1].set_ylabel("layer 1", fontsize=7)
    r2[1].set_ylabel("layer 2", fontsize=7)
    fig.colorbar(im1, ax=list(r1), fraction=0.01, pad=0.01)
    fig.colorbar(im2, ax=list(r2), fraction=0.01, pad=0.01)
all_zero1 = [(n, k) for n in range(3) for k in range(16) if not maps1[n, k].any()]   # drawn all black
all_zero2 = [(n, k) for n in range(3) for k in range(16) if not maps2[n, k].any()]
print(f"maps that are exactly 0 everywhere (all black in the figure): layer 1: {len(all_zero1)} of 48 "
      f"{all_zero1[:6]}, layer 2 (first 16 maps): {len(all_zero2)} of 48 {all_zero2[:6]} (image, map)")
dead_everywhere = [k for k in range(16) if not maps1[:, k].any()]
print(f"first-layer maps that are 0 on all three images: {dead_everywhere}")

save_figure(fig, "05_feature_maps",
            "Three test images with the 16 feature maps of the first layer (after ReLU, 28x28) and the "
            "first 16 of the 32 maps of the second layer (14x14); bright = strong response")

# %% [markdown]
# Each first-layer map is the image seen through one filter. Look along a row: some maps light up on
# the outline of the object, often on one side only (the left edges, or the top ones: an edge detector
# of one direction), one fills the whole area of the object, a few respond to the background (the
# counts above sort them by where their mean response is larger). ReLU sets everything else to exactly
# zero: about half of the first layer's values and three quarters of the second's, in the run on this
# page. The second layer's maps combine all 16 of the first and are coarser (14x14, after pooling);
# they look less like the picture and more like a sparse list of which parts were found where. That is
# all the Dense layer sees: the 32 maps of the second pooling, 7x7 each.
#
# Some maps are black from edge to edge: zero at every pixel, for that image. The cell counts them.
# Such a filter's response is negative (plus its bias) everywhere on the image, so ReLU removes all of
# it: it looks for a pattern this image does not contain. A map that is zero on *every* image would be a
# dead filter, one that no longer learns (no gradient passes a ReLU that is off). In the run on this
# page no first-layer map is black, but the fourth second-layer map (index 3) is zero on all three
# images shown: a hint of a filter that rarely or never fires, not a proof (three images).
#
# ## 3. Saliency maps: the gradient of a class score
#
# Which pixels does the network's decision depend on? Write $s_c(x)$ for the logit of class $c$ for
# image $x$. Its gradient $\partial s_c / \partial x$ has the shape of the image, and says by how much
# the score would change if each pixel were nudged: a *saliency map*.
#
# We need no new code for it. `model.backward(g)` computes $\partial L / \partial x$ for any
# $L = \sum_{n,k} g_{nk}\, s_k(x_n)$ (tutorial 2: the upstream gradient $g$ defines the scalar). With
# $g$ one-hot, $g_{n k} = 1$ for $k = c_n$ and 0 otherwise, $L$ is the sum of the chosen scores, and
# since the images of a batch do not interact, row $n$ of the result is $\partial s_{c_n}(x_n) /
# \partial x_n$: a saliency map for every image of the batch, from one backward pass.
#
# To check it numerically we copy the trained weights into a float64 model (the reason is in tutorial
# 2, section 8) and nudge every pixel of the first image by $\pm h$, $h = 10^{-6}$, one copy of the
# image per pixel, in batches. Every layer of this network is piecewise linear in its input
# (convolution and Dense are linear, ReLU and max pooling pick pieces), so close to the image $s_c$ is
# exactly linear along most pixels, and there the difference quotients equal the derivative up to
# rounding. Except at a *kink*:
# where a ReLU input is exactly 0 or, much more often, where a pooling window holds a tie. Ties are
# common here: wherever the image is flat (the empty background, a uniformly bright patch), every
# window of the filter sees the same pixels, gives the same value, and all four entries of a pooling
# window are equal. Nudging a pixel there changes which one wins, and the slope to the left differs
# from the slope to the right: there is no derivative (tutorial 2, section 9). So we compute both
# one-sided slopes and require that they agree (to $10^{-6}$; rounding alone moves a one-sided slope
# by about $10^{-9}$).
#
# That alone is not enough when the tie sits exactly at $x$. The backward pass must then send the
# gradient to one of the tied entries, and `MaxPool2D` picks the first of them in the window (a choice
# by rule; through several layers the result need not even lie between the slopes on the two sides, as
# the kink printed below shows and the count after it measures (119 of the 268 kinks of this image in
# the run on this page), and for a function that is not convex "subgradient" guarantees nothing
# anyway). A pixel can lie under several tied windows at once: nudging it breaks each
# tie one way or the other, the changes of slope can cancel so that left and right (nearly) agree, and
# yet at $x$ itself the first-winner rule follows an entry that wins on neither side. So we also run the
# backward pass at $x \pm h e_i$ and call pixel $i$ smooth only if, in addition, its value there is the
# one at $x$: on one linear piece the backward pass does the same arithmetic (the same ReLU masks, the
# same pooling winners), so the three values agree to rounding ($10^{-10}$ leaves ample room). On the
# smooth pixels we compare the backward pass with the central difference.
#
# Whether this second test catches anything depends on the trained weights. In the run on this page it
# catches no pixel: the second line printed below counts them (0) and would show the first one if there
# were any. Every kink of this image already shows in its left and right slopes; the second test is a
# guard that keeps a tie exactly at $x$ out of the comparison when there is one.

# %%
model64 = build(np.float64, np.random.default_rng(0))
model64.load_state_dict(model.state_dict())                        # the trained float32 weights, exactly, in float64
model64.eval()

shown = examples + [int(i) for i in np.flatnonzero(test_pred != y_test)[:3]]   # 3 right, 3 wrong
x64 = x_test[shown].astype(np.float64)                             # (6, 1, 28, 28)
logits = model64(x64)                                              # (6, 10)
predicted = logits.argmax(axis=1)
onehot = np.zeros_like(logits)
onehot[np.arange(len(shown)), predicted] = 1.0                     # the score of the predicted class
saliency = model64.backward(onehot)                                # (6, 1, 28, 28) = d s_c / d x

# check image 0 at every pixel: s_c at x + h e_i and x - h e_i for all 784 pixels i, in batches
h = 1e-6
c = int(predicted[0])
s_0 = model64(x64[:1])[0, c]
s_up, s_down = np.empty(28 * 28), np.empty(28 * 28)               # s_c at x + h e_i, x - h e_i
g_up, g_down = np.empty(28 * 28), np.empty(28 * 28)               # backward, pixel i, at x + h e_i, x - h e_i
for start in range(0, 28 * 28, 112):
    pixels = np.arange(start, start + 112)                          # flat pixel indices of this batch
    copy = np.arange(len(pixels))                                   # copy k of the image nudges pixels[k]
    batch = np.repeat(x64[:1], len(pixels), axis=0)                 # (112, 1, 28, 28), one copy per pixel
    rows, cols = np.divmod(pixels, 28)
    pick_c = np.zeros((len(pixels), 10))
    pick_c[:, c] = 1.0                                              # (112, 10): the score s_c of every copy
    batch[copy, 0, rows, cols] += h
    s_up[pixels] = model64(batch)[:, c]
    g_up[pixels] = model64.backward(pick_c)[copy, 0, rows, cols]
    batch[copy, 0, rows, cols] -= 2 * h
    s_down[pixels] = model64(batch)[:, c]
    g_down[pixels] = model64.backward(pick_c)[copy, 0, rows, cols]
left, right = (s_0 - s_down) / h, (s_up - s_0) / h                  # one-sided slopes, (784,) each
central = (s_up - s_down) / (2 * h)
analytic = saliency[0, 0].ravel()
sides_agree = np.abs(left - right) <= 1e-6                          # no change of slope within +-h of x
steady = np.maximum(np.abs(g_up - analytic), np.abs(g_down - analytic)) <= 1e-10  # same backward at x, x +- h
smooth = sides_agree & steady
blank = (ds.x_test[shown[0], 0] == 0).ravel()                      # background pixels (no ink)
print(f"{int(np.sum(~smooth))} of 784 pixels sit on a kink: "
      f"{np.mean(~smooth[blank]):.0%} of the {int(blank.sum())} background pixels, "
      f"{np.mean(~smooth[~blank]):.0%} of the {int((~blank).sum())} pixels with ink")
at_x = np.flatnonzero(sides_agree & ~steady)  # a tie exactly at x, missed by left vs right
print(f"  {len(at_x)} of them with left and right slopes that agree, but a backward pass that is not the "
      f"same at x as at x +- h")
for p in at_x[:1]:
    print(f"  pixel {divmod(int(p), 28)}: left slope {left[p]: .7f}, right slope {right[p]: .7f}; backward "
          f"at x - h {g_down[p]: .7f}, at x {analytic[p]: .7f}, at x + h {g_up[p]: .7f}")
row = compare("d s_c / d x", analytic[smooth], central[smooth], tol=1e-7)
print(f"on the other {int(np.sum(smooth))}: backward vs central differences, relative error "
      f"{row.rel_error:.1e}, largest |difference| {row.max_abs_diff:.1e}: {'OK' if row.ok else 'NOT OK'}")
# smooth now depends on the backward pass too: a backward pass that was wrong everywhere must not make
# the check empty, so it has to cover most of the pixels with ink
assert row.ok and np.mean(smooth[~blank]) > 0.5 and np.mean(~smooth[blank]) > np.mean(~smooth[~blank])
assert FAST or len(at_x) == 0                                       # what the text above says about the full run
for p in np.flatnonzero(smooth)[np.argsort(np.abs(analytic[smooth]))[-3:][::-1]]:   # most salient smooth pixels
    print(f"  pixel {divmod(int(p), 28)}: backward {analytic[p]: .10f}, central difference {central[p]: .10f}")
kink = int(np.flatnonzero(~smooth)[0])
print(f"  at a kink, pixel {divmod(kink, 28)}: left slope {left[kink]: .6f}, right slope {right[kink]: .6f}, "
      f"central difference {central[kink]: .6f}, backward {analytic[kink]: .6f}")
outside = ~smooth & ((analytic < np.minimum(left, right) - 1e-9) | (analytic > np.maximum(left, right) + 1e-9))
print(f"  at {int(outside.sum())} of the {int(np.sum(~smooth))} kinks the backward pass lies outside the interval "
      f"between the left and the right slope")

# %% [markdown]
# Where the derivative exists, the backward pass and the finite differences agree to about ten digits.
# At a kink the central difference is just the average of two different slopes, and the backward pass
# returns the slope of the one path its tie rule picks (at a tie exactly at $x$, possibly a path that
# neither side of $x$ follows); neither is "the" gradient, because there is none.
#
# Raw gradients make noisy pictures: the slope at one exact point of a function made of many linear
# pieces jumps from pixel to pixel. *SmoothGrad* (Smilkov et al., 2017) averages the gradient over
# copies of the image with a little random noise added ($\sigma$ = 15 % of the image's range of
# values), which keeps what the gradients agree on. It is the same backward pass: one batch of
# noisy copies, one one-hot upstream gradient per copy.

# %%
n_copies = 32
rng = np.random.default_rng(11)
sigma = 0.15 * (x64.max(axis=(1, 2, 3)) - x64.min(axis=(1, 2, 3)))        # (6,) per image
noisy = np.repeat(x64, n_copies, axis=0)                                   # (6 * 32, 1, 28, 28)
noisy += rng.standard_normal(noisy.shape) * np.repeat(sigma, n_copies)[:, None, None, None]
model64(noisy)
smoothgrad = model64.backward(np.repeat(onehot, n_copies, axis=0))         # (6 * 32, 1, 28, 28)
smoothgrad = smoothgrad.reshape(len(shown), n_copies, 1, 28, 28).mean(axis=1)   # (6, 1, 28, 28)
r_grad, r_smooth = roughness(saliency), roughness(smoothgrad)
print("roughness of the maps, gradient:  ", " ".join(f"{r:.2f}" for r in r_grad))
print("roughness of the maps, SmoothGrad:", " ".join(f"{r:.2f}" for r in r_smooth))
assert np.all(r_smooth < r_grad)

# %% [markdown]
# Now the maps for six test images: three the network gets right, and its first three mistakes. For
# each, the gradient of the *predicted* class's score, raw and smoothed: at red pixels a *higher* pixel
# value would raise that score, at blue ones it would lower it. (In Fashion-MNIST a high value is a
# bright part of the garment; the top row draws the images with `gray_r`, which shows high values
# *dark*, so "higher" here means darker in the top row.) The black line is the outline of the object;
# each row has one colour scale, shown by its colour bar.

# %%
fig, axes = plt.subplots(3, 6, figsize=(13, 7), layout="constrained")
for n, i in enumerate(shown):
    axes[0, n].imshow(ds.x_test[i, 0], cmap="gray_r")
    axes[0, n].set_title(f"true {classes[y_test[i]]}\npredicted {classes[predicted[n]]}", fontsize=9,
                         color="k" if predicted[n] == y_test[i] else "C3")
    for r, maps in ((1, saliency), (2, smoothgrad)):
        limit = np.abs(maps[:, 0]).max()                                # one scale per row
        im = axes[r, n].imshow(maps[n, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[r, n].contour(ds.x_test[i, 0], levels=[40], colors="k", linewidths=0.5)
        if n == len(shown) - 1:
            fig.colorbar(im, ax=list(axes[r]), fraction=0.015, pad=0.01, label="d score / d pixel")
    for ax in axes[:, n]:
        ax.set_xticks([])
        ax.set_yticks([])
axes[1, 0].set_ylabel("gradient", fontsize=9)
axes[2, 0].set_ylabel("SmoothGrad", fontsize=9)
save_figure(fig, "05_saliency",
            "Six test images (three right, three wrong), the gradient of the predicted class's score with "
            "respect to each pixel, and its SmoothGrad average (red: a higher pixel value raises the score)")

# %% [markdown]
# How to read them. A saliency map is the network's score written as a linear function of the pixels,
# valid only in a tiny neighbourhood of this one image; it is not "where the network looks" but "what
# would change its mind". So it is not zero on the background: a bright pixel where the network
# expects empty space would change its mind too. Red on the background means "a higher value (more
# garment) here would raise the score"; it does not say that the pixels as they are pushed the score up. The raw gradient is
# noisy, because the slope of a function made of many linear pieces jumps from one piece to the next;
# SmoothGrad keeps what the slopes of nearby images agree on, and its maps are smoother for every one
# of the six images (the roughness numbers above). For the mistakes, the map answers the useful
# question: which changes to this image would have made the wrong answer *more* certain.
#
# ## 4. The confusion matrix
#
# Accuracy is one number; the *confusion matrix* $C$ has one for every pair of classes: $C_{ij}$ is
# the number of test images of true class $i$ that the network called class $j$ (rows: truth,
# columns: prediction). The diagonal holds the correct answers; everything off it is a mistake, and
# *where* it sits tells which classes are mixed up.

# %%
K = len(classes)
cm = tc.metrics.confusion_matrix(y_test, test_pred, K)              # (K, K)
assert cm.sum() == n_test and np.trace(cm) == np.sum(test_pred == y_test)
assert np.array_equal(cm.sum(axis=1), np.bincount(y_test, minlength=K))    # row sums: images per class

errors = cm - np.diag(np.diag(cm))                                  # off-diagonal part
order = np.argsort(errors.ravel())[::-1]
print("most frequent mistakes (true -> predicted: count):")
for flat in order[:6]:
    i, j = divmod(int(flat), K)
    print(f"  {classes[i]:>12} -> {classes[j]:<12} {errors[i, j]:4d}")

fig, ax = plt.subplots(figsize=(7.5, 6.5))
ax.imshow(errors, cmap="Reds")
for (i, j), v in np.ndenumerate(cm):
    ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
            color="k" if i == j or errors[i, j] < 0.6 * errors.max() else "w")
ax.set_xticks(range(K), classes, rotation=45, ha="right", fontsize=8)
ax.set_yticks(range(K), classes, fontsize=8)
ax.set_xlabel("predicted class")
ax.set_ylabel("true class")
ax.set_title("confusion matrix (colour: off-diagonal counts)", fontsize=10)
fig.tight_layout()
save_figure(fig, "05_confusion_matrix",
            "Confusion matrix on the test set: row = true class, column = predicted class; the colour "
            "shows the mistakes only, so the diagonal of correct answers stays white")

if not FAST:          # what the next paragraph says about the full run, on Fashion-MNIST
    name = {c: k for k, c in enumerate(classes)}
    tops = [name[c] for c in ("T-shirt/top", "Pullover", "Coat", "Shirt")]
    shoes = [name[c] for c in ("Sandal", "Sneaker", "Ankle boot")]
    among_tops = errors[np.ix_(tops, tops)].sum()
    among_shoes, from_shoes = errors[np.ix_(shoes, shoes)].sum(), errors[shoes].sum()
    print(f"mistakes among the four upper-body garments: {among_tops} of {errors.sum()}; "
          f"mistakes on footwear that are other footwear: {among_shoes} of {from_shoes}")
    assert among_tops > errors.sum() / 2 and among_shoes > from_shoes / 2
    assert all(int(f) % K == name["Shirt"] for f in order[:3])       # the top three: "... -> Shirt"

# %% [markdown]
# The mistakes are not spread evenly. More than half of them are confusions among four classes:
# T-shirt/top, Pullover, Coat and Shirt, the garments for the upper body, which at 28x28 grey pixels
# are all roughly a rectangle with sleeves. Within that block the Shirt column is the darkest: the
# three most frequent mistakes are T-shirts, coats and pullovers called shirts. "Shirt" is what the
# network answers when it cannot tell these garments apart. The footwear forms a second, smaller block:
# most mistakes on sandals, sneakers and ankle boots are other footwear. The matrix says what to work
# on (these two blocks) and what not to (trousers, for one), which one accuracy number cannot.
#
# ## 5. Precision, recall and F1 per class
#
# From the confusion matrix, for each class $k$: the true positives $TP = C_{kk}$; the false positives
# $FP$, images of other classes called $k$ (the rest of column $k$); the false negatives $FN$, images
# of class $k$ called something else (the rest of row $k$). Then
#
# $$\text{precision} = \frac{TP}{TP + FP}, \qquad \text{recall} = \frac{TP}{TP + FN}, \qquad
# F_1 = \frac{2 \cdot \text{precision} \cdot \text{recall}}{\text{precision} + \text{recall}}.$$
#
# *Precision* answers "when the network says $k$, how often is it right?"; *recall* answers "of the
# images that are $k$, how many does it find?". A class can have one high and the other low: a network
# that calls every doubtful image "$k$" finds all the $k$s (high recall) but is often wrong when it says
# so (low precision). F1, their harmonic mean, is high only when both are. `tinycnn.metrics` computes
# them all:

# %%
print(tc.metrics.classification_report(y_test, test_pred, K, class_names=classes))
precision, recall, f1 = tc.metrics.precision_recall_f1(y_test, test_pred, K)

worst = int(np.argmin(f1))
tp = cm[worst, worst]
fp = cm[:, worst].sum() - tp
fn = cm[worst, :].sum() - tp
p_hand, r_hand = tp / (tp + fp), tp / (tp + fn)
print(f"by hand for the class with the lowest F1, {classes[worst]}: TP = {tp}, FP = {fp}, FN = {fn}; "
      f"precision {tp}/{tp + fp} = {p_hand:.3f}, recall {tp}/{tp + fn} = {r_hand:.3f}, "
      f"F1 = {2 * p_hand * r_hand / (p_hand + r_hand):.3f}")
assert np.isclose(precision[worst], p_hand, rtol=1e-12) and np.isclose(recall[worst], r_hand, rtol=1e-12)
assert np.isclose(f1[worst], 2 * p_hand * r_hand / (p_hand + r_hand), rtol=1e-12)
# with one label per image, every mistake is one FP and one FN: micro-averaged F1 is the accuracy
assert np.isclose(tc.metrics.precision_recall_f1(y_test, test_pred, K, "micro").f1, test_acc, rtol=1e-12)
low_recall, low_precision = int(np.argmin(recall)), int(np.argmin(precision))
print(f"lowest recall: {classes[low_recall]} ({recall[low_recall]:.3f}); "
      f"lowest precision: {classes[low_precision]} ({precision[low_precision]:.3f}); "
      f"highest F1: {classes[int(np.argmax(f1))]} ({f1.max():.3f})")
if not FAST:          # what the next paragraph says about the full run, on Fashion-MNIST
    coat, shirt = classes.index("Coat"), classes.index("Shirt")
    assert worst == low_precision == shirt and low_recall == coat
    assert 1150 < tp + fp < 1300 and fp > (tp + fp) / 3
    assert 0.70 < recall[coat] < 0.80 and precision[coat] > 0.85
    assert {classes[j] for j in np.argsort(errors[coat])[-3:]} == {"Shirt", "Pullover", "Dress"}
    assert classes[int(np.argmax(f1))] == "Trouser" and (round(f1.min(), 2), round(f1.max(), 2)) == (0.72, 0.98)

# %% [markdown]
# Shirt has the lowest F1, and its two halves say why. Its precision is the lowest of all: of the
# roughly 1,200 images the network called shirts, more than a third were something else (the Shirt
# column of the confusion matrix). Coat is the opposite case: the lowest recall, about a quarter of the
# coats are called something else (shirt, pullover or dress), yet a precision of about 0.9, so when the
# network says "coat" it is usually right. Low precision marks a class that collects doubtful images;
# low recall marks a class that is often missed. Which one matters depends on the use: a shop that
# files coats under "shirt" loses coat sales (recall), a search for shirts that shows coats annoys the
# customer (precision). The accuracy of 89 % averages all of this away: F1 per class runs from 0.72
# (Shirt) to 0.98 (Trouser, a shape no other class has).
#
# **What you have seen.** Each view answers its own question. The first-layer filters show what the
# network looks for, once you subtract their random start: smoother bars and blobs. The feature maps show
# where it finds them: outlines of one direction, areas, background. Saliency maps, one backward pass
# with a one-hot gradient on the logits, show what would change a decision, and are exactly the
# derivative wherever the derivative exists (at a kink there is none). The confusion matrix shows which
# classes are mixed up, and precision and recall tell a class that is missed from a class that is used
# as a dumping ground.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function (or class) for you to complete, and a check that
# runs it on cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs.
# As shipped, the functions only raise `NotImplementedError`, so the checks say "not attempted yet".
# Reference solutions are in [`solutions/solutions_05.py`](solutions/solutions_05.py); try first.
#
# **Exercise 5.1: a confusion matrix.** Write `confusion(y_true, y_pred, k)` without
# `tc.metrics` (hint: `np.add.at`), rows the truth and columns the prediction.

# %%
from exercises import ex05


def confusion(y_true, y_pred, k):
    """int (k, k): entry (i, j) counts images of true class i predicted as j."""
    raise NotImplementedError      # your code here


ex05.check_confusion(confusion)

# %% [markdown]
# **Exercise 5.2: precision, recall, F1.** From a confusion matrix, compute the three per-class
# numbers of section 5. Decide what a class that is never predicted, or never present, gets (the
# docstring says what the check expects).

# %%
def precision_recall_f1(cm):
    """Three float arrays (k,); precision 0 for a class never predicted, recall 0 for a class never
    present, F1 0 where precision + recall is 0."""
    raise NotImplementedError      # your code here


ex05.check_prf(precision_recall_f1)

# %% [markdown]
# **Exercise 5.3: saliency with one backward pass.** Write `saliency(model, x, classes)`: the gradient
# of each image's score of its class in `classes` with respect to the image, for a whole batch with
# one forward and one backward pass (section 3). The check uses a model that is linear in x, whose
# saliency you can predict: what is it?

# %%
def saliency(model, x, classes):
    """d s_c / d x for every image of x (N, ...) and its class classes[n]; the shape of x."""
    raise NotImplementedError      # your code here


ex05.check_saliency(saliency)
