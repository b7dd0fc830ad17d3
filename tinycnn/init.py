"""Initialisations of convolution weights beyond the random default: from the data (patch whitening)
and to the identity (Dirac), as fast CIFAR-10 training uses them (Page, "How to train your ResNet";
Jordan, "94% on CIFAR-10 in 3.29 seconds", 2024). Each function changes a layer's arrays in place
(the trailing underscore, as torch.nn.init) and keeps its ``Parameter`` objects, so an optimizer
already built on them still holds the right ones.

**Patch whitening** (``patch_whitening_``), for a first Conv2D (weight (O, C, KH, KW), groups 1,
dilation 1) and images x (N, C, H, W) as the network sees them (normalised)::

    sample   n images of x, drawn with rng (all of them when n >= N), in index order
    patches  every KH x KW window of them, stride 1, no padding: P (M, D), D = C*KH*KW,
             M = n*(H-KH+1)*(W-KW+1); a row is a window flattened as the weight is, (c, i, j)
    S        = P^T P / M                  (D, D) float64: the patches' second moment (their covariance
                                          about 0: for images normalised to mean 0 per channel the
                                          mean term is small); accumulated in float64, in chunks
    S        = V diag(lam) V^T            eigh in float64; lam descending, each eigenvector's
                                          largest-magnitude entry made positive (a fixed sign)
    filters  F_k = V[:, k] / sqrt(lam_k + eps)  reshaped (C, KH, KW),  k = 0 .. D-1
    weight   [F_0 .. F_{D-1}]             when O = D
             [F_0 .. F_{D-1}, -F_0 .. -F_{D-1}]   when O = 2D (airbench's choice: after a ReLU/GELU
                                          both signs of every whitened component survive)
    bias     0;   weight.requires_grad = False when ``freeze`` (the bias stays trainable: airbench
             trains it for the first epochs, then freezes it with ``conv.bias.requires_grad = False``)

Then F P^T has covariance F S F^T = diag(lam / (lam + eps)) ~ I: the conv's outputs on the sampled
patches are decorrelated, each of unit second moment (less for directions with lam ~ eps).
Deterministic: the same x, rng state and arguments give the same weights, bit for bit.

**Identity** (``dirac_``): torch.nn.init.dirac_'s semantics for a weight (O, C/groups, *K) of 3, 4 or
5 dimensions: all zero, then in each group g, for d < min(O/groups, C/groups), the centre tap (every
kernel axis at size // 2) of filter g*O/groups + d, input channel d, is 1. With odd kernel sizes,
stride 1 and padding (K-1)/2 (``padding='same'``) that conv is the identity on its first channels.

**Partial identity** (``partial_identity_``, airbench's "partial identity initialisation"): the first
m = min(O, C) filters of a groups-1 Conv2D of odd kernel sizes become the identity on input channels
0..m-1 (their bias 0); the other O - m filters keep their (random) values. ``add=True`` adds the
identity onto those first m filters instead of replacing them (the random part stays, as if a
residual connection were folded into the weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers.base import Parameter
from .layers.conv import Conv2D

__all__ = ["PatchWhitening", "dirac_", "partial_identity_", "patch_whitening_", "patch_second_moment"]

# Patches per chunk of the second-moment accumulation: bounds the float64 patch matrix to
# CHUNK_PATCHES * D * 8 bytes (12 MB for D = 12).
CHUNK_PATCHES = 1 << 17


@dataclass
class PatchWhitening:
    """What ``patch_whitening_`` computed (for plots and checks)."""
    eigenvalues: np.ndarray        # float64 (D,), descending: lam
    eigenvectors: np.ndarray       # float64 (D, D), column k belongs to eigenvalues[k]: V
    second_moment: np.ndarray      # float64 (D, D): S = P^T P / M
    num_patches: int               # M
    image_indices: np.ndarray      # int64 (n,): the images of x the patches came from, ascending
    eps: float


def _conv(layer, what: str) -> Conv2D:
    if not isinstance(layer, Conv2D):
        raise TypeError(f"{what}: expected a Conv2D layer, got {type(layer).__name__}")
    return layer


def patch_second_moment(images: np.ndarray, kernel_size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """images (n, C, H, W) -> (S = P^T P / M (D, D) float64, M): every KH x KW window at stride 1,
    flattened in (c, i, j) order, D = C*KH*KW. Accumulated over chunks of images in a fixed order."""
    kh, kw = kernel_size
    n, c, h, w = images.shape
    per_image = (h - kh + 1) * (w - kw + 1)
    d = c * kh * kw
    total = np.zeros((d, d))
    step = max(1, CHUNK_PATCHES // per_image)
    for start in range(0, n, step):
        chunk = images[start:start + step].astype(np.float64)                    # (b, C, H, W)
        win = np.lib.stride_tricks.sliding_window_view(chunk, (kh, kw), axis=(2, 3))  # (b, C, OH, OW, KH, KW)
        p = win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, d)                      # (b*OH*OW, D)
        total += p.T @ p
    return total / (n * per_image), n * per_image


def patch_whitening_(conv: Conv2D, images: np.ndarray, rng: np.random.Generator, *, num_images: int = 5000,
                     eps: float = 5e-4, freeze: bool = True) -> PatchWhitening:
    """Set ``conv``'s filters to whiten the KH x KW patches of ``images`` (module docstring).

    conv: Conv2D with groups 1, dilation 1 and out_channels = D or 2D (D = in_channels*KH*KW).
    images: float (N, C, H, W), normalised as the network's input. rng: draws the sample of
    ``num_images`` images (airbench: 5000 of CIFAR-10's 50000). eps > 0: added to every eigenvalue
    (airbench: 5e-4 for normalised images). freeze: set ``conv.weight.requires_grad = False``.
    """
    what = "patch_whitening_"
    conv = _conv(conv, what)
    if conv.groups != 1 or conv.dilation != (1, 1):
        raise ValueError(f"{what}: {conv!r} must have groups=1 and dilation=1 (the patches are its "
                         f"plain KH x KW windows)")
    kh, kw = conv.kernel_size
    c = conv.in_channels
    d = c * kh * kw
    if conv.out_channels not in (d, 2 * d):
        raise ValueError(f"{what}: {conv!r} has {conv.out_channels} filters; whitening its {c}x{kh}x{kw} "
                         f"patches gives D = {d} filters (out_channels={d}) or {d} and their negatives "
                         f"(out_channels={2 * d})")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{what}: rng must be a numpy Generator (np.random.default_rng(seed)), got "
                        f"{type(rng).__name__}")
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1] != c:
        raise ValueError(f"{what}: images must be (N, {c}, H, W) for {conv!r}, got shape "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.dtype.kind != "f":
        raise TypeError(f"{what}: images have dtype {images.dtype}; pass them as the network sees them, "
                        f"normalised floats (e.g. loaders.normalizer(ds.x_train))")
    n_all, _, h, w = images.shape
    if n_all == 0 or h < kh or w < kw:
        raise ValueError(f"{what}: need at least one image of at least {kh}x{kw} pixels, got shape {images.shape}")
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"{what}: num_images must be a positive integer, got {num_images!r}")
    eps = float(eps)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{what}: eps must be a finite number > 0 (it keeps 1/sqrt(eigenvalue + eps) finite), "
                         f"got {eps}")
    if num_images >= n_all:
        idx = np.arange(n_all)
    else:
        idx = np.sort(rng.choice(n_all, size=int(num_images), replace=False))
    sample = images if len(idx) == n_all else images[idx]                        # (n, C, H, W)
    if not np.isfinite(sample).all():
        raise ValueError(f"{what}: the sampled images hold NaN or infinite values")
    second, m = patch_second_moment(sample, (kh, kw))                             # (D, D)
    lam, vec = np.linalg.eigh(second)                                             # ascending
    lam, vec = lam[::-1].copy(), vec[:, ::-1].copy()                              # descending
    biggest = np.argmax(np.abs(vec), axis=0)                                      # (D,)
    vec *= np.sign(vec[biggest, np.arange(d)])[None, :]                           # fixed signs
    lam_safe = np.maximum(lam, 0.0)                  # a round-off negative of a singular S counts as 0
    filters = (vec / np.sqrt(lam_safe + eps)[None, :]).T.reshape(d, c, kh, kw)    # (D, C, KH, KW)
    if conv.out_channels == 2 * d:
        filters = np.concatenate([filters, -filters])                            # (2D, C, KH, KW)
    conv.weight.data[...] = filters.astype(conv.weight.data.dtype)
    if conv.bias is not None:
        conv.bias.data[...] = 0
    if freeze:
        conv.weight.requires_grad = False
    return PatchWhitening(lam, vec, second, m, idx.astype(np.int64), eps)


def _weight_array(weight, what: str) -> np.ndarray:
    array = weight.data if isinstance(weight, Parameter) else weight
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array or a Parameter, got {type(weight).__name__}")
    return array


def dirac_(weight: np.ndarray | Parameter, groups: int = 1) -> np.ndarray | Parameter:
    """torch.nn.init.dirac_: ``weight`` (an array (O, C/groups, *K) with 1-3 kernel axes, or a
    Parameter) set in place to the Dirac delta (module docstring); returns ``weight``."""
    what = "dirac_"
    w = _weight_array(weight, what)
    if w.ndim not in (3, 4, 5):
        raise ValueError(f"{what}: only weights with 3, 4 or 5 dimensions (O, C, *kernel) are supported, "
                         f"got shape {w.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{what}: groups must be a positive integer, got {groups!r}")
    if w.shape[0] % groups:
        raise ValueError(f"{what}: dimension 0 of the weight ({w.shape[0]}) must be divisible by groups "
                         f"({groups})")
    per_group = w.shape[0] // groups
    m = min(per_group, w.shape[1])
    centre = tuple(k // 2 for k in w.shape[2:])
    w[...] = 0
    for g in range(groups):
        d = np.arange(m)
        w[(g * per_group + d, d) + centre] = 1
    return weight


def partial_identity_(conv: Conv2D, *, add: bool = False) -> Conv2D:
    """The first min(out_channels, in_channels) filters of ``conv`` become the identity on input
    channels 0.. (``add=True``: the identity is added to them); the rest are kept (module docstring).
    Needs groups 1 and odd kernel sizes. Returns ``conv``."""
    what = "partial_identity_"
    conv = _conv(conv, what)
    if conv.groups != 1:
        raise ValueError(f"{what}: {conv!r} has groups={conv.groups}; the partial identity is defined for groups=1")
    if any(k % 2 == 0 for k in conv.kernel_size):
        raise ValueError(f"{what}: {conv!r} has an even kernel size {conv.kernel_size}; an identity needs a "
                         f"centre tap (odd kernel sizes)")
    m = min(conv.out_channels, conv.in_channels)
    w = conv.weight.data                                                   # (O, C, KH, KW)
    identity = np.zeros_like(w[:m])                                        # (m, C, KH, KW)
    dirac_(identity)
    if add:
        w[:m] += identity
    else:
        w[:m] = identity
        if conv.bias is not None:
            conv.bias.data[:m] = 0
    return conv
