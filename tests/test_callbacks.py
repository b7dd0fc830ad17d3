"""Callbacks: EarlyStopping on hand-worked sequences and in a real fit, ModelCheckpoint (best-only and
per epoch), LearningRateScheduler (tinycnn schedules per epoch and per batch, Keras-style functions),
and the non-finite-loss stop leaving the last good checkpoint intact."""
import math
import os

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint
from tinycnn.checkpoint import load_checkpoint
from tinycnn.schedules import OneCycleLR, StepLR


class FakeModel:
    """Holds one number as its 'weights', to follow which epoch's weights are restored."""

    def __init__(self):
        self.w, self.stop_training = -1, False

    def state_dict(self):
        return {"w": np.array(self.w)}

    def load_state_dict(self, d):
        self.w = int(d["w"])


def drive(callback, values, key="val_loss"):
    """Feed per-epoch values as fit would; return the 0-based epoch after which training stopped (or None)."""
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin({})
    stopped = None
    for epoch, v in enumerate(values):
        model.w = epoch
        callback.on_epoch_end(epoch, {key: v})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end({})
    return stopped, model


@pytest.mark.parametrize("values, kwargs, key, stop, best", [
    # best 0.9 at epoch 1; epochs 2 and 3 do not beat it: patience 2 runs out after epoch 3
    ([1.0, 0.9, 0.95, 0.92, 0.91], dict(patience=2), "val_loss", 3, 1),
    # min_delta 0.05: 0.97 is not below 1.0 - 0.05, so patience 1 stops after epoch 1
    ([1.0, 0.97, 0.90], dict(patience=1, min_delta=0.05), "val_loss", 1, 0),
    # accuracy is maximised (mode auto); equal is not better
    ([0.5, 0.6, 0.6, 0.7], dict(monitor="val_accuracy", patience=1), "val_accuracy", 2, 1),
    # NaN never improves
    ([1.0, float("nan"), 0.5], dict(patience=1), "val_loss", 1, 0),
    # patience 0: the first epoch without improvement stops
    ([3.0, 2.0, 2.5], dict(patience=0), "val_loss", 2, 1),
    # never stops: every epoch improves
    ([3.0, 2.0, 1.0], dict(patience=0), "val_loss", None, 2),
])
def test_early_stopping_on_hand_worked_sequences(values, kwargs, key, stop, best):
    cb = EarlyStopping(restore_best_weights=True, **kwargs)
    stopped, model = drive(cb, values, key)
    assert stopped == stop
    assert cb.best_epoch == best
    assert model.w == best                        # restored at the end, stopped early or not


def test_early_stopping_without_restore_keeps_the_last_weights_and_missing_monitor_is_named():
    stopped, model = drive(EarlyStopping(patience=1), [1.0, 2.0, 3.0])
    assert stopped == 1 and model.w == 1
    with pytest.raises(KeyError, match=r"EarlyStopping: monitor 'val_loss' is not among the epoch's logs "
                                       r"\['accuracy', 'loss'\]; pass validation data"):
        EarlyStopping().on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    with pytest.raises(ValueError, match=r"EarlyStopping: mode must be 'auto', 'min' or 'max', got 'up'"):
        EarlyStopping(mode="up")


# -- in a real fit ---------------------------------------------------------------------------------

def overfitting_setup(seed=0, lr=0.003):
    """64 samples, half the labels random, a weak signal in the other half: with seed 1 the validation
    loss falls for two epochs and then rises (the net learns the signal, then memorises the noise)."""
    rng = np.random.default_rng(seed)
    model = tc.Sequential(tc.Conv2D(1, 8, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(8 * 4 * 4, 4, rng=rng))
    model.compile("adam", lr=lr, metrics=["accuracy"])
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    x[np.arange(64), 0, y] += 0.5                           # class k: row k a little brighter
    noisy = rng.random(64) < 0.5
    y[noisy] = rng.integers(0, 4, noisy.sum())
    return model, x, y


class RecordWeights(Callback):
    def __init__(self):
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(self.model.state_dict())


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_early_stopping_in_fit_stops_and_restores_the_best_epoch():
    model, x, y = overfitting_setup(1)
    rec = RecordWeights()
    stop = EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=30, batch_size=8, validation_split=0.5, callbacks=[rec, stop], verbose=0)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 30, "the validation loss never rose: the setup does not overfit"
    assert best > 0, "the validation loss never fell: restoring epoch 0 would prove less"
    assert len(val) == best + 2 + 1                     # stopped `patience` epochs after the best
    assert stop.best_epoch == best and stop.best == val[best]
    assert_same_weights(model.state_dict(), rec.per_epoch[best])


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_says_when_it_stops_and_which_weights_the_model_keeps(capsys, restore):
    model, x, y = overfitting_setup(1)
    stop = EarlyStopping(patience=2, restore_best_weights=restore)
    history = model.fit(x, y, epochs=30, batch_size=8, validation_split=0.5, callbacks=[stop], verbose=0)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    out = capsys.readouterr().out
    assert (f"EarlyStopping: val_loss has not improved by more than 0 for 2 epochs (best {val[best]:.4f} at "
            f"epoch {best + 1}); stopping after epoch {len(val)}") in out
    if restore:
        assert f"EarlyStopping: restored the weights of epoch {best + 1}, the best val_loss ({val[best]:.4f})" in out
    else:
        assert f"keeps the weights of its last epoch ({len(val)}); pass restore_best_weights=True" in out
    quiet = EarlyStopping(patience=2, verbose=0)
    model.fit(x, y, epochs=30, batch_size=8, validation_split=0.5, callbacks=[quiet], verbose=0)
    assert capsys.readouterr().out == ""


def test_model_checkpoint_best_only_holds_the_best_epoch(tmp_path):
    model, x, y = overfitting_setup(1)
    rec = RecordWeights()
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=8, batch_size=8, validation_split=0.5, callbacks=[rec, ckpt], verbose=0)
    best = int(np.argmin(history.history["val_loss"]))
    assert 0 < best < 7, "the best epoch should be neither the first nor the last here"
    fresh, _, _ = overfitting_setup(99)
    meta = load_checkpoint(path, fresh, fresh.compiled.optimizer)
    assert meta["epoch"] == best + 1
    assert meta["extra"]["monitor"] == "val_loss" and meta["extra"]["best"] == history.history["val_loss"][best]
    assert_same_weights(fresh.state_dict(), rec.per_epoch[best])


def test_model_checkpoint_every_epoch_with_a_formatted_name(tmp_path):
    model, x, y = overfitting_setup(2)
    rec = RecordWeights()
    ckpt = ModelCheckpoint(str(tmp_path / "run-{epoch:02d}-{loss:.3f}.npz"), monitor="loss")
    history = model.fit(x, y, epochs=3, batch_size=16, callbacks=[rec, ckpt], verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == [f"run-{e + 1:02d}-{history.history['loss'][e]:.3f}.npz" for e in range(3)]
    for e, name in enumerate(names):
        fresh, _, _ = overfitting_setup(99)
        assert load_checkpoint(tmp_path / name, fresh)["epoch"] == e + 1
        assert_same_weights(fresh.state_dict(), rec.per_epoch[e])


# -- learning-rate scheduling ----------------------------------------------------------------------

def test_scheduler_steps_a_tinycnn_schedule_once_per_epoch():
    model, x, y = overfitting_setup(3)
    model.compile(tc.SGD(model.parameters(), lr=0.1))
    sched = StepLR(model.compiled.optimizer, step_size=1, gamma=0.5)
    history = model.fit(x, y, epochs=3, batch_size=16, callbacks=[LearningRateScheduler(sched)], verbose=0)
    assert history.history["lr"] == [0.1, 0.05, 0.025]      # halved after each epoch (exact in binary)
    assert sched.last_epoch == 3


def test_scheduler_per_batch_sees_every_step_in_order():
    model, x, y = overfitting_setup(4)
    model.compile(tc.SGD(model.parameters(), lr=0.1, momentum=0.9))
    steps = 2 * math.ceil(64 / 10)
    sched = OneCycleLR(model.compiled.optimizer, max_lr=0.1, total_steps=steps)
    seen = []

    class LrAtBatch(Callback):
        def on_train_batch_begin(self, step, logs=None):
            seen.append(self.model.compiled.optimizer.lr)

    model.fit(x, y, epochs=2, batch_size=10, callbacks=[LearningRateScheduler(sched, per="batch"), LrAtBatch()],
              verbose=0)
    ref = OneCycleLR(tc.SGD(overfitting_setup(4)[0].parameters(), lr=0.1, momentum=0.9), max_lr=0.1, total_steps=steps)
    want = []
    for _ in range(steps):
        want.append(ref.optimizer.lr)
        if len(want) < steps:
            ref.step()
    assert seen == want and sched.last_epoch == steps


def test_scheduler_with_a_keras_style_function():
    model, x, y = overfitting_setup(5)
    model.compile("sgd", lr=0.5)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch, lr: 0.2 / (epoch + 1))])
    assert history.history["lr"] == [0.2, 0.1, 0.2 / 3]


def test_scheduler_with_a_keras_one_argument_function():
    """Keras' other form, lr = schedule(epoch): the current rate is not passed."""
    model, x, y = overfitting_setup(5)
    model.compile("sgd", lr=0.5)
    seen = []

    def schedule(epoch):
        seen.append(epoch)
        return 0.3 * 0.5 ** epoch

    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[LearningRateScheduler(schedule)])
    assert seen == [0, 1, 2]
    assert history.history["lr"] == [0.3, 0.15, 0.075]            # halvings of 0.3: exact in binary
    lam = overfitting_setup(5)[0].compile("sgd", lr=0.5)
    h2 = lam.fit(x, y, epochs=2, batch_size=16, verbose=0,
                 callbacks=[LearningRateScheduler(lambda epoch: 0.25 if epoch else 0.125)])
    assert h2.history["lr"] == [0.125, 0.25]


def test_scheduler_function_that_fits_neither_form_or_returns_a_bad_rate():
    with pytest.raises(TypeError, match=r"takes neither \(epoch\) nor \(epoch, lr\)"):
        LearningRateScheduler(lambda: 0.1)
    with pytest.raises(TypeError, match=r"takes neither"):
        LearningRateScheduler(lambda epoch, lr, extra: 0.1)
    model, x, y = overfitting_setup(6)
    model.compile("sgd")
    for bad in (float("nan"), -0.1, "0.1", None):
        def returns_bad(epoch, lr, value=bad):
            return value
        with pytest.raises(ValueError, match=r"returned .* for epoch 0; a learning rate must be a finite number"):
            model.fit(x, y, verbose=0, callbacks=[LearningRateScheduler(returns_bad)])


def test_scheduler_on_another_optimizer_is_rejected():
    model, x, y = overfitting_setup(6)
    other = tc.SGD(overfitting_setup(7)[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"LearningRateScheduler: the schedule drives a different optimizer"):
        model.fit(x, y, callbacks=[LearningRateScheduler(StepLR(other, step_size=1))], verbose=0)
    with pytest.raises(ValueError, match=r"a function schedule runs per epoch"):
        LearningRateScheduler(lambda e, lr: lr, per="batch")


# -- the non-finite stop keeps the last good checkpoint ----------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_loss_stops_training_and_the_last_good_checkpoint_stays_intact(tmp_path):
    model, x, y = overfitting_setup(8)
    rec = RecordWeights()
    path = tmp_path / "last.npz"
    # From the third epoch on, an absurd learning rate makes the weights, then the loss, blow up.
    blow_up = LearningRateScheduler(lambda epoch, lr: 1e30 if epoch == 2 else 0.01)
    with pytest.raises(tc.NonFiniteLossError, match=r"at epoch 3/5, step \d+/8") as info:
        model.fit(x, y, epochs=5, batch_size=8, callbacks=[blow_up, rec, ModelCheckpoint(path, monitor="loss")],
                  verbose=0)
    assert info.value.epoch == 3 and info.value.step >= 2           # step 1 still had finite weights
    assert len(rec.per_epoch) == 2
    fresh, _, _ = overfitting_setup(99)
    meta = load_checkpoint(path, fresh, fresh.compiled.optimizer)
    assert meta["epoch"] == 2
    assert_same_weights(fresh.state_dict(), rec.per_epoch[1])
    assert all(np.isfinite(v).all() for v in fresh.state_dict().values())
    assert os.listdir(tmp_path) == ["last.npz"]                      # no half-written file beside it


def test_learning_rate_scheduler_refuses_a_schedule_that_steps_on_a_metric():
    """ReduceLROnPlateau.step(metric) needs the monitored value: refused at construction, not with a
    TypeError at the end of the first epoch."""
    model = tc.Sequential(tc.Flatten(), tc.Dense(4, 2, rng=np.random.default_rng(0)))
    opt = tc.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"LearningRateScheduler: ReduceLROnPlateau.step needs a monitored value"):
        LearningRateScheduler(tc.ReduceLROnPlateau(opt))
