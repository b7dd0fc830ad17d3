"""``tinycnn predict CHECKPOINT IMAGE...``: classify image files with a saved run's network.

    tinycnn predict runs/20250101-120000/checkpoint.npz digit.png photo.jpg --top 3

Each image is prepared the way the network's training images were (``tinycnn.data.preprocess``),
and every step is printed on its own line:

    read (Pillow, the optional ``images`` extra)      any size, any mode; EXIF orientation applied
    alpha                                             a transparent background filled behind the strokes
    channels                                          colour -> grey or grey -> RGB, as trained
    polarity (grey networks)                          inverted when the border says the background is
                                                      light and the training images' was dark (MNIST);
                                                      --invert / --no-invert decide instead
    layout                                            MNIST-style data: cropped, scaled into a 20x20 box,
                                                      centred by centre of mass in 28x28; photos: scaled
                                                      keeping the aspect ratio, centre cut out
    normalise with the TRAINING mean and std          saved in the checkpoint
    softmax(network(x))                               probabilities over the classes

then one line per image: the most probable class, then the top-k classes with their probabilities.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..data.preprocess import Preparation, prepare, read_pixels
from ._saved_run import load_run


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint.npz written by `tinycnn train`")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to list per image (default 3)")
    parser.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                        help="invert grey levels (--invert) or never (--no-invert); default: decided per "
                             "image from its border, to match the training images' background (MNIST "
                             "digits are light on black)")


def preparation(saved) -> Preparation:
    """The preparation matching how ``saved``'s training images were made."""
    resized = bool(saved.config.get("image_size")) if isinstance(saved.config, dict) else False
    return Preparation.for_training_data(saved.dataset, saved.image_shape, mean=saved.normalizer.mean,
                                         resized=resized)


def run(args) -> int:
    try:
        if args.top < 1:
            raise ValueError(f"--top must be >= 1, got {args.top}")
        saved = load_run(args.checkpoint)
        prep = preparation(saved)
        images, log = [], []
        for path in args.images:
            pixels, what = read_pixels(path)
            try:
                x, steps = prepare(pixels, prep, invert=args.invert)
            except ValueError as err:
                raise ValueError(f"{path}: {err}".replace("(invert=True)", "(--invert)")) from None
            images.append(x)
            log.append((path, [f"read {what}", *steps]))
        x = np.stack(images)                                                   # uint8 (N, C, H, W)
    except (ValueError, ImportError) as err:
        print(f"tinycnn predict: error: {err}", file=sys.stderr)
        return 2
    for path, steps in log:
        for step in steps:
            print(f"{path}: {step}")
    probs = saved.model.predict(saved.normalizer(x), batch_size=64)                 # (N, K)
    k = min(args.top, probs.shape[1])
    width = max(len(p) for p in args.images)
    for path, p in zip(args.images, probs):
        order = np.argsort(-p, kind="stable")[:k]                                    # most probable first
        top = ", ".join(f"{saved.classes[j]} {p[j]:.3f}" for j in order)
        print(f"{path:<{width}}  {saved.classes[order[0]]}  (p = {p[order[0]]:.3f})   top {k}: {top}")
    return 0
