"""``tinycnn train``: train a zoo network on a dataset, report its test accuracy, save the run.

    tinycnn train                                   # lenet on the embedded MNIST subset, offline
    tinycnn train --dataset cifar10 --data-dir ../shared/datasets --model vgg-bn

Steps: load the dataset (``tinycnn.data.load``); hold out ``--val-split`` of the training images
(stratified, drawn with the seed); fit the per-channel normalisation on the rest; build the network
(``tinycnn.zoo``); train it with ``tinycnn.training.fit`` on the data loaders (progress bar, per-epoch
train and validation loss and accuracy; the schedule, the timings and the checkpoint are callbacks,
see ``_epochs``); then evaluate it on the test split and print accuracy, per-class precision / recall /
F1 and the confusion matrix.

Augmentation of the training batches (``tinycnn.data.Augment``): ``--augment`` chooses what (random
crop, flip, both, none or the dataset's default), ``--flip random|alternate`` how the flip is drawn,
``--pad-mode zeros|reflect|replicate`` and ``--crop-pad N`` the crop's border and largest shift;
``--tta none|flip|flip-translate`` is the test-time augmentation of the final test evaluation
(``tinycnn.tta``).

What ``--out`` (default ``runs/<date>-<time>``) holds when the run has finished:

    checkpoint.npz        the weights after the LAST epoch (not the best validation epoch), with the
                          optimizer state, the data generator's state, the schedule, the settings, the
                          normalisation mean/std and the history: ``--resume`` continues it exactly,
                          ``tinycnn evaluate`` / ``predict`` rebuild the network from it
    metrics.json          settings, per-epoch history, test report, timings, load average
    learning_curves.png, confusion_matrix.png, first_layer_filters.png   (with matplotlib)

The folder appears only when the run has finished (``_run_dir``); a failed run leaves no ``--out``,
only -- if an epoch had finished -- its last checkpoint beside it as ``<out>.epoch<E>.npz``. A
checkpoint is written only after an epoch whose weights, optimizer state and losses are all finite: a
diverged epoch stops the run and the previous good checkpoint is the one kept. ``--out`` is checked
before the dataset is loaded: it must be absent or an empty folder, in a place that can be written.

``--resume CHECKPOINT`` continues the run in its own ``--out``: ``<out>.epoch<E>.npz`` belongs to
``<out>``, and ``<out>/checkpoint.npz`` to ``<out>`` itself (a finished run trained on with a larger
``--epochs``; the folder is replaced when the longer run has finished). A run that finishes removes
the ``<out>.epoch<E>.npz`` it was resumed from; a resumed run that fails again keeps only its newer one.

Randomness: one seed; ``np.random.SeedSequence(seed).spawn(2)`` gives the data stream (validation
split, shuffling, augmentation) and the model stream (initial weights, dropout masks).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, data, plots, speedrun, zoo
from ..callbacks import LearningRateScheduler
from ..checkpoint import load_checkpoint, model_shapes, read_meta
from ..data import Augment
from ..losses import SoftmaxCrossEntropy
from ..optim import SGD, Adam
from ..schedules import CosineAnnealingLR, OneCycleLR
from ..shapes import layer_stats
from ..speedrun import TECHNIQUES
from ..training import History, NonFiniteLossError, NonFiniteStateError, fit
from . import _train_config as cfg
from ._epochs import EpochTimer, RunCheckpoint, evaluate
from ._report import print_report, report_dict
from ._run_dir import RunDir, RunDirError
from ._saved_run import check_run_meta

CHECKPOINT = "checkpoint.npz"
EVAL_BATCH = 256


def add_arguments(parser) -> None:
    """Every option defaults to None: unset options come from the model's recipe (or, with --resume,
    from the checkpoint); see ``_train_config``."""
    models = ", ".join(f"{n} ({e.about})" for n, e in zoo.MODELS.items())
    parser.add_argument("--dataset", help="embedded (default: an MNIST subset inside the package), mnist, "
                        "fashion_mnist, cifar10, cifar100, cifar100_coarse, or folder:PATH (one sub-folder "
                        "of images per class)")
    parser.add_argument("--data-dir", help="a folder with the dataset's files placed by hand (original files "
                        "or the .npz layout); nothing is downloaded. Default: the cache, downloading once")
    parser.add_argument("--model", help=f"the network: {models}. Default lenet")
    parser.add_argument("--epochs", type=int, help="passes over the training images (default: the model's recipe)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the model's recipe)")
    parser.add_argument("--lr", type=float, help="learning rate; the peak rate with --schedule onecycle")
    parser.add_argument("--optimizer", choices=cfg.OPTIMIZERS, help="sgd (momentum 0.9, Nesterov) or adam")
    parser.add_argument("--schedule", choices=cfg.SCHEDULES,
                        help="learning-rate schedule: constant, cosine (per epoch) or onecycle (per batch)")
    parser.add_argument("--weight-decay", type=float, help="L2 penalty added to the gradients")
    parser.add_argument("--augment", choices=cfg.AUGMENT, help="auto (the dataset's default: crop+flip for "
                        "CIFAR, none for digits), none, crop (random crop after zero padding by 4 pixels, "
                        "2 below 32x32), crop-flip (and a random horizontal flip), flip (the flip alone)")
    parser.add_argument("--flip", choices=cfg.FLIP_MODES, help="how the horizontal flip of crop-flip / flip "
                        "is drawn: random (each image with probability 1/2, afresh every epoch; the default) "
                        "or alternate (derandomised: random in epoch 0, then each image mirrored exactly when "
                        "it was not in the epoch before, so every image is seen both ways in any two epochs)")
    parser.add_argument("--pad-mode", choices=cfg.PADDING_MODES, help="the border the random crop "
                        "shifts in (torch's padding_mode names): zeros (black; the default), reflect "
                        "(pixels mirrored about the edge, as ReflectionPad2d) or replicate (the edge pixels)")
    parser.add_argument("--crop-pad", type=int, metavar="PIXELS", help="the random crop's largest shift "
                        "(default 4 on images of 32 pixels or more, 2 on smaller ones)")
    parser.add_argument("--tta", choices=cfg.TTA_LEVELS, help="test-time augmentation of the final test "
                        "evaluation (not of the per-epoch validation): none (the default), flip (the mean of "
                        "the logits of each image and its mirror) or flip-translate (six views: also shifted "
                        "one pixel up-left and down-right with reflection padding, each mirrored)")
    parser.add_argument("--recipe", choices=cfg.RECIPES, help="standard (the options above) or speedrun (the "
                        "fast CIFAR-10 recipe of --model airbench: whitening and identity initialisation, frozen "
                        "batch-norm scale, 64x batch-norm shift rate, label smoothing, Nesterov SGD with "
                        "Lookahead on a triangular schedule; see tinycnn.speedrun). Default: the model's")
    parser.add_argument("--without", type=_technique_list, metavar="NAME[,NAME]", help="remove techniques of "
                        "--recipe speedrun (the ablation): " + ", ".join(TECHNIQUES))
    parser.add_argument("--widths", type=_widths, metavar="W1,W2,W3", help="--model airbench's block widths "
                        "(default 64,256,256)")
    parser.add_argument("--seed", type=int, help="seeds the validation split, shuffling, augmentation, "
                        "initial weights and dropout (default 0)")
    parser.add_argument("--val-split", type=float, help="fraction of the training images held out for "
                        "validation (default 0.1; 0 for none)")
    parser.add_argument("--subset", type=int, help="train on N random training images and test on at most N "
                        "(quick trials)")
    parser.add_argument("--image-size", type=cfg.parse_image_size, help="H,W (or one number for a square): resize "
                        "the images of a folder: dataset")
    parser.add_argument("--color", type=cfg.parse_color, help="L (grey) or RGB: convert the images of a folder: "
                        "dataset (needed when grey and colour images are mixed)")
    parser.add_argument("--out", help="folder for the checkpoint, metrics.json and pictures "
                        "(default runs/<date>-<time>); must not exist or be empty")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue the run a checkpoint.npz (or an "
                        "<out>.epoch<E>.npz left by a failed run) belongs to, with its settings")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")


# -- setup ------------------------------------------------------------------------------------------

def _technique_list(text: str) -> list:
    return [t.strip() for t in text.split(",") if t.strip()]


def _widths(text: str) -> list:
    try:
        widths = [int(v) for v in text.split(",")]
    except ValueError:
        widths = []
    if len(widths) != 3 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers W1,W2,W3, got {text!r}")
    return widths


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):           # Windows
        return None


def _read_resume(path) -> dict:
    """The metadata of a checkpoint written by `tinycnn train`, every field of the run record checked
    (CheckpointError, a ValueError, naming the file and the field); nothing else is read yet."""
    meta = check_run_meta(path, read_meta(path), resume=True)
    if meta.get("epoch") is None:
        raise ValueError(f"--resume {path}: the checkpoint records no finished epoch; it was not "
                         f"written by `tinycnn train`")
    return meta


def _subset(ds, n: int, rng: np.random.Generator):
    """n random training images and at most n random test images (sorted, so order is kept)."""
    tr = np.sort(rng.choice(len(ds.y_train), size=min(n, len(ds.y_train)), replace=False))
    te = np.sort(rng.choice(len(ds.y_test), size=min(n, len(ds.y_test)), replace=False))
    return data.Dataset(ds.name, ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te], ds.classes,
                        augment=ds.augment, source=f"{ds.source} (subset: {len(tr)} train, {len(te)} test)")


def _load_dataset(config: cfg.Config, data_dir, say):
    announced = set()

    def progress(name, done, total):                    # called during downloads: one line per file
        if name not in announced:
            announced.add(name)
            say(f"downloading {name} ({total / 1e6:.1f} MB) ...")

    ds = cfg.load_data(config, data_dir, progress)
    if config.subset is not None:
        ds = _subset(ds, config.subset, np.random.default_rng(config.seed))
    return ds


def _augment(config: cfg.Config, ds):
    """The training batches' augmentation for ``make_loaders``: None (the dataset's default), False or
    an ``Augment``. "auto" on a dataset that augments is crop-flip with a 4-pixel pad (``Augment()``)."""
    modified = (config.flip, config.pad_mode, config.crop_pad) != ("random", "zeros", None)
    if config.augment == "auto":
        if not ds.augment:
            if modified:
                raise ValueError(f"--augment auto: dataset {ds.name!r} is not augmented by default (a flipped "
                                 f"digit is another digit), so --flip / --pad-mode / --crop-pad have nothing to "
                                 f"act on; choose the augmentation with --augment crop, crop-flip or flip")
            return False
        if not modified:
            return None                                          # the dataset's recommendation, Augment()
        pad, flip = 4, True
    elif config.augment == "none":
        return False
    else:
        pad = 4 if min(ds.image_shape[1:]) >= 32 else 2          # shift by up to 4 pixels on CIFAR, 2 on MNIST
        pad = 0 if config.augment == "flip" else pad
        flip = config.augment in ("crop-flip", "flip")
    if config.crop_pad is not None:
        pad = config.crop_pad
    if config.pad_mode == "reflect" and pad > min(ds.image_shape[1:]) - 1:
        raise ValueError(f"--pad-mode reflect: a shift of {pad} pixels needs images larger than {pad} pixels "
                         f"a side, got {ds.image_shape[1]}x{ds.image_shape[2]}; use a smaller --crop-pad")
    return Augment(pad=pad, flip=config.flip if flip else False, padding_mode=config.pad_mode)


def _optimizer(config: cfg.Config, model):
    if config.optimizer == "sgd":
        return SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _schedule(config: cfg.Config, optimizer, steps_per_epoch: int):
    """(schedule or None, "batch" | "epoch")."""
    if config.schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=config.epochs), "epoch"
    if config.schedule == "onecycle":
        return OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                          pct_start=0.3), "batch"
    return None, "epoch"


def _out(args) -> tuple[Path, bool]:
    """(--out, whether it may replace an existing folder: only the finished run being resumed).

    Without --out a new run gets ``runs/<date>-<time>``; a resumed one its own folder:
    ``<out>.epoch<E>.npz`` -> ``<out>``, ``<out>/checkpoint.npz`` -> ``<out>`` (a checkpoint renamed
    otherwise gets a new ``runs/<date>-<time>``)."""
    resumed = Path(args.resume).expanduser().absolute() if args.resume else None
    if args.out:
        out = Path(args.out)
    elif resumed is not None and re.fullmatch(r".+\.epoch\d+\.npz", resumed.name):
        out = resumed.parent / re.sub(r"\.epoch\d+\.npz$", "", resumed.name)
    elif resumed is not None and resumed.name == CHECKPOINT:
        out = resumed.parent
    else:
        out = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    replace = resumed is not None and resumed == (out.expanduser().absolute() / CHECKPOINT)
    return out, replace


def _check_writable(out: Path) -> None:
    """Refuse --out where no folder can be made (read-only place, no permission), before any data is
    loaded: try to make (and remove) a folder in its nearest existing parent."""
    place = Path(out).expanduser().absolute()
    while not place.exists():
        place = place.parent
    if not place.is_dir():
        raise RunDirError(f"--out {out}: {place} is a file, so no folder can be made there; give a folder path")
    try:
        probe = tempfile.mkdtemp(prefix=".tinycnn-write-check-", dir=place)
    except OSError as err:
        raise RunDirError(f"--out {out}: cannot write in {place} ({err.strerror or err}); choose a folder "
                          f"you can write to") from None
    os.rmdir(probe)


def _epoch_file_of(out: Path, path) -> bool:
    """Whether ``path`` is a ``<out>.epoch<E>.npz`` that a failed run of ``out`` left."""
    if path is None:
        return False
    path, out = Path(path).expanduser().absolute(), Path(out).expanduser().absolute()
    return path.parent == out.parent and re.fullmatch(rf"{re.escape(out.name)}\.epoch\d+\.npz", path.name) is not None


def _history(saved: dict, epochs: int) -> History:
    history = History()
    for e in range(epochs):
        history.append(e, {k: v[e] for k, v in saved.items()})
    return history


def _describe_data(ds, loaders) -> dict:
    return {"dataset": ds.name, "source": ds.source, "classes": list(ds.classes),
            "image_shape": list(ds.image_shape), "train": loaders.train.num_samples,
            "val": loaders.val.num_samples if loaders.val is not None else 0,
            "test": loaders.test.num_samples,
            "augment": None if loaders.augment is None else {"pad": loaders.augment.pad,
                                                               "flip": loaders.augment.flip_mode != "none",
                                                               "flip_mode": loaders.augment.flip_mode,
                                                               "padding_mode": loaders.augment.padding_mode},
            "normalization": {k: v.tolist() for k, v in loaders.normalizer.to_dict().items()}}


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While training, SIGTERM (``kill``, a job scheduler) stops the run as Ctrl-C does: the staging
    folder is removed and the last complete checkpoint kept. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interruption(err: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (Ctrl-C, or SIGTERM through the handler above) behind ``err``, if any.

    A signal's handler runs in the main thread wherever it happens to be, and that can be inside a
    Python callback that Numba's compiled code makes while launching a parallel kernel: Numba then
    reports a SystemError whose cause is the KeyboardInterrupt. Either way it is an interruption."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


# -- the run ----------------------------------------------------------------------------------------

@dataclass
class Setup:
    """Everything a run needs before its first step (``_setup``)."""
    config: cfg.Config
    out: Path
    ds: object                          # tinycnn.data.Dataset
    loaders: object                     # tinycnn.data.Loaders
    data_rng: np.random.Generator       # validation split, shuffling, augmentation
    record: dict                        # zoo.describe(...) of the network
    model: object
    optimizer: object
    schedule: object                    # a tinycnn.schedules object or None
    schedule_per: str                   # "batch" or "epoch"
    first_epoch: int                    # 0 for a new run, the checkpoint's epoch when resuming
    history: History
    replace_out: bool                   # out is the finished run being resumed: replaced at the end
    recipe_callbacks: list              # the speedrun recipe's (Lookahead schedule, freezing); [] otherwise
    loss: SoftmaxCrossEntropy


def _setup(args, say) -> Setup:
    """Settings, data, network, optimizer and schedule; with --resume, their saved states.
    Raises ValueError / ImportError (and their subclasses) with a message for the user."""
    resume = _read_resume(args.resume) if args.resume else None
    config = cfg.resumed(args, resume["extra"]["config"], resume["epoch"]) if resume else cfg.fresh(args)
    out, replace = _out(args)
    RunDir.check(out, replace=replace)
    _check_writable(out)
    ds = _load_dataset(config, args.data_dir, say)
    data_ss, model_ss = np.random.SeedSequence(config.seed).spawn(2)
    data_rng, model_rng = np.random.default_rng(data_ss), np.random.default_rng(model_ss)
    loaders = data.make_loaders(ds, batch_size=config.batch_size, rng=data_rng, val_fraction=config.val_split,
                                augment=_augment(config, ds), eval_batch_size=EVAL_BATCH)
    if resume:
        saved = resume["extra"]["data"]
        if list(ds.classes) != saved["classes"] or list(ds.image_shape) != saved["image_shape"]:
            raise ValueError(f"--resume: the dataset {config.dataset!r} now has classes "
                             f"{list(ds.classes)} and images {ds.image_shape}, the run had {saved['classes']} "
                             f"and {tuple(saved['image_shape'])}")
        record = resume["extra"]["model"]
        model = zoo.from_record(record, model_rng, path=args.resume, weights=model_shapes(args.resume))
    else:
        options = {} if config.widths is None else {"widths": list(config.widths)}
        record = zoo.describe(config.model, ds.image_shape, ds.num_classes, **options)
        model = zoo.build(config.model, ds.image_shape, ds.num_classes, model_rng, **options)
    if config.recipe == "speedrun":
        recipe = speedrun.Speedrun(without=frozenset(config.without))
        sample = np.sort(model_rng.choice(loaders.train.num_samples, min(recipe.whiten_images,
                                                                       loaders.train.num_samples), replace=False))
        speedrun.prepare(model, loaders.normalizer(loaders.train.x[sample]), model_rng, recipe)
        training = speedrun.setup(model, recipe, lr=config.lr, weight_decay=config.weight_decay,
                                  total_steps=config.epochs * len(loaders.train))
        optimizer, schedule, schedule_per = training.optimizer, training.schedule, "batch"
        recipe_callbacks, loss = training.callbacks, training.loss
    else:
        optimizer = _optimizer(config, model)
        schedule, schedule_per = _schedule(config, optimizer, len(loaders.train))
        recipe_callbacks, loss = [], SoftmaxCrossEntropy()
    first_epoch, history = 0, History()
    if resume:        # after building the schedule, whose first step sets the rate (see tinycnn.schedules)
        load_checkpoint(args.resume, model, optimizer, data_rng)
        if schedule is not None:
            schedule.load_state_dict(resume["extra"]["schedule"])
        first_epoch = int(resume["epoch"])
        loaders.train.epoch = first_epoch           # the pass count an alternating flip follows
        history = _history(resume["extra"]["history"], first_epoch)
    return Setup(config, out, ds, loaders, data_rng, record, model, optimizer, schedule, schedule_per,
                 first_epoch, history, replace, recipe_callbacks, loss)


def _describe_augment(aug: dict | None, tta: str) -> str:
    """One line: the training batches' augmentation (``_describe_data``'s "augment") and the test's TTA."""
    parts = []
    if aug is not None and aug["pad"]:
        parts.append(f"random crop (shifts up to {aug['pad']} pixels, {aug['padding_mode']} padding)")
    if aug is not None and aug["flip"]:
        parts.append(f"{aug['flip_mode']} horizontal flip")
    text = "augmentation: " + (" + ".join(parts) or "none")
    return text + ("" if tta == "none" else f"; test-time augmentation: {tta}")


def _announce(s: Setup, stats, data_info, args, say) -> None:
    config, ds = s.config, s.ds
    say(f"dataset {ds.name}: {data_info['train']} training, {data_info['val']} validation and "
        f"{data_info['test']} test images of {'x'.join(map(str, ds.image_shape))} (C x H x W), "
        f"{ds.num_classes} classes; from {ds.source}")
    say(f"model {config.model}: {sum(st.params for st in stats):,} parameters, "
        f"{sum(st.macs for st in stats) / 1e6:.2f} M multiply-adds per image")
    if not args.quiet:
        s.model.summary(batch_size=config.batch_size)
    if config.recipe == "speedrun":
        removed = f", without {', '.join(config.without)}" if config.without else ""
        say(f"recipe: speedrun (tinycnn.speedrun{removed}); Nesterov SGD momentum 0.85 in parameter groups"
            + ("" if "lookahead" in config.without else ", Lookahead every 5 steps"))
    say(f"training: {config.optimizer} lr {config.lr:g} ({config.schedule} schedule), weight decay "
        f"{config.weight_decay:g}, batch {config.batch_size}, epochs {s.first_epoch + 1}..{config.epochs}, "
        f"seed {config.seed}" + (f", resumed from {args.resume}" if args.resume else ""))
    say(_describe_augment(data_info["augment"], config.tta))
    warning = cfg.too_little_training(config, s.loaders.train.num_samples, len(s.loaders.train), s.first_epoch,
                                      ds.num_classes)
    if warning:
        cfg.warn(warning)


def run(args) -> int:
    say = (lambda *a, **k: None) if args.quiet else print
    t_start, load_start = time.perf_counter(), _loadavg()
    try:
        s = _setup(args, say)
    except (ValueError, ImportError) as err:        # ConfigError, RunDirError, DataError, zoo and checkpoint errors
        print(f"tinycnn train: error: {err}", file=sys.stderr)
        return 2
    config, ds, loaders, model, optimizer, schedule = s.config, s.ds, s.loaders, s.model, s.optimizer, s.schedule
    record, first_epoch, history, out, data_rng = s.record, s.first_epoch, s.history, s.out, s.data_rng
    stats = layer_stats(model.build(ds.image_shape), 1, 4)
    data_info = _describe_data(ds, loaders)
    _announce(s, stats, data_info, args, say)

    run_dir = RunDir(out, replace=s.replace_out)
    extra = {"model": record, "config": config.to_dict(), "data": data_info, "tinycnn_version": __version__}
    checkpoint = RunCheckpoint(run_dir.file(CHECKPOINT), history=history, extra=extra, data_rng=data_rng,
                               schedule=schedule, first_epoch=first_epoch)
    callbacks = [EpochTimer(),                 # first: its timings are in the logs the checkpoint saves
                 *([LearningRateScheduler(schedule, per=s.schedule_per)] if schedule is not None else []),
                 *s.recipe_callbacks,
                 checkpoint]                   # last: saves the schedule's state after its epoch step
    model.compile(optimizer, loss=s.loss, metrics=["accuracy"])
    try:
        with _sigterm_as_interrupt():
            fit(model, loaders.train, validation_data=loaders.val, epochs=config.epochs, initial_epoch=first_epoch,
                callbacks=callbacks, verbose=0 if args.quiet else 1)
        test = evaluate(model, loaders.test, tta=config.tta)
        report = report_dict(test.labels, test.predictions, test.loss, ds.classes)
        if not args.quiet:
            say("")
            say(f"test split, weights after the last epoch ({config.epochs})"
                + (f", test-time augmentation {config.tta}:" if config.tta != "none" else ":"))
            print_report(report, print_fn=say)
        pictures = _pictures(run_dir, history.history, report, model)
        metrics = _metrics(config, record, data_info, history, report, stats, pictures, args, t_start,
                           load_start, first_epoch)
        _write_json(run_dir.file("metrics.json"), metrics)
        final = run_dir.commit()
    except BaseException as err:
        saved = checkpoint.saved_epoch
        kept = run_dir.abandon(CHECKPOINT if saved > first_epoch else None, saved)
        if kept and _epoch_file_of(out, args.resume) and Path(args.resume).absolute() != kept.absolute():
            Path(args.resume).unlink(missing_ok=True)       # superseded by the newer checkpoint of this run
        if kept:
            where = (f" The last complete checkpoint (after epoch {saved}) is kept at {kept}; continue with "
                     f"`tinycnn train --resume {kept}`.")
        elif args.resume:
            where = (f" The checkpoint this run was resumed from (after epoch {first_epoch}) is unchanged: "
                     f"{args.resume}.")
        elif isinstance(err, (NonFiniteLossError, NonFiniteStateError)):
            where = " No epoch finished with finite weights and losses, so no checkpoint is kept."
        else:
            where = ""
        if isinstance(err, (NonFiniteLossError, NonFiniteStateError)):
            print(f"tinycnn train: error: {err}\nNothing was written to {out}.{where}", file=sys.stderr)
            return 1
        interrupt = _interruption(err)
        if interrupt is not None:
            why = f" by {interrupt.args[0]}" if interrupt.args else ""
            print(f"\ntinycnn train: interrupted{why}. Nothing was written to {out}.{where}", file=sys.stderr)
            return 130
        print(f"tinycnn train: failed ({type(err).__name__}); nothing was written to {out}.{where}",
              file=sys.stderr)
        raise
    if _epoch_file_of(final, args.resume):
        Path(args.resume).unlink(missing_ok=True)           # the run it was left for has finished
    say("")
    if pictures["written"]:
        say(f"pictures: {', '.join(pictures['written'])}")
    else:
        say(f"pictures skipped: {pictures['skipped']}")
    print(f"test accuracy {report['accuracy']:.4f}; wrote {final}/ ({CHECKPOINT}: weights after the last epoch, "
          f"metrics.json) in {time.perf_counter() - t_start:.1f} s")
    return 0


def _pictures(run_dir: RunDir, history: dict, report: dict, model) -> dict:
    if not plots.available():
        return {"written": [], "skipped": f"matplotlib is not installed; {plots.HINT} to get learning "
                                          f"curves, the confusion matrix and the first-layer filters"}
    plots.learning_curves(history, run_dir.file("learning_curves.png"))
    plots.confusion_matrix(report["confusion_matrix"], report["classes"], run_dir.file("confusion_matrix.png"))
    first_conv = next(layer for layer in model.layers if hasattr(layer, "kernel_size") and hasattr(layer, "weight"))
    plots.first_layer_filters(first_conv.weight.data, run_dir.file("first_layer_filters.png"))
    return {"written": ["learning_curves.png", "confusion_matrix.png", "first_layer_filters.png"], "skipped": None}


def _metrics(config, record, data_info, history, report, stats, pictures, args, t_start, load_start,
             first_epoch) -> dict:
    h = history.history
    train_seconds = sum(h.get("seconds", [])[first_epoch:])
    return {
        "tinycnn_version": __version__, "options": _options(args),
        "config": config.to_dict(), "model": {**record, "parameters": sum(s.params for s in stats),
                                              "macs_per_image": sum(s.macs for s in stats)},
        "data": {k: v for k, v in data_info.items() if k != "normalization"},
        "normalization": data_info["normalization"],
        "checkpoint": {"file": CHECKPOINT, "weights": f"after the last epoch ({config.epochs})"},
        "history": h, "test": report,
        "timing": {"train_seconds_this_process": train_seconds,
                   "wall_seconds_this_process": time.perf_counter() - t_start,
                   "epochs_this_process": config.epochs - first_epoch,
                   "resumed_from": args.resume},
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": load_start,
                    "load_average_end": _loadavg()},
        "pictures": pictures,
    }


def _options(args) -> dict:
    """The parsed command-line options (without the dispatcher's internals)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
