"""A finished ``tinycnn train`` run, loaded back from its checkpoint: the network with its weights, and
what prediction needs to treat new images exactly as training did.

    run = load_run("runs/20250101-120000/checkpoint.npz")
    run.model          Sequential (zoo network, eval mode, trained weights)
    run.image_shape    (C, H, W) the network takes
    run.classes        class names, run.classes[k] is label k
    run.normalizer     tinycnn.data.Normalizer with the training split's per-channel mean / std
    run.dataset        the dataset it was trained on ("embedded", "cifar10", "folder:...")
    run.config         the training settings (dict), run.epoch the epochs it finished
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import zoo
from ..data import Normalizer


@dataclass
class SavedRun:
    model: object
    image_shape: tuple
    classes: tuple
    normalizer: Normalizer
    dataset: str
    config: dict
    epoch: int | None


def load_run(path) -> SavedRun:
    """Rebuild the network a checkpoint names and load it; ValueError (naming the file and what is
    wrong) for a checkpoint not written by `tinycnn train` or whose weights do not fit its network."""
    model, info = zoo.load_model(path)
    extra = info["extra"]
    saved = extra.get("data") if isinstance(extra, dict) else None
    if not isinstance(saved, dict) or not {"classes", "image_shape", "normalization"} <= set(saved):
        raise ValueError(f"{path}: the checkpoint names a zoo network but not the data it was trained on "
                         f"(classes, image shape, normalisation); it was not written by `tinycnn train`")
    image_shape = tuple(int(d) for d in saved["image_shape"])
    if image_shape != tuple(extra["model"]["input_shape"]) or len(saved["classes"]) != extra["model"]["num_classes"]:
        raise ValueError(f"{path}: inconsistent checkpoint: its data record says images {image_shape} and "
                         f"{len(saved['classes'])} classes, its model record {extra['model']['input_shape']} "
                         f"and {extra['model']['num_classes']}")
    return SavedRun(model, image_shape, tuple(saved["classes"]), Normalizer.from_dict(saved["normalization"]),
                    saved.get("dataset", "?"), extra.get("config", {}), info.get("epoch"))
