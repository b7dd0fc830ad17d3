"""The rows of the README's accuracy table: each is one ``tinycnn train`` command and its target.

``args`` are exactly what follows ``tinycnn train`` in the README (``{data}`` stands for the
``--data-dir`` folder; the embedded row needs none). Targets: the project's accuracy bars (the
speedrun rows: 90 % in 15 minutes, 93 % in 30).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    key: str                     # results.json key and command-line name
    title: str                   # the table's first column
    args: tuple                  # after `tinycnn train`; "{data}" is replaced by the data folder
    target: float                # test accuracy to reach
    budget_s: float | None       # time budget (seconds), or None
    budget_of: str = "wall"      # what the budget limits: "wall" (the whole command) or "train" (training only)
    note: str = ""
    table: str = "main"          # "main": the README's table; "ablation": the speedrun ablation's table


ROWS = (
    Row("embedded", "embedded default (MNIST subset, 15,000 train / 5,000 test), lenet", (),
        0.97, 120.0, "wall", "offline, no arguments: the newcomer's first command"),
    Row("mnist", "MNIST, lenet", ("--dataset", "mnist", "--data-dir", "{data}", "--model", "lenet",
                                  "--epochs", "12", "--augment", "crop"),
        0.992, None),
    Row("fashion_mnist", "Fashion-MNIST, vgg-bn", ("--dataset", "fashion_mnist", "--data-dir", "{data}",
                                                   "--model", "vgg-bn", "--epochs", "8"),
        0.91, None),
    Row("cifar10_seed_keras", "CIFAR-10, the seed's Keras CNN (seed-keras)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "seed-keras"),
        0.70, None, note="CIFAR-10 copy decoded from JPEG (lossy): expect 2-3 points below the originals"),
    Row("cifar10_vgg_bn", "CIFAR-10, vgg-bn (the stronger network)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "vgg-bn", "--val-split", "0.02"),
        0.80, 900.0, "train",
        note="CIFAR-10 copy decoded from JPEG (lossy): expect 2-3 points below the originals"),
    Row("cifar10_resnet20", "CIFAR-10, resnet20, 5 epochs (a short run of the 30-epoch recipe)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "resnet20", "--epochs", "5"),
        0.75, None, note="CIFAR-10 copy decoded from JPEG (lossy): expect 2-3 points below the originals"),
    Row("cifar10_mobilenet", "CIFAR-10, mobilenet, 3 epochs (a short run of the 30-epoch recipe)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "mobilenet", "--epochs", "3"),
        0.65, None, note="CIFAR-10 copy decoded from JPEG (lossy): expect 2-3 points below the originals"),
    Row("cifar10_speedrun", "CIFAR-10 speedrun, airbench 64/128/128, 4 epochs (15-minute budget)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "airbench", "--widths", "64,128,128",
         "--epochs", "4"),
        0.90, 900.0, "wall",
        note="the speedrun recipe (tinycnn.speedrun), test-time augmentation included in the wall time"),
    Row("cifar10_speedrun_aim", "CIFAR-10 speedrun, airbench 64/256/256, 5 epochs (30-minute budget)",
        ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "airbench", "--epochs", "5"),
        0.93, 1800.0, "wall",
        note="the speedrun recipe (tinycnn.speedrun), test-time augmentation included in the wall time"),
)


# The speedrun ablation: the recipe on a shorter budget (64/128/128, 2 epochs), the full recipe over
# three seeds (its spread says how large a difference must be to mean anything) and each technique of
# tinycnn.speedrun.TECHNIQUES removed in turn (seed 0). Run with `python -m benchmarks.accuracy --ablation`.
ABLATION_TECHNIQUES = ("whitening", "identity-init", "frozen-bn-scale", "bias-lr", "label-smoothing", "lookahead")
_ABLATION_ARGS = ("--dataset", "cifar10", "--data-dir", "{data}", "--model", "airbench", "--widths", "64,128,128",
                  "--epochs", "2")
_ABLATION_NOTE = "the speedrun ablation: the recipe on a 2-epoch budget, one technique removed per row"
ABLATION_ROWS = (
    *(Row(f"cifar10_speedrun_ablation_full_seed{s}", f"speedrun ablation (64/128/128, 2 epochs): full recipe, seed {s}",
          (*_ABLATION_ARGS, "--seed", str(s)), 0.0, None, note=_ABLATION_NOTE, table="ablation")
      for s in (0, 1, 2)),
    *(Row(f"cifar10_speedrun_ablation_without_{t.replace('-', '_')}",
          f"speedrun ablation (64/128/128, 2 epochs): without {t}",
          (*_ABLATION_ARGS, "--without", t), 0.0, None, note=_ABLATION_NOTE, table="ablation")
      for t in ABLATION_TECHNIQUES),
)

BY_KEY = {row.key: row for row in (*ROWS, *ABLATION_ROWS)}
