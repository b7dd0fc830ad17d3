"""Fast equals plain: the executor (``tinycnn.fast``) computes what the layers' own code computes.

Random networks are drawn from the layer set (random shapes, strides, paddings, orders, batch sizes
including 1 and sizes that do not split evenly into lanes), run once through the plain plan (every
layer on its own code: the definition) and once through the executor with every pass, and compared:
the forward output, every parameter gradient and the input gradient, and a 5-step SGD trajectory.

Bounds (tests/tolerances.py): in float64 the two sides are the same mathematics rounded in other
orders (bias inside the product, split sums, channel-major reductions), so they agree to the oracle
bar, max-norm relative 1e-10. In float32 every fast op is checked against its plain layer with the
derived bound of that op (a reduction of n terms: 2 gamma_n S, S computed on |operands|; batch norm:
``batchnorm_atol``; no arithmetic: bitwise).
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tolerances import TORCH_F64_REL_TOL, assert_close_reduction, assert_rel_close, assert_within, batchnorm_atol

import tinycnn as tc
from tinycnn import fast
from tinycnn.fast.ops import conv as conv_op
from tinycnn.fast.ops import conv_blocks
from tinycnn.fast.passes import blocks as blocks_pass
from tinycnn.fast.passes import lanes

SEEDS = st.integers(0, 2**31 - 1)


@pytest.fixture
def lanes_everywhere(monkeypatch):
    """At least two Numba threads and any batch of >= 2 images cut into lanes (the production minimum
    would need large, slow batches)."""
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


@pytest.fixture
def conv_blocks_everywhere(monkeypatch):
    """Every Conv2D with a kernel larger than 1x1 runs in blocks of 3 output pixels (ops/conv_blocks.py):
    one thread, no weight or length limit, so even the tests' small maps are cut into several blocks,
    the last one usually short."""
    old_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    monkeypatch.setattr(conv_blocks, "block_pixels", lambda k, n, itemsize: 3)
    monkeypatch.setattr(conv_blocks, "MIN_BLOCKS", 0)
    monkeypatch.setattr(blocks_pass, "MAX_WEIGHT_BYTES", 1 << 40)
    monkeypatch.setattr(conv_blocks, "MIN_TRANSPOSED_CHANNELS", 1)
    yield
    numba.set_num_threads(old_threads)


def _ran_in_blocks(plan) -> int:
    """How many Conv2D ops of ``plan`` kept a blocked forward's cache."""
    return sum(isinstance(node.op.cache, conv_blocks.BlockedConvCache) for node in plan.graph.nodes)


# ---------------------------------------------------------------------------------------------
# Random networks
# ---------------------------------------------------------------------------------------------

KINDS = ["conv", "conv", "relu", "maxpool", "avgpool", "batchnorm", "sigmoid", "tanh", "dropout", "gelu"]


@st.composite
def networks(draw):
    """(layers, x, training, seed): float64 input (N, C, H, W), 1-5 feature layers drawn from KINDS
    (each kept only if its input fits), then Flatten and Dense(-> 3)."""
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    n = draw(st.sampled_from([1, 2, 3, 5, 7]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(4, 10)), draw(st.integers(4, 10)))
    x = rng.standard_normal((n, *shape))
    layers = []
    for kind in draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5)):
        c = shape[0]
        if kind == "conv":
            k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
            layer = tc.Conv2D(c, draw(st.integers(1, 4)), k, stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                              padding=(draw(st.integers(0, 1)), draw(st.integers(0, 1))), bias=draw(st.booleans()),
                              dtype=np.float64, rng=rng)
        elif kind in ("maxpool", "avgpool"):
            k = draw(st.integers(1, 3))
            cls = tc.MaxPool2D if kind == "maxpool" else tc.AvgPool2D
            layer = cls(k, stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, k // 2)))
        elif kind == "batchnorm":
            layer = tc.BatchNorm2D(c, momentum=draw(st.sampled_from([0.1, None])), affine=draw(st.booleans()),
                                   dtype=np.float64)
            layer.running_mean[...] = rng.standard_normal(c)
            layer.running_var[...] = rng.uniform(0.5, 2.0, c)
            if layer.affine:
                layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
                layer.bias.data[...] = rng.standard_normal(c)
        elif kind == "dropout":
            layer = tc.Dropout(0.3, rng=np.random.default_rng(seed + 1))
        else:
            layer = {"relu": tc.ReLU, "sigmoid": tc.Sigmoid, "tanh": tc.Tanh, "gelu": tc.GELU}[kind]()
        try:
            out = tuple(layer.output_shape(shape)) if hasattr(layer, "output_shape") else shape
        except ValueError:
            continue                                   # this layer does not fit here: leave it out
        if kind == "batchnorm" and n * out[1] * out[2] <= 1:
            continue                                   # one value per channel: refused in training
        layers.append(layer)
        shape = out
    layers += [tc.Flatten(), tc.Dense(int(np.prod(shape)), 3, dtype=np.float64, rng=rng)]
    return layers, x, draw(st.booleans()), seed


def _reset_dropout(layers, seed):
    """Dropout draws its mask from its generator: both sides start from the same state."""
    for layer in layers:
        if isinstance(layer, tc.Dropout):
            layer.rng = np.random.default_rng(seed + 1)


def _buffers(layers):
    return [b for layer in layers for b in layer.named_buffers().values()]


def _run(plan, layers, x, g, seed, saved, input_grad=True):
    """Forward (+ backward when g is given) through ``plan`` from the same buffers and dropout state."""
    for a, s in zip(_buffers(layers), saved):
        a[...] = s
    _reset_dropout(layers, seed)
    y = np.array(plan.forward(x))
    if g is None:
        return y
    dx = plan.backward(g, input_grad)
    grads = {f"{i}.{k}": p.grad.copy() for i, layer in enumerate(layers) for k, p in layer.named_parameters()}
    after = [np.array(b, copy=True) for b in _buffers(layers)]
    return y, (None if dx is None else np.array(dx)), grads, after


def compare(layers, x, training, seed, input_grad=True):
    """Plain plan vs fast plan on the same input, upstream gradient, buffers and dropout masks."""
    for layer in layers:
        layer.train(training)
    plain, fast_plan = fast.compile(layers, plain=True), fast.compile(layers)
    saved = [np.array(b, copy=True) for b in _buffers(layers)]
    y_shape = _run(plain, layers, x, None, seed, saved).shape
    g = np.random.default_rng(seed + 2).standard_normal(y_shape)      # random upstream gradient
    y0, dx0, grads0, after0 = _run(plain, layers, x, g, seed, saved)
    y1, dx1, grads1, after1 = _run(fast_plan, layers, x, g, seed, saved, input_grad)
    assert_rel_close(y1, y0, TORCH_F64_REL_TOL, "output")
    if input_grad:
        assert_rel_close(dx1, dx0, TORCH_F64_REL_TOL, "input gradient")
    else:
        assert dx1 is None
    assert grads1.keys() == grads0.keys()
    # The parameter gradients are compared as one vector (max-norm relative over all of them): a
    # tensor whose exact gradient is 0 (a bias in front of a batch norm: the norm removes any shift)
    # holds only rounding noise on both sides, which no per-tensor relative bound can compare.
    scale = max([float(np.abs(g).max()) for g in grads0.values() if g.size] + [0.0])
    for key in grads0:
        diff = float(np.abs(grads1[key] - grads0[key]).max()) if grads0[key].size else 0.0
        assert diff <= TORCH_F64_REL_TOL * scale, (
            f"{key}.grad NOT OK: max diff {diff:.3e} > 1e-10 * {scale:.3e} (the largest gradient entry)")
    # running statistics moved the same way (one vector again: a batch norm behind another has an
    # exactly zero batch mean, rounding noise on both sides)
    bscale = max([float(np.abs(b).max()) for b in after0 if np.size(b)] + [0.0])
    for a, b in zip(after1, after0):
        diff = float(np.abs(np.asarray(a, np.float64) - b).max()) if np.size(b) else 0.0
        assert diff <= TORCH_F64_REL_TOL * bscale, f"buffer NOT OK: max diff {diff:.3e} > 1e-10 * {bscale:.3e}"
    return fast_plan


@given(net=networks(), input_grad=st.booleans())
def test_random_networks_fast_equals_plain_float64(net, input_grad):
    compare(*net, input_grad=input_grad)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=networks())
def test_random_networks_in_lanes_equal_plain_float64(lanes_everywhere, net):
    compare(*net)


def test_thin_conv_runs_in_blocks_on_one_thread_only():
    """The default rule: a 16 -> 16 3x3 layer on a 32 x 32 map takes the blocked path on one thread (its
    columns are many blocks long, its weights small); with two threads outside a lane it keeps the one
    product, which the threads can split; a 1x1 layer never takes it."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with at least 2 threads")
    rng = np.random.default_rng(0)
    thin = tc.Conv2D(16, 16, 3, padding=1, rng=rng)
    pointwise = tc.Conv2D(16, 16, 1, rng=rng)
    x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    old = numba.get_num_threads()
    try:
        for threads, blocked in ((1, True), (2, False)):
            numba.set_num_threads(threads)
            for layer, expect in ((thin, blocked), (pointwise, False)):
                op = _op(layer)
                op.forward(x)
                assert isinstance(op.cache, conv_blocks.BlockedConvCache) == expect, (layer, threads)
    finally:
        numba.set_num_threads(old)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=networks(), input_grad=st.booleans())
def test_random_networks_with_conv_blocks_equal_plain_float64(conv_blocks_everywhere, net, input_grad):
    plan = compare(*net, input_grad=input_grad)
    convs = [n for n in plan.graph.nodes if isinstance(n.op, conv_op.ConvOp) and tuple(n.layer.kernel_size) != (1, 1)]
    assert _ran_in_blocks(plan) == len(convs)          # every such conv really took the blocked path


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("first", [False, True])
def test_pointwise_conv_uses_its_input_as_columns_and_equals_plain_float64(bias, first):
    """A 1x1, stride-1, unpadded Conv2D reads its (C, H*W*N) input as its columns and writes its input
    gradient straight from the product; first: it is the network's first layer (its input arrives in
    (N, C, H, W) order and is copied), else it follows a fast op (a free channel-major view)."""
    rng = np.random.default_rng(7)
    head = [] if first else [tc.Conv2D(2, 3, 3, padding=1, rng=rng, dtype=np.float64), tc.ReLU()]
    c = 2 if first else 3
    layers = [*head, tc.Conv2D(c, 4, 1, bias=bias, rng=rng, dtype=np.float64), tc.ReLU(),
              tc.Conv2D(4, 5, 1, bias=not bias, rng=rng, dtype=np.float64), tc.Flatten(),
              tc.Dense(5 * 5 * 4, 3, rng=rng, dtype=np.float64)]
    x = rng.standard_normal((3, 2, 5, 4))
    compare(layers, x, training=True, seed=1)


def test_sgd_trajectory_fast_equals_plain():
    """Five SGD steps with momentum, float64: every loss, weight and running statistic."""
    def train(plain):
        rng = np.random.default_rng(3)
        layers = [tc.Conv2D(2, 4, 3, padding=1, dtype=np.float64, rng=rng), tc.BatchNorm2D(4, dtype=np.float64),
                  tc.ReLU(), tc.MaxPool2D(2), tc.Conv2D(4, 5, 3, dtype=np.float64, rng=rng), tc.ReLU(),
                  tc.Flatten(), tc.Dense(5 * 2 * 2, 3, dtype=np.float64, rng=rng)]
        plan = fast.compile(layers, plain=plain)
        params = [p for layer in layers for p in layer.parameters()]
        opt = tc.SGD(params, lr=0.1, momentum=0.9)
        loss_fn = tc.SoftmaxCrossEntropy()
        data = np.random.default_rng(4)
        losses = []
        for _ in range(5):
            x = data.standard_normal((6, 2, 8, 8))
            y = data.integers(0, 3, 6)
            opt.zero_grad()
            losses.append(loss_fn.forward(plan.forward(x), y))
            plan.backward(loss_fn.backward(), input_grad=False)
            opt.step()
        return losses, [p.data.copy() for p in params] + [b.copy() for b in _buffers(layers)]

    losses0, state0 = train(plain=True)
    losses1, state1 = train(plain=False)
    assert_rel_close(losses1, losses0, TORCH_F64_REL_TOL, "loss")
    for a, b in zip(state1, state0):
        assert_rel_close(a, b, TORCH_F64_REL_TOL, "weight")


# ---------------------------------------------------------------------------------------------
# A whitened conv -> pool -> batch norm -> GELU network (odd map sizes, frozen first layer)
# ---------------------------------------------------------------------------------------------

def whitened_network(rng, widths, frozen_scale):
    """Conv2D(3, w0, 2) [whitening, frozen] -> GELU -> per width: Conv2D(3x3, no bias) -> MaxPool2D(2) ->
    BatchNorm2D -> GELU -> Conv2D(3x3, no bias) -> BatchNorm2D -> GELU; then MaxPool2D(3) -> Flatten ->
    Dense(no bias). On 32 x 32 input the maps are 31 -> 15 -> 7 -> 3 -> 1: every pool floors an odd size."""
    dt = np.float64
    first = tc.Conv2D(3, widths[0], 2, padding=0, dtype=dt, rng=rng)
    for p in first.parameters():
        p.requires_grad = False
    layers = [first, tc.GELU()]
    c = widths[0]
    for w in widths[1:]:
        bns = [tc.BatchNorm2D(w, dtype=dt), tc.BatchNorm2D(w, dtype=dt)]
        for bn in bns:
            bn.weight.data[...] = rng.uniform(0.5, 1.5, w)
            bn.bias.data[...] = rng.standard_normal(w)
            if frozen_scale:
                bn.weight.requires_grad = False
        layers += [tc.Conv2D(c, w, 3, padding=1, bias=False, dtype=dt, rng=rng), tc.MaxPool2D(2), bns[0], tc.GELU(),
                   tc.Conv2D(w, w, 3, padding=1, bias=False, dtype=dt, rng=rng), bns[1], tc.GELU()]
        c = w
    layers += [tc.MaxPool2D(3), tc.Flatten(), tc.Dense(c, 10, bias=False, dtype=dt, rng=rng)]
    return layers


def _check_whitened(seed, n, widths, training, frozen_scale):
    rng = np.random.default_rng(seed)
    layers = whitened_network(rng, widths, frozen_scale)
    x = rng.standard_normal((n, 3, 32, 32))
    plan = compare(layers, x, training, seed, input_grad=False)
    assert not [node for node in plan.graph.nodes if type(node.op).__name__ == "PlainOp"], plan.describe()
    text = plan.describe()
    assert text.count("GELU fused") == 2 * (len(widths) - 1) and "GELU()" in text      # the first GELU: its op
    assert plan._backward_steps(False)[-1][0] != 0, "the frozen first convolution runs no backward"
    return plan


@settings(deadline=None, max_examples=10)
@given(seed=SEEDS, n=st.sampled_from([1, 2, 3]), widths=st.sampled_from([(2, 3, 2, 2), (3, 4, 4, 4)]),
       training=st.booleans(), frozen_scale=st.booleans())
def test_whitened_gelu_network_fast_equals_plain_float64(seed, n, widths, training, frozen_scale):
    _check_whitened(seed, n, widths, training, frozen_scale)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=10)
@given(seed=SEEDS, n=st.sampled_from([2, 3, 5]), training=st.booleans(), frozen_scale=st.booleans())
def test_whitened_gelu_network_in_lanes_equals_plain_float64(lanes_everywhere, seed, n, training, frozen_scale):
    plan = _check_whitened(seed, n, (2, 3, 2, 2), training, frozen_scale)
    assert len(plan.last.slices) == 2                          # it really ran in lanes


# ---------------------------------------------------------------------------------------------
# float32: each fast op against its plain layer, within the op's derived bound
# ---------------------------------------------------------------------------------------------

def _op(layer):
    """The executor's op for ``layer``, every pass but lanes applied."""
    return fast.compile([layer], [p for p in fast.PASSES if p != "lanes"]).graph.nodes[0].op


@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 4), o=st.integers(1, 5), k=st.integers(1, 3),
       s=st.integers(1, 2), p=st.integers(0, 1), bias=st.booleans())
def test_conv_op_float32_within_the_reduction_bound(seed, n, c, o, k, s, p, bias):
    _check_conv_op_float32(seed, n, c, o, k, s, p, bias)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 4), o=st.integers(1, 5), k=st.integers(2, 3),
       s=st.integers(1, 2), p=st.integers(0, 2), bias=st.booleans())
def test_conv_op_in_blocks_float32_within_the_reduction_bound(conv_blocks_everywhere, seed, n, c, o, k, s, p, bias):
    op = _check_conv_op_float32(seed, n, c, o, k, s, p, bias)
    assert isinstance(op.cache, conv_blocks.BlockedConvCache)


def _check_conv_op_float32(seed, n, c, o, k, s, p, bias):
    rng = np.random.default_rng(seed)
    layer = tc.Conv2D(c, o, k, stride=s, padding=p, bias=bias, rng=rng)
    x = rng.standard_normal((n, c, 7, 6)).astype(np.float32)
    y0 = layer.forward(x)
    g = rng.standard_normal(y0.shape).astype(np.float32)
    dx0 = layer.backward(g)
    dw0 = layer.weight.grad.copy()
    op = _op(layer)
    y1 = op.forward(x)
    dx1 = op.backward(g)
    # S: the same computation on |x|, |w|, |b|, |g| in float64
    ab = tc.Conv2D(c, o, k, stride=s, padding=p, bias=bias, dtype=np.float64)
    ab.weight.data[...] = np.abs(layer.weight.data)
    if bias:
        ab.bias.data[...] = np.abs(layer.bias.data)
    s_y = ab.forward(np.abs(x).astype(np.float64))
    s_dx = ab.backward(np.abs(g).astype(np.float64))
    m = n * y0.shape[2] * y0.shape[3]
    assert_close_reduction(y1, y0, c * k * k + 1, np.float32, s_y, "Conv2D output")
    assert_close_reduction(dx1, dx0, o * k * k, np.float32, s_dx, "Conv2D input grad")
    assert_close_reduction(op.grads["weight"], dw0, m, np.float32, ab.weight.grad, "Conv2D weight grad")
    if bias:
        assert_close_reduction(op.grads["bias"], layer.bias.grad, m, np.float32, ab.bias.grad, "Conv2D bias grad")
    return op


@given(seed=SEEDS, n=st.integers(1, 5), c=st.integers(1, 4), hw=st.integers(1, 6), training=st.booleans(),
       affine=st.booleans(), relu=st.booleans())
def test_batchnorm_op_float32_within_the_batchnorm_bound(seed, n, c, hw, training, affine, relu):
    """The fused statistics/normalise passes vs the layer's NumPy code, within the first-order bound of
    two two-pass batch norms (``batchnorm_atol``). A fused ReLU only picks values: where both sides'
    outputs are on the same side of 0 it cannot widen the gap (elsewhere the example is skipped)."""
    if training and n * hw * hw <= 1:
        return
    rng = np.random.default_rng(seed)
    layer = tc.BatchNorm2D(c, affine=affine)
    if affine:
        layer.weight.data[...] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        layer.bias.data[...] = rng.standard_normal(c).astype(np.float32)
    layer.running_mean[...] = rng.standard_normal(c).astype(np.float32)
    layer.running_var[...] = rng.uniform(0.5, 2, c).astype(np.float32)
    layer.train(training)
    x = (rng.standard_normal((n, c, hw, hw)) * 3 + 1).astype(np.float32)
    g = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    running = None if training else (layer.running_mean.copy(), layer.running_var.copy())
    saved = [layer.running_mean.copy(), layer.running_var.copy()]
    layers = [layer, tc.ReLU()] if relu else [layer]
    plain = fast.compile(layers, plain=True)
    y0 = np.array(plain.forward(x))
    dx0 = np.array(plain.backward(g))
    grads0 = [q.grad.copy() for q in layer.parameters()]
    layer.running_mean[...], layer.running_var[...] = saved
    plan = fast.compile(layers, [p for p in fast.PASSES if p != "lanes"])
    assert plan.graph.nodes[0].op.cfg.fuse_relu == relu
    y1 = np.array(plan.forward(x))
    dx1 = np.array(plan.backward(g))
    bound = batchnorm_atol(x, g, layer.weight.data if affine else None, layer.bias.data if affine else None,
                           layer.eps, np.float32, running=running)
    if relu and not ((y0 > 0) == (y1 > 0)).all():
        return
    assert_within(y1, y0, bound["y"], "BatchNorm2D output")
    if not relu:
        assert_within(dx1, dx0, bound["dx"], "BatchNorm2D input grad")
    if affine and not relu:
        assert_within(layer.weight.grad, grads0[0], bound["dweight"], "BatchNorm2D weight grad")
        assert_within(layer.bias.grad, grads0[1], bound["dbias"], "BatchNorm2D bias grad")
    if relu:                                          # the masked gradient: the same bound on g * mask
        gm = np.where(y0 > 0, g, 0).astype(np.float32)
        bound = batchnorm_atol(x, gm, layer.weight.data if affine else None, layer.bias.data if affine else None,
                               layer.eps, np.float32, running=running)
        assert_within(dx1, dx0, bound["dx"], "BatchNorm2D+ReLU input grad")


# ---------------------------------------------------------------------------------------------
# Structure: what the passes did, and layers the executor does not know
# ---------------------------------------------------------------------------------------------

def test_describe_names_what_each_pass_did():
    rng = np.random.default_rng(0)
    layers = [tc.Conv2D(3, 4, 3, rng=rng), tc.BatchNorm2D(4), tc.ReLU(), tc.MaxPool2D(2),
              tc.Conv2D(4, 4, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten(), tc.Dense(4, 2, rng=rng)]
    text = fast.compile(layers).describe()
    assert "ReLU fused" in text and "runs before the ReLU" in text and "bias in the product" in text
    assert "channel-major" in text and "no input gradient in training" in text
    assert text.count("ReLU()") == 1                  # the first ReLU lives inside the batch norm now


def test_a_users_layer_runs_on_its_own_code_inside_a_fast_network():
    class Double(tc.layers.Layer):
        """y = 2x, written by a user."""
        def forward(self, x):
            return 2 * np.asarray(x)

        def backward(self, g):
            return 2 * np.asarray(g)

    rng = np.random.default_rng(1)
    layers = [tc.Conv2D(2, 3, 3, dtype=np.float64, rng=rng), Double(), tc.ReLU(), tc.Flatten(),
              tc.Dense(3 * 4 * 4, 2, dtype=np.float64, rng=rng)]
    plan = compare(layers, rng.standard_normal((4, 2, 6, 6)), True, 5)
    assert type(plan.graph.nodes[1].op).__name__ == "PlainOp"


def test_sequential_runs_plain_when_the_executor_is_off():
    rng = np.random.default_rng(2)
    model = tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(2 * 4 * 4, 2, rng=rng))
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    old = fast.set_enabled(False)
    try:
        model(x)
        assert model._last_plan.plain
    finally:
        fast.set_enabled(old)
    model(x)
    assert not model._last_plan.plain


# ---------------------------------------------------------------------------------------------
# Graphs: residual blocks and concatenated branches, lowered into the plan's nodes
# ---------------------------------------------------------------------------------------------

@st.composite
def graph_networks(draw):
    """A stem conv, then a Residual (identity or projection shortcut, optional post ReLU) or a Concat of
    2-3 branches, maybe nested, then Flatten and Dense; float64."""
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    n = draw(st.sampled_from([1, 2, 3, 5]))
    c = draw(st.integers(1, 3))
    x = rng.standard_normal((n, 2, 6, 6))

    def conv(ci, co, k=3, s=1):
        return tc.Conv2D(ci, co, k, stride=s, padding=k // 2, dtype=np.float64, rng=rng)

    def bn(ch):
        layer = tc.BatchNorm2D(ch, dtype=np.float64)
        layer.weight.data[...] = rng.uniform(0.5, 1.5, ch)
        layer.bias.data[...] = rng.standard_normal(ch)
        return layer

    def block(ci, co, stride):
        return tc.Sequential(conv(ci, co, 3, stride), bn(co), tc.ReLU(), conv(co, co))

    def residual(ci, co, stride=None):
        stride = draw(st.sampled_from([1, 2])) if stride is None else stride
        project = stride != 1 or ci != co or draw(st.booleans())
        shortcut = tc.Sequential(conv(ci, co, 1, stride), bn(co)) if project else None
        return tc.Residual(block(ci, co, stride), shortcut, post=tc.ReLU() if draw(st.booleans()) else None), co

    layers = [conv(2, c)]
    ch = c
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            layer, ch = residual(ch, draw(st.integers(1, 3)))
        else:
            widths = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(2, 3)))]
            branches = [tc.Sequential(conv(ch, w, 1), tc.ReLU()) if i % 2 else conv(ch, w)
                        for i, w in enumerate(widths)]
            if draw(st.booleans()):
                inner, w_inner = residual(ch, ch, stride=1)      # a branch must keep H, W
                branches.append(inner)
                widths.append(w_inner)
            layer, ch = tc.Concat(*branches), sum(widths)
        layers.append(layer)
    shape = tc.Sequential(*layers, input_shape=x.shape[1:]).build(x.shape[1:])[-1].out_shape
    layers += [tc.Flatten(), tc.Dense(int(np.prod(shape)), 3, dtype=np.float64, rng=rng)]
    return layers, x, draw(st.booleans()), seed


@given(net=graph_networks(), input_grad=st.booleans())
def test_random_graphs_fast_equals_plain_float64(net, input_grad):
    layers = net[0]
    plan = compare(*net, input_grad=input_grad)
    kinds = [node.kind for node in plan.graph.nodes]
    assert ("add" in kinds) or ("concat" in kinds)          # the containers really were lowered
    assert not any(type(node.op).__name__ == "PlainOp" for node in plan.graph.nodes if node.kind == "layer"
                   and type(node.layer).__name__ in ("Residual", "Concat")), layers


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=graph_networks())
def test_random_graphs_in_lanes_equal_plain_float64(lanes_everywhere, net):
    layers, x, _, seed = net
    compare(layers, x, False, seed)                          # eval: batch norm per sample, so lanes cut


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=graph_networks(), input_grad=st.booleans())
def test_random_graphs_with_conv_blocks_equal_plain_float64(conv_blocks_everywhere, net, input_grad):
    plan = compare(*net, input_grad=input_grad)
    assert _ran_in_blocks(plan) >= 1                   # the stem conv (3x3) at least


def test_residual_post_relu_runs_inside_the_add():
    """A residual block's post ReLU is fused into its join (describe says so; no ReLU node is left),
    and the network still equals its plain code (float64), forward, every gradient, input gradient."""
    rng = np.random.default_rng(4)
    dt = np.float64

    def bn(c):
        layer = tc.BatchNorm2D(c, dtype=dt)
        layer.bias.data[...] = rng.standard_normal(c)
        return layer

    block = tc.Sequential(tc.Conv2D(3, 3, 3, padding=1, bias=False, dtype=dt, rng=rng), bn(3), tc.ReLU(),
                          tc.Conv2D(3, 3, 3, padding=1, bias=False, dtype=dt, rng=rng), bn(3))
    layers = [tc.Conv2D(2, 3, 3, padding=1, dtype=dt, rng=rng), tc.Residual(block, None, post=tc.ReLU()),
              tc.Flatten(), tc.Dense(3 * 5 * 5, 2, dtype=dt, rng=rng)]
    for training in (True, False):
        plan = compare(layers, rng.standard_normal((3, 2, 5, 5)), training, 9)
        add = [node for node in plan.graph.nodes if node.kind == "add"]
        assert len(add) == 1 and "ReLU fused" in add[0].notes and add[0].op.cfg.fuse_relu
        assert not [node for node in plan.graph.nodes if type(node.layer) is tc.ReLU]


@given(seed=SEEDS, n=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]),
       layouts=st.sampled_from([("C", "C"), ("cm", "cm"), ("cm", "C"), ("C", "cm")]), ties=st.booleans())
def test_fused_add_relu_is_bitwise_the_add_then_the_relu(seed, n, dtype, layouts, ties):
    """No reduction, no new arithmetic: y = relu(a + b) and its gradient bit for bit as the plain add and
    ReLU, in every pairing of memory layouts (one pass when they match, the sum and then the ReLU when
    not), with exact zeros, ties and NaN in the sum."""
    from tinycnn.fast.ops.join import AddOp

    rng = np.random.default_rng(seed)
    shape = (n, 3, 4, 5)
    if ties:
        a = rng.integers(-1, 2, shape).astype(dtype)
        b = rng.integers(-1, 2, shape).astype(dtype)
        a[rng.random(shape) < 0.1] = np.nan
    else:
        a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)

    def lay(v, kind):
        return v if kind == "C" else np.ascontiguousarray(v.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)

    relu = tc.ReLU()
    y0 = relu.forward(a + b)
    dx0 = relu.backward(g)
    op = AddOp(None)
    op.cfg.fuse_relu = True
    y1 = op.forward(lay(a, layouts[0]), lay(b, layouts[1]))
    dx1 = op.backward(lay(g, layouts[0]))
    assert y1.shape == shape and len(dx1) == 2
    np.testing.assert_array_equal(y1, y0)
    for d in dx1:
        np.testing.assert_array_equal(d, dx0)
