"""Lanes (the executor's lanes pass, ``tinycnn.fast.passes.lanes``): a batch cut into slices, each run through its own
copy of the layers on its own thread, must give the result of the uncut batch.

What may differ, and by how much (tests/tolerances.py): per sample, forward is the same arithmetic in
the same order, so the outputs may differ only where a BLAS call blocks differently for a different
number of columns; a parameter gradient is a sum over the batch that the lanes split into partial
sums, added at the end: two roundings of one sum of n = N*OH*OW terms, |diff| <= 2 gamma_n S.
"""
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tolerances import TORCH_F64_REL_TOL, assert_close_reduction, assert_rel_close

import tinycnn as tc
from tinycnn import fast
from tinycnn.fast.ops.base import PlainOp
from tinycnn.fast.passes import lanes


@pytest.fixture
def two_threads(monkeypatch):
    """Lanes on, at least two Numba threads, and any batch of >= 2 images cut (the production minimum
    of MIN_LANE_BATCH images per lane would need large, slow batches)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with at least 2 threads")
    old_threads = numba.get_num_threads()
    numba.set_num_threads(2)
    old = lanes.set_enabled(True)
    monkeypatch.setattr(lanes, "MIN_LANE_BATCH", 1)
    monkeypatch.setattr(lanes, "MIN_LANE_MACS", 0)
    yield
    lanes.set_enabled(old)
    numba.set_num_threads(old_threads)


def _cut(model) -> bool:
    """Whether the model's last forward ran in lanes."""
    return len(model._last_plan.last.slices) > 1


def _lane_count(layers, n, shape=None):
    plan = fast.compile(layers)
    return lanes.lane_count(plan.lanes[0], n, plan._macs_per_sample(shape) if shape else None)


def _order(layers, passes=fast.PASSES):
    """Indices of ``layers`` in the order the plan runs them."""
    plan = fast.compile(layers, passes)
    return [next(i for i, layer in enumerate(layers) if layer is node.layer) for node in plan.graph.nodes]


def _uncut(fn):
    old = lanes.set_enabled(False)
    try:
        return fn()
    finally:
        lanes.set_enabled(old)


def _net(rng, dtype, k, stride, padding, pool, act, h):
    conv = tc.Conv2D(2, 3, k, stride=stride, padding=padding, dtype=dtype, rng=rng)
    oh = (h + 2 * padding - k) // stride + 1
    layers = [conv, {"relu": tc.ReLU, "sigmoid": tc.Sigmoid, "tanh": tc.Tanh}[act]()]
    if pool and oh >= 2:
        layers.append(tc.MaxPool2D(2) if pool == "max" else tc.AvgPool2D(2))
        oh //= 2
    layers += [tc.Flatten(), tc.Dense(3 * oh * oh, 4, dtype=dtype, rng=rng)]
    return tc.Sequential(*layers)


# the fixture's state is the same for every example
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 9), k=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1),
       pool=st.sampled_from([None, "max", "avg"]), act=st.sampled_from(["relu", "sigmoid", "tanh"]),
       seed=st.integers(0, 2**31 - 1))
def test_cut_batch_gives_the_uncut_result_float64(two_threads, n, k, stride, padding, pool, act, seed):
    rng = np.random.default_rng(seed)
    h = 6
    model = _net(rng, np.float64, k, stride, padding, pool, act, h)
    x = rng.standard_normal((n, 2, h, h))
    g = rng.standard_normal((n, 4))                           # random upstream gradient, not ones

    def run():
        y = model(x)
        dx = model.backward(g)
        return np.array(y), np.array(dx), [p.grad.copy() for p in model.parameters()]

    y, dx, grads = run()
    assert _cut(model)           # it really was cut
    y0, dx0, grads0 = _uncut(run)
    assert not _cut(model)
    assert_rel_close(y, y0, TORCH_F64_REL_TOL, "output")
    assert_rel_close(dx, dx0, TORCH_F64_REL_TOL, "input gradient")
    for (name, _), a, b in zip(model.named_parameters(), grads, grads0):
        assert_rel_close(a, b, TORCH_F64_REL_TOL, f"{name}.grad")


# the fixture's state is the same for every example
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 12), seed=st.integers(0, 2**31 - 1))
def test_conv_weight_gradient_float32_within_the_split_sum_bound(two_threads, n, seed):
    """One Conv2D: same grad_y both ways, so the only difference is the split of the batch sum."""
    rng = np.random.default_rng(seed)
    conv = tc.Conv2D(3, 4, 3, padding=1, rng=rng)
    model = tc.Sequential(conv)
    x = rng.standard_normal((n, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal((n, 4, 5, 5)).astype(np.float32)
    y = np.array(model(x))
    model.backward(g, input_grad=False)
    assert _cut(model)
    dw, db = conv.weight.grad.copy(), conv.bias.grad.copy()
    y0 = np.array(_uncut(lambda: model(x)))
    _uncut(lambda: model.backward(g, input_grad=False))
    # S: the same sums over |terms|, in float64
    abs_model = tc.Sequential(tc.Conv2D(3, 4, 3, padding=1, dtype=np.float64, rng=rng))
    abs_model[0].weight.data[...] = np.abs(conv.weight.data)
    abs_model[0].bias.data[...] = np.abs(conv.bias.data)
    s_y = _uncut(lambda: np.array(abs_model(np.abs(x).astype(np.float64))))
    _uncut(lambda: abs_model.backward(np.abs(g).astype(np.float64), input_grad=False))
    assert_close_reduction(y, y0, 3 * 9 + 1, np.float32, s_y, "output")
    terms = n * 5 * 5
    assert_close_reduction(dw, conv.weight.grad, terms, np.float32, abs_model[0].weight.grad, "weight.grad")
    assert_close_reduction(db, conv.bias.grad, terms, np.float32, abs_model[0].bias.grad, "bias.grad")


def test_a_fit_in_lanes_follows_the_uncut_trajectory(two_threads):
    """Five SGD steps with momentum, float64: every loss and weight as without lanes."""
    def train():
        rng = np.random.default_rng(3)
        model = tc.Sequential(tc.Conv2D(1, 4, 3, dtype=np.float64, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
                              tc.Flatten(), tc.Dense(4 * 3 * 3, 3, dtype=np.float64, rng=rng))
        data = np.random.default_rng(4)
        x = data.standard_normal((40, 1, 8, 8))
        y = data.integers(0, 3, 40)
        model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
        hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        return hist.history["loss"], model.state_dict()

    loss, state = train()
    loss0, state0 = _uncut(train)
    assert_rel_close(loss, loss0, 1e-9, "loss")
    for key in state0:
        assert_rel_close(state[key], state0[key], 1e-9, key)


def test_three_lanes(two_threads, monkeypatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 3)
    rng = np.random.default_rng(5)
    model = _net(rng, np.float64, 3, 1, 1, "max", "relu", 6)
    x = rng.standard_normal((7, 2, 6, 6))
    g = rng.standard_normal((7, 4))
    y = np.array(model(x))
    dx = np.array(model.backward(g))
    laned = model._last_plan.last
    assert [s.stop - s.start for s in laned.slices] == [3, 2, 2]
    grads = [p.grad.copy() for p in model.parameters()]
    y0 = _uncut(lambda: np.array(model(x)))
    dx0 = _uncut(lambda: np.array(model.backward(g)))
    assert_rel_close(y, y0, TORCH_F64_REL_TOL, "output")
    assert_rel_close(dx, dx0, TORCH_F64_REL_TOL, "input gradient")
    for a, p in zip(grads, model.parameters()):
        assert_rel_close(a, p.grad, TORCH_F64_REL_TOL, "grad")


@pytest.mark.parametrize("mixer", ["batchnorm", "dropout"])
def test_layers_that_mix_samples_in_training_meet_across_lanes(two_threads, mixer):
    """BatchNorm2D's statistics and Dropout's mask are the whole batch's in lanes too: output, every
    gradient, the running statistics and the generator's state as without lanes (float64)."""
    def net():
        rng = np.random.default_rng(0)
        mid = (tc.BatchNorm2D(3, dtype=np.float64) if mixer == "batchnorm"
               else tc.Dropout(0.5, rng=np.random.default_rng(1)))
        return tc.Sequential(tc.Conv2D(2, 3, 3, dtype=np.float64, rng=rng), mid, tc.Flatten(),
                             tc.Dense(3 * 4 * 4, 2, dtype=np.float64, rng=rng))

    x = np.random.default_rng(5).standard_normal((7, 2, 6, 6))
    g = np.random.default_rng(6).standard_normal((7, 2))

    def run(model):
        y = np.array(model(x))
        dx = np.array(model.backward(g))
        state = [np.array(v, dtype=np.float64) for v in model.state_dict().values()]
        extra = [model[1].rng.random()] if mixer == "dropout" else []
        return [y, dx] + [p.grad.copy() for p in model.parameters()] + state + [np.array(extra)], model

    cut, model = run(net())
    assert _cut(model) and _lane_count(model.layers, 8) == 2
    uncut, _ = _uncut(lambda: run(net()))
    assert_rel_close(cut[0], uncut[0], TORCH_F64_REL_TOL, "output")
    assert_rel_close(cut[1], uncut[1], TORCH_F64_REL_TOL, "input gradient")
    # gradients and state as one vector: the conv bias in front of a batch norm has gradient exactly 0
    # (the norm removes any shift), rounding noise on both sides
    flat = [np.concatenate([a.ravel() for a in arrays[2:]]) for arrays in (cut, uncut)]
    assert_rel_close(flat[0], flat[1], TORCH_F64_REL_TOL, "gradients, buffers, generator")
    model.eval()                                       # running statistics / identity: per sample
    assert _lane_count(model.layers, 8) == 2
    y = np.array(model(x))
    assert _cut(model)
    assert_rel_close(y, _uncut(lambda: np.array(model(x))), TORCH_F64_REL_TOL, "eval output")


def test_batchnorm_eval_lanes_see_updated_running_statistics(two_threads):
    rng = np.random.default_rng(2)
    bn = tc.BatchNorm2D(2, dtype=np.float64)
    model = tc.Sequential(bn, tc.Flatten())
    x = rng.standard_normal((6, 2, 3, 3))
    model.eval()
    model(x)                                           # replicas made now
    model.train()
    model(x + 3.0)                                     # running statistics move (uncut: batch stats)
    model.eval()
    assert_rel_close(np.array(model(x)), _uncut(lambda: np.array(model(x))), TORCH_F64_REL_TOL, "output")


def test_replaced_parameter_arrays_are_picked_up(two_threads):
    rng = np.random.default_rng(1)
    model = _net(rng, np.float64, 3, 1, 0, None, "relu", 6)
    x = rng.standard_normal((4, 2, 6, 6))
    model(x)
    model[0].weight.data = model[0].weight.data * 2.0  # a new array, not an in-place update
    y = np.array(model(x))
    assert_rel_close(y, _uncut(lambda: np.array(model(x))), TORCH_F64_REL_TOL, "output")


def test_layer_backward_on_its_own_after_a_cut_forward_is_refused(two_threads):
    rng = np.random.default_rng(0)
    model = _net(rng, np.float64, 3, 1, 0, None, "relu", 6)
    model(rng.standard_normal((4, 2, 6, 6)))
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        model[0].backward(np.zeros((4, 3, 4, 4)))


def test_wrong_gradient_shape_after_a_cut_forward_names_the_layer(two_threads):
    rng = np.random.default_rng(0)
    model = _net(rng, np.float64, 3, 1, 0, None, "relu", 6)
    model(rng.standard_normal((4, 2, 6, 6)))
    with pytest.raises(ValueError, match=r"Dense\(48, 4\): backward got grad_y of shape \(3, 4\), but forward "
                                         r"produced an output of shape \(4, 4\)"):
        model.backward(np.zeros((3, 4)))


class _FailOnRow(tc.layers.Layer):
    def __init__(self, bad):
        self.bad = bad
        self._cache = None

    def forward(self, x):
        if np.any(x[:, 0, 0, 0] == self.bad):
            raise ValueError(f"_FailOnRow: found the value {self.bad}")
        return x

    def backward(self, grad_y):
        return grad_y


def test_an_error_in_a_helper_lane_reaches_the_caller(two_threads, monkeypatch):
    monkeypatch.setattr(PlainOp, "per_sample", property(lambda self: True))   # vouch for _FailOnRow
    x = np.zeros((4, 1, 2, 2))
    x[3, 0, 0, 0] = 7.0                                # row 3: in lane 1, on the helper thread
    model = tc.Sequential(_FailOnRow(7.0), tc.Flatten())
    with pytest.raises(ValueError, match="found the value 7.0"):
        model(x)
    x[3, 0, 0, 0] = 0.0
    assert np.array(model(x)).shape == (4, 4)          # and the helpers still work afterwards


def test_a_layer_that_does_not_say_per_sample_is_not_cut(two_threads):
    class Mine(tc.layers.Layer):
        def forward(self, x):
            return x

        def backward(self, g):
            return g

    assert _lane_count([Mine(), tc.Flatten()], 64) == 1


def test_lane_ops_share_the_layers_not_the_gradients(two_threads):
    rng = np.random.default_rng(0)
    model = _net(rng, np.float64, 3, 1, 0, None, "relu", 6)
    model(rng.standard_normal((4, 2, 6, 6)))
    model.backward(rng.standard_normal((4, 4)))
    lane0, lane1 = model._last_plan.lanes[:2]
    for a, b in zip(lane0, lane1):
        assert a.layer is b.layer and a is not b
        assert not a.grads or all(a.grads[k] is not b.grads[k] for k in a.grads)


def test_kernels_release_the_gil():
    """Lanes only run side by side if the kernels let go of Python's lock while they work."""
    from tinycnn import kernels

    for kernel in (kernels.im2col_cm, kernels.col2im_cm, kernels.maxpool2d_forward_cm):
        assert kernel.targetoptions.get("nogil") is True
        assert kernel.serial.targetoptions.get("nogil") is True


def _tricky(rng, shape):
    """Values full of ties, zeros of both signs, negatives, NaN and -inf: what could tell the order
    of ReLU and max pooling apart."""
    x = rng.choice(np.array([-2.0, -1.0, -0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0, -np.inf, np.nan]), size=shape)
    small = rng.random(shape) < 0.5
    x[small] = rng.integers(-2, 3, size=shape)[small]                  # more ties
    return x


# the fixture's state is the same for every example
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 3), stride=st.integers(1, 3), padding=st.integers(0, 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_relu_then_maxpool_runs_pool_first_in_lanes_with_the_same_bits(two_threads, monkeypatch, seed, k, stride,
                                                                        padding, dtype):
    """Inside lanes ReLU -> MaxPool2D runs as MaxPool2D -> ReLU: outputs and input gradients must be
    bitwise those of the written order (overlapping windows, padding, ties, NaN, -inf, -0.0)."""
    if padding > k // 2:
        padding = 0
    rng = np.random.default_rng(seed)
    x = _tricky(rng, (6, 3, 7, 7)).astype(dtype)
    pool = tc.MaxPool2D(k, stride, padding)
    oh = pool.output_shape((3, 7, 7))[1]
    model = tc.Sequential(tc.ReLU(), pool, tc.Flatten(), tc.Dense(3 * oh * oh, 4, dtype=dtype, rng=rng))
    assert _order(model.layers) == [1, 0, 2, 3]
    g = rng.standard_normal((6, 4)).astype(dtype)
    unfused = [p for p in fast.PASSES if p != "fusion"]
    assert _order(model.layers, unfused) == [0, 1, 2, 3]

    def run(plan):
        with np.errstate(invalid="ignore"):
            y = np.array(plan.forward(x))
            dx = np.array(plan.backward(g))
        assert len(plan.last.slices) > 1
        return y, dx, [p.grad.copy() for p in model.parameters()]

    y, dx, grads = run(fast.compile(model.layers))
    y0, dx0, grads0 = run(fast.compile(model.layers, unfused))
    np.testing.assert_array_equal(y, y0)                # NaN == NaN here, and -0.0 vs 0.0 ...
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(dx0))   # ... is checked through the sign bit
    np.testing.assert_array_equal(dx, dx0)
    for a, b in zip(grads, grads0):
        np.testing.assert_array_equal(a, b)


def test_only_an_exact_relu_before_an_exact_maxpool_is_swapped():
    class MyReLU(tc.ReLU):
        pass

    assert _order([tc.ReLU(), tc.AvgPool2D(2), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten()]) == [0, 1, 3, 2, 4]
    assert _order([MyReLU(), tc.MaxPool2D(2)]) == [0, 1]
    assert _order([tc.Sigmoid(), tc.MaxPool2D(2)]) == [0, 1]    # saturation makes ties


def test_small_networks_are_cut_only_when_each_lane_has_enough_work():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with at least 2 threads")
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        tiny = tc.Sequential(tc.Conv2D(3, 8, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(8 * 30 * 30, 10, rng=rng))
        macs = 8 * 27 * 30 * 30 + 8 * 30 * 30 * 10                     # conv + dense, per image
        per_lane_needed = -(-lanes.MIN_LANE_MACS // macs)              # images per lane for enough work
        assert _lane_count(tiny.layers, 2 * per_lane_needed - 2, (3, 32, 32)) == 1
        assert _lane_count(tiny.layers, 2 * per_lane_needed, (3, 32, 32)) == 2
        assert _lane_count(tiny.layers, 2 * lanes.MIN_LANE_BATCH - 1) == 1   # shape unknown: batch rule
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_adaptive_pooling_heads_run_in_lanes_with_the_uncut_result(two_threads, pool):
    """A residual network ending in adaptive pooling (resnet20's and mobilenet's global average pool)
    is cut into lanes, and gives the uncut batch's output and gradients (float64)."""
    def net():
        rng = np.random.default_rng(0)
        block = tc.Sequential(tc.Conv2D(3, 3, 3, padding=1, dtype=np.float64, rng=rng),
                              tc.BatchNorm2D(3, dtype=np.float64), tc.ReLU())
        head = tc.AdaptiveAvgPool2D(1) if pool == "avg" else tc.AdaptiveMaxPool2D((2, 3))
        return tc.Sequential(tc.Conv2D(2, 3, 3, dtype=np.float64, rng=rng), tc.Residual(block), head,
                             tc.Flatten(), tc.Dense(3 if pool == "avg" else 18, 2, dtype=np.float64, rng=rng))

    x = np.random.default_rng(5).standard_normal((7, 2, 8, 8))
    g = np.random.default_rng(6).standard_normal((7, 2))

    def run(model):
        y = np.array(model(x))
        dx = np.array(model.backward(g))
        return [y, dx, np.concatenate([p.grad.ravel() for p in model.parameters()])], model

    cut, model = run(net())
    assert _cut(model)
    uncut, _ = _uncut(lambda: run(net()))
    for name, a, b in zip(("output", "input gradient", "parameter gradients"), cut, uncut):
        assert_rel_close(a, b, TORCH_F64_REL_TOL, name)
