"""A first end-to-end check: the seed's Keras-style CNN runs forward and backward and its loss falls."""
import numpy as np

import tinycnn as tc


def test_seed_cnn_loss_falls_on_a_fixed_batch():
    rng = np.random.default_rng(0)
    model = tc.Sequential(
        tc.Conv2D(3, 8, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(8, 16, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(16 * 6 * 6, 10, rng=rng),
    )
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        opt.step()
    assert model(x).dtype == np.float32
    assert losses[-1] < 0.5 * losses[0], losses
