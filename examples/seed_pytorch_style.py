"""The seed article's PyTorch-style CNN, in tinycnn, with its bug fixed.

The article's model: three 3x3 convolutions with padding 1 (3 -> 32 -> 64 -> 128 channels, each
followed by ReLU, no pooling), then ``Linear(128, 10)``. On 32x32 images the padded convolutions
keep 32x32, so the flattened feature map has 128*32*32 = 131072 values, not 128: PyTorch fails only
at the first forward, with a bare matrix-size error. tinycnn refuses the model when it is built and
says which layer, what it expected, what it got and where that size comes from (run this script to
see the message).

The fix here: a 2x2 max-pool after each convolution (32 -> 16 -> 8 -> 4), so the Dense layer gets
128*4*4 = 2048 features, and 64x fewer multiply-adds in the later convolutions.

Training is the explicit PyTorch loop: zero_grad, forward, loss, backward, step.

    python examples/seed_pytorch_style.py [--data ../shared/datasets] [--epochs 3] [--n-train 700]

Data: the lossless CIFAR-10 subset (1000 training images, original pixels) of shared/datasets
(without it, 1000 embedded MNIST digits padded to 3x32x32, and a line saying so);
the first ``n_train`` train, the last ``n_test`` test.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import tinycnn as tc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "datasets")


def load_cifar_subset(data_dir=DEFAULT_DATA):
    """x: uint8 (1000, 3, 32, 32) NCHW, y: int64 (1000,).

    Without the CIFAR-10 subset, the first 1000 embedded MNIST training digits stand in (say so):
    zero-padded from 28x28 to 32x32 and the grey repeated over 3 channels, so the same network runs."""
    path = os.path.join(data_dir, "cifar10", "train_lossless_subset.npz")
    if not os.path.isfile(path):
        print(f"{path} is absent (the lossless CIFAR-10 subset of shared/datasets; pass --data DIR for a folder "
              "holding cifar10/train_lossless_subset.npz). Using the embedded MNIST digits instead, padded to "
              "32x32, grey repeated over 3 channels.")
        ds = tc.data.load("embedded")
        x = np.pad(ds.x_train[:1000], ((0, 0), (0, 0), (2, 2), (2, 2)))             # (1000, 1, 32, 32)
        return np.repeat(x, 3, axis=1), ds.y_train[:1000]
    with np.load(path) as d:
        return d["x"].transpose(0, 3, 1, 2), d["y"].astype(np.int64)      # NHWC -> NCHW


def standardize(x_train, x_test):
    """uint8 -> float32, each channel to mean 0 / std 1 with the training set's statistics."""
    x_train = x_train.astype(np.float32) / 255
    x_test = x_test.astype(np.float32) / 255
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)                     # (1, 3, 1, 1)
    std = x_train.std(axis=(0, 2, 3), keepdims=True)
    return (x_train - mean) / std, (x_test - mean) / std


def seed_model_as_written(rng):
    """The article's layers exactly: tinycnn rejects this at build time (see the module docstring)."""
    return tc.Sequential(
        tc.Conv2D(3, 32, 3, padding=1, rng=rng), tc.ReLU(),
        tc.Conv2D(32, 64, 3, padding=1, rng=rng), tc.ReLU(),
        tc.Conv2D(64, 128, 3, padding=1, rng=rng), tc.ReLU(),
        tc.Flatten(), tc.Dense(128, 10, rng=rng),
        input_shape=(3, 32, 32))


def build_model(rng):
    """The fixed model: a MaxPool2D(2) after each conv; Dense gets 128 * 4 * 4 = 2048 features."""
    return tc.Sequential(
        tc.Conv2D(3, 32, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),      # (32, 16, 16)
        tc.Conv2D(32, 64, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),     # (64, 8, 8)
        tc.Conv2D(64, 128, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),    # (128, 4, 4)
        tc.Flatten(), tc.Dense(128 * 4 * 4, 10, rng=rng),                         # logits (10,)
        input_shape=(3, 32, 32))


def train_step(model, loss_fn, optimizer, xb, yb) -> float:
    """One explicit step, as in PyTorch."""
    optimizer.zero_grad()
    logits = model(xb)                        # (B, 10)
    loss = loss_fn(logits, yb)
    model.backward(loss_fn.backward(), input_grad=False)   # every parameter's .grad; no grad for xb
    optimizer.step()
    return loss


def accuracy(model, x, y, batch_size=100) -> float:
    model.eval()
    predictions = np.concatenate([model(x[i:i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)])
    model.train()
    return float(np.mean(predictions == y))


def main(data_dir=DEFAULT_DATA, n_train=700, n_test=300, epochs=3, batch_size=16, lr=1e-3, seed=0,
         verbose=True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    try:
        seed_model_as_written(rng)
    except tc.ShapeError as err:
        say("The seed's model as written is rejected:\n" + str(err) + "\n")

    x, y = load_cifar_subset(data_dir)
    if n_train + n_test > len(x):
        raise ValueError(f"n_train + n_test = {n_train} + {n_test} exceeds the {len(x)} images: "
                         f"test images would also be trained on")
    x_train, x_test = standardize(x[:n_train], x[-n_test:])
    y_train, y_test = y[:n_train], y[-n_test:]
    model = build_model(rng)
    loss_fn = tc.SoftmaxCrossEntropy()
    optimizer = tc.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n_train)
        batch_losses = [train_step(model, loss_fn, optimizer, x_train[idx], y_train[idx])
                        for idx in np.array_split(order, int(np.ceil(n_train / batch_size)))]
        losses.append(float(np.mean(batch_losses)))
        say(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}  ({n_train / (time.perf_counter() - t0):.0f} img/s)")
    result = {"train_loss": losses, "train_accuracy": accuracy(model, x_train, y_train),
              "test_accuracy": accuracy(model, x_test, y_test)}
    say(f"train accuracy {result['train_accuracy']:.3f}, test accuracy {result['test_accuracy']:.3f} "
        f"on {n_test} held-out images (chance 0.100)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared/datasets folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=700)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.data, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, seed=args.seed)
