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

Each entry also carries the training recipe it was tuned with (``MODELS[name].recipe``: optimizer,
learning rate, schedule, epochs, batch size, weight decay); ``tinycnn train`` uses it for every option
not given on its command line.

Checkpoints: ``describe(name, input_shape, num_classes, **options)`` is the JSON-able record saved in a
checkpoint's ``extra["model"]``; ``from_record(record, rng)`` rebuilds the same architecture, and
``load_model(path)`` does both and loads the weights, with a clear error for a checkpoint that holds
no zoo record, an unknown name, or weights that do not fit the named network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .checkpoint import load_checkpoint, read_checkpoint
from .layers import AdaptiveAvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Residual
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


def _classifier(name: str, features: list, input_shape: tuple, num_classes: int, rng, head=()) -> Sequential:
    """features + [Flatten, *head, Dense(flat -> K)], built (shape-checked) for input_shape."""
    flat = math.prod(_features_out(name, features, input_shape))
    return Sequential(*features, Flatten(), *head, Dense(flat, num_classes, rng=rng), input_shape=input_shape)


# -- the networks -----------------------------------------------------------------------------------

def lenet(input_shape, num_classes, rng) -> Sequential:
    """Two padded 3x3 conv stages (32, 64 filters) with max-pooling, then one dense layer.

    (C, H, W) -> Conv 32 (C', H, W) -> pool (32, H/2, W/2) -> Conv 64 -> pool (64, H/4, W/4)
    -> Flatten (64*(H//4)*(W//4),) -> Dense (K,).
    """
    c, h, w = shape = _check_args("lenet", input_shape, num_classes, rng)
    features = [Conv2D(c, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(32, 64, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2)]
    return _classifier("lenet", features, shape, int(num_classes), rng)


def seed_keras(input_shape, num_classes, rng) -> Sequential:
    """The seed's Keras CNN: three unpadded 3x3 conv stages (32, 64, 128) with max-pooling, one dense.

    3x32x32: 30 -> 15 -> 13 -> 6 -> 4 -> 2, Flatten 128*2*2 = 512, Dense(512 -> K).
    1x28x28: 26 -> 13 -> 11 -> 5 -> 3 -> 1, Flatten 128, Dense(128 -> K).
    """
    c, h, w = shape = _check_args("seed_keras", input_shape, num_classes, rng)
    features = [Conv2D(c, 32, 3, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2),
                Conv2D(64, 128, 3, rng=rng), ReLU(), MaxPool2D(2)]
    return _classifier("seed_keras", features, shape, int(num_classes), rng)


def vgg_bn(input_shape, num_classes, rng, width: int = 32, dropout: float = 0.25) -> Sequential:
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
    return _classifier("vgg_bn", features, shape, int(num_classes), rng, head=head)


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


def resnet20(input_shape, num_classes, rng, width: int = 16) -> Sequential:
    """He et al.'s CIFAR ResNet-20 ("Deep Residual Learning for Image Recognition", 2016, section 4.2):
    6n + 2 = 20 layers with n = 3, widths w, 2w, 4w (w = ``width``, 16 by default)::

        Conv 3x3 (C -> w), BN, ReLU                              (w, H, W)
        stage 1: 3 basic blocks, w channels                      (w, H, W)
        stage 2: 3 basic blocks, 2w, the first with stride 2     (2w, H/2, W/2)
        stage 3: 3 basic blocks, 4w, the first with stride 2     (4w, H/4, W/4)
        AdaptiveAvgPool2D(1), Flatten, Dense(4w -> K)

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
}


def names() -> list[str]:
    return list(MODELS)


def _entry(name: str, owner: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"{owner}: unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str, input_shape, num_classes: int, rng: np.random.Generator, **options) -> Sequential:
    """The zoo network ``name`` for per-sample ``input_shape`` (C, H, W) and ``num_classes`` classes."""
    return _entry(name, "zoo.build").builder(input_shape, num_classes, rng, **options)


# -- the checkpoint record --------------------------------------------------------------------------

def describe(name: str, input_shape, num_classes: int, **options) -> dict:
    """The JSON-able record of a zoo network, for a checkpoint's ``extra["model"]``."""
    _entry(name, "zoo.describe")
    return {"format": RECORD_FORMAT, "name": name, "input_shape": [int(d) for d in input_shape],
            "num_classes": int(num_classes), "options": dict(options)}


def from_record(record, rng: np.random.Generator, *, where: str = "zoo.from_record") -> Sequential:
    """Rebuild the network a ``describe`` record names (fresh weights drawn from ``rng``)."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{where}: this checkpoint was not written by `tinycnn train` (no model-zoo record "
                         f"in its extra data), so the network to rebuild is unknown; load it in Python into "
                         f"the Sequential it was saved from, with tinycnn.load_checkpoint(path, model)")
    name = record.get("name")
    entry = _entry(name, where)
    try:
        return entry.builder(tuple(record["input_shape"]), record["num_classes"], rng, **record.get("options", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: the checkpoint's model record {record} does not build a {name!r} "
                         f"network: {err}") from err


def load_model(path) -> tuple[Sequential, dict]:
    """Rebuild the zoo network a ``tinycnn train`` checkpoint names and load its weights.

    Returns (model in eval mode, the checkpoint's metadata as ``load_checkpoint`` returns it). Raises
    ValueError naming the problem for a checkpoint without a zoo record, with an unknown model name,
    or whose weights do not fit the named network (keys and shapes that differ).
    """
    where = f"zoo.load_model({str(path)!r})"
    meta = read_checkpoint(path)["meta"]
    extra = meta.get("extra")
    record = extra.get("model") if isinstance(extra, dict) else None
    model = from_record(record, np.random.default_rng(0), where=where)
    try:
        info = load_checkpoint(path, model)
    except ValueError as err:
        raise ValueError(f"{where}: the checkpoint says it holds a {record['name']!r} network "
                         f"{record['input_shape']} -> {record['num_classes']} classes, but its weights "
                         f"do not fit that network: {err}") from err
    return model.eval(), info
