"""Augmentation: random translation (a crop of the padded image) and horizontal flips, one gather
per batch.

The deterministic core, ``translate_flip``: for each image i of a batch x: (N, C, H, W), integer
shifts sy[i], sx[i] and a mirror flag m[i]::

    s~      = W - 1 - s if m[i] else s                       (the mirror acts on the output window)
    out[i, c, r, s] = X_i(c, r + sy[i], s~ + sx[i])

where X_i reads x[i] inside the image and, outside it, the border ``padding_mode`` gives (torch's
names for ``F.pad`` / ``Conv2d(padding_mode=...)``):

    "zeros"      0                                                    (a black border on uint8)
    "reflect"    the pixel mirrored about the edge pixel, which is not repeated:
                 index -1 -> 1, H -> H - 2 (numpy's ``np.pad(mode="reflect")`` = torch's
                 ``ReflectionPad2d``; needs |shift| <= H - 1 and <= W - 1)
    "replicate"  the edge pixel itself (numpy's mode "edge")

So ``out`` is the H x W window at offset (sy, sx) of the image padded by max |shift| pixels, mirrored
when m[i]. The row and column indices are computed per image, (N, H) and (N, W), and one
fancy-indexed gather reads every output pixel: no padded copy and no Python loop over images.

``random_crop_flip(x, rng, pad, flip)`` draws the shifts uniformly from -pad .. pad (the window's
offset 0 .. 2*pad in the padded image) and, with ``flip=True``, mirrors each image with probability
1/2; ``flip`` may instead be a bool array (N,) of decided flips (``AlternatingFlip`` makes those).
Works on any dtype (uint8 before normalisation is cheapest). Randomness only from the ``rng`` passed in.

Derandomised alternating flip (``AlternatingFlip``; Jordan 2024, "94% on CIFAR-10 in 3.29 seconds"):
in epoch 0 each image is mirrored with probability 1/2, drawn once; in every later epoch each image is
mirrored exactly when it was not in the epoch before (epoch e: first[i] XOR (e odd)). Every image is
then seen both ways in any two consecutive epochs, where random flips show about a quarter of the
images the same way twice. The state belongs to the image's index in the dataset, not to its place in
a batch, so it works with shuffling; ``Batches`` keeps it and tells the augmentation each batch's flips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate")
FLIPS = ("none", "random", "alternate")


def _check_images(x, what: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{what}: expected (N, C, H, W), got shape {getattr(x, 'shape', type(x).__name__)}")


def _check_mode(padding_mode, what: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{what}: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")


def _source_index(i: np.ndarray, size: int, padding_mode: str) -> np.ndarray:
    """Padded coordinates i (any shape, may lie outside 0..size-1) -> indices into the image."""
    if padding_mode == "reflect":
        i = np.abs(i)                                      # -k -> k
        return np.where(i > size - 1, 2 * (size - 1) - i, i)   # size - 1 + k -> size - 1 - k
    return np.clip(i, 0, size - 1)                         # replicate; zeros masks these out after


def translate_flip(x: np.ndarray, sy, sx, flips=None, *, padding_mode: str = "zeros") -> np.ndarray:
    """x: (N, C, H, W); sy, sx: integer shifts (N,) (or one int for all); flips: bool (N,) or None.
    -> (N, C, H, W), same dtype: out[i, c, r, s] = X_i(c, r + sy[i], s~ + sx[i]) (module docstring)."""
    what = "translate_flip"
    _check_images(x, what)
    _check_mode(padding_mode, what)
    n, c, h, w = x.shape
    shifts = []
    for name, s in (("sy", sy), ("sx", sx)):
        s = np.asarray(s)
        if s.shape not in ((), (n,)):
            raise ValueError(f"{what}: {name} must be one shift or one per image ({n},), got shape {s.shape}")
        s = np.broadcast_to(s, (n,))
        if s.dtype.kind not in "iu":
            raise TypeError(f"{what}: {name} must be integer shifts, got dtype {s.dtype}")
        shifts.append(s.astype(np.int64))
    sy, sx = shifts
    if padding_mode == "reflect" and n:
        for name, s, size, axis in (("sy", sy, h, "height"), ("sx", sx, w, "width")):
            if np.abs(s).max() > size - 1:
                raise ValueError(f"{what}: padding_mode='reflect' reflects about the edge pixel, so a shift "
                                 f"must be at most {axis} - 1 = {size - 1} pixels; got |{name}| = "
                                 f"{int(np.abs(s).max())} (as torch's ReflectionPad2d: padding < input size)")
    cols = np.broadcast_to(np.arange(w), (n, w))                         # (N, W)
    if flips is not None:
        flips = np.asarray(flips)
        if flips.shape != (n,) or flips.dtype != np.bool_:
            raise ValueError(f"{what}: flips must be a bool array ({n},), one per image, got dtype "
                             f"{flips.dtype} shape {flips.shape}")
        cols = np.where(flips[:, None], w - 1 - cols, cols)
    rows = sy[:, None] + np.arange(h)                                    # (N, H) padded coordinates
    cols = sx[:, None] + cols                                            # (N, W)
    ri, ci = _source_index(rows, h, padding_mode), _source_index(cols, w, padding_mode)
    out = x[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
            ri[:, None, :, None], ci[:, None, None, :]]                 # (N, C, H, W)
    if padding_mode == "zeros":
        inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
        out = np.where(inside, out, np.zeros((), dtype=x.dtype))        # (N, C, H, W)
    return out


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4, flip=True, *,
                     padding_mode: str = "zeros") -> np.ndarray:
    """x: (N, C, H, W) -> (N, C, H, W), same dtype; see the module docstring.

    pad: the largest shift in pixels (the window moves over the image padded by ``pad``).
    flip: True (each image mirrored with probability 1/2, from ``rng``), False (none), or a bool
    array (N,) saying which images to mirror. padding_mode: "zeros" (default), "reflect", "replicate".
    The draws, in this order: window rows (N,), window columns (N,), then the flips (if ``flip`` is True).
    """
    what = "random_crop_flip"
    _check_images(x, what)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{what}: rng must be a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"{what}: pad must be >= 0, got {pad}")
    _check_mode(padding_mode, what)
    n, _, h, w = x.shape
    if padding_mode == "reflect" and pad > min(h, w) - 1:
        raise ValueError(f"{what}: padding_mode='reflect' needs pad <= min(H, W) - 1 = {min(h, w) - 1} "
                         f"for images of {h}x{w}, got pad={pad} (as torch's ReflectionPad2d)")
    dy = rng.integers(0, 2 * pad + 1, size=n)                           # (N,) window offsets
    dx = rng.integers(0, 2 * pad + 1, size=n)                           # (N,)
    if isinstance(flip, (bool, np.bool_)):
        flips = rng.random(n) < 0.5 if flip else None                   # (N,)
    else:
        flips = flip
    return translate_flip(x, dy - pad, dx - pad, flips, padding_mode=padding_mode)


class AlternatingFlip:
    """The flips of the derandomised alternating scheme for a dataset of ``num_samples`` images.

    ``first``: bool (N,), epoch 0's flips, drawn from ``rng`` when this is made (each True with
    probability 1/2). ``flips(index, epoch)``: bool (B,) for the images ``index`` (B,) in ``epoch``
    (0-based) = first[index] XOR (epoch odd).
    """

    def __init__(self, num_samples: int, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"AlternatingFlip: rng must be a numpy Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        self.first = rng.random(int(num_samples)) < 0.5                 # (N,)

    def flips(self, index, epoch: int) -> np.ndarray:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"AlternatingFlip: epoch must be an integer >= 0, got {epoch!r}")
        return self.first[index] ^ bool(epoch % 2)


@dataclass(frozen=True)
class Augment:
    """A configured augmentation: ``Augment(pad=4, flip="random", padding_mode="zeros")(x, rng)``.

    pad: largest shift of the random translation in pixels (0: none). flip: "random" (True),
    "none" (False) or "alternate" (the derandomised scheme: a ``Batches`` with this augmentation keeps
    an ``AlternatingFlip`` and passes each batch's flips). padding_mode: the border the translation
    shifts in: "zeros", "reflect" or "replicate" (module docstring).
    """

    pad: int = 4
    flip: bool | str = True
    padding_mode: str = "zeros"

    def __post_init__(self):
        if isinstance(self.pad, bool) or not isinstance(self.pad, (int, np.integer)) or self.pad < 0:
            raise ValueError(f"Augment: pad must be an integer >= 0, got {self.pad!r}")
        if self.flip not in (True, False) + FLIPS:
            raise ValueError(f"Augment: flip must be True, False or one of {', '.join(FLIPS)}, got {self.flip!r}")
        _check_mode(self.padding_mode, "Augment")

    @property
    def flip_mode(self) -> str:
        """"none", "random" or "alternate"."""
        return {True: "random", False: "none"}.get(self.flip, self.flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, flips=None) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H, W). flips: bool (N,), needed (and only allowed) with flip="alternate"."""
        mode = self.flip_mode
        if mode == "alternate" and flips is None:
            raise ValueError("Augment(flip='alternate'): each image's flip depends on its index in the dataset "
                             "and on the epoch; use it through Batches (which keeps an AlternatingFlip), or "
                             "pass flips=AlternatingFlip(N, rng).flips(index, epoch)")
        if mode != "alternate" and flips is not None:
            raise ValueError(f"Augment(flip={self.flip!r}): flips= is only for flip='alternate'")
        return random_crop_flip(x, rng, self.pad, flips if mode == "alternate" else mode == "random",
                                padding_mode=self.padding_mode)
