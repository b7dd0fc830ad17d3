"""`tinycnn train / evaluate / predict` end to end, on small runs of the embedded MNIST subset.

One short training run (400 random images, 2 epochs) is shared by the tests of its output; a second
run of the same settings is interrupted after epoch 1 and resumed, and must end with bit-identical
weights. Expected values are computed here by an independent path (the network rebuilt with
``zoo.load_model``, images normalised by hand with the saved mean/std, ``Sequential.predict``),
never copied from the command's output.

Everything runs with one BLAS and one Numba thread: on the shared 2-core machine, busy with other
work, spinning worker threads made these small runs several times slower (a 2-epoch run: 22 s with
the default threads at load average ~7). Results do not depend on it (the resume test compares two
runs with the same thread count); only the time does.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import data, plots, zoo
from tinycnn.checkpoint import read_checkpoint
from tinycnn.cli import main
from tinycnn.commands import _epochs

SMALL = ["--subset", "400", "--epochs", "2", "--batch-size", "32"]
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                    # the optional "bench" extra: default BLAS threads
        yield
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    numba.set_num_threads(before)


def leftovers(parent, name):
    """Staging folders or files of a run called ``name`` left in ``parent``."""
    return sorted(p for p in os.listdir(parent) if p.startswith(f".{name}.partial") or p == name)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """The shared run: (out folder, its stdout)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("runs") / "base"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["train", *SMALL, "--out", str(out)])
    assert status == 0, buf.getvalue()
    return out, buf.getvalue()


def normalised_test_images(ckpt, n=10):
    """The first n embedded test images normalised by hand with the checkpoint's saved mean/std."""
    norm = read_checkpoint(ckpt)["meta"]["extra"]["data"]["normalization"]
    ds = data.load("embedded")
    z = (ds.x_test[:n].astype(np.float32) - np.float32(norm["mean"][0])) / np.float32(norm["std"][0])
    return z, ds.y_test[:n], ds


def test_train_writes_a_complete_run(base_run):
    out, text = base_run
    pictures = ["confusion_matrix.png", "first_layer_filters.png", "learning_curves.png"]
    expected = ["checkpoint.npz", *(pictures if plots.available() else []), "metrics.json"]
    assert sorted(os.listdir(out)) == expected
    assert leftovers(out.parent, "base") == ["base"]
    # per-epoch train and validation numbers, then the test report
    for word in ("Epoch 1/2", "Epoch 2/2", "val_loss", "val_accuracy", "test accuracy", "precision",
                 "recall", "f1-score", "confusion matrix (rows: true class, columns: predicted class)"):
        assert word in text, word
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["val_accuracy"]) == 2
    assert metrics["data"]["train"] + metrics["data"]["val"] == 400 and metrics["data"]["test"] == 400
    cm = np.array(metrics["test"]["confusion_matrix"])
    assert cm.sum() == 400
    assert metrics["test"]["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    recall = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    assert np.allclose(metrics["test"]["per_class"]["recall"], recall)
    # 2 epochs on 360 images: far above chance (10%), which a broken pipeline would sit at
    assert metrics["test"]["accuracy"] > 0.5
    assert metrics["checkpoint"]["weights"].startswith("after the last epoch")


def digit_folder(root, ds, per_class=10):
    """root/train/<d>/ and root/test/<d>/ PNGs of embedded test digits; returns the test images
    (uint8 (N, 1, 28, 28)) and labels in the order the folder loader reads them (class, then name)."""
    Image = pytest.importorskip("PIL.Image", reason="Pillow (the images extra) writes the test images")
    xs, ys = [], []
    for d in range(10):
        idx = np.flatnonzero(ds.y_test == d)[:per_class + 1]
        for split, chosen in (("train", idx[:1]), ("test", idx[1:])):
            (root / split / str(d)).mkdir(parents=True)
            for j, i in enumerate(chosen):
                Image.fromarray(ds.x_test[i, 0]).save(root / split / str(d) / f"{j:02d}.png")
        xs.append(ds.x_test[idx[1:]])
        ys.append(np.full(per_class, d))
    return np.concatenate(xs), np.concatenate(ys)


def test_evaluate_in_a_subprocess_matches_an_independent_computation(base_run, tmp_path):
    """The `tinycnn` entry point in a subprocess, on a folder dataset of 100 digits written here."""
    out, _ = base_run
    ckpt = out / "checkpoint.npz"
    x, y = digit_folder(tmp_path / "digits", data.load("embedded"))
    exe = shutil.which("tinycnn")
    cmd = [exe] if exe else [sys.executable, "-m", "tinycnn"]
    done = subprocess.run([*cmd, "evaluate", str(ckpt), "--dataset", f"folder:{tmp_path / 'digits'}"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD_ENV})
    assert done.returncode == 0, done.stderr
    found = re.search(r"test accuracy (\d\.\d{4}) \((\d+) / (\d+) images\)", done.stdout)
    assert found, done.stdout
    norm = read_checkpoint(ckpt)["meta"]["extra"]["data"]["normalization"]
    z = (x.astype(np.float32) - np.float32(norm["mean"][0])) / np.float32(norm["std"][0])
    model, _ = zoo.load_model(ckpt)
    correct = int(np.count_nonzero(model.predict(z, batch_size=256).argmax(axis=1) == y))
    assert (int(found.group(2)), int(found.group(3))) == (correct, 100)
    assert "confusion matrix" in done.stdout and "f1-score" in done.stdout


def test_predict_on_images_written_with_pillow(base_run, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image", reason="tinycnn predict reads images with Pillow (images extra)")
    out, _ = base_run
    ckpt = out / "checkpoint.npz"
    x, y, ds = normalised_test_images(ckpt)
    paths = []
    for i in range(3):                                              # exact 28x28 grey PNGs
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(ds.x_test[i, 0]).save(paths[-1])
    rgb = tmp_path / "big.jpg"                                      # colour and 56x56: converted, resized
    Image.fromarray(np.repeat(ds.x_test[3, 0][:, :, None], 3, axis=2)).resize((56, 56)).save(rgb)
    assert main(["predict", str(ckpt), *map(str, paths), str(rgb), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert f"notice: {rgb}: converted from RGB to grey" in text
    assert f"notice: {rgb}: resized from 56x56 to the network's 28x28" in text
    model, _ = zoo.load_model(ckpt)
    expected = model.predict(x[:3]).argmax(axis=1)
    for path, k in zip(paths, expected):
        line = next(ln for ln in text.splitlines() if ln.startswith(str(path)))
        assert re.match(rf"{re.escape(str(path))}\s+{k}\s+\(p = ", line), line
        probs = [float(v) for v in re.findall(r" (\d\.\d{3})(?:,|$)", line.split("top 3:")[1])]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.001
    assert any(ln.startswith(str(rgb)) for ln in text.splitlines())


def test_interrupted_run_leaves_no_out_and_resumes_bit_identically(base_run, tmp_path, monkeypatch, capsys):
    out, _ = base_run
    original = _epochs.EpochTimer.on_epoch_begin

    def interrupt_in_epoch_2(self, epoch, *args, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", interrupt_in_epoch_2)
    stopped = tmp_path / "stopped"
    assert main(["train", *SMALL, "--out", str(stopped), "--quiet"]) == 130
    kept = tmp_path / "stopped.epoch1.npz"
    assert leftovers(tmp_path, "stopped") == [] and kept.is_file()
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", original)

    resumed = tmp_path / "resumed"
    assert main(["train", "--resume", str(kept), "--out", str(resumed), "--quiet"]) == 0
    a, b = read_checkpoint(out / "checkpoint.npz"), read_checkpoint(resumed / "checkpoint.npz")
    assert a["meta"]["epoch"] == b["meta"]["epoch"] == 2
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key
    for i, m in enumerate(a["optimizer"]["exp_avg"]):
        assert np.array_equal(m, b["optimizer"]["exp_avg"][i])
    assert a["rng"] == b["rng"]
    ha = json.loads((out / "metrics.json").read_text())["history"]
    hb = json.loads((resumed / "metrics.json").read_text())["history"]
    assert ha["val_loss"] == hb["val_loss"] and ha["loss"] == hb["loss"]


def test_resume_with_another_model_is_refused(base_run, tmp_path, capsys):
    out, _ = base_run
    status = main(["train", "--resume", str(out / "checkpoint.npz"), "--model", "vgg-bn", "--out",
                   str(tmp_path / "x")])
    assert status == 2
    assert "--model vgg-bn (the run used lenet)" in capsys.readouterr().err
    assert leftovers(tmp_path, "x") == []


def test_a_checkpoint_not_from_tinycnn_train_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "custom.npz"
    tc.save_checkpoint(ckpt, tc.Sequential(tc.Flatten(), tc.Dense(784, 10, rng=np.random.default_rng(0))))
    for argv in (["evaluate", str(ckpt)], ["predict", str(ckpt), "whatever.png"],
                 ["train", "--resume", str(ckpt), "--out", str(tmp_path / "r")]):
        assert main(argv) == 2, argv
        assert "not written by `tinycnn train`" in capsys.readouterr().err, argv


def test_a_checkpoint_whose_weights_are_another_models(tmp_path, capsys):
    ckpt = tmp_path / "mislabelled.npz"
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(0))
    tc.save_checkpoint(ckpt, model, extra={"model": zoo.describe("seed-keras", (1, 28, 28), 10)})
    assert main(["evaluate", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "holds a 'seed-keras' network" in err and "do not fit" in err and "missing keys" in err


def test_evaluate_on_a_dataset_of_another_shape(base_run, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image", reason="folder datasets are read with Pillow (images extra)")
    out, _ = base_run
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "pets" / cls / f"{i}.png")
    assert main(["evaluate", str(out / "checkpoint.npz"), "--dataset", f"folder:{tmp_path / 'pets'}"]) == 2
    assert "takes 1x28x28 images (C x H x W), but dataset" in capsys.readouterr().err


def test_unknown_dataset_name(tmp_path, capsys):
    assert main(["train", "--dataset", "imagenet-tiny", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'imagenet-tiny'; known: embedded, mnist" in err
    assert leftovers(tmp_path, "u") == []


def test_out_that_is_not_empty_is_refused(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["train", "--subset", "50", "--out", str(tmp_path / "full")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert os.listdir(tmp_path / "full") == ["notes.txt"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_a_diverging_run_stops_and_leaves_nothing(tmp_path, capsys):
    """A real non-finite loss (SGD at lr 1e30 overflows in the second step), not a simulated one."""
    status = main(["train", "--subset", "200", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30",
                   "--schedule", "constant", "--out", str(tmp_path / "nan"), "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert re.search(r"the training loss is (nan|inf) at epoch 1/1, step \d+/", err), err
    assert leftovers(tmp_path, "nan") == [] and not list(tmp_path.glob("nan.epoch*"))


def test_a_crash_after_an_epoch_keeps_only_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    def crash_in_evaluation(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr("tinycnn.commands.train.evaluate", crash_in_evaluation)
    with pytest.raises(MemoryError):
        main(["train", "--subset", "100", "--epochs", "1", "--out", str(tmp_path / "c"), "--quiet"])
    assert leftovers(tmp_path, "c") == []
    kept = tmp_path / "c.epoch1.npz"
    assert read_checkpoint(kept)["meta"]["epoch"] == 1
    assert "nothing was written" in capsys.readouterr().err


def test_without_matplotlib_one_line_says_how_to_get_pictures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tinycnn.plots._figure_class", lambda: None)
    assert main(["train", "--subset", "100", "--epochs", "1", "--out", str(tmp_path / "np")]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if "pip install" in ln]
    assert len(lines) == 1 and "tinycnn[plot]" in lines[0]
    assert sorted(os.listdir(tmp_path / "np")) == ["checkpoint.npz", "metrics.json"]


@pytest.mark.skipif(os.name != "posix", reason="sends SIGTERM")
def test_a_killed_training_process_keeps_its_last_checkpoint(tmp_path):
    """A real `tinycnn train` process gets SIGTERM once its first epoch is saved: it exits 130, --out
    does not exist, no staging folder is left, and the last complete checkpoint (epoch 1, or a later
    one if an epoch ended before the signal arrived) is kept and loadable. 50 epochs are asked for so
    that the run cannot end first."""
    import signal
    import time
    exe = shutil.which("tinycnn")
    cmd = [exe] if exe else [sys.executable, "-m", "tinycnn"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "train", "--subset", "3000", "--epochs", "50", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD_ENV})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".killed.partial-*/checkpoint.npz")):   # epoch 1 saved: now in epoch 2
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted by signal" in err and "--resume" in err
    assert leftovers(tmp_path, "killed") == []
    kept = list(tmp_path.glob("killed.epoch*.npz"))
    assert len(kept) == 1, kept
    epoch = int(re.fullmatch(r"killed\.epoch(\d+)\.npz", kept[0].name).group(1))
    assert 1 <= epoch < 50 and read_checkpoint(kept[0])["meta"]["epoch"] == epoch
    model, _ = zoo.load_model(kept[0])
    assert model.layers[0].weight.data.shape == (32, 1, 3, 3)


def test_an_interrupt_wrapped_by_numba_still_counts_as_an_interrupt():
    """A signal handled inside Numba's Python callback surfaces as SystemError caused by the
    KeyboardInterrupt (seen with SIGTERM during a parallel kernel's launch)."""
    from tinycnn.commands.train import _interruption

    def wrapped():
        try:
            raise KeyboardInterrupt("signal 15")
        except KeyboardInterrupt as ki:
            raise SystemError("error return without exception set") from ki

    try:
        wrapped()
    except SystemError as err:
        assert _interruption(err).args == ("signal 15",)
    assert _interruption(SystemError("unrelated")) is None
    assert _interruption(ValueError("x")) is None


# -- a diverged epoch is never the "last good" checkpoint -------------------------------------------

def finite_checkpoint(path):
    """Every array of the checkpoint (weights, optimizer state) and its history's losses are finite."""
    ckpt = read_checkpoint(path)
    arrays = list(ckpt["model"].values())
    for value in ckpt["optimizer"].values():
        arrays += [v for v in value if isinstance(v, np.ndarray)] if isinstance(value, list) else []
    history = ckpt["meta"]["extra"]["history"]
    return (all(np.isfinite(a).all() for a in arrays)
            and all(np.isfinite(history[k]).all() for k in ("loss", "val_loss")))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_run_diverging_in_its_first_epoch_keeps_no_checkpoint(tmp_path, capsys):
    """The reported case: at lr 1e20 the first epoch's one step makes the weights useless (the
    validation loss is NaN): no checkpoint is written, and none is offered for --resume."""
    status = main(["train", "--subset", "100", "--batch-size", "128", "--epochs", "3", "--schedule", "constant",
                   "--lr", "1e20", "--out", str(tmp_path / "div"), "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert "training diverged: epoch 1/3 ended with non-finite values (val_loss = nan" in err, err
    assert "no checkpoint is kept" in err and "--resume" not in err
    assert leftovers(tmp_path, "div") == [] and not list(tmp_path.glob("div.epoch*"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_run_diverging_later_keeps_the_last_good_epoch_and_names_it(tmp_path, monkeypatch, capsys):
    """Epoch 1 trains normally; then the rate is set to 1e20 (a real divergence, triggered here):
    epoch 2 is not saved, and the kept checkpoint is epoch 1's, finite and named in the message."""
    original = _epochs.EpochTimer.on_epoch_begin

    def blow_up_in_epoch_2(self, epoch, *args, **kwargs):
        if epoch == 1:
            self.model.compiled.optimizer.lr = 1e20
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", blow_up_in_epoch_2)
    status = main(["train", "--subset", "100", "--batch-size", "128", "--epochs", "3", "--schedule", "constant",
                   "--out", str(tmp_path / "late"), "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert "training diverged: epoch 2/3 ended with non-finite values" in err, err
    kept = tmp_path / "late.epoch1.npz"
    assert f"The last complete checkpoint (after epoch 1) is kept at {kept}" in err
    assert leftovers(tmp_path, "late") == [] and read_checkpoint(kept)["meta"]["epoch"] == 1
    assert finite_checkpoint(kept)


# -- --out: checked before the data, kept by --resume ------------------------------------------------

@pytest.fixture
def unwritable(tmp_path):
    """A folder in which no folder can be made: a read-only one (not for root, who may write anyway),
    else a place of /sys (where even root cannot)."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    candidates = [ro, pathlib.Path("/sys")]
    try:
        for place in candidates:
            try:
                probe = tempfile.mkdtemp(dir=place)
            except OSError:
                yield place
                break
            os.rmdir(probe)
        else:
            pytest.skip("no unwritable folder on this machine")
    finally:
        ro.chmod(0o755)


def test_out_in_an_unwritable_place_is_refused_before_the_data_is_loaded(base_run, unwritable, tmp_path,
                                                                         monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("the dataset was loaded")

    monkeypatch.setattr("tinycnn.commands.train._load_dataset", no_loading)
    out = unwritable / "run" / "nested"
    assert main(["train", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: cannot write in {unwritable}" in err, err
    # --resume likewise: a checkpoint of the base run, marked as after epoch 1 of 2
    model, info = zoo.load_model(base_run[0] / "checkpoint.npz")
    half = tmp_path / "half.epoch1.npz"
    tc.save_checkpoint(half, model, epoch=1, extra=info["extra"])
    assert main(["train", "--resume", str(half), "--out", str(out)]) == 2
    assert f"--out {out}: cannot write in {unwritable}" in capsys.readouterr().err


def test_resume_continues_in_the_runs_own_out_and_cleans_up(tmp_path, monkeypatch):
    """Interrupted in epoch 2, then in epoch 3 of the resumed run, then finished: without --out every
    resume works in the first run's folder; each newer checkpoint replaces the older one, and the
    finished run leaves only its folder."""
    original = _epochs.EpochTimer.on_epoch_begin
    stop_at = {"epoch": 1}

    def interrupt(self, epoch, *args, **kwargs):
        if epoch == stop_at["epoch"]:
            raise KeyboardInterrupt
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(_epochs.EpochTimer, "on_epoch_begin", interrupt)
    out = tmp_path / "own"
    small = ["--subset", "100", "--epochs", "3", "--batch-size", "50", "--quiet"]
    assert main(["train", *small, "--out", str(out)]) == 130
    assert sorted(os.listdir(tmp_path)) == ["own.epoch1.npz"]
    stop_at["epoch"] = 2
    assert main(["train", "--resume", str(tmp_path / "own.epoch1.npz"), "--quiet"]) == 130
    assert sorted(os.listdir(tmp_path)) == ["own.epoch2.npz"]
    stop_at["epoch"] = None
    assert main(["train", "--resume", str(tmp_path / "own.epoch2.npz"), "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["own"]
    assert read_checkpoint(out / "checkpoint.npz")["meta"]["epoch"] == 3
    assert len(json.loads((out / "metrics.json").read_text())["history"]["loss"]) == 3


def test_training_a_finished_run_on_replaces_its_folder(tmp_path):
    out = tmp_path / "grow"
    assert main(["train", "--subset", "100", "--epochs", "1", "--schedule", "constant", "--out", str(out),
                 "--quiet"]) == 0
    first = read_checkpoint(out / "checkpoint.npz")
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2", "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["grow"]                     # no staging or old folder left
    second = read_checkpoint(out / "checkpoint.npz")
    assert second["meta"]["epoch"] == 2
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history["loss"][0] == first["meta"]["extra"]["history"]["loss"][0] and len(history["loss"]) == 2


def test_epoch_timer_adds_seconds_and_images_per_second_to_the_logs():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 2, 20)
    model = tc.Sequential(tc.Flatten(), tc.Dense(36, 2, rng=rng)).compile("sgd")
    history = tc.training.fit(model, data.Batches(x, y, 8), epochs=2, verbose=0, callbacks=[_epochs.EpochTimer()])
    seconds, rate = history.history["seconds"], history.history["images_per_s"]
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert rate == [20 / s for s in seconds]
