"""The seed article's Keras-style CNN, in tinycnn: Sequential + compile / fit / evaluate / predict / summary.

The article's model (Keras, channels-last input (32, 32, 3))::

    Conv2D(32, 3, activation="relu"), MaxPooling2D(2),
    Conv2D(64, 3, activation="relu"), MaxPooling2D(2),
    Conv2D(128, 3, activation="relu"), MaxPooling2D(2),
    Flatten(), Dense(10, activation="softmax")

In tinycnn the layers take their input channels explicitly, activations are layers of their own, and
images are NCHW (``x.transpose(0, 3, 1, 2)`` once, at the edge). The trailing Softmax is fused into
the loss during training (fit feeds the logits before it to the cross-entropy), and ``predict``
returns probabilities, softmax applied once.

    python examples/seed_keras_style.py [--data ../shared/datasets] [--epochs 3] [--n-train 700]

Data: the lossless CIFAR-10 subset (1000 training images, original pixels) of shared/datasets
(without it, 1000 embedded MNIST digits padded to 3x32x32, and a line saying so);
the first ``n_train`` train (the last 10 % of them validate, Keras' ``validation_split``), the last
``n_test`` test.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import tinycnn as tc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "datasets")


def load_cifar_subset(data_dir=DEFAULT_DATA):
    """x: uint8 (1000, 32, 32, 3) as Keras keeps it (NHWC), y: int64 (1000,).

    Without the CIFAR-10 subset, the first 1000 embedded MNIST training digits stand in (say so):
    zero-padded from 28x28 to 32x32 and the grey repeated over 3 channels, so the same network runs."""
    path = os.path.join(data_dir, "cifar10", "train_lossless_subset.npz")
    if not os.path.isfile(path):
        print(f"{path} is absent (the lossless CIFAR-10 subset of shared/datasets; pass --data DIR for a folder "
              "holding cifar10/train_lossless_subset.npz). Using the embedded MNIST digits instead, padded to "
              "32x32, grey repeated over 3 channels.")
        ds = tc.data.load("embedded")
        x = np.pad(ds.x_train[:1000, 0], ((0, 0), (2, 2), (2, 2)))                 # (1000, 32, 32)
        return np.repeat(x[..., None], 3, axis=3), ds.y_train[:1000]             # NHWC
    with np.load(path) as d:
        return d["x"], d["y"].astype(np.int64)


def build_model(rng):
    return tc.Sequential(
        tc.Conv2D(3, 32, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),        # (32, 15, 15)
        tc.Conv2D(32, 64, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),       # (64, 6, 6)
        tc.Conv2D(64, 128, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),      # (128, 2, 2)
        tc.Flatten(), tc.Dense(512, 10, rng=rng), tc.Softmax(),
        input_shape=(3, 32, 32))


def main(data_dir=DEFAULT_DATA, n_train=700, n_test=300, epochs=3, batch_size=16, seed=0, verbose=1) -> dict:
    x, y = load_cifar_subset(data_dir)
    if n_train + n_test > len(x):
        raise ValueError(f"n_train + n_test = {n_train} + {n_test} exceeds the {len(x)} images: "
                         f"test images would also be trained on")
    x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255               # NHWC uint8 -> NCHW float in [0, 1]
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[-n_test:], y[-n_test:]
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)                  # (1, 3, 1, 1): per channel,
    std = x_train.std(axis=(0, 2, 3), keepdims=True)                    # from the training images only
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    model = build_model(np.random.default_rng(seed))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], seed=seed)
    if verbose:
        model.summary(batch_size=batch_size)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation_split=0.1,
                        verbose=verbose)
    result = model.evaluate(x_test, y_test, return_dict=True)
    probabilities = model.predict(x_test[:5])                           # (5, 10), rows sum to 1
    if verbose:
        print(f"test: {result}  (chance accuracy 0.100)")
        print("first five test images: predicted", model.predict_classes(x_test[:5]), "true", y_test[:5])
    return {"history": history.history, "test": result, "probabilities": probabilities}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared/datasets folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=700)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.data, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, seed=args.seed)
