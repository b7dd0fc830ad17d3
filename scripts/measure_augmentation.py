"""Measure the data pipeline's cost per batch against one training step of the seed CNN.

    python scripts/measure_augmentation.py [--batch 64] [--repeats 30]

Both are timed on the same 64 CIFAR-shaped images (3 x 32 x 32; real CIFAR-10 test images when
shared/datasets is next to the repository, random uint8 otherwise -- the cost does not depend on
the pixel values), interleaved so that load from other processes hits both alike:

* pipeline: one batch of ``Batches`` as training uses it -- gather 64 images by a shuffled index,
  random crop (pad 4) + horizontal flip, per-channel normalisation to float32;
* augmentation alone: ``random_crop_flip`` on a uint8 batch;
* training step: the seed CNN of the README (Conv 3->32->64->128, 3x3, ReLU, max-pool 2, Dense
  512->10), forward + softmax cross-entropy + backward + SGD(momentum 0.9) step.

Prints the medians and the ratio pipeline / training step (the issue asks for < 10%).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import tinycnn as tc
from tinycnn.data import Augment, Batches, Normalizer, random_crop_flip

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10" / "test.npz"


def images(n: int, rng) -> tuple[np.ndarray, str]:
    if SHARED.is_file():
        with np.load(SHARED, allow_pickle=False) as d:
            x = d["x"][:n * 20]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), f"{SHARED} (first {len(x)})"
    return rng.integers(0, 256, (n * 20, 3, 32, 32), dtype=np.uint8), "random uint8"


def seed_cnn(rng):
    return tc.Sequential(
        tc.Conv2D(3, 32, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(32, 64, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(64, 128, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(512, 10, rng=rng),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x, origin = images(args.batch, rng)                          # (20B, 3, 32, 32) uint8
    y = rng.integers(0, 10, len(x))
    norm = Normalizer.fit(x)
    batches = Batches(x, y, args.batch, shuffle=True, rng=rng, augment=Augment(4, True), normalizer=norm)
    model, loss_fn = seed_cnn(rng), tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb0 = norm(x[:args.batch])
    yb0 = y[:args.batch]

    def step():
        loss_fn(model(xb0), yb0)
        model.backward(loss_fn.backward())
        opt.step()

    def endless():                                               # epoch after epoch
        while True:
            yield from batches
    stream = endless()

    def pipeline_batch():
        next(stream)

    for _ in range(3):                                           # JIT compile and warm caches
        step(), pipeline_batch(), random_crop_flip(x[:args.batch], rng)
    t_step, t_pipe, t_aug = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        pipeline_batch()
        t2 = time.perf_counter()
        random_crop_flip(x[:args.batch], rng)
        t3 = time.perf_counter()
        t_step.append(t1 - t0)
        t_pipe.append(t2 - t1)
        t_aug.append(t3 - t2)
    s, p, a = (statistics.median(t) * 1e3 for t in (t_step, t_pipe, t_aug))
    print(f"images: {origin}; batch {args.batch}; {args.repeats} repeats, medians")
    print(f"  training step, seed CNN:                 {s:8.2f} ms")
    print(f"  pipeline batch (gather+augment+normalise): {p:6.2f} ms  = {100 * p / s:.2f}% of a step")
    print(f"  augmentation alone (crop+flip, uint8):     {a:6.2f} ms  = {100 * a / s:.2f}% of a step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
