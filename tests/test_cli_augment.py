"""`tinycnn train` / `evaluate` options for the augmentation (--flip, --pad-mode, --crop-pad) and the
test-time augmentation (--tta): how they map to ``tinycnn.data.Augment``, the combinations refused, and
small runs on the embedded digits (an alternating-flip run resumed mid-way ends bit-identical, and
`evaluate --tta` reports what an independent TTA computation of the saved network gives)."""
import argparse
import contextlib
import dataclasses
import io
import json
import re

import numpy as np
import pytest

from tinycnn import data, zoo
from tinycnn.checkpoint import read_checkpoint
from tinycnn.cli import main
from tinycnn.commands import _epochs, train
from tinycnn.commands import _train_config as cfg

SMALL = ["--subset", "120", "--epochs", "2", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    numba.set_num_threads(before)


def config(**given):
    names = [f.name for f in dataclasses.fields(cfg.Config)]
    return cfg.fresh(argparse.Namespace(**{n: given.get(n) for n in names}))


class FakeDataset:
    def __init__(self, augment, shape):
        self.name, self.augment, self.image_shape = "fake", augment, shape


CIFAR_LIKE, DIGITS = FakeDataset(True, (3, 32, 32)), FakeDataset(False, (1, 28, 28))


def test_the_options_map_to_an_augment():
    assert train._augment(config(), CIFAR_LIKE) is None                  # auto, unchanged: the dataset's default
    assert train._augment(config(flip="alternate"), CIFAR_LIKE) == data.Augment(4, "alternate", "zeros")
    assert train._augment(config(augment="crop-flip", flip="alternate", pad_mode="reflect", crop_pad=2),
                          CIFAR_LIKE) == data.Augment(2, "alternate", "reflect")
    assert train._augment(config(augment="flip", flip="alternate"), DIGITS) == data.Augment(0, "alternate")
    assert train._augment(config(augment="crop", pad_mode="replicate"), DIGITS) == data.Augment(2, False, "replicate")
    assert train._augment(config(augment="none"), CIFAR_LIKE) is False


@pytest.mark.parametrize("given, message", [
    ({"augment": "crop", "flip": "alternate"}, "--flip alternate needs an augmentation that flips"),
    ({"augment": "none", "pad_mode": "reflect"}, "--pad-mode reflect applies to the random crop, but --augment none"),
    ({"augment": "flip", "crop_pad": 2}, "--crop-pad 2 applies to the random crop, but --augment flip"),
    ({"crop_pad": -1}, "--crop-pad must be >= 0 pixels, got -1"),
    ({"tta": "all"}, "--tta must be one of none, flip, flip-translate, got 'all'"),
])
def test_contradicting_options_are_refused(given, message):
    with pytest.raises(cfg.ConfigError, match=re.escape(message)):
        config(**given)


def test_options_that_a_dataset_cannot_use_are_refused():
    with pytest.raises(ValueError, match="is not augmented by default .* choose the augmentation with --augment"):
        train._augment(config(flip="alternate"), DIGITS)
    with pytest.raises(ValueError, match="--pad-mode reflect: a shift of 40 pixels needs images larger than 40"):
        train._augment(config(augment="crop", pad_mode="reflect", crop_pad=40), CIFAR_LIKE)


def test_the_command_line_refuses_them_with_exit_status_2(tmp_path, capsys):
    status = main(["train", "--augment", "crop", "--flip", "alternate", "--out", str(tmp_path / "x")])
    assert status == 2 and "--flip alternate needs an augmentation that flips" in capsys.readouterr().err


def run(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(args)
    assert status == 0, buf.getvalue()
    return buf.getvalue()


def test_an_alternating_flip_run_resumes_bit_identically_and_evaluates_with_tta(tmp_path, monkeypatch):
    opts = [*SMALL, "--augment", "crop-flip", "--flip", "alternate", "--pad-mode", "reflect", "--crop-pad", "1",
            "--tta", "flip"]
    full = tmp_path / "full"
    run(["train", *opts, "--out", str(full)])
    original = _epochs.EpochTimer.on_epoch_begin

    def interrupt_in_epoch_2(self, epoch, *args, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", interrupt_in_epoch_2)
    assert main(["train", *opts, "--out", str(tmp_path / "stopped")]) == 130
    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", original)
    resumed = tmp_path / "resumed"
    run(["train", "--resume", str(tmp_path / "stopped.epoch1.npz"), "--out", str(resumed), "--quiet"])
    a, b = read_checkpoint(full / "checkpoint.npz"), read_checkpoint(resumed / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key   # epoch 2 flipped as the full run did
    meta = a["meta"]["extra"]
    assert meta["config"]["flip"] == "alternate" and meta["config"]["tta"] == "flip"
    assert meta["data"]["augment"] == {"pad": 1, "flip": True, "flip_mode": "alternate", "padding_mode": "reflect"}

    # evaluate: by default with the run's --tta, against the mean of the logits of x and its mirror
    text = run(["evaluate", str(full / "checkpoint.npz"), "--subset", "50"])
    found = re.search(r"test accuracy (\d\.\d{4}) \((\d+) / (\d+) images\)", text)
    assert found and "test-time augmentation flip" in text, text
    model, _ = zoo.load_model(full / "checkpoint.npz")
    norm = data.Normalizer.from_dict(meta["data"]["normalization"])
    ds = data.load("embedded")
    pick = np.sort(np.random.default_rng(0).choice(len(ds.y_test), size=50, replace=False))
    z, y = norm(ds.x_test[pick]), ds.y_test[pick]
    model.eval()
    logits_layers = model.layers[:-1] if type(model.layers[-1]).__name__ == "Softmax" else model.layers
    logits = sum(0.5 * model.forward_through(logits_layers, np.ascontiguousarray(v)) for v in (z, z[..., ::-1]))
    assert int(found.group(2)) == int(np.count_nonzero(logits.argmax(axis=1) == y))
    plain = run(["evaluate", str(full / "checkpoint.npz"), "--subset", "50", "--tta", "none"])
    assert "test-time augmentation" not in plain
    history = json.loads((full / "metrics.json").read_text())
    assert history["config"]["tta"] == "flip"
