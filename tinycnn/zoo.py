"""The model zoo: networks by name, and the record that lets a checkpoint rebuild its own network.

    model = zoo.build("lenet", input_shape=(1, 28, 28), num_classes=10, rng=np.random.default_rng(0))

Every builder takes ``(input_shape, num_classes, rng, **options)``: ``input_shape`` is per sample
(C, H, W), any channel count and any size the layers can take; ``rng`` (a ``np.random.Generator``)
draws the initial weights (and Dropout's masks, from a generator spawned from it). The networks:

``lenet``       Conv(C->32, 3, pad 1) ReLU MaxPool(2)  Conv(32->64, 3, pad 1) ReLU MaxPool(2)
                Flatten Dense(64*(H//4)*(W//4) -> K). On 1x28x28: Dense(3136 -> 10); 3.9 M MACs/image.
``seed-keras``  the seed article's Keras CNN: three Conv(3x3, no padding) ReLU MaxPool(2) with 32, 64,
                128 filters, Flatten, Dense(-> K). On 3x32x32: Dense(512 -> 10); 5.0 M MACs/image.
                On 1x28x28 the last feature map is 128x1x1, so Dense(128 -> 10).
``vgg-bn``      the stronger CIFAR network (see ``vgg_bn``): four VGG stages of 3x3 Conv,
                BatchNorm2D, ReLU and MaxPool(2), widths w, 2w, 4w, 8w (w = 32 by default), then Dropout
                and Dense(-> K). On 3x32x32, w = 32: 33.9 M MACs/image.
``resnet20``    He et al.'s CIFAR ResNet-20 (see ``resnet20``): a 3x3 conv, three stages of three basic
                residual blocks (16, 32, 64 channels), global average pooling, Dense(64 -> K);
                projection (option B) shortcuts where the shape changes. On 3x32x32: 272,474 parameters
                (K = 10), 40.8 M MACs/image.
``airbench``    Keller Jordan's fast-CIFAR network (see ``airbench``): a 2x2 whitening conv, three blocks of
                two 3x3 convs with max-pooling, batch norm and GELU (widths 64, 256, 256), a global max
                pool and Dense(256 -> K). Trained with the speedrun recipe (``tinycnn.speedrun``).
``mobilenet``   MobileNet-style (see ``mobilenet``): a 3x3 conv, seven depthwise-separable blocks
                (depthwise 3x3 with ``groups=channels``, then pointwise 1x1; widths 64 to 512, three
                with stride 2), global average pooling, Dense(512 -> K).

Each entry also carries the training recipe it was tuned with (``MODELS[name].recipe``: optimizer,
learning rate, schedule, epochs, batch size, weight decay); ``tinycnn train`` uses it for every option
not given on its command line.

Checkpoints: ``describe(name, input_shape, num_classes, **options)`` is the JSON-able record saved in a
checkpoint's ``extra["model"]``; ``from_record(record, rng)`` rebuilds the same architecture, and
``load_model(path)`` does both and loads the weights, with a clear error for a checkpoint that holds
no zoo record, an unknown name, or weights that do not fit the named network.

A record read from a file is hostile: ``check_record`` checks every field (``format``, ``name``,
``input_shape`` [C, H, W] within ``LIMITS``, ``num_classes``, the network's ``options``), and
``from_record(..., weights=checkpoint.model_shapes(path))`` compares it with the weights' shapes read
from their .npy headers *before* building: the channels (and vgg-bn's width) must be those of the
first convolution's weights, and the classifier the record implies may not hold more values than all
the checkpoint's weights together -- so a tampered ``input_shape`` of [1, 20000, 20000] is refused in
milliseconds instead of allocating a Dense layer of billions of weights. Errors name the file and the
field (``CheckpointError``, e.g. ``extra.model.input_shape``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from ._typing import PathLike, Shape
from .checkpoint import CheckpointError, load_checkpoint, model_shapes, read_meta
from .layers import (
    GELU,
    AdaptiveAvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)
from .model import Sequential
from .shapes import ShapeError, infer_shapes

RECORD_FORMAT = "tinycnn-zoo"       # extra["model"]["format"] in a checkpoint written by `tinycnn train`


@dataclass(frozen=True)
class Recipe:
    """Training defaults a network was tuned with (the command line overrides each)."""
    optimizer: str = "adam"            # "sgd" (momentum 0.9, Nesterov) or "adam"
    lr: float = 1e-3                   # peak rate for "onecycle", the starting rate otherwise
    schedule: str = "constant"         # "constant", "cosine" (per epoch) or "onecycle" (per batch)
    epochs: int = 3
    batch_size: int = 64
    weight_decay: float = 0.0
    name: str = "standard"             # "standard" (the options above) or "speedrun" (tinycnn.speedrun)


@dataclass(frozen=True)
class ModelEntry:
    builder: object                    # f(input_shape, num_classes, rng, **options) -> Sequential
    about: str
    recipe: Recipe = field(default_factory=Recipe)


# -- helpers ----------------------------------------------------------------------------------------

def _check_args(name: str, input_shape, num_classes, rng) -> tuple:
    """Validate the common builder arguments; return input_shape as a tuple of 3 ints."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape):
        raise ValueError(f"zoo.{name}: input_shape must be (C, H, W) per sample, three positive "
                         f"integers, got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"zoo.{name}: num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"zoo.{name}: rng must be a np.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return tuple(int(d) for d in shape)


def _features_out(name: str, layers: list, input_shape: tuple) -> tuple:
    """Per-sample output shape of the feature layers, or an error saying the image is too small."""
    try:
        records = infer_shapes(layers, input_shape, source=f"zoo.{name}'s input_shape")
    except ShapeError as err:
        raise ValueError(f"zoo.{name}: images of shape {input_shape} (C, H, W) are too small for this "
                         f"network:\n{err}") from None
    out = records[-1].out_shape                                       # (C', H', W')
    if min(out[1:]) < 1:
        raise ValueError(f"zoo.{name}: images of shape {input_shape} shrink to {out} before the classifier")
    return out


def _classifier(name: str, features: list, input_shape: tuple, num_classes: int, rng, head=(),
                max_dense: int | None = None) -> Sequential:
    """features + [Flatten, *head, Dense(flat -> K)], built (shape-checked) for input_shape.
    ``max_dense``: refuse (before allocating it) a Dense layer of more weights than this."""
    flat = math.prod(_features_out(name, features, input_shape))
    if max_dense is not None and flat * num_classes > max_dense:
        raise _TooLarge(f"images {input_shape} (C, H, W) and {num_classes} classes make the classifier "
                        f"Dense({flat} -> {num_classes}), {flat * num_classes:,} weights, more than the "
                        f"{max_dense:,} values the checkpoint holds in all")
    return Sequential(*features, Flatten(), *head, Dense(flat, num_classes, rng=rng), input_shape=input_shape)


class _TooLarge(ValueError):
    """A record whose network would be larger than the weights saved with it."""


# -- the networks -----------------------------------------------------------------------------------

def lenet(input_shape: Shape, num_classes: int, rng: np.random.Generator, *,
          _max_dense: int | None = None) -> Sequential:
    """Two padded 3x3 conv stages (32, 64 filters) with max-pooling, then one dense layer.

    (C, H, W) -> Conv 32 (C', H, W) -> pool (32, H/2, W/2) -> Conv 64 -> pool (64, H/4, W/4)
    -> Flatten (64*(H//4)*(W//4),) -> Dense (K,).
    """
    c, h, w = shape = _check_args("lenet", input_shape, num_classes, rng)
    features = [Conv2D(c, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(32, 64, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2)]
    return _classifier("lenet", features, shape, int(num_classes), rng, max_dense=_max_dense)


def seed_keras(input_shape: Shape, num_classes: int, rng: np.random.Generator, *,
               _max_dense: int | None = None) -> Sequential:
    """The seed's Keras CNN: three unpadded 3x3 conv stages (32, 64, 128) with max-pooling, one dense.

    3x32x32: 30 -> 15 -> 13 -> 6 -> 4 -> 2, Flatten 128*2*2 = 512, Dense(512 -> K).
    1x28x28: 26 -> 13 -> 11 -> 5 -> 3 -> 1, Flatten 128, Dense(128 -> K).
    """
    c, h, w = shape = _check_args("seed_keras", input_shape, num_classes, rng)
    features = [Conv2D(c, 32, 3, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(64, 128, 3, rng=rng), ReLU(), MaxPool2D(2)]
    return _classifier("seed_keras", features, shape, int(num_classes), rng, max_dense=_max_dense)


def vgg_bn(input_shape: Shape, num_classes: int, rng: np.random.Generator, width: int = 32, dropout: float = 0.25,
           *, _max_dense: int | None = None) -> Sequential:
    """VGG-style with batch norm: four stages of 3x3 convolutions (padding 1, no bias), widths w, 2w,
    4w, 8w (w = ``width``, 32 by default), each stage ending in a 2x2 max-pool; then Dropout and
    Dense(-> K). Every conv is followed by BatchNorm2D and ReLU; a stage's last conv is pooled first::

        conv -> BN -> ReLU                    (inside a stage)
        conv -> MaxPool(2) -> BN -> ReLU      (a stage's last conv)

    3x3x32x32, w = 32 (per sample; multiply-adds of the convolutions)::

        stage 1  Conv 3->32      pool -> (32, 16, 16)                            0.9 M
        stage 2  Conv 32->64, Conv 64->64     pool -> (64, 8, 8)                14.2 M
        stage 3  Conv 64->128, Conv 128->128  pool -> (128, 4, 4)               14.2 M
        stage 4  Conv 128->256   pool -> (256, 2, 2)                             4.7 M
        Flatten 1024, Dropout, Dense(1024 -> K)

    Why this shape: a 3x3 conv costs H*W*C_in*C_out*9 multiply-adds, so doubling the width while
    halving the side keeps each conv's cost level; the two-conv stages sit where the map is 16x16 and
    8x8, and full 32x32 resolution gets only the cheap 3-channel conv. Pooling before batch norm and
    ReLU (max-pool commutes with ReLU, and picks per-channel maxima before the affine batch norm) runs
    those element-wise layers on a quarter of the values -- on this engine they cost about a third
    of a training step. Batch norm keeps a high one-cycle learning rate stable; dropout before the
    classifier and weight decay fight overfitting. The convolutions have no bias: the batch norm's
    shift replaces it.
    """
    shape = _check_args("vgg_bn", input_shape, num_classes, rng)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"zoo.vgg_bn: width must be a positive integer, got {width!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"zoo.vgg_bn: dropout must lie in [0, 1), got {dropout!r}")
    w = int(width)

    def conv(c_in, c_out, pool=False):
        return [Conv2D(c_in, c_out, 3, padding=1, bias=False, rng=rng), *([MaxPool2D(2)] if pool else []),
                BatchNorm2D(c_out), ReLU()]

    features = [*conv(shape[0], w, pool=True),
                *conv(w, 2 * w), *conv(2 * w, 2 * w, pool=True),
                *conv(2 * w, 4 * w), *conv(4 * w, 4 * w, pool=True),
                *conv(4 * w, 8 * w, pool=True)]
    # Dropout's masks get their own stream, spawned from rng, so they never shift the weights' draws
    head = [Dropout(float(dropout), rng=rng.spawn(1)[0])]
    return _classifier("vgg_bn", features, shape, int(num_classes), rng, head=head, max_dense=_max_dense)


def _basic_block(c_in: int, c_out: int, stride: int, rng) -> Residual:
    """He et al.'s basic block: relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x)).

    The shortcut is the identity when the shape is kept, else a projection (option B of the paper):
    a strided 1x1 conv without bias and a batch norm, the form torchvision uses.
    """
    block = Sequential(Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, rng=rng), BatchNorm2D(c_out),
                       ReLU(), Conv2D(c_out, c_out, 3, padding=1, bias=False, rng=rng), BatchNorm2D(c_out))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(Conv2D(c_in, c_out, 1, stride=stride, bias=False, rng=rng), BatchNorm2D(c_out))
    return Residual(block, shortcut=shortcut, post=ReLU())


def resnet20(input_shape: Shape, num_classes: int, rng: np.random.Generator, width: int = 16, *,
             _max_dense: int | None = None) -> Sequential:
    """He et al.'s CIFAR ResNet-20 ("Deep Residual Learning for Image Recognition", 2016, section 4.2):
    6n + 2 = 20 layers with n = 3, widths w, 2w, 4w (w = ``width``, 16 by default)::

        Conv 3x3 (C -> w), BN, ReLU                              (w, H, W)
        stage 1: 3 basic blocks, w channels                      (w, H, W)
        stage 2: 3 basic blocks, 2w, the first with stride 2     (2w, H/2, W/2)
        stage 3: 3 basic blocks, 4w, the first with stride 2     (4w, H/4, W/4)
        AdaptiveAvgPool2D(1), Flatten, Dense(4w -> K)

    (``_max_dense`` is unused: after the global average pool the classifier is 4w -> K whatever the
    image size, so a record cannot make it large.)

    Shortcuts: identity inside a stage; where a stage starts (stride 2, channels doubled) a 1x1
    projection with batch norm, the paper's option B. (Option A, the parameter-free zero-padded
    identity of the paper's CIFAR runs, has no torch.nn module to map to; option B adds 2,752
    parameters: 272,474 against 269,722 for K = 10.) Convolutions have no bias: batch norm's shift
    replaces it.
    """
    shape = _check_args("resnet20", input_shape, num_classes, rng)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"zoo.resnet20: width must be a positive integer, got {width!r}")
    w = int(width)
    layers = [Conv2D(shape[0], w, 3, padding=1, bias=False, rng=rng), BatchNorm2D(w), ReLU()]
    c = w
    for stage, c_out in enumerate((w, 2 * w, 4 * w)):
        for i in range(3):
            layers.append(_basic_block(c, c_out, 2 if (stage > 0 and i == 0) else 1, rng))
            c = c_out
    layers += [AdaptiveAvgPool2D(1), Flatten(), Dense(c, int(num_classes), rng=rng)]
    try:
        return Sequential(*layers, input_shape=shape)
    except ShapeError as err:
        raise ValueError(f"zoo.resnet20: images of shape {shape} (C, H, W) do not fit this network:\n{err}") from None


def _separable(c_in: int, c_out: int, stride: int, rng) -> list:
    """A depthwise-separable block: a depthwise 3x3 conv (one filter per channel, ``groups=c_in``), then
    a pointwise 1x1 conv mixing the channels, each followed by BatchNorm2D and ReLU::

        Conv 3x3 (c_in -> c_in, groups c_in, stride s, pad 1), BN, ReLU      9*c_in weights
        Conv 1x1 (c_in -> c_out), BN, ReLU                                  c_in*c_out weights

    against 9*c_in*c_out for one full 3x3 conv (Howard et al., "MobileNets", 2017, section 3.1)."""
    return [Conv2D(c_in, c_in, 3, stride=stride, padding=1, bias=False, groups=c_in, rng=rng), BatchNorm2D(c_in),
            ReLU(), Conv2D(c_in, c_out, 1, bias=False, rng=rng), BatchNorm2D(c_out), ReLU()]


def mobilenet(input_shape: Shape, num_classes: int, rng: np.random.Generator, width: int = 32, *,
              _max_dense: int | None = None) -> Sequential:
    """A small MobileNet-style network of depthwise-separable blocks (``_separable``), w = ``width``::

        Conv 3x3 (C -> w, pad 1), BN, ReLU                       (w, H, W)
        separable w -> 2w,   stride 1                           (2w, H, W)
        separable 2w -> 4w,  stride 2; 4w -> 4w                  (4w, H/2, W/2)
        separable 4w -> 8w,  stride 2; 8w -> 8w                  (8w, H/4, W/4)
        separable 8w -> 16w, stride 2; 16w -> 16w                (16w, H/8, W/8)
        AdaptiveAvgPool2D(1), Flatten, Dense(16w -> K)

    (``_max_dense`` is unused: after the global average pool the classifier is 16w -> K.) The
    convolutions have no bias, batch norm's shift replaces it; the stem's too.
    """
    shape = _check_args("mobilenet", input_shape, num_classes, rng)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"zoo.mobilenet: width must be a positive integer, got {width!r}")
    w = int(width)
    layers = [Conv2D(shape[0], w, 3, padding=1, bias=False, rng=rng), BatchNorm2D(w), ReLU()]
    for c_in, c_out, stride in ((w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 8 * w, 2),
                                (8 * w, 8 * w, 1), (8 * w, 16 * w, 2), (16 * w, 16 * w, 1)):
        layers += _separable(c_in, c_out, stride, rng)
    layers += [AdaptiveAvgPool2D(1), Flatten(), Dense(16 * w, int(num_classes), rng=rng)]
    try:
        return Sequential(*layers, input_shape=shape)
    except ShapeError as err:
        raise ValueError(f"zoo.mobilenet: images of shape {shape} (C, H, W) do not fit this network:\n{err}") from None


def airbench(input_shape: Shape, num_classes: int, rng: np.random.Generator,
             widths: tuple[int, int, int] | list[int] = (64, 256, 256), *,
             _max_dense: int | None = None) -> Sequential:
    """Keller Jordan's airbench network for fast CIFAR-10 training ("94% on CIFAR-10 in 3.29 Seconds on
    a Single GPU", 2024), widths (w1, w2, w3) = ``widths``::

        Conv 2x2 (C -> 8C, no padding, bias), GELU            (8C, H-1, W-1)    the whitening layer
        three blocks, c -> w:
          Conv 3x3 (c -> w, pad 1), MaxPool(2), BN, GELU, Conv 3x3 (w -> w, pad 1), BN, GELU
        MaxPool(3), Flatten, Dense(w3 * h * w -> K, no bias)

    On 3x32x32: 31 -> 15 -> 7 -> 3 -> 1 pixels a side; (64, 256, 256) has 1.97 M parameters and
    0.24 G multiply-adds per image. The first convolution has 2 * C * 2 * 2 filters so that
    ``tinycnn.init.patch_whitening_`` can set it from the training images (the whitening filters and
    their negatives) and freeze it: its weight is built frozen (``requires_grad`` False). The 3x3
    convolutions have no bias (batch norm's shift replaces it); batch norm uses eps 1e-12 and torch
    momentum 0.4 (airbench's running-statistics settings). The initialisation here is tinycnn's
    default; the speedrun recipe (``tinycnn.speedrun``) adds the data-dependent and identity
    initialisations and the frozen batch-norm scale.
    """
    shape = _check_args("airbench", input_shape, num_classes, rng)
    ws = tuple(widths) if isinstance(widths, (tuple, list)) else ()
    if len(ws) != 3 or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in ws):
        raise ValueError(f"zoo.airbench: widths must be three positive integers (w1, w2, w3), got {widths!r}")
    c = shape[0]
    whiten = Conv2D(c, 2 * c * 4, 2, padding=0, rng=rng)
    whiten.weight.requires_grad = False
    layers = [whiten, GELU()]
    c = 2 * c * 4
    for w in map(int, ws):
        layers += [Conv2D(c, w, 3, padding=1, bias=False, rng=rng), MaxPool2D(2),
                   BatchNorm2D(w, eps=1e-12, momentum=0.4), GELU(),
                   Conv2D(w, w, 3, padding=1, bias=False, rng=rng), BatchNorm2D(w, eps=1e-12, momentum=0.4), GELU()]
        c = w
    layers.append(MaxPool2D(3))
    flat = math.prod(_features_out("airbench", layers, shape))
    if _max_dense is not None and flat * num_classes > _max_dense:
        raise _TooLarge(f"images {shape} (C, H, W) and {num_classes} classes make the classifier "
                        f"Dense({flat} -> {num_classes}), {flat * num_classes:,} weights, more than the "
                        f"{_max_dense:,} values the checkpoint holds in all")
    return Sequential(*layers, Flatten(), Dense(flat, int(num_classes), bias=False, rng=rng), input_shape=shape)


MODELS = {
    "lenet": ModelEntry(lenet, "two conv stages (32, 64), one dense layer",
                        Recipe(optimizer="adam", lr=2e-3, schedule="onecycle", epochs=3, batch_size=64)),
    "seed-keras": ModelEntry(seed_keras, "the seed article's Keras CNN (32, 64, 128 filters, no padding)",
                             Recipe(optimizer="adam", lr=2e-3, schedule="onecycle", epochs=20, batch_size=64)),
    "vgg-bn": ModelEntry(vgg_bn, "VGG-style with batch norm and dropout, for CIFAR-10",
                         Recipe(optimizer="sgd", lr=0.1, schedule="onecycle", epochs=8, batch_size=128,
                                weight_decay=5e-4)),
    # recipe: the usual short-schedule CIFAR settings, not tuned or measured on tinycnn yet
    "resnet20": ModelEntry(resnet20, "He et al.'s CIFAR ResNet-20 (basic blocks 16/32/64, global average pooling)",
                           Recipe(optimizer="sgd", lr=0.1, schedule="onecycle", epochs=30, batch_size=128,
                                  weight_decay=5e-4)),
    # recipe: the usual short-schedule CIFAR settings, not tuned or measured on tinycnn yet
    "mobilenet": ModelEntry(mobilenet, "MobileNet-style: depthwise-separable blocks 64..512, global average pooling",
                            Recipe(optimizer="sgd", lr=0.1, schedule="onecycle", epochs=30, batch_size=128,
                                   weight_decay=5e-4)),
    # recipe: tinycnn.speedrun's (its own optimizer, schedule and initialisation; lr and weight decay in
    # torch's SGD terms for the mean loss at batch 512, see tinycnn.speedrun)
    "airbench": ModelEntry(airbench, "fast CIFAR-10 network (whitening conv, 3 blocks 64/256/256, GELU)",
                           Recipe(optimizer="sgd", lr=0.75, schedule="triangle", epochs=8, batch_size=512,
                                  weight_decay=0.0153 / 11.5, name="speedrun")),
}


def names() -> list[str]:
    return list(MODELS)


def _entry(name: str, owner: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"{owner}: unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str, input_shape: Shape, num_classes: int, rng: np.random.Generator, **options: float) -> Sequential:
    """The zoo network ``name`` for per-sample ``input_shape`` (C, H, W) and ``num_classes`` classes."""
    return _entry(name, "zoo.build").builder(input_shape, num_classes, rng, **options)


# -- the checkpoint record --------------------------------------------------------------------------

def describe(name: str, input_shape: Shape, num_classes: int, **options: float) -> dict:
    """The JSON-able record of a zoo network, for a checkpoint's ``extra["model"]``."""
    _entry(name, "zoo.describe")
    return {"format": RECORD_FORMAT, "name": name, "input_shape": [int(d) for d in input_shape],
            "num_classes": int(num_classes), "options": dict(options)}


LIMITS = {"channels": 4096, "side": 16384, "num_classes": 100_000, "width": 1024}   # of a record


def _record_fail(where: str, path, field: str, problem: str) -> NoReturn:
    if path is not None:
        raise CheckpointError(path, f"extra.model.{field}" if field else "extra.model", problem)
    raise ValueError(f"{where}: {problem}")


def check_record(record: object, *, where: str = "zoo.check_record", path: PathLike | None = None) -> dict:
    """The record ``describe`` writes, every field checked (types and ``LIMITS``); returns it with
    ``options`` filled in. Raises CheckpointError naming ``path`` and the field when ``path`` is given
    (the record came from that checkpoint), else ValueError."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        _record_fail(where, path, "", "this checkpoint was not written by `tinycnn train` (no model-zoo "
                     "record in its extra data), so the network to rebuild is unknown; load it in Python into "
                     "the Sequential it was saved from, with tinycnn.load_checkpoint(path, model)")
    name = record.get("name")
    if not isinstance(name, str) or name not in MODELS:
        _record_fail(where, path, "name", f"unknown model {str(name)[:60]!r}; known: {', '.join(MODELS)}")
    shape = record.get("input_shape")
    c_max, side = LIMITS["channels"], LIMITS["side"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            and 1 <= shape[0] <= c_max and 1 <= shape[1] <= side and 1 <= shape[2] <= side):
        _record_fail(where, path, "input_shape", f"must be [C, H, W], integers with 1 <= C <= {c_max} and "
                     f"1 <= H, W <= {side}, got {str(shape)[:80]}")
    k = record.get("num_classes")
    if not (isinstance(k, int) and not isinstance(k, bool) and 2 <= k <= LIMITS["num_classes"]):
        _record_fail(where, path, "num_classes", f"must be an integer in [2, {LIMITS['num_classes']}], "
                     f"got {str(k)[:60]}")
    options = record.get("options", {})
    allowed = {"vgg-bn": {"width", "dropout"}, "airbench": {"widths"}}.get(name, set())
    if not isinstance(options, dict) or set(options) - allowed:
        _record_fail(where, path, "options", f"a {name} network takes the options {sorted(allowed)}, got "
                     f"{str(options)[:80]}")
    width = options.get("width", 32)
    if "width" in options and not (isinstance(width, int) and not isinstance(width, bool)
                                   and 1 <= width <= LIMITS["width"]):
        _record_fail(where, path, "options.width",
                     f"must be an integer in [1, {LIMITS['width']}], got {str(width)[:40]}")
    widths = options.get("widths")
    if "widths" in options and not (isinstance(widths, list) and len(widths) == 3
                                    and all(isinstance(w, int) and not isinstance(w, bool)
                                            and 1 <= w <= LIMITS["width"] for w in widths)):
        _record_fail(where, path, "options.widths",
                     f"must be a list of 3 integers in [1, {LIMITS['width']}], got {str(widths)[:60]}")
    dropout = options.get("dropout", 0.25)
    if "dropout" in options and not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
                                     and 0 <= dropout < 1):
        _record_fail(where, path, "options.dropout", f"must be a number in [0, 1), got {str(dropout)[:40]}")
    return {**record, "options": dict(options)}


def _check_against_weights(record: dict, weights: dict, where: str, path) -> int:
    """Compare a checked record with the checkpoint's weight shapes (``{key: shape}`` from the .npy
    headers) before building anything; return how many values the weights hold in all."""
    first = weights.get("0.weight")
    c = record["input_shape"][0]
    if first is None or len(first) != 4:
        _record_fail(where, path, "name", f"the record names a {record['name']} network, whose first layer is a "
                     f"convolution, but the checkpoint has no 4-D weight 0.weight (it has {shape_text(first)})")
    if first[1] != c:
        _record_fail(where, path, "input_shape", f"says {c} channel(s), but the first convolution's weights "
                     f"0.weight {tuple(first)} take {first[1]}")
    second = weights.get("2.weight")
    widths = record["options"].get("widths")
    if record["name"] == "airbench" and widths is not None and (second is None or second[0] != widths[0]):
        _record_fail(where, path, "options.widths", f"is {widths}, but the first 3x3 convolution's weights "
                     f"2.weight ({shape_text(second)}) do not have {widths[0]} filters")
    if record["name"] == "vgg-bn" and first[0] != record["options"].get("width", 32):
        _record_fail(where, path, "options.width", f"is {record['options'].get('width', 32)}, but the first "
                     f"convolution's weights 0.weight {tuple(first)} have {first[0]} filters")
    return sum(math.prod(shape) for shape in weights.values())


def shape_text(shape: Shape | None) -> str:
    return "none" if shape is None else f"shape {tuple(shape)}"


def from_record(record: object, rng: np.random.Generator, *, where: str = "zoo.from_record",
                path: PathLike | None = None, weights: dict | None = None) -> Sequential:
    """Rebuild the network a ``describe`` record names (fresh weights drawn from ``rng``).

    ``weights`` (``{key: shape}`` of the checkpoint's ``model/`` members, from
    ``checkpoint.model_shapes``): the record is first checked against them, so that a tampered record
    cannot make this allocate more than the checkpoint itself holds (its channels and width must match
    the first convolution's weights, its classifier may not exceed all the weights together)."""
    record = check_record(record, where=where, path=path)
    entry = MODELS[record["name"]]
    max_dense = None if weights is None else _check_against_weights(record, weights, where, path)
    try:
        return entry.builder(tuple(record["input_shape"]), record["num_classes"], rng, **record["options"],
                             _max_dense=max_dense)
    except _TooLarge as err:
        _record_fail(where, path, "input_shape", str(err))
    except (KeyError, TypeError, ValueError) as err:
        _record_fail(where, path, "", f"the checkpoint's model record {str(record)[:200]} does not build a "
                     f"{record['name']!r} network: {err}")


def load_model(path: PathLike) -> tuple[Sequential, dict]:
    """Rebuild the zoo network a ``tinycnn train`` checkpoint names and load its weights.

    Returns (model in eval mode, the checkpoint's metadata as ``load_checkpoint`` returns it). Raises
    CheckpointError (a ValueError) naming the file and the problem: no zoo record, an unknown model
    name, a record that does not match the weights' shapes (checked on the .npy headers before the
    network is built), or weights that do not fit the named network (keys and shapes that differ).
    """
    where = f"zoo.load_model({str(path)!r})"
    meta = read_meta(path)
    extra = meta.get("extra")
    record = extra.get("model") if isinstance(extra, dict) else None
    model = from_record(record, np.random.default_rng(0), where=where, path=path, weights=model_shapes(path))
    try:
        info = load_checkpoint(path, model)
    except CheckpointError as err:
        if err.field != "model":
            raise
        raise CheckpointError(path, "model", f"the checkpoint says it holds a {record['name']!r} network "
                              f"{record['input_shape']} -> {record['num_classes']} classes, but its weights "
                              f"do not fit that network: {err.problem}") from None
    return model.eval(), info
