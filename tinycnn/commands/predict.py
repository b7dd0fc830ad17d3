"""``tinycnn predict CHECKPOINT IMAGE...``: classify image files with a saved run's network.

    tinycnn predict runs/20250101-120000/checkpoint.npz digit.png photo.jpg --top 3

Each image goes through the steps training used, in order:

    read (Pillow, the optional ``images`` extra)      any size, any mode
    convert to the network's channels                 1 channel: grey ("L"); 3 channels: "RGB"
    resize to the network's H x W (bilinear)          with a notice when the size differs
    invert (only with --invert)                       255 - x: MNIST digits are light on dark
    normalise with the TRAINING mean and std          saved in the checkpoint
    softmax(network(x))                               probabilities over the classes

and one line is printed per image: the most probable class, then the top-k classes with their
probabilities.
"""
from __future__ import annotations

import sys

import numpy as np

from ._saved_run import load_run


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint.npz written by `tinycnn train`")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to list per image (default 3)")
    parser.add_argument("--invert", action="store_true", help="invert grey levels first (for dark-on-light "
                        "drawings: MNIST digits are light on a dark background)")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("tinycnn predict needs Pillow to read images: pip install 'tinycnn[images]' "
                          "(or pip install pillow)") from None
    return Image


def read_image(path, image_shape: tuple, notices: list) -> np.ndarray:
    """One image file -> uint8 (C, H, W) for a network taking ``image_shape`` = (C, H, W).
    Conversions and resizes are described in ``notices``."""
    Image = _pillow()
    c, h, w = image_shape
    mode = "L" if c == 1 else "RGB"
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != mode:
                if not (mode == "RGB" and im.mode == "RGBA" or mode == "L" and im.mode == "LA"):
                    notices.append(f"{path}: converted from {im.mode} to {'grey' if c == 1 else 'RGB'} "
                                   f"({c} channel{'s' if c > 1 else ''}, as the network was trained on)")
                im = im.convert(mode)
            if im.size != (w, h):
                notices.append(f"{path}: resized from {im.size[1]}x{im.size[0]} to the network's {h}x{w} "
                               f"(H x W, bilinear)")
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            x = np.asarray(im, dtype=np.uint8)                     # (H, W) or (H, W, 3)
    except (OSError, ValueError) as err:                           # missing, unreadable, truncated
        raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err})") from None
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)       # (C, H, W)


def run(args) -> int:
    try:
        if args.top < 1:
            raise ValueError(f"--top must be >= 1, got {args.top}")
        saved = load_run(args.checkpoint)
        notices = []
        x = np.stack([read_image(p, saved.image_shape, notices) for p in args.images])   # uint8 (N, C, H, W)
    except (ValueError, ImportError) as err:
        print(f"tinycnn predict: error: {err}", file=sys.stderr)
        return 2
    for line in notices:
        print(f"notice: {line}")
    if args.invert:
        x = 255 - x
    probs = saved.model.predict(saved.normalizer(x), batch_size=64)                     # (N, K)
    k = min(args.top, probs.shape[1])
    width = max(len(p) for p in args.images)
    for path, p in zip(args.images, probs):
        order = np.argsort(-p, kind="stable")[:k]                                        # most probable first
        top = ", ".join(f"{saved.classes[j]} {p[j]:.3f}" for j in order)
        print(f"{path:<{width}}  {saved.classes[order[0]]}  (p = {p[order[0]]:.3f})   top {k}: {top}")
    return 0
