"""A finished ``tinycnn train`` run, loaded back from its checkpoint: the network with its weights, and
what prediction needs to treat new images exactly as training did.

    run = load_run("runs/20250101-120000/checkpoint.npz")
    run.model          Sequential (zoo network, eval mode, trained weights)
    run.image_shape    (C, H, W) the network takes
    run.classes        class names, run.classes[k] is label k
    run.normalizer     tinycnn.data.Normalizer with the training split's per-channel mean / std
    run.dataset        the dataset it was trained on ("embedded", "cifar10", "folder:...")
    run.config         the training settings (dict), run.epoch the epochs it finished

The run record ``tinycnn train`` keeps in the checkpoint's ``extra`` (checked by ``check_run_meta``;
every problem is a ``CheckpointError`` naming the file and the field)::

    extra.model     the zoo record (tinycnn.zoo.check_record)
    extra.data      dataset (string), classes (num_classes strings), image_shape (= the model's
                    input_shape), normalization {"mean": C finite numbers, "std": C finite numbers > 0}
    extra.config    for --resume every field of _train_config.Config, each of its type and in range;
                    for evaluate / predict the ones they use (seed, image_size = the model's H, W)
    extra.history   {"loss": [...], ...}: lists of numbers, each at least ``epoch`` long
    extra.schedule  null for the constant schedule; else the state of the schedule the config names,
                    with the same fields (and JSON types) as one built from the config
    epoch           an integer >= 1
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .. import zoo
from ..checkpoint import CheckpointError
from ..data import Normalizer
from ..layers import Dense, Parameter
from ..optim import SGD, Adam
from ..schedules import CosineAnnealingLR, OneCycleLR, PiecewiseLinearLR
from ..speedrun import TECHNIQUES
from ..tta import TTA_LEVELS
from . import _train_config as cfg


@dataclass
class SavedRun:
    model: object
    image_shape: tuple
    classes: tuple
    normalizer: Normalizer
    dataset: str
    config: dict
    epoch: int | None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _number(v) and math.isfinite(v)


def _json_kind(v):
    """The JSON type structure of a value: lists by their elements' kinds."""
    if isinstance(v, bool):
        return "bool"
    if _number(v):
        return "number"
    if isinstance(v, list):
        return [_json_kind(x) for x in v]
    return type(v).__name__


def _check_data(path, data, model_record, *, need_normalization=True) -> None:
    def fail(field, problem):
        raise CheckpointError(path, f"extra.data.{field}" if field else "extra.data", problem)

    if not isinstance(data, dict) or not {"classes", "image_shape", "normalization"} <= set(data):
        fail("", "the checkpoint names a zoo network but not the data it was trained on (classes, image "
                 "shape, normalisation); it was not written by `tinycnn train`")
    if not isinstance(data.get("dataset", "?"), str):
        fail("dataset", f"must be a string, got {str(data.get('dataset'))[:60]}")
    classes = data["classes"]
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        fail("classes", "must be a list of class names (strings)")
    if len(classes) != model_record["num_classes"]:
        fail("classes", f"inconsistent checkpoint: its data record says {len(classes)} classes, its model record "
                        f"{model_record['num_classes']}")
    if data["image_shape"] != model_record["input_shape"]:
        fail("image_shape", f"inconsistent checkpoint: its data record says images {str(data['image_shape'])[:60]}, "
                            f"its model record {model_record['input_shape']}")
    norm = data["normalization"]
    c = model_record["input_shape"][0]
    if not (isinstance(norm, dict) and set(norm) >= {"mean", "std"}):
        fail("normalization", "must be {\"mean\": [...], \"std\": [...]}")
    for key in ("mean", "std"):
        values = norm[key]
        if not (isinstance(values, list) and len(values) == c and all(_finite(v) for v in values)):
            fail(f"normalization.{key}", f"must be {c} finite number(s), one per channel, got {str(values)[:80]}")
    if not all(v > 0 for v in norm["std"]):
        fail("normalization.std", f"must be > 0 in every channel, got {norm['std']}")


# Settings a run of an older tinycnn did not record, with the value that run used.
OPTIONAL_CONFIG = {"color": None, "flip": "random", "pad_mode": "zeros", "crop_pad": None, "tta": "none",
                   "recipe": "standard", "without": [], "widths": None}


def _check_config(path, config) -> None:
    if not isinstance(config, dict):
        raise CheckpointError(path, "extra.config", f"must be the run's settings (a JSON object), got "
                                                    f"{type(config).__name__}")
    names = [f.name for f in fields(cfg.Config)]
    config = {**OPTIONAL_CONFIG, **config}           # settings added later: a run written before has none
    missing = [n for n in names if n not in config]
    if missing:
        raise CheckpointError(path, f"extra.config.{missing[0]}", "missing")
    color = config["color"]
    if color not in (None, "L", "RGB"):
        raise CheckpointError(path, "extra.config.color", f"must be null, \"L\" or \"RGB\", got {str(color)[:40]!r}")
    kinds = {"dataset": str, "model": str, "optimizer": str, "schedule": str, "augment": str, "flip": str,
             "pad_mode": str, "tta": str,
             "epochs": int, "batch_size": int, "seed": int, "lr": float, "weight_decay": float, "val_split": float}
    for name, kind in kinds.items():
        v = config[name]
        ok = isinstance(v, str) if kind is str else (_number(v) and (kind is float or isinstance(v, int)))
        if not ok:
            raise CheckpointError(path, f"extra.config.{name}",
                                  f"must be "
                                  f"{'a string' if kind is str else 'an integer' if kind is int else 'a number'}, "
                                  f"got {str(v)[:60]!r}")
    if config["recipe"] not in cfg.RECIPES:
        raise CheckpointError(path, "extra.config.recipe", f"must be one of {', '.join(cfg.RECIPES)}, got "
                                                           f"{str(config['recipe'])[:40]!r}")
    without = config["without"]
    if not (isinstance(without, list) and all(isinstance(t, str) and t in TECHNIQUES for t in without)):
        raise CheckpointError(path, "extra.config.without", f"must be a list of the speedrun's techniques "
                                                            f"({', '.join(TECHNIQUES)}), got {str(without)[:60]}")
    widths = config["widths"]
    if widths is not None and not (isinstance(widths, list) and len(widths) == 3
                                   and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        raise CheckpointError(path, "extra.config.widths", f"must be null or three positive integers, got "
                                                           f"{str(widths)[:60]}")
    if config["subset"] is not None and not (isinstance(config["subset"], int)
                                             and not isinstance(config["subset"], bool)):
        raise CheckpointError(path, "extra.config.subset",
                              f"must be null or an integer, got {str(config['subset'])[:40]!r}")
    if config["crop_pad"] is not None and not (isinstance(config["crop_pad"], int)
                                               and not isinstance(config["crop_pad"], bool)):
        raise CheckpointError(path, "extra.config.crop_pad",
                              f"must be null or an integer, got {str(config['crop_pad'])[:40]!r}")
    size = config["image_size"]
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(isinstance(d, int) and not isinstance(d, bool) for d in size)):
        raise CheckpointError(path, "extra.config.image_size", f"must be null or [H, W], got {str(size)[:40]}")
    try:
        cfg.Config(**{n: config[n] for n in names}).check()
    except cfg.ConfigError as err:
        raise CheckpointError(path, "extra.config", f"settings out of range: {err}") from None


def _check_config_used(path, config) -> None:
    """The settings evaluating a run needs: ``seed`` (an integer >= 0) and ``image_size`` (null or
    [H, W]) where present; older runs may lack the rest."""
    if not isinstance(config, dict):
        raise CheckpointError(path, "extra.config", f"must be the run's settings (a JSON object), got "
                                                    f"{type(config).__name__}")
    seed = config.get("seed", 0)
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise CheckpointError(path, "extra.config.seed", f"must be an integer >= 0, got {str(seed)[:40]!r}")
    size = config.get("image_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(isinstance(d, int) and not isinstance(d, bool) for d in size)):
        raise CheckpointError(path, "extra.config.image_size", f"must be null or [H, W], got {str(size)[:40]}")
    if not isinstance(config.get("model", "?"), str):
        raise CheckpointError(path, "extra.config.model", f"must be a string, got {str(config.get('model'))[:40]!r}")
    tta = config.get("tta", "none")
    if not (isinstance(tta, str) and tta in TTA_LEVELS):
        raise CheckpointError(path, "extra.config.tta", f"must be one of {', '.join(TTA_LEVELS)}, got "
                                                        f"{str(tta)[:40]!r}")


def _template_schedule(config: dict, saved: dict):
    """A schedule like the one ``tinycnn train`` builds for ``config`` (its steps from ``saved``)."""
    p = Dense(1, 1, rng=np.random.default_rng(0)).parameters()
    opt = (SGD(p, lr=config["lr"], momentum=0.9, nesterov=True) if config["optimizer"] == "sgd"
           else Adam(p, lr=config["lr"]))
    if config["schedule"] == "cosine":
        return CosineAnnealingLR(opt, T_max=config["epochs"])
    if config["schedule"] == "triangle":      # the speedrun recipe's, over its three parameter groups
        groups = [{"params": [Parameter(np.zeros(1))]} for _ in range(3)]
        return PiecewiseLinearLR(SGD(groups, lr=config["lr"]), milestones=[0.0, 1.0, 2.0], factors=[0.2, 1.0, 0.07])
    steps = saved.get("total_steps")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 10**9):
        raise ValueError(f"total_steps must be an integer in [1, 1e9], got {str(steps)[:40]}")
    return OneCycleLR(opt, max_lr=config["lr"], total_steps=steps, pct_start=0.3)


def _check_schedule(path, config: dict, schedule) -> None:
    field = "extra.schedule"
    if config["schedule"] == "constant":
        if schedule is not None:
            raise CheckpointError(path, field, "must be null: the run's schedule is constant")
        return
    if not isinstance(schedule, dict):
        raise CheckpointError(path, field, f"must be the state of the run's {config['schedule']!r} schedule, got "
                                           f"{'null' if schedule is None else type(schedule).__name__}")
    try:
        template = _template_schedule(config, schedule).state_dict()
    except ValueError as err:
        raise CheckpointError(path, field, str(err)) from None
    if schedule.get("type") != template["type"]:
        raise CheckpointError(path, f"{field}.type", f"must be {template['type']!r} for the {config['schedule']!r} "
                                                     f"schedule, got {str(schedule.get('type'))[:40]!r}")
    # the per-group lists (base_lrs, ...) are absent from runs saved before parameter groups existed
    optional = {"base_lrs", "_last_lrs", "max_lrs", "initial_lrs", "min_lrs"}
    if set(schedule) != set(template) and not (set(schedule) <= set(template)
                                               and set(template) - set(schedule) <= optional):
        diff = sorted(set(schedule) ^ set(template))
        raise CheckpointError(path, f"{field}.{diff[0]}", "missing" if diff[0] in template else "not a field "
                              f"of {template['type']}")
    for key, value in schedule.items():
        if _json_kind(value) != _json_kind(template[key]):
            raise CheckpointError(path, f"{field}.{key}", f"has the wrong type: {str(value)[:60]}")
        flat = value if isinstance(value, list) else [value]
        flat = [x for v in flat for x in (v if isinstance(v, list) else [v])]
        if any(_number(x) and not math.isfinite(x) for x in flat):
            raise CheckpointError(path, f"{field}.{key}", f"must be finite, got {value}")
    if not 0 <= schedule["last_epoch"] <= 10**9 or schedule["last_epoch"] != int(schedule["last_epoch"]):
        raise CheckpointError(path, f"{field}.last_epoch", f"must be an integer >= 0, got {schedule['last_epoch']}")


def check_run_meta(path, meta: dict, *, resume: bool = False) -> dict:
    """Check the run record of a checkpoint written by ``tinycnn train`` (``meta`` as
    ``checkpoint.read_meta`` returns it; the module docstring lists the fields). ``resume``: also the
    fields ``--resume`` needs (config, history, schedule, epoch). Returns ``meta``; raises
    CheckpointError naming the file and the field."""
    extra = meta.get("extra")
    record = zoo.check_record(extra.get("model") if isinstance(extra, dict) else None,
                              where=f"checkpoint {path}", path=path)
    _check_data(path, extra.get("data"), record)
    if resume:
        _check_config(path, extra.get("config"))
    else:                                       # evaluate / predict use only the seed and the image size
        _check_config_used(path, extra.get("config", {}))
    size = extra.get("config", {}).get("image_size")
    if size is not None and size != record["input_shape"][1:]:
        raise CheckpointError(path, "extra.config.image_size", f"{size} differs from the network's input "
                                                               f"{record['input_shape'][1:]} (H, W)")
    if not resume:
        return meta
    epoch = meta.get("epoch")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 1):
        raise CheckpointError(path, "meta.epoch", f"must be an integer >= 1 (the epochs the run finished), got "
                                                  f"{str(epoch)[:40]}")
    history = extra.get("history")
    if not isinstance(history, dict) or not history:
        raise CheckpointError(path, "extra.history", "must be the run's per-epoch history, {\"loss\": [...], ...}")
    for key, values in history.items():
        if not (isinstance(values, list) and all(_number(v) for v in values)):
            raise CheckpointError(path, f"extra.history.{key}", "must be a list of numbers")
        if len(values) < epoch:
            raise CheckpointError(path, f"extra.history.{key}", f"holds {len(values)} value(s), fewer than the "
                                                                f"{epoch} epochs the checkpoint has finished")
    _check_schedule(path, extra["config"], extra.get("schedule"))
    return meta


def load_run(path) -> SavedRun:
    """Rebuild the network a checkpoint names and load it; CheckpointError (a ValueError naming the
    file and the field) for a checkpoint not written by `tinycnn train`, with a run record that does
    not check out (``check_run_meta``), or whose weights do not fit its network."""
    model, info = zoo.load_model(path)
    check_run_meta(path, info)
    extra = info["extra"]
    saved = extra["data"]
    return SavedRun(model, tuple(saved["image_shape"]), tuple(saved["classes"]),
                    Normalizer.from_dict(saved["normalization"]), saved.get("dataset", "?"),
                    extra.get("config", {}), info.get("epoch"))
