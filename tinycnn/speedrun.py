"""The CIFAR-10 speedrun recipe: the airbench techniques as one training set-up for ``zoo.airbench``.

The techniques (Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024, and the
work it builds on: David Page's "How to train your ResNet", tysam-code's hlb-cifar10), each a
feature of tinycnn this module only combines:

``whitening``        the first convolution's 2x2 filters are the eigenvectors of the training images'
                     patch second moment, scaled by 1 / sqrt(eigenvalue + eps), and their negatives
                     (``tinycnn.init.patch_whitening_``), frozen. Its bias trains for the first
                     ``whiten_bias_epochs`` epochs, then is frozen too (``FreezeAfter``).
``identity-init``    every 3x3 convolution's first in_channels filters start as the identity
                     (``tinycnn.init.partial_identity_``): each block starts close to passing its input on.
``frozen-bn-scale``  batch norm's scale stays 1 (``requires_grad`` False); only its shift trains.
``bias-lr``          the batch-norm shifts train with a 64 times larger learning rate (and 64 times
                     smaller weight decay): an optimizer parameter group.
``label-smoothing``  cross-entropy against 0.8 * one-hot + 0.2 / K (``SoftmaxCrossEntropy``).
``lookahead``        every 5 steps the weights move to slow + alpha * (fast - slow) and continue from there
                     (``tinycnn.Lookahead``), with alpha falling from 1 towards 0.23 over the run
                     (airbench's schedule, decay = 0.95^5 * (t / T)^3, alpha = 1 - decay); the final weights
                     are the slow ones.
The data side is set by the command line's options, which the recipe defaults: the alternating
(derandomised) flip, translation by up to 2 pixels with reflection padding, and test-time
augmentation over the flip and 1-pixel translations (``tinycnn.tta``).

The optimizer is torch-style SGD (Nesterov momentum 0.85) on the mean loss. airbench writes its
rates for the summed loss at batch 1024 (lr 11.5 and weight decay 0.0153 per 1024 examples, divided by
1024 * (1 + 1 / (1 - momentum))); the same steps in torch's mean-loss terms are
lr = 11.5 * B / (1024 * (1 + 1 / (1 - 0.85))) (0.75 at B = 512) and coupled weight decay
0.0153 / 11.5 = 1.33e-3 at every batch size. The rate follows a triangle over the steps: 0.2 of the
peak at the start, the peak at 23 % of the run, 0.07 at the end (``PiecewiseLinearLR``).

The network's last layer computes s * W h with s = 1/9 in airbench. Training W' = s W instead, with
learning rate lr s^2 and weight decay wd / s^2, takes exactly the same steps (the SGD update of W
moves the output by lr s^2 g h^T h; momentum, Nesterov and the coupled decay are linear in the
same way), so the recipe scales the Dense layer's initial weights by s and gives it that parameter
group instead of adding a layer.

``--without NAME`` (``Speedrun.without``) removes a technique for the ablation: whitening keeps the
first convolution at tinycnn's default initialisation (and trains it), identity-init keeps the
default initialisation, frozen-bn-scale trains the scale, bias-lr gives the shifts the common
rate, label-smoothing uses the plain cross-entropy, lookahead steps SGD alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import init
from .callbacks import Callback
from .layers import BatchNorm2D, Conv2D, Dense
from .lookahead import Lookahead
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optim import SGD
from .schedules import PiecewiseLinearLR

TECHNIQUES = ("whitening", "identity-init", "frozen-bn-scale", "bias-lr", "label-smoothing", "lookahead")

# The data side of the recipe: defaults of ``tinycnn train``'s options under --recipe speedrun.
DATA_DEFAULTS = {"augment": "crop-flip", "flip": "alternate", "pad_mode": "reflect", "crop_pad": 2,
                 "tta": "flip-translate", "val_split": 0.0}


def airbench_lr(batch_size: int, momentum: float = 0.85) -> float:
    """airbench's learning rate (11.5 per 1024 examples of the summed loss) as torch's mean-loss rate."""
    return 11.5 * batch_size / (1024 * (1 + 1 / (1 - momentum)))


@dataclass(frozen=True)
class Speedrun:
    """The recipe's constants (airbench94's), and the techniques removed (``without``)."""
    momentum: float = 0.85
    bias_lr_scale: float = 64.0
    label_smoothing: float = 0.2
    head_scale: float = 1 / 9
    whiten_eps: float = 5e-4
    whiten_images: int = 5000
    whiten_bias_epochs: int = 3
    lookahead_k: int = 5
    triangle: tuple = (0.2, 0.23, 0.07)          # start factor, peak position (fraction of steps), end factor
    without: frozenset = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.without) - set(TECHNIQUES))
        if unknown:
            raise ValueError(f"speedrun: unknown technique(s) {', '.join(unknown)}; the recipe's techniques are "
                             f"{', '.join(TECHNIQUES)}")

    def uses(self, technique: str) -> bool:
        return technique not in self.without


def _parts(model: Sequential) -> tuple[Conv2D, list[Conv2D], list[BatchNorm2D], Dense]:
    layers = list(model.layers)
    if not (layers and isinstance(layers[0], Conv2D) and isinstance(layers[-1], Dense)):
        raise TypeError(f"speedrun: expected a zoo.airbench network (a whitening Conv2D first, a Dense last), "
                        f"got {[type(x).__name__ for x in layers]}")
    convs = [x for x in layers[1:] if isinstance(x, Conv2D)]
    norms = [x for x in layers if isinstance(x, BatchNorm2D)]
    return layers[0], convs, norms, layers[-1]


def prepare(model: Sequential, images: np.ndarray, rng: np.random.Generator, recipe: Speedrun) -> None:
    """Initialise a fresh ``zoo.airbench`` network for the recipe, in place.

    images: (N, C, H, W) float training images, normalised as the network sees them (the whitening
    sample is drawn from them with ``rng``)."""
    whiten, convs, norms, head = _parts(model)
    if recipe.uses("whitening"):
        init.patch_whitening_(whiten, images, rng, num_images=recipe.whiten_images, eps=recipe.whiten_eps)
    else:
        whiten.weight.requires_grad = True
    if recipe.uses("identity-init"):
        for conv in convs:
            init.partial_identity_(conv)
    freeze_scale = not recipe.uses("frozen-bn-scale")
    for bn in norms:
        bn.weight.requires_grad = freeze_scale
    head.weight.data *= head.weight.data.dtype.type(recipe.head_scale)


def loss(recipe: Speedrun) -> SoftmaxCrossEntropy:
    return SoftmaxCrossEntropy(label_smoothing=recipe.label_smoothing if recipe.uses("label-smoothing") else 0.0)


def param_groups(model: Sequential, lr: float, weight_decay: float, recipe: Speedrun) -> list[dict]:
    """SGD parameter groups: batch-norm shifts (rate x 64), the classifier (the head scale folded in,
    module docstring), everything else. Frozen parameters stay in their group (the optimizer skips them)."""
    _, _, norms, head = _parts(model)
    shifts = [bn.bias for bn in norms]
    special = {id(p) for p in shifts} | {id(head.weight)}
    rest = [p for p in model.parameters() if id(p) not in special]
    b = recipe.bias_lr_scale if recipe.uses("bias-lr") else 1.0
    s2 = recipe.head_scale ** 2
    return [{"params": shifts, "lr": lr * b, "weight_decay": weight_decay / b},
            {"params": [head.weight], "lr": lr * s2, "weight_decay": weight_decay / s2},
            {"params": rest, "lr": lr, "weight_decay": weight_decay}]


class LookaheadSchedule(Callback):
    """Sets ``Lookahead.alpha`` before every step (1 - 0.95^k (t / T)^3, t the step, T the run's steps)
    and makes the slow weights the model's at the end of training."""

    def __init__(self, lookahead: Lookahead, total_steps: int) -> None:
        self.lookahead, self.total_steps = lookahead, int(total_steps)

    def on_train_batch_begin(self, step: int, logs: dict | None = None) -> None:
        t = min(self.lookahead.lookahead_step + 1, self.total_steps) / self.total_steps
        self.lookahead.alpha = 1.0 - 0.95 ** self.lookahead.k * t ** 3

    def on_train_end(self, logs: dict | None = None) -> None:
        for p, slow in zip(self.lookahead.params, self.lookahead.slow_weights):
            if slow is not None and p.requires_grad:
                p.data[...] = slow


class FreezeAfter(Callback):
    """Freezes ``params`` (``requires_grad`` False) from epoch ``epochs`` on (0-based epochs)."""

    def __init__(self, params: list, epochs: int) -> None:
        self.to_freeze, self.epochs = list(params), int(epochs)    # (Callback.params is fit's settings dict)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch >= self.epochs:
            for p in self.to_freeze:
                p.requires_grad = False


@dataclass
class Training:
    """What ``setup`` returns: the optimizer ``fit`` steps, the schedule and the callbacks."""
    optimizer: object
    schedule: PiecewiseLinearLR
    callbacks: list
    loss: SoftmaxCrossEntropy


def setup(model: Sequential, recipe: Speedrun, *, lr: float, weight_decay: float, total_steps: int) -> Training:
    """Optimizer (SGD with the parameter groups, in Lookahead unless removed), the triangular
    schedule (stepped per batch: ``LearningRateScheduler(schedule, per="batch")``) and the callbacks."""
    sgd = SGD(param_groups(model, lr, weight_decay, recipe), lr=lr, momentum=recipe.momentum, nesterov=True)
    callbacks: list = []
    optimizer: object = sgd
    if recipe.uses("lookahead"):
        optimizer = Lookahead(sgd, k=recipe.lookahead_k, alpha=1.0)
        callbacks.append(LookaheadSchedule(optimizer, total_steps))
    start, peak, end = recipe.triangle
    schedule = PiecewiseLinearLR(optimizer, milestones=[0, peak * total_steps, total_steps],
                                 factors=[start, 1.0, end])
    whiten = model.layers[0]
    if recipe.uses("whitening") and whiten.bias is not None:
        callbacks.append(FreezeAfter([whiten.bias], recipe.whiten_bias_epochs))
    return Training(optimizer, schedule, callbacks, loss(recipe))
