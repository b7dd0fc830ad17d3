"""Test-time augmentation: evaluate / evaluate_batches / predict with tta= equal the weighted mean of the
logits of the transformed inputs, each view built here by hand with np.pad and slicing.

Expected values: f(view) = the model's own forward on each hand-made view (eval mode), averaged with the
documented weights in float64; the evaluation's probabilities must be softmax of that mean and its loss
the cross-entropy of those. Tolerances: the six-term weighted sum is rounded in another order than
tinycnn's (2 gamma_6 S, tests/tolerances.py), and softmax moves by at most half the largest logit change
(its Jacobian diag(p) - p p^T has infinity-norm max 2 p_i (1 - p_i) <= 1/2), plus its own few roundings.
"""
import numpy as np
import pytest
from tolerances import reduction_atol

import tinycnn as tc
from tinycnn import data, training, tta

U64 = float(np.finfo(np.float64).eps)


def model(seed, *, softmax=False, bn=False):
    """(N, 2, 5, 6) -> 4 classes; not mirror-symmetric, so every view gives other logits."""
    rng = np.random.default_rng(seed)
    layers = [tc.Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng),
              *([tc.BatchNorm2D(3, dtype=np.float64)] if bn else []), tc.ReLU(), tc.Flatten(),
              tc.Dense(3 * 5 * 6, 4, dtype=np.float64, rng=rng)]
    return tc.Sequential(*layers, *([tc.Softmax()] if softmax else []))


def hand_views(x):
    """The documented views and weights, built with np.pad: [(weight, view)]."""
    h, w = x.shape[-2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    up_left = padded[:, :, 0:h, 0:w]                   # t(x, -1)[r, s] = x[R(r - 1), R(s - 1)]
    down_right = padded[:, :, 2:h + 2, 2:w + 2]        # t(x, +1)
    return {"flip": [(0.5, x), (0.5, x[..., ::-1])],
            "flip-translate": [(0.25, x), (0.25, x[..., ::-1]), (0.125, up_left), (0.125, up_left[..., ::-1]),
                               (0.125, down_right), (0.125, down_right[..., ::-1])]}


def expected_logits(m, x, level, batch=4):
    """(mean logits (N, K), the bound on |tinycnn's - this|) for the hand views of ``level``, each view's
    logits from the model's own forward (eval mode, stopping before a trailing Softmax) in batches of
    ``batch``, as the evaluations below cut them."""
    logit_layers = m.layers[:-1] if isinstance(m.layers[-1], tc.Softmax) else m.layers
    m.eval()
    means, bounds = [], []
    for start in range(0, len(x), batch):
        views = hand_views(x[start:start + batch])[level]
        terms = [wt * m.forward_through(logit_layers, np.ascontiguousarray(v)) for wt, v in views]
        means.append(np.sum(terms, axis=0))
        bounds.append(reduction_atol(len(terms), np.float64, np.sum(np.abs(terms), axis=0)))
    m.train()
    return np.concatenate(means), np.concatenate(bounds)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def data_for(seed, n=9):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 5, 6)), rng.integers(0, 4, n)


@pytest.mark.parametrize("level", ["flip", "flip-translate"])
@pytest.mark.parametrize("with_softmax", [False, True])
def test_tta_is_the_weighted_mean_of_the_views_logits(level, with_softmax):
    x, y = data_for(1)
    m = model(2, softmax=with_softmax, bn=True)
    m.compile("sgd", metrics=["accuracy"])
    m.fit(x, y, epochs=1, batch_size=4, verbose=0)               # batch norm gets running statistics
    mean, bound = expected_logits(m, x, level)
    p = softmax(mean)
    p_bound = 0.5 * bound.max() + 8 * U64
    ev = training.evaluate_batches(m, [(x[i:i + 4], y[i:i + 4]) for i in range(0, len(x), 4)], tta=level)
    np.testing.assert_allclose(ev.probs, p, rtol=0, atol=p_bound)
    np.testing.assert_allclose(training.predict(m, x, batch_size=4, tta=level), p, rtol=0, atol=p_bound)
    np.testing.assert_allclose(m.predict(x, batch_size=4, tta=level), p, rtol=0, atol=p_bound)
    loss = float(np.mean(-np.log(p[np.arange(len(y)), y])))
    result = m.evaluate(x, y, batch_size=4, tta=level, return_dict=True)
    # the cross-entropy -z_y + logsumexp(z) moves by at most 2 max|dz|, plus its own roundings
    assert abs(result["loss"] - loss) <= 2 * bound.max() + 16 * U64 * max(1.0, abs(loss))
    assert result["accuracy"] == float(np.mean(p.argmax(axis=1) == y))
    assert m.training and m.layers[1].training                  # the mode is restored


def test_no_tta_is_the_plain_evaluation():
    x, y = data_for(3)
    m = model(4).compile("sgd", metrics=["accuracy"])
    assert m.evaluate(x, y, tta="none") == m.evaluate(x, y) == m.evaluate(x, y, tta=None)
    np.testing.assert_array_equal(m.predict(x, tta="none"), m.predict(x))


def test_the_views_are_the_documented_translations():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    for d in (-1, 1):
        np.testing.assert_array_equal(tta.translate(x, d), data.translate_flip(x, d, d, padding_mode="reflect"))
    weights = [w for w, _ in tta.views(x, "flip-translate")]
    assert weights == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125] and sum(weights) == 1


def test_tta_errors():
    x, y = data_for(6)
    m = model(7).compile("sgd")
    with pytest.raises(ValueError, match=r"evaluate: tta must be None or one of 'none', 'flip', 'flip-translate', "
                                         r"got 'mirror'"):
        m.evaluate(x, y, tta="mirror")
    with pytest.raises(ValueError, match="predict: tta must be None or one of"):
        m.predict(x, tta=2)
    tiny = tc.Sequential(tc.Flatten(), tc.Dense(2, 3, dtype=np.float64, rng=np.random.default_rng(0)))
    tiny.compile("sgd")
    with pytest.raises(ValueError, match=r"needs images of at least 2x2, got 1x1; use tta='flip' or 'none'"):
        tiny.evaluate(np.zeros((3, 2, 1, 1)), np.zeros(3, int), tta="flip-translate")
