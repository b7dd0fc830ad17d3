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
# # Tutorial 4: CIFAR-10, overfitting and learning rates
#
# The article this project grew from ends with an FAQ: *how do I avoid overfitting?* and *how do I
# choose a learning rate?* This tutorial answers both by measuring. We train the article's Keras CNN
# (`zoo.build("seed-keras")`: three unpadded 3x3 convolutions with 32, 64 and 128 filters, each
# followed by ReLU and 2x2 max pooling, then one dense layer) on a subset of CIFAR-10, small colour
# photos of ten kinds of object, and watch it overfit. Then we try four remedies, weight decay,
# dropout, data augmentation and early stopping, each with the same data, the same number of epochs
# and the same seed, and compare them in one table. Last, we choose a learning rate the honest way:
# with a validation split and the learning-rate range test.
#
# Every claim below is checked by an `assert` when the page is made. Claims that need the full run
# (the fast mode trains on a few hundred images for two epochs) are checked only there, and the code
# says so.

# %%
import time

import matplotlib.pyplot as plt
import numba
import numpy as np
from threadpoolctl import threadpool_limits

import tinycnn as tc
from tinycnn import data, zoo
from tinycnn.callbacks import EarlyStopping

from helpers import FAST, SHARED_DATASETS, load_dataset, save_figure

# One thread for Numba's kernels and for the BLAS matrix multiplies: this small network gains little
# from a second thread, and on a machine shared with other work two threads per process make
# everything slower (measured here: about 1,900 training images/s on one thread, 150 on two while
# another job was running).
numba.set_num_threads(1)
threadpool_limits(1)
print("mode:", "fast" if FAST else "full")

# %% [markdown]
# ## 1. The data
#
# CIFAR-10 has 50,000 training and 10,000 test images of 32x32 pixels in three colour channels, in ten
# classes (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck). `helpers.load_dataset`
# gets it through `tinycnn.data`: from the shared dataset folder next to the repository when there is
# one (`data.load("cifar10", data_dir=...)`), otherwise from tinycnn's cache, which `data.load("cifar10")`
# fills once by downloading the original files (163 MiB, SHA-256 checked). Offline with nothing cached,
# the tutorial stops with a message saying what to do. (Fast mode never downloads: without the shared
# folder or a cached copy it stops the same way.)
#
# **The shared copy, which made this page, was decoded from JPEG files**, so its pixels differ slightly
# from the original CIFAR-10 (JPEG is lossy; the error is measured below); the numbers on this page are
# for that copy, and would move a little on the original. The shared folder also holds a bit-exact
# *lossless subset*, the first 1,000 training images, which the fast mode uses when it is there.
#
# To keep the whole page at a few minutes of CPU, the full mode trains on 6,000 training images drawn
# at random (stratified: 600 per class), holds out 2,000 others for **validation**, and tests on
# 2,000 test images, 200 per class drawn at random. (Not the *first* 2,000: the shared copy's test set
# is sorted by class, as its README says, so its first 2,000 images are all airplanes and automobiles.
# A first version of this page fell into exactly that trap; the per-class counts are printed below.) Six thousand images is few for CIFAR-10, which is exactly what makes
# overfitting quick to see. Pixels are standardised per channel with statistics of the training images
# only.

# %%
lossless = SHARED_DATASETS / "cifar10" / "train_lossless_subset.npz"
rng = np.random.default_rng(0)
if FAST and lossless.is_file():      # the 1,000 lossless images are all fast mode needs: skip the full load
    with np.load(lossless) as f:
        x_small = np.ascontiguousarray(f["x"].transpose(0, 3, 1, 2))      # (1000, 3, 32, 32) uint8 NCHW
        y_small = f["y"].astype(np.int64)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    print("CIFAR-10: the lossless subset of the shared folder (1,000 training images)")
else:
    ds, source = load_dataset("cifar10", download=not FAST)
    classes = ds.classes
    x_small, y_small = ds.x_train[:1000], ds.y_train[:1000]
    print(f"CIFAR-10 from {'the shared folder' if source == 'shared' else 'the tinycnn.data cache'}: "
          f"{len(ds.y_train)} training, {len(ds.y_test)} test images")

if FAST:
    order = rng.permutation(len(y_small))
    train_idx, val_idx, test_idx = order[:600], order[600:800], order[800:]
    x_tr_u8, y_train = x_small[train_idx], y_small[train_idx]
    x_va_u8, y_val = x_small[val_idx], y_small[val_idx]
    x_te_u8, y_test = x_small[test_idx], y_small[test_idx]
    EPOCHS, SHORT_EPOCHS, RANGE_STEPS = 2, 1, 60
else:
    keep, held = data.stratified_split(ds.y_train, 2000 / 50000, rng)     # held: 2,000 for validation
    val_idx = held
    train_idx = np.sort(np.concatenate([rng.permutation(keep[ds.y_train[keep] == k])[:600]   # 600 per class
                                        for k in range(10)]))
    x_tr_u8, y_train = ds.x_train[train_idx], ds.y_train[train_idx]
    x_va_u8, y_val = ds.x_train[val_idx], ds.y_train[val_idx]
    _, test_idx = data.stratified_split(ds.y_test, 0.2, rng)             # 200 test images per class
    x_te_u8, y_test = ds.x_test[test_idx], ds.y_test[test_idx]
    if source == "shared" and lossless.is_file():                        # the JPEG loss, measured
        with np.load(lossless) as f:
            jpeg_error = np.abs(ds.x_train[:1000].astype(np.int16) - f["x"].transpose(0, 3, 1, 2)).mean()
        print(f"JPEG copy vs original pixels (training images 0..999): mean |difference| {jpeg_error:.1f} of 255")
    EPOCHS, SHORT_EPOCHS, RANGE_STEPS = 12, 3, 200

normalize = data.Normalizer.fit(x_tr_u8)                   # per-channel mean and std, training images only
x_train, x_val, x_test = normalize(x_tr_u8), normalize(x_va_u8), normalize(x_te_u8)   # float32 NCHW
print(f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}")
print("training images per class:", np.bincount(y_train, minlength=10).tolist(),
      " test images per class:", np.bincount(y_test, minlength=10).tolist())
print("channel means (0..255):", np.round(normalize.mean.ravel(), 1).tolist(),
      " stds:", np.round(normalize.std.ravel(), 1).tolist())
assert not set(train_idx) & set(val_idx), "validation images must not be training images"
assert x_train.dtype == np.float32 and x_train.shape[1:] == (3, 32, 32)

# %% [markdown]
# ## 2. The baseline, and what overfitting looks like
#
# The seed article compiles its Keras model with Adam at Keras' default rate, $10^{-3}$, and so do
# we; batches of 64. `fit(..., validation_data=...)` evaluates the held-out images after every epoch,
# and the `History` it returns holds both curves. The training loss in `History` is the running
# average over the epoch's batches, as Keras reports it.
#
# The function `run` below trains one variant of this setup and measures it after training (on the
# training, validation and test images, in eval mode); section 3 calls it once per remedy. The baseline
# is `run("baseline")`: no remedy at all.

# %%
BATCH, LR, SEED = 64, 1e-3, 0


def seed_cnn(dropout=0.0, seed=SEED):
    """The seed's Keras CNN from the zoo; with dropout > 0, a Dropout layer before its Dense layer."""
    model = zoo.build("seed-keras", input_shape=(3, 32, 32), num_classes=10, rng=np.random.default_rng(seed))
    if dropout == 0.0:
        return model
    layers = list(model)                 # ..., Flatten, Dense: the same initial weights as without dropout
    return tc.Sequential(*layers[:-1], tc.Dropout(dropout, rng=np.random.default_rng(seed + 1)), layers[-1],
                         input_shape=(3, 32, 32))


def run(name, *, seed=SEED, weight_decay=0.0, dropout=0.0, augment=False, early_stopping=False):
    """Train one variant of the baseline from the initial weights and shuffling of ``seed``; return its
    history and final numbers (eval mode), and which test images it classifies correctly."""
    t = time.perf_counter()
    model = seed_cnn(dropout, seed)
    model.compile(optimizer=tc.Adam(model.parameters(), lr=LR, weight_decay=weight_decay),
                  metrics=["accuracy"], seed=seed)
    stopper = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    if augment:
        aug_rng = np.random.default_rng(seed + 2)
        logs = {}
        for _ in range(EPOCHS):       # one fit call per epoch, each on new random crops and flips
            x_aug = normalize(data.random_crop_flip(x_tr_u8, aug_rng, pad=4, flip=True))   # (N, 3, 32, 32)
            h = model.fit(x_aug, y_train, epochs=1, batch_size=BATCH, validation_data=(x_val, y_val), verbose=0)
            for key, values in h.history.items():
                logs.setdefault(key, []).extend(values)
    else:
        callbacks = [stopper] if early_stopping else []
        logs = model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH, validation_data=(x_val, y_val),
                         callbacks=callbacks, verbose=0).history
    train = model.evaluate(x_train, y_train, batch_size=256, return_dict=True)
    val = model.evaluate(x_val, y_val, batch_size=256, return_dict=True)
    test = model.evaluate(x_test, y_test, batch_size=256, return_dict=True)
    test_correct = model.predict_classes(x_test, batch_size=256) == y_test      # (n_test,) bool
    return dict(name=name, seed=seed, history=logs, model=model, stopper=stopper if early_stopping else None,
                train_acc=train["accuracy"], val_acc=val["accuracy"], val_loss=val["loss"],
                test_acc=test["accuracy"], test_correct=test_correct, gap=train["accuracy"] - val["accuracy"],
                epochs_run=len(logs["loss"]), seconds=time.perf_counter() - t)


base = run("baseline")
hist = base["history"]
print(f"{EPOCHS} epochs of {len(x_train)} images in {base['seconds']:.0f} s")
print("epoch  train loss  val loss  train acc  val acc")
for e in range(EPOCHS):
    print(f"{e + 1:5d}  {hist['loss'][e]:10.3f}  {hist['val_loss'][e]:8.3f}  {hist['accuracy'][e]:9.3f}  "
          f"{hist['val_accuracy'][e]:7.3f}")
best = int(np.argmin(hist["val_loss"]))
print(f"lowest validation loss {hist['val_loss'][best]:.3f} after epoch {best + 1}; "
      f"after the last epoch {hist['val_loss'][-1]:.3f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
epochs = np.arange(1, EPOCHS + 1)
ax1.plot(epochs, hist["loss"], "o-", label="training (running mean)")
ax1.plot(epochs, hist["val_loss"], "o-", label="validation")
ax1.axvline(best + 1, color="grey", linestyle=":", label=f"lowest validation loss (epoch {best + 1})")
ax1.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
ax2.plot(epochs, hist["accuracy"], "o-", label="training (running mean)")
ax2.plot(epochs, hist["val_accuracy"], "o-", label="validation")
ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
for ax in (ax1, ax2):
    ax.legend()
    ax.grid(alpha=0.3)
fig.suptitle(f"seed-keras on {len(x_train)} CIFAR-10 images, Adam lr {LR:g}")
fig.tight_layout()
save_figure(fig, "04_learning_curves", "training and validation loss and accuracy of the baseline, per epoch")

if FAST:
    print("(fast mode: two epochs on 600 images cannot show overfitting; its claims are checked in full mode)")
else:
    # Overfitting: the validation loss has its minimum before the last epoch and rises after it, while
    # the training loss keeps falling.
    assert best < EPOCHS - 1 and hist["val_loss"][-1] > hist["val_loss"][best]
    assert hist["loss"][-1] < hist["loss"][best]
    assert hist["accuracy"][-1] - hist["val_accuracy"][-1] > 0.15

# %% [markdown]
# This is overfitting, in its two signatures. The training loss falls epoch after epoch (from 1.00
# after epoch 8 to 0.69 after epoch 12 in the full run), while the validation loss reaches its lowest
# point, 1.267, after epoch 8 and then climbs, to 1.333 after epoch 11 (1.291 after epoch 12): after
# that point, the network gets better at the 6,000 images it sees and worse at images it does not. The
# network has 98,378 weights, about 16 per training image, enough to learn details of individual images
# (this cat on this particular sofa) that do not carry over to new ones. The validation accuracy does
# not fall with it (in the full run it even creeps up, from 0.550 after epoch 8 to 0.579 after epoch
# 12): the loss also punishes *confident* mistakes, and an overfitting network becomes very confident.
#
# The gap between training and validation accuracy is a useful single number for how much the network
# has memorised rather than learnt. We measure it below after training, with both accuracies computed
# the same way (in eval mode, after the last epoch), so that dropout, which is only on during
# training, does not distort the training side.

# %% [markdown]
# ## 3. Four remedies, measured
#
# Each run below starts from the same initial weights, shuffles with the same seed, and trains for the
# same number of epochs with the same optimizer as the baseline of section 2 (whose numbers the
# table repeats); only one thing changes:
#
# - **Weight decay** adds $\lambda \lVert w \rVert^2 / 2$ to the loss, that is $\lambda w$ to the
#   gradient (`tc.Adam(..., weight_decay=λ)`, like PyTorch's Adam: L2 regularisation). With plain SGD
#   that pulls every weight towards zero by $\eta \lambda w$ per step. **With Adam it does not**: Adam
#   divides the whole gradient, $\lambda w$ included, by $\sqrt{\hat v}$, the running size of that
#   weight's gradient, so weights with large gradients are hardly pulled at all and weights with tiny
#   gradients are pulled hard. That is why AdamW exists: it subtracts $\eta \lambda w$ separately,
#   outside the division ("decoupled" decay). The cell below measures the difference on one step. Large
#   weights are what sharp, memorising functions need; this makes them cost something. We use
#   $\lambda = 2 \cdot 10^{-3}$.
# - **Dropout** (`tc.Dropout(0.5)` before the dense layer) sets a random half of the 512 features to
#   zero at every training step (and doubles the rest), so the dense layer cannot rely on any single
#   feature; at test time it does nothing.
# - **Augmentation** (`data.random_crop_flip`: pad by 4 pixels, crop a random 32x32 window, mirror left
#   to right with probability 1/2) shows a slightly different version of every image in every epoch. A
#   cat shifted by 3 pixels or mirrored is still a cat, so this adds true knowledge about the task.
#   `fit` takes arrays, so this run calls `fit` once per epoch with freshly augmented copies of the
#   training images (the optimizer's state and the shuffling generator carry over from call to call).
# - **Early stopping** (`EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)`)
#   watches the validation loss, stops when it has not improved for 3 epochs, and gives back the
#   weights of the best epoch. It changes nothing about training itself; it picks *when* to stop.
#
# One run per remedy would say little: a different random start or batch order moves every number.
# So every variant is trained from three seeds (initial weights, batch order, dropout masks and crops
# all change with the seed; fast mode uses one), and the table gives the mean and the spread (lowest
# to highest) over the seeds.

# %%
# Weight decay inside Adam is not a pull of lr * lambda * w. Two weights of the same value, whose
# gradients are noise of very different sizes (std 1e-3 and 1), take 100 Adam steps with the same noise,
# once without and once with weight_decay; what decay adds is the difference of the two endpoints.
noise = np.random.default_rng(4).standard_normal((100, 2)) * np.array([1e-3, 1.0])   # (steps, 2 weights)
DEMO_LR, DEMO_WD = 1e-3, 0.1
end = {}
for wd in (0.0, DEMO_WD):
    p = tc.Parameter(np.ones(2))
    opt = tc.Adam([p], lr=DEMO_LR, weight_decay=wd)
    for g in noise:
        p.grad = g.copy()
        opt.step()
    end[wd] = p.data.copy()
pull = end[0.0] - end[DEMO_WD]                       # how much further towards 0 decay moved each weight
sgd_pull = len(noise) * DEMO_LR * DEMO_WD * 1.0      # plain SGD: lr * lambda * w per step (w stays about 1)
print(f"what weight decay added over 100 Adam steps: {pull[0]:.4f} for the weight with tiny gradients, "
      f"{pull[1]:.4f} for the one with large gradients; plain SGD's lr * lambda * w would give {sgd_pull:.4f} to both")
assert pull[0] > 5 * pull[1] and pull[0] > 5 * sgd_pull, "Adam's L2 pull depends on the gradient's size"

# %%
WEIGHT_DECAY, DROPOUT = 2e-3, 0.5
SEEDS = (0,) if FAST else (0, 1, 2)
VARIANTS = {"baseline": {}, "weight decay": dict(weight_decay=WEIGHT_DECAY), "dropout": dict(dropout=DROPOUT),
            "augmentation": dict(augment=True), "early stopping": dict(early_stopping=True)}
runs = {name: [base if (name, seed) == ("baseline", SEED) else run(name, seed=seed, **options) for seed in SEEDS]
        for name, options in VARIANTS.items()}


def spread(values, fmt="{:.3f}"):
    """'mean (lowest..highest)' over the seeds."""
    v = np.asarray(values, dtype=np.float64)
    return f"{fmt.format(v.mean())} ({fmt.format(v.min())}..{fmt.format(v.max())})"


print(f"mean over {len(SEEDS)} seed(s), (lowest..highest) in brackets")
print(f"{'run':15s} {'epochs':>6s} {'train acc':>21s} {'gap':>21s} {'val loss':>21s} {'test acc':>21s}")
for name, rs in runs.items():
    print(f"{name:15s} {np.mean([r['epochs_run'] for r in rs]):6.1f} {spread([r['train_acc'] for r in rs]):>21s} "
          f"{spread([r['gap'] for r in rs]):>21s} {spread([r['val_loss'] for r in rs]):>21s} "
          f"{spread([r['test_acc'] for r in rs]):>21s}")
print(f"time per run: {np.mean([r['seconds'] for rs in runs.values() for r in rs]):.0f} s")

# %% [markdown]
# **How noisy is a test accuracy?** The test accuracy is measured on 2,000 images. One accuracy near
# 55 % has a standard error of $\sqrt{0.55 \cdot 0.45 / 2000} \approx 1.1$ percentage points. But two
# runs measured on *the same* 2,000 images are not two independent measurements: an image that is easy
# for one network is usually easy for the other, so their errors are correlated, and the noise of the
# *difference* is neither $1.1$ nor $\sqrt 2 \cdot 1.1$ points. The right number comes from the pairs:
# only the images on which exactly one of the two is right can move the difference. With $b$ images only
# run A gets right, $c$ only run B gets right, and $n$ images, the difference is $(b - c)/n$ and its
# standard error is $\sqrt{b + c - (b - c)^2/n}\,/\,n$ (McNemar's setting). The cell computes it for each
# remedy against the baseline of the same seed.

# %%
def paired_difference(correct_a, correct_b):
    """Accuracy difference A - B on the same images and its standard error from the paired outcomes."""
    n = len(correct_a)
    b = int(np.sum(correct_a & ~correct_b))                   # only A right
    c = int(np.sum(~correct_a & correct_b))                   # only B right
    return (b - c) / n, np.sqrt(b + c - (b - c) ** 2 / n) / n, b, c


n_test = len(y_test)
acc = float(np.mean([r["test_acc"] for r in runs["baseline"]]))
print(f"standard error of one accuracy near {acc:.2f} on {n_test} images: "
      f"{np.sqrt(acc * (1 - acc) / n_test) * 100:.1f} points; of a difference of two independent ones: "
      f"{np.sqrt(2 * acc * (1 - acc) / n_test) * 100:.1f}")
paired = {}
for name in list(VARIANTS)[1:]:
    diffs = [paired_difference(r["test_correct"], b["test_correct"]) for r, b in zip(runs[name], runs["baseline"])]
    paired[name] = diffs
    print(f"{name:15s} test acc - baseline's (same seed): "
          + ", ".join(f"{d * 100:+.1f} +- {se * 100:.1f} (b={b}, c={c})" for d, se, b, c in diffs))
    for (d, se, b, c), r, r0 in zip(diffs, runs[name], runs["baseline"]):   # (b - c) / n is the accuracy difference
        assert abs(d - (r["test_correct"].mean() - r0["test_correct"].mean())) < 1e-12

# %%
# Early stopping gave back the weights of its best epoch: evaluating the final model gives the lowest
# validation loss that the History recorded, and that epoch is the one the callback names.
for es in runs["early stopping"]:
    assert es["stopper"].best_epoch == int(np.argmin(es["history"]["val_loss"]))
    np.testing.assert_allclose(es["val_loss"], min(es["history"]["val_loss"]), rtol=1e-5)
    print(f"early stopping, seed {es['seed']}: best epoch {es['stopper'].best_epoch + 1}, stopped after epoch "
          f"{es['epochs_run']}, restored validation loss {es['val_loss']:.4f} = the History's minimum "
          f"{min(es['history']['val_loss']):.4f}")

mean = {name: {k: float(np.mean([r[k] for r in rs])) for k in ("gap", "val_loss", "test_acc")}
        for name, rs in runs.items()}
if not FAST:
    # Each remedy narrows the mean train-validation gap of the baseline and ends with a lower mean
    # validation loss; early stopping stops `patience` = 3 epochs after its best one, before the last epoch.
    for name in list(VARIANTS)[1:]:
        assert mean[name]["gap"] < mean["baseline"]["gap"], (name, mean[name], mean["baseline"])
        assert mean[name]["val_loss"] < mean["baseline"]["val_loss"], (name, mean[name], mean["baseline"])
    for es in runs["early stopping"]:      # it stops 3 epochs after its best, unless the budget ends first
        assert es["epochs_run"] == min(es["stopper"].best_epoch + 1 + 3, EPOCHS)

# %%
colors = dict(zip(VARIANTS, ["black", "tab:blue", "tab:orange", "tab:green", "tab:red"]))
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
for name, rs in runs.items():
    for k, r in enumerate(rs):
        h = r["history"]
        # the baseline underneath, thick; early stopping (which follows it exactly until it stops) dashed on top
        ax1.plot(np.arange(1, len(h["val_loss"]) + 1), h["val_loss"], "o-" if name != "early stopping" else "x--",
                 ms=3, color=colors[name], lw=3.5 if name == "baseline" else 1.3, alpha=0.8,
                 zorder=1 if name == "baseline" else 3, label=name if k == 0 else None)
ax1.set(xlabel="epoch", ylabel="validation loss", title=f"validation loss per epoch ({len(SEEDS)} seed(s) each)")
ax1.legend(fontsize=8)
ax1.grid(alpha=0.3)
pos = np.arange(len(runs))
for ax, key, title, ylabel in ((ax2, "gap", "train - validation accuracy (gap)", "accuracy gap (fraction)"),
                               (ax3, "test_acc", "test accuracy", "test accuracy (fraction of 2,000 images)")):
    for i, (name, rs) in enumerate(runs.items()):
        values = [r[key] for r in rs]
        ax.bar(i, np.mean(values), 0.6, color=colors[name], alpha=0.6)
        ax.plot([i] * len(values), values, "k.", ms=6)                     # each seed
        ax.text(i, max(values) + 0.01, f"{np.mean(values):.3f}", ha="center", fontsize=8)
    ax.set_xticks(pos, list(runs), rotation=15)
    ax.set(title=f"{title}, after training (eval mode)", ylabel=ylabel)
ax2.set_ylim(0, max(0.4, max(r["gap"] for rs in runs.values() for r in rs) + 0.05))
ax3.set_ylim(0, 1)
fig.tight_layout()
save_figure(fig, "04_remedies", "validation loss per epoch of every run, and the mean (bars) and per-seed (dots) "
            "accuracy gap and test accuracy of each remedy")

# %% [markdown]
# How to read the table. The **gap** (training accuracy minus validation accuracy, both in eval mode
# after training) says how much of what the network knows is specific to its training images; the
# **validation loss** and **test accuracy** say how good it is on new images. A remedy can shrink the
# gap by making the network worse on its training images without making it better on new ones, so
# read both. Two kinds of noise sit in every number: the seed (the spread in brackets, and the dots of
# the figure) and the particular 2,000 test images (the paired standard errors above). Only the claims
# about the mean gap, the mean validation loss and early stopping are asserted; a test-accuracy
# difference means something only when it is large against both.
#
# What the full run measured is in the table above: every remedy narrowed the baseline's mean gap
# (0.24: weight decay 0.19, early stopping 0.15, dropout 0.10, augmentation 0.03) and lowered its mean
# validation loss (1.29: from 1.26 down to 1.18). The test accuracies tell a more modest story. Against
# the baseline of the same seed, augmentation was better on all three seeds, by 1.7 to 2.1 points with
# paired standard errors of about 1: a real gain. Dropout's differences (+0.2 to +1.1) and weight
# decay's (-0.9 to -0.4) are within about one standard error: no measurable change. Early stopping was
# *worse* on all three seeds (-0.7 to -1.8 points): it stops at the lowest validation *loss*, after
# epoch 8 or 9, while the validation *accuracy* was still rising (section 2), so choosing the epoch by
# the loss cost accuracy here. On this budget (6,000 images, 12 epochs) most remedies mostly stop the
# network from getting *worse* in loss (more confident and more often confidently wrong) rather than
# make it much better; augmentation, which adds knowledge (a shifted or mirrored cat is a cat) instead
# of only limiting the network, is the one that also helped accuracy. It also makes every epoch harder,
# which is why its training accuracy is the lowest, and its validation loss may still be falling at
# epoch 12 (the left panel), so it could usefully train longer (not measured here).
#
# Early stopping follows the baseline exactly until it stops (the same weights, the same batches: its
# dashed curve lies on the baseline's thick one), then gives back the weights of the best epoch. It
# costs nothing and saves the epochs after the best one, but it uses the validation set to decide, so
# its validation numbers are slightly optimistic; the test images, never used for any decision, are
# the fair comparison. The remedies combine: the `vgg-bn` network in tinycnn's zoo uses augmentation,
# dropout and batch normalisation together.

# %% [markdown]
# ## 4. Choosing a learning rate
#
# The learning rate is the most important knob of training, and the one the seed article's FAQ asks
# about. Two rules first:
#
# 1. **Choose it on validation data, never on test data.** Any choice made by looking at the test
#    accuracy makes the test accuracy optimistic: it is no longer a measurement on unseen images. Here
#    the 2,000 validation images (held out from the training set) decide, and the test set stays unused.
# 2. **Search on a log scale.** Rates that work differ by factors, not by increments: $10^{-4}$,
#    $10^{-3}$ and $10^{-2}$ behave very differently, $10^{-3}$ and $1.1 \cdot 10^{-3}$ do not.
#
# The **learning-rate range test** (Leslie Smith, 2017; fastai's `lr_find`) makes the search cheap:
# train for a few hundred batches while the rate grows exponentially, here from $10^{-6}$ to $1$, and
# record the loss of every batch (200 batches of 64 in the full run, so each image is seen about twice).
# The loss stays flat while the rate is too small to matter, falls
# when it is useful, and explodes when it is too large. `tc.lr_range_test` suggests the rate where
# the smoothed loss falls fastest (a heuristic: look at the plot), and afterwards puts back exactly
# the weights the model had, so it can run before training.

# %%
model = seed_cnn()
before = {k: v.copy() for k, v in model.state_dict().items()}
result = tc.lr_range_test(model, tc.SoftmaxCrossEntropy(), x_train, y_train,
                          optimizer_factory=lambda params, lr: tc.Adam(params, lr=lr),
                          start_lr=1e-6, end_lr=1.0, num_steps=RANGE_STEPS, batch_size=BATCH,
                          rng=np.random.default_rng(SEED))
after = model.state_dict()
assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
print(f"{len(result.lrs)} batches tried, rates {result.lrs[0]:.1e} .. {result.lrs[-1]:.1e}, "
      f"stopped: {result.stop_reason}")
print(f"suggestion (steepest descent): {result.suggestion:.2e}; lowest smoothed loss at "
      f"{result.lr_at_min_loss:.2e} (a tenth of it: {result.lr_at_min_loss / 10:.2e})")
print("the model's weights after the test are bit for bit the ones before it")
assert result.suggestion is not None and 1e-5 <= result.suggestion <= 1e-1

fig, ax = plt.subplots(figsize=(7, 4))
result.plot(ax=ax)
fig.tight_layout()
save_figure(fig, "04_lr_range_test", "loss against learning rate during the range test, with the suggested rate")

# %% [markdown]
# Reading the plot of the full run: the loss stays at about 2.3 ($\ln 10$, a uniform guess over ten
# classes) up to rates of about $10^{-4}$, falls between $10^{-3}$ and $10^{-2}$, becomes erratic past
# $10^{-2}$ (single batches jump to a loss of almost 4), and settles at a flat loss just above 2.3 from
# about $5 \cdot 10^{-2}$, the network having been knocked into predicting the same thing for every
# image. In this run the loss never explodes: all 200 batches ran, up to the rate of 1 (`stopped:
# completed`; a run that diverges stops early and says so). The suggestion, $1.8 \cdot 10^{-3}$, is at the start of the fall, and close to
# Keras' default of $10^{-3}$ that sections 2 and 3 used.
#
# Now the check that matters: a short training (a few epochs) from the same initial weights at the
# suggested rate, at one 100 times smaller and at one 100 times larger, each judged on the validation
# images. A too-small rate is not wrong, only slow: the network has barely moved after the budget. A
# too-large one makes Adam's steps so big that the network lands in a bad region or the loss becomes
# non-finite, which `fit` stops with a `NonFiniteLossError` before the update happens. What "a bad
# region" is, we measure after the runs: how many different classes each network predicts on the
# validation images, and how many of the ReLU channels of each layer are *dead* (zero for every one of
# those images, so no gradient flows through them any more).

# %%
candidates = {"suggested / 100": result.suggestion / 100, "suggested": result.suggestion,
              "suggested x 100": result.suggestion * 100}
short = {}
for label, lr in candidates.items():
    m = seed_cnn()
    m.compile(optimizer=tc.Adam(m.parameters(), lr=lr), metrics=["accuracy"], seed=SEED)
    try:
        h = m.fit(x_train, y_train, epochs=SHORT_EPOCHS, batch_size=BATCH, validation_data=(x_val, y_val),
                  verbose=0).history
        short[label] = dict(lr=lr, val_loss=h["val_loss"], val_acc=h["val_accuracy"], diverged=False, model=m)
    except tc.NonFiniteLossError as err:
        print(f"{label}: {err}")
        short[label] = dict(lr=lr, val_loss=[np.nan], val_acc=[0.0], diverged=True, model=None)
    s = short[label]
    print(f"{label:16s} lr {lr:.2e}: validation accuracy per epoch "
          f"{[round(a, 3) for a in s['val_acc']]}{'  (diverged)' if s['diverged'] else ''}")

fig, ax = plt.subplots(figsize=(7, 4))
for label, s in short.items():
    ax.plot(np.arange(1, len(s["val_acc"]) + 1), s["val_acc"], "o-", label=f"{label} ({s['lr']:.1e})")
ax.axhline(0.1, color="grey", linestyle=":", label="chance (10 classes)")
ax.set_xticks(np.arange(1, SHORT_EPOCHS + 1))
ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"{SHORT_EPOCHS} epochs at three learning rates",
       ylim=(0, max(0.8, max(max(s["val_acc"]) for s in short.values()) + 0.05)))
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "04_three_learning_rates", "validation accuracy per epoch at the suggested rate, 100x smaller and 100x larger")

if not FAST:
    final = {label: s["val_acc"][-1] for label, s in short.items()}
    assert final["suggested"] > final["suggested / 100"] and final["suggested"] > final["suggested x 100"]

# %%
def dead_channels_and_classes(model, x):
    """Per ReLU layer, the fraction of channels that are 0 on every image of x; and how many distinct
    classes the model predicts on x. x: (N, 3, 32, 32)."""
    model.eval()
    dead, a = [], x
    for layer in model.layers:
        a = layer(a)
        if isinstance(layer, tc.ReLU):
            per_channel = a.reshape(a.shape[0], a.shape[1], -1).max(axis=(0, 2)) if a.ndim == 4 else a.max(axis=0)
            dead.append(float(np.mean(per_channel == 0)))
    return dead, len(np.unique(a.argmax(axis=1)))


dead_report = {}
for label, s in short.items():
    if s["model"] is None:
        print(f"{label:16s}: diverged (non-finite loss), nothing to measure")
        continue
    dead, n_classes = dead_channels_and_classes(s["model"], x_val)
    dead_report[label] = (dead, n_classes)
    print(f"{label:16s}: dead ReLU channels per layer {[f'{d:.0%}' for d in dead]}, "
          f"predicts {n_classes} of 10 classes on the validation images, accuracy {s['val_acc'][-1]:.3f}")

# %% [markdown]
# The full run measured 23.5 % validation accuracy after 3 epochs at the small rate (barely trained),
# 48.7 % at the suggested rate, and 10.0 % after every epoch at the large one: exactly one image in
# ten, the score of a network that gives every image the same class (the validation set has 200
# images per class). The lines above say why, measured rather than guessed: at the large rate the
# network predicts one class, and every channel of its second and third convolutions is dead. Adam's
# huge first steps pushed those channels' weights and biases to where their ReLU is off for every
# image, and since a dead channel passes no gradient, nothing brings it back. (At the suggested rate
# some channels are dead too, 30 % and 21 %, but the others carry the network.)

# %% [markdown]
# **What you have seen.** Overfitting is visible in the learning curves as a validation loss that
# turns up while the training loss keeps falling, and in one number, the train-validation gap. Weight
# decay and dropout limit the network, augmentation teaches it that shifted and mirrored images are the
# same object, and early stopping keeps the best epoch; each was measured on the same budget over three
# seeds, and each narrowed the mean gap and lowered the mean validation loss. A test-accuracy
# difference is judged against both the seed spread and the paired standard error on the shared test
# images. A learning rate is chosen on validation data, on a log scale, and the range test
# finds a good order of magnitude in a few hundred batches; a short run at that rate against rates 100
# times smaller and larger confirms it.

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function (or class) for you to complete, and a check that
# runs it on cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs.
# As shipped, the functions only raise `NotImplementedError`, so the checks say "not attempted yet".
# Reference solutions are in [`solutions/solutions_04.py`](solutions/solutions_04.py); try first.
#
# **Exercise 4.1: AdamW.** Section 3 measured that L2 weight decay inside Adam pulls weights with
# small gradients much harder. Write one step of AdamW, whose decay is decoupled:
# $w \leftarrow w - \eta \lambda w$, then Adam's usual step on the gradient alone. The check compares
# five steps with `torch.optim.AdamW`.

# %%
from exercises import ex04


def adamw_step(w, g, m, v, t, lr, wd, beta1=0.9, beta2=0.999, eps=1e-8):
    """One AdamW step at step number t (from 1); returns the new (w, m, v)."""
    raise NotImplementedError      # your code here


ex04.check_adamw_step(adamw_step)

# %% [markdown]
# **Exercise 4.2: the noise of a difference.** Write `paired_se(correct_a, correct_b)`: the standard
# error of the difference of two accuracies measured on the same images, from the paired outcomes
# (section 3). Then ask: why is it smaller than $\sqrt 2$ times the standard error of one accuracy
# when the two networks tend to get the same images right?

# %%
def paired_se(correct_a, correct_b):
    """Standard error of mean(correct_a) - mean(correct_b); both boolean (n,) over the same images."""
    raise NotImplementedError      # your code here


ex04.check_paired_se(paired_se)

# %% [markdown]
# **Exercise 4.3: early stopping by hand.** Write `early_stop(val_losses, patience)` returning the
# best epoch (0-based) and how many epochs run before training stops, as `EarlyStopping` decides: stop
# after the epoch that makes `patience` epochs in a row without a strictly lower validation loss.

# %%
def early_stop(val_losses, patience):
    """(best_epoch, epochs_run) for a list of validation losses."""
    raise NotImplementedError      # your code here


ex04.check_early_stopping(early_stop)
