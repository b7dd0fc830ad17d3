"""The settings of one ``tinycnn train`` run, and where each comes from.

A fresh run: each option given on the command line wins; otherwise the model's recipe
(``tinycnn.zoo.MODELS[name].recipe``: optimizer, lr, schedule, epochs, batch size, weight decay);
otherwise the defaults below. A resumed run (``--resume CHECKPOINT``) continues the saved run with the
saved settings: an option given on the command line that differs from the saved value is an error
(it would silently change the run), except ``--epochs`` with the constant schedule (a cosine or
one-cycle schedule is laid out over the saved number of epochs).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields

from .. import data, speedrun, zoo
from ..data.augment import PADDING_MODES
from ..tta import TTA_LEVELS

DEFAULTS = {"dataset": "embedded", "model": "lenet", "augment": "auto", "seed": 0, "val_split": 0.1,
            "subset": None, "image_size": None, "color": None, "flip": "random", "pad_mode": "zeros",
            "crop_pad": None, "tta": "none", "recipe": "standard", "without": [], "widths": None}
SCHEDULES = ("constant", "cosine", "onecycle", "triangle")
RECIPES = ("standard", "speedrun")
AUGMENT = ("auto", "none", "crop", "crop-flip", "flip")
FLIP_MODES = ("random", "alternate")
OPTIMIZERS = ("sgd", "adam")
COLORS = {"L": "L", "GREY": "L", "GRAY": "L", "RGB": "RGB"}
# How the command line spells the keyword arguments that fix a data error (DataError.fixes).
CLI_FIXES = {"mode": "add --color RGB (or --color L)", "size": "add --image-size H,W (or --image-size 32 for 32x32)",
             "verify": "the command line always checks the SHA-256: replace the file with the original, or "
                       "load it from Python with tinycnn.data.load(..., verify=False)"}
# Fewer optimizer steps than this in a whole run may leave a network near chance: warn.
MIN_STEPS = 50


def parse_image_size(text: str) -> list:
    """``--image-size``: "32" (square), "32,48" or "32x48" (H, W) -> [H, W]."""
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W or one number for a square (e.g. 32 or 64,48), got {text!r}")
    return parts


def parse_color(text: str) -> str:
    """``--color``: L (grey; also grey / gray) or RGB, any case -> "L" or "RGB"."""
    try:
        return COLORS[text.upper()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected L (grey) or RGB, got {text!r}") from None


class ConfigError(ValueError):
    """Options that cannot work together, or that contradict the checkpoint being resumed."""


@dataclass
class Config:
    dataset: str
    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    schedule: str
    weight_decay: float
    augment: str
    seed: int
    val_split: float
    subset: int | None          # train on this many random training images (and test on at most as many)
    image_size: list | None     # [H, W] to resize a folder's images to
    color: str | None = None    # "L" or "RGB" to convert a folder's images to
    flip: str = "random"        # how a flipping augmentation mirrors: "random" or "alternate"
    pad_mode: str = "zeros"     # the border a random crop shifts in: "zeros", "reflect", "replicate"
    crop_pad: int | None = None  # the random crop's largest shift in pixels (None: 4 on 32+ pixels, else 2)
    tta: str = "none"           # test-time augmentation of the final test evaluation
    recipe: str = "standard"    # "standard" (optimizer/schedule above) or "speedrun" (tinycnn.speedrun)
    without: list = field(default_factory=list)   # speedrun techniques removed (the ablation)
    widths: list | None = None  # airbench's three block widths (None: the network's default)

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "Config":
        """Raise ConfigError naming any value out of range."""
        bad = []
        if self.epochs < 1:
            bad.append(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            bad.append(f"--batch-size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            bad.append(f"--lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            bad.append(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.val_split < 1.0:
            bad.append(f"--val-split must lie in [0, 1), got {self.val_split}")
        if self.seed < 0:
            bad.append(f"--seed must be >= 0, got {self.seed}")
        if self.subset is not None and self.subset < 2:
            bad.append(f"--subset must be >= 2 images, got {self.subset}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            bad.append(f"--image-size must be H,W with H, W >= 1, got {self.image_size}")
        if self.image_size is not None and not self.dataset.startswith("folder:"):
            bad.append("--image-size applies only to --dataset folder:PATH")
        if self.color is not None and self.color not in ("L", "RGB"):
            bad.append(f"--color must be L or RGB, got {self.color!r}")
        if self.color is not None and not self.dataset.startswith("folder:"):
            bad.append("--color applies only to --dataset folder:PATH")
        for name, value, allowed in (("--optimizer", self.optimizer, OPTIMIZERS),
                                     ("--schedule", self.schedule, SCHEDULES),
                                     ("--augment", self.augment, AUGMENT),
                                     ("--flip", self.flip, FLIP_MODES),
                                     ("--pad-mode", self.pad_mode, PADDING_MODES),
                                     ("--tta", self.tta, TTA_LEVELS),
                                     ("--recipe", self.recipe, RECIPES),
                                     ("--model", self.model, tuple(zoo.names()))):
            if value not in allowed:
                bad.append(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.recipe == "speedrun" and self.model != "airbench":
            bad.append(f"--recipe speedrun trains --model airbench (its whitening layer, blocks and classifier), "
                       f"got --model {self.model}")
        if (self.schedule == "triangle") != (self.recipe == "speedrun"):
            bad.append(f"--schedule triangle is the speedrun recipe's own schedule (and the only one it uses), got "
                       f"--schedule {self.schedule} with --recipe {self.recipe}")
        if self.recipe == "speedrun" and self.optimizer != "sgd":
            bad.append(f"--recipe speedrun uses SGD (Nesterov momentum 0.85), got --optimizer {self.optimizer}")
        unknown = [t for t in self.without if t not in speedrun.TECHNIQUES]
        if unknown:
            bad.append(f"--without: unknown technique(s) {', '.join(unknown)}; the speedrun recipe's are "
                       f"{', '.join(speedrun.TECHNIQUES)}")
        if self.widths is not None and (self.model != "airbench" or len(self.widths) != 3 or min(self.widths) < 1):
            bad.append(f"--widths takes three positive block widths of --model airbench, got {self.widths} for "
                       f"--model {self.model}")
        if self.without and self.recipe != "speedrun":
            bad.append("--without removes techniques of --recipe speedrun")
        if self.crop_pad is not None and self.crop_pad < 0:
            bad.append(f"--crop-pad must be >= 0 pixels, got {self.crop_pad}")
        if self.flip == "alternate" and self.augment in ("none", "crop"):
            bad.append(f"--flip alternate needs an augmentation that flips (--augment crop-flip, flip or auto), "
                       f"got --augment {self.augment}")
        if self.augment in ("none", "flip"):
            if self.pad_mode != "zeros":
                bad.append(f"--pad-mode {self.pad_mode} applies to the random crop, but --augment {self.augment} "
                           f"does not crop")
            if self.crop_pad is not None:
                bad.append(f"--crop-pad {self.crop_pad} applies to the random crop, but --augment {self.augment} "
                           f"does not crop")
        if bad:
            raise ConfigError("; ".join(bad))
        return self


def _given(args) -> dict:
    """The Config fields given on the command line (argparse leaves the others None)."""
    given = {f.name: getattr(args, f.name, None) for f in fields(Config)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items() if v is not None}


def fresh(args) -> Config:
    """Settings for a new run: command line, then the model's recipe, then DEFAULTS."""
    given = _given(args)
    model = given.get("model", DEFAULTS["model"])
    if model not in zoo.MODELS:
        raise ConfigError(f"--model must be one of {', '.join(zoo.names())}, got {model!r}")
    recipe = asdict(zoo.MODELS[model].recipe)
    recipe["recipe"] = recipe.pop("name")
    name = given.get("recipe", recipe["recipe"])
    if name == "speedrun":                      # the recipe's data side (tinycnn.speedrun.DATA_DEFAULTS)
        recipe.update(speedrun.DATA_DEFAULTS)
    values = {**DEFAULTS, **recipe, **given, "model": model}
    return Config(**{f.name: values[f.name] for f in fields(Config)}).check()


def resumed(args, saved: dict, checkpoint_epoch: int) -> Config:
    """Settings for ``--resume``: the saved ones; command-line values must agree (see module doc)."""
    config = Config(**{f.name: saved.get(f.name, DEFAULTS.get(f.name)) for f in fields(Config)})
    conflicts, hint = [], ""
    for key, value in _given(args).items():
        if key == "epochs" and config.schedule == "constant":
            config.epochs = value
        elif value != getattr(config, key):
            conflicts.append(f"--{key.replace('_', '-')} {value} (the run used {getattr(config, key)})")
            if key == "epochs":
                hint = (" --epochs can change only with the constant schedule; this run's "
                        f"{config.schedule!r} schedule is laid out over {config.epochs} epochs.")
    if conflicts:
        raise ConfigError("--resume continues the saved run with its own settings, but "
                          "the command line asks for " + ", ".join(conflicts) + "." + hint)
    if checkpoint_epoch >= config.epochs:
        raise ConfigError(f"--resume: the checkpoint has finished all {checkpoint_epoch} "
                          f"of {config.epochs} epochs; nothing to train (use `tinycnn evaluate` to test it"
                          + (", or --epochs N > " + str(checkpoint_epoch) + " to train on" if
                             config.schedule == "constant" else "") + ")")
    return config.check()


def load_data(config: Config, data_dir, progress):
    """``data.load`` for the run's settings; a data error comes back in the command line's terms:
    the flag it is about (``--dataset``) and the flags that fix it (``CLI_FIXES``)."""
    options = {}
    if config.dataset.startswith("folder:"):
        options = {"seed": config.seed, "size": config.image_size, "mode": config.color}
    try:
        return data.load(config.dataset, data_dir=data_dir, progress=progress, **options)
    except data.DataError as err:
        raise in_cli_terms(err, config.dataset) from None


def in_cli_terms(err: data.DataError, dataset: str) -> data.DataError:
    """``err`` said for the command line: ``--dataset NAME: <fact>; <the flags that fix it>`` (``err``
    itself when it carries no ``fact``)."""
    if err.fact is None:
        return err
    advice = "".join(f"; {CLI_FIXES[k]}" + ("" if k == "verify" else f" {what}")
                     for k, what in err.fixes.items() if k in CLI_FIXES)
    return type(err)(f"--dataset {dataset}: {err.fact}{advice}", fact=err.fact, fixes=err.fixes)


def too_little_training(config: Config, n_train: int, steps_per_epoch: int, first_epoch: int = 0,
                        num_classes: int = 10) -> str | None:
    """A warning when a fresh run takes fewer than MIN_STEPS optimizer steps in all (None otherwise)."""
    steps = (config.epochs - first_epoch) * steps_per_epoch
    if steps >= MIN_STEPS or first_epoch > 0:
        return None
    epochs = math.ceil(MIN_STEPS / max(steps_per_epoch, 1))
    return (f"{n_train} training images in batches of {config.batch_size} for {config.epochs} epoch"
            f"{'s' if config.epochs != 1 else ''} make only {steps} optimizer step{'s' if steps != 1 else ''}, "
            f"too few for most datasets: the accuracy may stay near chance ({100 / num_classes:.0f} %). "
            f"Try --epochs {epochs} (about {MIN_STEPS} steps) or a smaller --batch-size, or add images")


def warn(text: str, file=None) -> None:
    """Print ``tinycnn train: warning: <text>`` to stderr, wrapped to the terminal's width (if any)."""
    import sys
    import textwrap

    from .._terminal import columns
    width, text = columns(), f"tinycnn train: warning: {text}"
    if width is not None:
        text = textwrap.fill(text, width=width, subsequent_indent="  ", break_on_hyphens=False,
                             break_long_words=False)
    print(text, file=file or sys.stderr)
