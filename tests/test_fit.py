"""The Keras-style front end: compile / fit / evaluate / predict on the same layers as the PyTorch-style loop.

Expected values come from the PyTorch-style loop written out by hand (layers, loss, optimizer), from
torch, or from hand-worked data; never from the fit code itself.
"""
import io
import math

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import data, training          # training.fit: what Sequential.fit forwards to
from tolerances import TRAJECTORY_F64_REL_TOL, gamma


def tiny_model(seed, *, softmax=True, dtype=np.float64, extra=()):
    """(N, 1, 6, 6) -> 3 classes."""
    rng = np.random.default_rng(seed)
    layers = [tc.Conv2D(1, 4, 3, dtype=dtype, rng=rng), tc.ReLU(), *extra, tc.MaxPool2D(2), tc.Flatten(),
              tc.Dense(4 * 2 * 2, 3, dtype=dtype, rng=rng)]
    return tc.Sequential(*layers, *([tc.Softmax()] if softmax else []))


def tiny_data(n, seed, dtype=np.float64):
    """Labels a CNN can learn: which third of the image is brightest."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 6, 6)).astype(dtype)
    y = rng.integers(0, 3, n)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 2] += 1.5
    return x, y


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# -- compile -------------------------------------------------------------------------------------

def test_compile_rejects_unknown_names_and_foreign_optimizers():
    model = tiny_model(0)
    with pytest.raises(ValueError, match=r"compile: unknown optimizer 'rmsprop'"):
        model.compile("rmsprop")
    with pytest.raises(ValueError, match=r"compile: unknown loss 'mse'"):
        model.compile("sgd", loss="mse")
    with pytest.raises(ValueError, match=r"compile: unknown metric 'auc'"):
        model.compile("sgd", metrics=["auc"])
    other = tiny_model(1)
    with pytest.raises(ValueError, match=r"compile: the optimizer was built on other parameters"):
        model.compile(tc.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"lr= only applies to an optimizer given by name"):
        model.compile(tc.SGD(model.parameters(), lr=0.1), lr=0.5)
    with pytest.raises(RuntimeError, match=r"Sequential.fit: call model.compile"):
        tiny_model(0).fit(*tiny_data(4, 0), verbose=0)


def test_compile_names_give_keras_default_rates():
    model = tiny_model(0)
    assert isinstance(model.compile("sgd").compiled.optimizer, tc.SGD)
    assert model.compiled.optimizer.lr == 0.01
    assert isinstance(model.compile("adam").compiled.optimizer, tc.Adam)
    assert model.compiled.optimizer.lr == 0.001
    assert model.compile("adam", lr=0.1).compiled.optimizer.lr == 0.1


# -- bad input -------------------------------------------------------------------------------------

def test_fit_rejects_bad_data_with_the_numbers():
    model = tiny_model(0).compile("sgd")
    x, y = tiny_data(8, 0)
    with pytest.raises(TypeError, match=r"fit: x has dtype uint8.*x.astype\(np.float32\) / 255"):
        model.fit((x * 0).astype(np.uint8), y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: x holds 8 samples but y has shape \(7,\)"):
        model.fit(x, y[:7], verbose=0)
    with pytest.raises(ValueError, match=r"fit: x holds 8 samples but y has shape \(9,\)"):
        model.fit(x, np.append(y, 0), validation_split=0.25, verbose=0)      # not hidden by the split
    bad = y.copy()
    bad[5] = 3
    with pytest.raises(ValueError, match=r"fit: y\[5\] = 3 is out of range for the model's 3 classes \(0..2\)"):
        model.fit(x, bad, verbose=0)
    with pytest.raises(TypeError, match=r"needs integer class indices.*compile with loss='categorical_crossentropy'"):
        model.fit(x, np.eye(3)[y], verbose=0)
    with pytest.raises(ValueError, match=r"fit: validation_split must lie in \[0, 1\), got 1.0"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match=r"fit: batch_size must be a positive integer, got 0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(tc.ShapeError, match=r"layer 0, Conv2D\(1, 4.*expected 1 input channels, got 3"):
        model.fit(np.zeros((8, 3, 6, 6)), y, verbose=0)
    cat = tiny_model(0).compile("sgd", loss="categorical_crossentropy")
    with pytest.raises(TypeError, match=r"needs float one-hot/probability labels of shape \(8, 3\).*"
                                        r"loss='sparse_categorical_crossentropy'"):
        cat.fit(x, y, verbose=0)


# -- the fused softmax -----------------------------------------------------------------------------

def test_fit_with_trailing_softmax_equals_the_hand_written_loop_on_logits():
    """fit feeds the logits BEFORE the Softmax layer to SoftmaxCrossEntropy: one epoch of fit equals the
    PyTorch-style loop on the same model without its Softmax, bit for bit."""
    x, y = tiny_data(12, 1)
    fused = tiny_model(7, softmax=True)
    fused.compile(tc.SGD(fused.parameters(), lr=0.1, momentum=0.9))
    history = fused.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)

    plain = tiny_model(7, softmax=False)
    opt = tc.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    loss_fn = tc.SoftmaxCrossEntropy()
    losses = []
    for start in range(0, 12, 4):
        opt.zero_grad()
        losses.append(loss_fn(plain(x[start:start + 4]), y[start:start + 4]))
        plain.backward(loss_fn.backward())
        opt.step()
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(fused.state_dict()[key], value, err_msg=key)
    # History's loss is the mean of the batch losses (equal batches); a sum of 3 terms in float64
    assert history.history["loss"][0] == pytest.approx(np.mean(losses), rel=2 * gamma(3, np.float64))


def test_predict_applies_softmax_exactly_once():
    x, _ = tiny_data(5, 2)
    model = tiny_model(3, softmax=True)
    logits = tc.Sequential(*model.layers[:-1])(x)                            # (5, 3)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    got = model.predict(x, batch_size=2)
    np.testing.assert_allclose(got, want, rtol=8 * np.finfo(np.float64).eps, atol=0)
    twice = np.exp(want) / np.exp(want).sum(axis=1, keepdims=True)            # what a second softmax would give
    assert np.abs(got - twice).max() > 0.01
    # Without a trailing Softmax, predict applies it itself: the same probabilities
    bare = tiny_model(3, softmax=False)
    np.testing.assert_allclose(bare.predict(x), want, rtol=8 * np.finfo(np.float64).eps, atol=0)
    np.testing.assert_array_equal(model.predict_classes(x), want.argmax(axis=1))


def test_predict_matches_torch_softmax_of_the_same_network(torch):
    x, _ = tiny_data(6, 4)
    model = tiny_model(5, softmax=True)
    nn = torch.nn
    ref = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3),
                        nn.Softmax(dim=1)).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    want = ref(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-10, atol=1e-15)


# -- validation split, labels, evaluate ------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_validation_split_takes_the_last_fraction_before_shuffling():
    """The last 3 of 10 samples hold NaN: if fit trained on any of them the loss would be NaN and fit
    would raise; instead training runs and only the validation loss is NaN."""
    x, y = tiny_data(10, 5)
    x[7:] = np.nan
    model = tiny_model(0).compile("sgd")
    seen = []

    class Params(tc.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.params["samples"])

    history = model.fit(x, y, epochs=3, batch_size=2, validation_split=0.25, shuffle=True, verbose=0,
                        callbacks=[Params()])
    assert seen == [7]                                   # floor(10 * 0.75) = 7 for training, 3 for validation
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert all(math.isnan(v) for v in history.history["val_loss"])
    x2, _ = tiny_data(10, 5)
    x2[0] = np.nan                                        # a NaN among the first 7 does reach training
    with pytest.raises(tc.NonFiniteLossError):
        tiny_model(0).compile("sgd").fit(x2, y, epochs=1, batch_size=2, validation_split=0.25, verbose=0)


def test_validation_numbers_equal_evaluate_after_the_epoch_and_validation_data_overrides_split():
    x, y = tiny_data(20, 6)
    xv, yv = tiny_data(9, 7)
    model = tiny_model(1).compile("adam", metrics=["accuracy"], lr=0.01)
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.5, validation_data=(xv, yv), verbose=0)
    after = model.evaluate(xv, yv, batch_size=4, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(after["loss"], rel=4 * gamma(9, np.float64))
    assert history.history["val_accuracy"][-1] == after["accuracy"]
    assert sorted(history.history) == ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert all(len(v) == 2 for v in history.history.values()) and history.epoch == [0, 1]


def test_evaluate_equals_the_loss_and_accuracy_computed_by_hand():
    x, y = tiny_data(10, 8)
    model = tiny_model(2).compile("sgd", metrics=["accuracy", "top_2_accuracy"])
    result = model.evaluate(x, y, batch_size=3, return_dict=True)
    logits = tc.Sequential(*model.layers[:-1])(x)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert result["loss"] == pytest.approx(-logp[np.arange(10), y].mean(), rel=4 * gamma(10, np.float64))
    assert result["accuracy"] == np.mean(logits.argmax(1) == y)
    rank = (logits > logits[np.arange(10), y][:, None]).sum(1)            # classes scoring above the truth
    assert result["top_2_accuracy"] == np.mean(rank < 2)


def test_categorical_one_hot_labels_train_exactly_like_sparse_labels():
    x, y = tiny_data(12, 9)
    a = tiny_model(4).compile("sgd", loss="sparse_categorical_crossentropy", lr=0.1)
    b = tiny_model(4).compile("sgd", loss="categorical_crossentropy", lr=0.1)
    ha = a.fit(x, y, epochs=2, batch_size=5, verbose=0)
    hb = b.fit(x, np.eye(3)[y], epochs=2, batch_size=5, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)


def test_keras_style_training_learns_and_pytorch_style_loop_still_works_after_it():
    x, y = tiny_data(60, 10, np.float32)
    model = tiny_model(5, dtype=np.float32).compile("adam", metrics=["accuracy"], lr=0.02)
    history = model.fit(x, y, epochs=8, batch_size=10, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert model.evaluate(x, y, return_dict=True)["accuracy"] > 0.8                        # chance: 1/3
    # The same model in a hand-written PyTorch-style step (its Softmax removed for the logits)
    logits_model = tc.Sequential(*model.layers[:-1])
    opt = tc.SGD(model.parameters(), lr=0.05)
    loss_fn = tc.SoftmaxCrossEntropy()
    before = weights(model)
    opt.zero_grad()
    loss_fn(logits_model(x[:8]), y[:8])
    logits_model.backward(loss_fn.backward())
    opt.step()
    changed = [k for k in before if not np.array_equal(before[k], model.state_dict()[k])]
    assert changed == list(before)


def test_eval_mode_in_predict_and_evaluate_and_train_mode_restored():
    x, y = tiny_data(8, 11)
    model = tiny_model(6, extra=(tc.Dropout(0.5, rng=np.random.default_rng(0)),)).compile("sgd")
    assert model.training
    p1, p2 = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(p1, p2)                                  # no dropout at predict
    assert model.training and all(layer.training for layer in model.layers)
    model.eval()
    model.evaluate(x, y)
    assert not model.training                                              # restored to what it was


# -- the non-finite loss stop ----------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_names_epoch_and_step_and_skips_that_update():
    x, y = tiny_data(12, 12)
    x[9] = np.inf                                  # sample 9 -> batch of samples 8..11 -> step 3 of 3
    model = tiny_model(8, extra=(tc.BatchNorm2D(4),)).compile("sgd", lr=0.1)
    snapshots = []

    class Record(tc.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            snapshots.append(weights(self.model))

    with pytest.raises(tc.NonFiniteLossError, match=r"the training loss is (nan|inf) at epoch 1/2, step 3/3 "
                                                   r"\(batch 3 of this fit") as info:
        model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0, callbacks=[Record()])
    assert (info.value.epoch, info.value.step, info.value.global_step) == (1, 3, 3)
    assert len(snapshots) == 2
    for key, value in snapshots[-1].items():        # weights AND batch-norm running stats of step 2
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)


def test_evaluate_returns_what_keras_returns():
    x, y = tiny_data(10, 8)
    plain = tiny_model(2).compile("sgd")
    loss_only = plain.evaluate(x, y)
    assert isinstance(loss_only, float) and loss_only == plain.evaluate(x, y, return_dict=True)["loss"]
    model = tiny_model(2).compile("sgd", metrics=["accuracy", "top_2_accuracy"])
    as_dict = model.evaluate(x, y, return_dict=True)
    loss, acc, top2 = model.evaluate(x, y)                                # Keras: [loss, *metrics]
    assert [loss, acc, top2] == [as_dict["loss"], as_dict["accuracy"], as_dict["top_2_accuracy"]]


# -- batches from an iterable: the same loop as arrays -----------------------------------------------

class CountingBatches:
    """Wraps an iterable of batches and counts how often it is iterated (one pass per epoch)."""

    def __init__(self, inner):
        self.inner, self.passes = inner, 0

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        self.passes += 1
        return iter(self.inner)


def test_fit_on_a_data_pipeline_equals_fit_on_the_same_arrays():
    """tinycnn.data.Batches (uint8 images, scaled to [0, 1] batch by batch, shuffled by its own
    generator) against fit on the arrays scaled up front, shuffled by a generator of the same seed:
    the same permutations, so bit-identical weights and history."""
    x, y = tiny_data(30, 13, np.float32)
    u8 = np.clip(x * 40 + 128, 0, 255).astype(np.uint8)
    scaled = u8.astype(np.float32) / np.float32(255)
    xv, yv = tiny_data(9, 14, np.float32)
    a = tiny_model(9, dtype=np.float32).compile("adam", metrics=["accuracy"], lr=0.01)
    ha = a.fit(scaled, y, epochs=3, batch_size=8, rng=np.random.default_rng(5), validation_data=(xv, yv),
               verbose=0)
    b = tiny_model(9, dtype=np.float32).compile("adam", metrics=["accuracy"], lr=0.01)
    batches = CountingBatches(data.Batches(u8, y, 8, shuffle=True, rng=np.random.default_rng(5)))
    val = [(xv[:8], yv[:8]), (xv[8:], yv[8:])]                        # the batches fit cuts the arrays into
    hb = training.fit(b, batches, epochs=3, validation_data=val, verbose=0)
    assert batches.passes == 3                                        # iterated afresh every epoch
    assert ha.history == hb.history
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)


def test_each_epoch_sees_the_augmentation_drawn_for_it():
    """An augmenting pipeline draws new crops every pass: fit trains on what the pass yields."""
    x, y = tiny_data(12, 15)
    u8 = np.clip(x * 40 + 128, 0, 255).astype(np.uint8)
    seen = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for xb, yb in self.inner:
                seen.append(xb.copy())
                yield xb, yb.astype(np.int64)

    pipeline = data.Batches(u8, y, 12, shuffle=False, rng=np.random.default_rng(0),
                               augment=data.Augment(pad=1, flip=True))
    model = tiny_model(2).compile("sgd")
    training.fit(model, Recording(pipeline), epochs=2, verbose=0)
    assert len(seen) == 2 and not np.array_equal(seen[0], seen[1])


def test_a_list_of_batches_and_validation_batches_equal_the_arrays():
    x, y = tiny_data(12, 16)
    xv, yv = tiny_data(7, 17)
    a = tiny_model(3).compile("sgd", metrics=["accuracy"], lr=0.1)
    ha = a.fit(x, y, epochs=2, batch_size=4, shuffle=False, validation_data=(xv, yv), verbose=0)
    b = tiny_model(3).compile("sgd", metrics=["accuracy"], lr=0.1)
    hb = training.fit(b, [(x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)], epochs=2,
                      validation_data=[(xv[:3], yv[:3]), (xv[3:], yv[3:])], verbose=0)
    assert hb.history["loss"] == ha.history["loss"] and hb.history["accuracy"] == ha.history["accuracy"]
    # the validation loss: the same per-batch losses, summed over other batch boundaries
    assert hb.history["val_loss"] == pytest.approx(ha.history["val_loss"], rel=4 * gamma(7, np.float64))
    assert hb.history["val_accuracy"] == ha.history["val_accuracy"]
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)


def test_evaluate_on_batches_equals_evaluate_on_arrays_and_needs_no_compile_when_plain():
    x, y = tiny_data(10, 18)
    model = tiny_model(4).compile("sgd", metrics=["accuracy"])
    on_arrays = model.evaluate(x, y, batch_size=4, return_dict=True)
    on_batches = training.evaluate(model, [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])], return_dict=True)
    assert on_batches == on_arrays
    plain = training.evaluate_batches(tiny_model(4), [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])])
    assert plain.loss == on_arrays["loss"] and plain.accuracy == on_arrays["accuracy"]
    np.testing.assert_array_equal(plain.labels, y)


def test_batches_are_checked_and_arrays_only_options_refused():
    x, y = tiny_data(8, 19)
    model = tiny_model(0).compile("sgd")
    with pytest.raises(TypeError, match=r"fit \(batch 2\): x has dtype int64"):
        training.fit(model, [(x[:4], y[:4]), (x[4:].astype(np.int64), y[4:])], verbose=0)
    with pytest.raises(ValueError, match=r"fit \(batch 1\): y\[1\] = 7 is out of range"):
        training.fit(model, [(x[:4], np.array([0, 7, 1, 2]))], verbose=0)
    with pytest.raises(TypeError, match=r"fit \(batch 1\): each batch must be a pair \(x, y\).*got a ndarray"):
        training.fit(model, [x], verbose=0)
    with pytest.raises(ValueError, match=r"fit: batch_size=16 applies to arrays"):
        training.fit(model, [(x, y)], batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"fit: validation_split=0.2 applies to arrays"):
        training.fit(model, [(x, y)], validation_split=0.2, verbose=0)
    with pytest.raises(TypeError, match=r"fit: y is missing"):
        model.fit(x, None, verbose=0)
    one_shot = ((x[i:i + 4], y[i:i + 4]) for i in (0, 4))
    with pytest.raises(ValueError, match=r"gave no batch in epoch 2.*a generator is used up after one pass"):
        training.fit(model, one_shot, epochs=2, verbose=1, progress_file=io.StringIO())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_in_batches_restores_the_batch_norm_statistics():
    x, y = tiny_data(12, 12)
    x[9] = np.inf
    model = tiny_model(8, extra=(tc.BatchNorm2D(4),)).compile("sgd", lr=0.1)
    snapshots = []

    class Record(tc.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            snapshots.append(weights(self.model))

    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)]
    with pytest.raises(tc.NonFiniteLossError, match=r"at epoch 1/2, step 3/3"):
        training.fit(model, batches, epochs=2, verbose=0, callbacks=[Record()])
    for key, value in snapshots[-1].items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_predictions_give_nan_metrics_not_an_error():
    x, y = tiny_data(8, 20)
    xv, yv = tiny_data(4, 21)
    xv[0] = np.nan
    model = tiny_model(1).compile("sgd", metrics=["accuracy", "f1"])
    history = model.fit(x, y, validation_data=(xv, yv), verbose=0)
    assert math.isnan(history.history["val_accuracy"][0]) and math.isnan(history.history["val_f1"][0])
    assert math.isfinite(history.history["accuracy"][0])


def test_stop_training_from_a_batch_ends_the_epoch_after_that_batch():
    x, y = tiny_data(20, 22)
    model = tiny_model(2).compile("sgd")
    steps = []

    class StopAtStep2(tc.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            steps.append(step)
            if step == 1:
                self.model.stop_training = True

    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[StopAtStep2()])
    assert steps == [0, 1] and history.epoch == [0] and len(history.history["loss"]) == 1


# -- Keras' initial_epoch, sample_weight and class_weight ----------------------------------------------

def test_initial_epoch_continues_a_fit_exactly():
    x, y = tiny_data(16, 23)
    a = tiny_model(6).compile("adam", lr=0.01, metrics=["accuracy"])
    ha = a.fit(x, y, epochs=3, batch_size=5, verbose=0)
    b = tiny_model(6).compile("adam", lr=0.01, metrics=["accuracy"])
    first = b.fit(x, y, epochs=1, batch_size=5, verbose=0)
    seen = []

    class Epochs(tc.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((epoch, self.params["initial_epoch"]))

    buf = io.StringIO()
    rest = training.fit(b, x, y, epochs=3, initial_epoch=1, batch_size=5, verbose=2, progress_file=buf,
                        callbacks=[Epochs()])
    assert rest.epoch == [1, 2] and seen == [(1, 1), (2, 1)]
    assert "Epoch 2/3" in buf.getvalue() and "Epoch 3/3" in buf.getvalue() and "Epoch 1/3" not in buf.getvalue()
    assert first.history["loss"] + rest.history["loss"] == ha.history["loss"]
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)
    for bad in (3, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"fit: initial_epoch must be an integer in \[0, epochs\) = \[0, 3\)"):
            training.fit(b, x, y, epochs=3, initial_epoch=bad, verbose=0)


def test_sample_weight_matches_torch_weighted_cross_entropy(torch):
    """Keras' reduction: sum_i w_i * loss_i / B. Oracle: torch's per-sample cross-entropy, weighted,
    summed and divided by the batch size, with torch's SGD."""
    x, y = tiny_data(12, 24)
    w = np.random.default_rng(0).uniform(0, 3, 12)
    model = tiny_model(7, softmax=False).compile("sgd", lr=0.1)
    nn = torch.nn
    ref = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)).double()
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    history = training.fit(model, x, y, epochs=1, batch_size=5, shuffle=False, sample_weight=w, verbose=0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    losses = []
    for s in (slice(0, 5), slice(5, 10), slice(10, 12)):
        opt.zero_grad()
        per = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x[s])), torch.from_numpy(y[s]), reduction="none")
        loss = (per * torch.from_numpy(w[s])).sum() / len(per)
        loss.backward()
        opt.step()
        losses.append((loss.item(), len(per)))
    for key, value in ref.state_dict().items():               # a 3-step trajectory in float64: the table's bound
        want = value.numpy()
        assert np.abs(model.state_dict()[key] - want).max() <= TRAJECTORY_F64_REL_TOL * np.abs(want).max(), key
    want = sum(v * n for v, n in losses) / 12
    assert history.history["loss"][0] == pytest.approx(want, rel=TRAJECTORY_F64_REL_TOL)


def test_class_weight_is_a_sample_weight_per_class_and_missing_classes_weigh_one():
    x, y = tiny_data(12, 25)
    a = tiny_model(8).compile("sgd", lr=0.1)
    ha = training.fit(a, x, y, epochs=2, batch_size=4, shuffle=False, class_weight={0: 2.0, 2: 0.5}, verbose=0)
    b = tiny_model(8).compile("sgd", lr=0.1)
    hb = training.fit(b, x, y, epochs=2, batch_size=4, shuffle=False, sample_weight=np.array([2.0, 1.0, 0.5])[y],
                      verbose=0)
    assert ha.history == hb.history
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)
    # both given: they multiply (Keras); on batches, class_weight applies to each batch's labels
    c = tiny_model(8).compile("sgd", lr=0.1)
    training.fit(c, [(x[i:i + 4], y[i:i + 4], np.full(4, 0.5)) for i in range(0, 12, 4)], epochs=2,
                 class_weight={0: 4.0, 1: 2.0, 2: 1.0}, verbose=0)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(c.state_dict()[key], value, err_msg=key)
    with pytest.raises(ValueError, match=r"fit: class_weight has key 3; keys must be class indices 0..2"):
        training.fit(b, x, y, class_weight={3: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"fit: class_weight\[1\] = -1.0; weights must be finite numbers >= 0"):
        training.fit(b, x, y, class_weight={1: -1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"fit: sample_weight must be finite and >= 0, but sample_weight\[2\] = nan"):
        training.fit(b, x, y, sample_weight=np.where(np.arange(12) == 2, np.nan, 1.0), verbose=0)
    with pytest.raises(ValueError, match=r"fit: sample_weight must be numbers of shape \(12,\)"):
        training.fit(b, x, y, sample_weight=np.ones(11), verbose=0)


def test_validation_split_splits_the_sample_weights_too():
    """The held-out tail keeps its weights: validation is weighted like the training part."""
    x, y = tiny_data(10, 26)
    w = np.arange(1.0, 11.0)
    a = tiny_model(9).compile("sgd")
    ha = training.fit(a, x, y, validation_split=0.3, sample_weight=w, shuffle=False, verbose=0)
    b = tiny_model(9).compile("sgd")
    hb = training.fit(b, x[:7], y[:7], validation_data=(x[7:], y[7:], w[7:]), sample_weight=w[:7], shuffle=False,
                      verbose=0)
    assert ha.history == hb.history


def test_nonfinite_state_names_what_is_not_finite():
    model = tiny_model(1).compile("adam")
    x, y = tiny_data(4, 27)
    model.fit(x, y, verbose=0)
    opt = model.compiled.optimizer
    assert training.nonfinite_state(model, opt, {"loss": 1.0, "val_loss": 2.0}) == []
    model.layers[0].weight.data[0, 0, 0, 0] = np.inf
    opt.exp_avg_sq[1][0] = np.nan
    found = training.nonfinite_state(model, opt, {"loss": 1.0, "val_loss": float("nan")})
    assert found == ["0.weight", "optimizer exp_avg_sq[1]", "val_loss = nan"]


def test_history_records_what_callbacks_add_to_the_epoch_logs():
    x, y = tiny_data(8, 28)
    model = tiny_model(2).compile("sgd")

    class AddsAKey(tc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["twice_loss"] = 2 * logs["loss"]

    buf = io.StringIO()
    history = training.fit(model, x, y, epochs=2, verbose=2, progress_file=buf, callbacks=[AddsAKey()])
    printed = buf.getvalue()
    assert history.history["twice_loss"] == [2 * v for v in history.history["loss"]]
    assert "twice_loss" not in printed                    # the progress line shows fit's own numbers
