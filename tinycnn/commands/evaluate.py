"""``tinycnn evaluate CHECKPOINT``: test a saved run's network and print its report.

    tinycnn evaluate runs/20250101-120000/checkpoint.npz
    tinycnn evaluate model.npz --dataset mnist --data-dir ../shared/datasets

The network is rebuilt from the checkpoint's model record (``tinycnn.zoo``); the test images are the
test split of the dataset it was trained on (or ``--dataset``), normalised with the mean and std saved
from training -- never re-fitted on the test images. Prints test accuracy and loss, per-class precision /
recall / F1 and the confusion matrix (``_report``); ``--tta`` (default: the run's own setting) averages
the logits over flipped and translated copies of each image (``tinycnn.tta``). Exit status 2 for a
checkpoint that was not written by ``tinycnn train``, whose weights do not fit its network, or a dataset
whose image shape or classes differ from the network's.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import data
from ..tta import TTA_LEVELS
from ._epochs import evaluate
from ._report import print_report, report_dict
from ._saved_run import load_run
from ._train_config import in_cli_terms


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint.npz written by `tinycnn train`")
    parser.add_argument("--dataset", help="test on this dataset's test split instead of the one the network "
                        "was trained on (same image shape and classes)")
    parser.add_argument("--data-dir", help="a folder with the dataset's files placed by hand (no download)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    parser.add_argument("--subset", type=int, help="test on N random test images (quick checks)")
    parser.add_argument("--tta", choices=TTA_LEVELS, help="test-time augmentation: none, flip (the mean of the "
                        "logits of each image and its mirror) or flip-translate (six views: also shifted one "
                        "pixel up-left and down-right with reflection padding, each mirrored). Default: what "
                        "the run was trained with (its --tta; none for runs without one)")


def _check_compatible(run, ds, name: str) -> None:
    if ds.image_shape != run.image_shape:
        raise ValueError(f"the checkpoint's network takes {'x'.join(map(str, run.image_shape))} images (C x H x W), "
                         f"but {name} has {'x'.join(map(str, ds.image_shape))}")
    if tuple(ds.classes) != run.classes:
        raise ValueError(f"the checkpoint's network knows the classes {list(run.classes)}, but {name} has "
                         f"{list(ds.classes)}")


def run(args) -> int:
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.subset is not None and args.subset < 1:
            raise ValueError(f"--subset must be >= 1 image, got {args.subset}")
        saved = load_run(args.checkpoint)
        name = args.dataset or saved.dataset
        options = {}
        if name.startswith("folder:") and name == saved.dataset:      # the same split as in training
            options = {"seed": saved.config.get("seed", 0), "size": saved.config.get("image_size"),
                       "mode": saved.config.get("color")}
        try:
            ds = data.load(name, data_dir=args.data_dir, **options)
        except data.DataError as err:
            raise in_cli_terms(err, name) from None
        _check_compatible(saved, ds, f"dataset {name!r}")
    except (ValueError, ImportError) as err:
        print(f"tinycnn evaluate: error: {err}", file=sys.stderr)
        return 2
    x, y = ds.x_test, ds.y_test
    if args.subset is not None and args.subset < len(y):
        pick = np.sort(np.random.default_rng(0).choice(len(y), size=args.subset, replace=False))
        x, y = x[pick], y[pick]
    batches = data.Batches(x, y, args.batch_size, normalizer=saved.normalizer)
    tta = args.tta or saved.config.get("tta", "none")
    print(f"checkpoint {args.checkpoint}: {saved.config.get('model', '?')} trained {saved.epoch} epoch(s) on "
          f"{saved.dataset}; testing on {len(y)} test images of {name}"
          + ("" if tta == "none" else f", test-time augmentation {tta}"))
    result = evaluate(saved.model, batches, tta=tta)
    print_report(report_dict(result.labels, result.predictions, result.loss, ds.classes))
    return 0
