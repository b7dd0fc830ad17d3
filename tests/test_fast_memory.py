"""Recycled output arrays (tinycnn/fast/memory.py, the memory pass): an array is handed out again only when no view
of it is alive, so outputs a user keeps are never overwritten by later calls."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.fast import memory as buffers

BIG = (64, 1024)        # 256 KB of float32: above buffers.MIN_BYTES, so it is pooled


@pytest.fixture(autouse=True)
def fresh_pool():
    buffers.clear()
    yield
    buffers.clear()


def test_a_dropped_array_is_reused_and_a_kept_one_is_not():
    # (ids, not references: holding a.base would itself keep the array in use; the pool keeps
    # every pooled array alive, so an id is not reused while the test runs)
    a = buffers.empty(BIG, np.float32)
    a_id = id(a.base)
    del a
    b = buffers.empty(BIG, np.float32)
    assert id(b.base) == a_id                       # dropped: recycled
    c = buffers.empty(BIG, np.float32)
    assert id(c.base) != a_id                       # b still alive: a new array
    view = c[3:5]                                   # only a view of c survives ...
    c_id = id(c.base)
    del c
    d = buffers.empty(BIG, np.float32)
    assert id(d.base) not in (a_id, c_id)           # ... and still protects it
    assert not np.shares_memory(d, view) and not np.shares_memory(d, b)


def test_dtype_and_size_must_match_and_small_arrays_are_not_pooled():
    a = buffers.empty(BIG, np.float32)
    a_id = id(a.base)
    del a
    assert id(buffers.empty(BIG, np.float64).base) != a_id
    assert id(buffers.empty((64, 1025), np.float32).base) != a_id
    small = buffers.empty((4, 4), np.float32)
    assert small.base is None                       # below MIN_BYTES: a plain array
    assert buffers.pooled_bytes() == 64 * 1024 * (4 + 8) + 64 * 1025 * 4


def test_pool_stops_growing_at_its_limit():
    kept = [buffers.empty(BIG, np.float32) for _ in range(buffers.MAX_PER_SIZE + 3)]
    assert buffers.pooled_bytes() == buffers.MAX_PER_SIZE * BIG[0] * BIG[1] * 4
    assert all(k.shape == BIG for k in kept)


def _seed_cnn(rng):
    return tc.Sequential(tc.Conv2D(3, 8, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
                         tc.Conv2D(8, 16, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
                         tc.Flatten(), tc.Dense(16 * 6 * 6, 10, rng=rng))


def test_kept_layer_outputs_and_gradients_survive_later_steps():
    """A user who keeps feature maps and gradients from step 1 must still see step 1's values after
    step 2 has run with other data (the arrays are large enough to be pooled)."""
    rng = np.random.default_rng(0)
    model = _seed_cnn(rng)
    x1, x2 = (rng.standard_normal((32, 3, 32, 32)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((32, 10)).astype(np.float32)
    maps1, grads1 = [], []
    h = x1
    for layer in model.layers:
        h = layer.forward(h)
        maps1.append(h)
    for layer in reversed(model.layers):
        g = layer.backward(g)
        grads1.append(g)
    saved_maps = [m.copy() for m in maps1]
    saved_grads = [q.copy() for q in grads1]
    for _ in range(2):                                 # more steps, other data, same shapes
        model.forward(x2)
        model.backward(rng.standard_normal((32, 10)).astype(np.float32))
    for kept, saved in zip(maps1 + grads1, saved_maps + saved_grads):
        np.testing.assert_array_equal(kept, saved)


def test_training_with_and_without_recycling_is_bitwise_identical(monkeypatch):
    def run():
        rng = np.random.default_rng(3)
        model = _seed_cnn(rng)
        opt = tc.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss = tc.SoftmaxCrossEntropy()
        data = np.random.default_rng(4)
        for _ in range(4):
            x = data.standard_normal((32, 3, 32, 32)).astype(np.float32)
            y = data.integers(0, 10, 32)
            opt.zero_grad()
            loss.forward(model.forward(x), y)
            model.backward(loss.backward(), input_grad=False)
            opt.step()
        return [p.data.copy() for p in model.parameters()]

    recycled = run()
    assert buffers.pooled_bytes() > 0                  # the pool was really used
    monkeypatch.setattr(buffers, "_ENABLED", False)
    buffers.clear()
    plain = run()
    assert buffers.pooled_bytes() == 0
    for a, b in zip(recycled, plain):
        np.testing.assert_array_equal(a, b)
