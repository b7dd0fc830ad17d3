"""tinycnn.init: patch whitening from data, torch's dirac_, and the partial identity.

Whitening is checked by what it promises: the whitened conv's outputs on the sampled patches have
second moment diag(lam / (lam + eps)), within a bound derived below, i.e. close to the identity by
eps / (lam_min + eps); the second moment itself against a loop over every window; determinism for a
seed bit for bit. dirac_ and the partial identity are checked against torch.nn.init.dirac_.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import assert_close_reduction, gamma

import tinycnn as tc
from tinycnn import init

U64 = float(np.finfo(np.float64).eps)


def correlated_images(n, seed, c=3, h=9, w=10):
    """Float images whose neighbouring pixels and channels are strongly correlated (a smoothed,
    channel-mixed noise with an offset), so that their patches are far from white."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, c, h + 2, w + 2))
    z = (z[:, :, 1:, 1:] + z[:, :, :-1, 1:] + z[:, :, 1:, :-1] + z[:, :, :-1, :-1])[:, :, :h, :w]   # 2x2 sums
    mix = np.eye(c) + 0.8 * rng.random((c, c))
    return np.einsum("dc,nchw->ndhw", mix, z) + 0.3


def whitening_conv(c, k, dtype, *, both_signs=True):
    d = c * k * k
    return tc.Conv2D(c, 2 * d if both_signs else d, k, dtype=dtype, rng=np.random.default_rng(0))


@pytest.mark.parametrize("k", [2, 3])
def test_whitened_patches_have_identity_second_moment(k):
    x = correlated_images(40, 1)
    conv = whitening_conv(3, k, np.float64)
    eps = 5e-4
    fit = init.patch_whitening_(conv, x, np.random.default_rng(2), num_images=25, eps=eps)
    d, lam = 3 * k * k, fit.eigenvalues
    sample = x[fit.image_indices]                                    # (25, 3, 9, 10)
    corr = fit.second_moment / np.sqrt(np.outer(np.diag(fit.second_moment), np.diag(fit.second_moment)))
    assert np.abs(corr - np.eye(d)).max() > 0.5                      # the raw patches are far from white
    y = conv.forward(sample)                                         # (25, 2D, OH, OW)
    magnitude = tc.Conv2D(3, 2 * d, k, dtype=np.float64)             # S = |W| * |x|: the sums' scale
    magnitude.weight.data[...], magnitude.bias.data[...] = np.abs(conv.weight.data), 0
    scale = magnitude.forward(np.abs(sample))
    assert_close_reduction(y[:, d:], -y[:, :d], k * k * 3, np.float64, scale[:, :d], "negated filters")
    ys = y[:, :d].transpose(0, 2, 3, 1).reshape(-1, d)               # (M, D)
    assert len(ys) == fit.num_patches == 25 * (9 - k + 1) * (10 - k + 1)
    moment = ys.T @ ys / len(ys)                                     # (D, D)
    # Exactly, F S F^T = diag(lam / (lam + eps)). Computed: eigh is backward stable, V diag(lam) V^T =
    # S + E with ||E|| <= p(D) u ||S|| (p(D) a modest polynomial; D^2 taken), and S itself carries the
    # rounding of its M-term sums (gamma_M relative); mapped through F that is at most
    # (D^2 u + 2 gamma_M) lam_max / (lam_min + eps). The conv's D-term sums and the moment's M-term sums
    # add 2 (gamma_D + gamma_M) of values <= 1 (Cauchy-Schwarz on the diagonal).
    kappa = lam.max() / (lam.min() + eps)
    bound = (d * d * U64 + 2 * gamma(fit.num_patches, np.float64)) * kappa \
        + 2 * (gamma(d, np.float64) + gamma(fit.num_patches, np.float64))
    np.testing.assert_allclose(moment, np.diag(lam / (lam + eps)), rtol=0, atol=bound)
    assert np.abs(moment - np.eye(d)).max() <= eps / (lam.min() + eps) + bound     # close to the identity
    assert np.all(np.diff(lam) <= 0) and lam.min() > 0


def test_second_moment_equals_a_loop_over_every_window():
    x = np.random.default_rng(3).standard_normal((3, 2, 4, 5))
    kh, kw = 2, 3
    rows = [x[n, :, r:r + kh, s:s + kw].reshape(-1) for n in range(3) for r in range(4 - kh + 1)
            for s in range(5 - kw + 1)]
    p = np.array(rows)                                              # (M, D), (c, i, j) order
    second, m = init.patch_second_moment(x, (kh, kw))
    assert m == len(p)
    s = p.T @ p / m
    assert_close_reduction(second, s, m, np.float64, np.abs(p).T @ np.abs(p) / m, "second moment")


def test_whitening_is_deterministic_for_a_seed_and_sets_the_layer():
    x = correlated_images(30, 4).astype(np.float32)
    a, b, c = (whitening_conv(3, 2, np.float32) for _ in range(3))
    weight_param, bias_param = a.weight, a.bias
    fa = init.patch_whitening_(a, x, np.random.default_rng(9), num_images=10)
    init.patch_whitening_(b, x, np.random.default_rng(9), num_images=10)
    fc = init.patch_whitening_(c, x, np.random.default_rng(10), num_images=10)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(fa.image_indices, fc.image_indices) and not np.array_equal(a.weight.data, c.weight.data)
    assert a.weight is weight_param and a.bias is bias_param and a.weight.data.dtype == np.float32
    assert np.array_equal(a.bias.data, np.zeros(24, np.float32))
    assert a.weight.requires_grad is False and getattr(a.bias, "requires_grad", True) is not False
    assert len(fa.image_indices) == 10 and np.all(np.diff(fa.image_indices) > 0)
    # all images (num_images >= N) need no draw: the generator is left untouched
    rng = np.random.default_rng(11)
    before = rng.bit_generator.state
    full = init.patch_whitening_(whitening_conv(3, 2, np.float32, both_signs=False), x, rng, freeze=False)
    assert rng.bit_generator.state == before and np.array_equal(full.image_indices, np.arange(30))


def test_whitening_errors():
    x = correlated_images(4, 5)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"has 7 filters; whitening its 3x2x2 patches gives D = 12 filters "
                                         r"\(out_channels=12\) or 12 and their negatives \(out_channels=24\)"):
        init.patch_whitening_(tc.Conv2D(3, 7, 2), x, rng)
    with pytest.raises(TypeError, match="pass them as the network sees them, normalised floats"):
        init.patch_whitening_(whitening_conv(3, 2, np.float32), x.astype(np.uint8), rng)
    with pytest.raises(ValueError, match=r"images must be \(N, 1, H, W\)"):
        init.patch_whitening_(whitening_conv(1, 2, np.float32), x, rng)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        init.patch_whitening_(whitening_conv(3, 2, np.float32), x, rng, eps=0)
    with pytest.raises(ValueError, match="must have groups=1 and dilation=1"):
        init.patch_whitening_(tc.Conv2D(3, 24, 2, dilation=2), x, rng)
    with pytest.raises(TypeError, match="expected a Conv2D layer, got Dense"):
        init.patch_whitening_(tc.Dense(3, 3), x, rng)
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        init.patch_whitening_(whitening_conv(3, 2, np.float32), x, 0)


@given(ndim=st.sampled_from([3, 4, 5]), groups=st.integers(1, 3), out_per=st.integers(1, 4), cin=st.integers(1, 4),
       kernel=st.lists(st.integers(1, 4), min_size=3, max_size=3))
def test_dirac_matches_torch(torch, ndim, groups, out_per, cin, kernel):
    shape = (groups * out_per, cin, *kernel[:ndim - 2])
    w = np.random.default_rng(0).standard_normal(shape)
    expected = torch.nn.init.dirac_(torch.from_numpy(w.copy()), groups=groups).numpy()
    assert init.dirac_(w, groups=groups) is w
    np.testing.assert_array_equal(w, expected)


def test_dirac_on_a_parameter_and_its_errors():
    p = tc.Parameter(np.ones((4, 2, 3, 3), np.float32))
    assert init.dirac_(p) is p and p.data.sum() == 2 and p.data[1, 1, 1, 1] == 1
    with pytest.raises(ValueError, match=r"only weights with 3, 4 or 5 dimensions .* got shape \(4, 2\)"):
        init.dirac_(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"dimension 0 of the weight \(4\) must be divisible by groups \(3\)"):
        init.dirac_(np.zeros((4, 2, 3, 3)), groups=3)


@pytest.mark.parametrize("cin, cout", [(3, 5), (5, 3), (4, 4)])
def test_partial_identity_matches_torch_and_is_the_identity(torch, cin, cout):
    conv = tc.Conv2D(cin, cout, 3, padding="same", dtype=np.float64, rng=np.random.default_rng(1))
    before_w, before_b = conv.weight.data.copy(), conv.bias.data.copy()
    expected = torch.from_numpy(before_w.copy())
    torch.nn.init.dirac_(expected[:expected.size(1)])               # airbench's partial identity
    assert init.partial_identity_(conv) is conv
    np.testing.assert_array_equal(conv.weight.data, expected.numpy())
    m = min(cin, cout)
    np.testing.assert_array_equal(conv.bias.data[:m], 0)
    np.testing.assert_array_equal(conv.bias.data[m:], before_b[m:])
    x = np.random.default_rng(2).standard_normal((2, cin, 5, 6))
    y = conv.forward(x)
    np.testing.assert_array_equal(y[:, :m], x[:, :m])                  # 1 * x plus exact zeros
    if cout > m:                                                       # the other filters are kept
        other = tc.Conv2D(cin, cout - m, 3, padding="same", dtype=np.float64)
        other.weight.data[...], other.bias.data[...] = before_w[m:], before_b[m:]
        other_abs = tc.Conv2D(cin, cout - m, 3, padding="same", dtype=np.float64)
        other_abs.weight.data[...], other_abs.bias.data[...] = np.abs(before_w[m:]), np.abs(before_b[m:])
        assert_close_reduction(y[:, m:], other.forward(x), cin * 9 + 1, np.float64, other_abs.forward(np.abs(x)),
                               "kept filters")


def test_partial_identity_added_and_its_errors():
    conv = tc.Conv2D(2, 3, (3, 5), padding="same", dtype=np.float64, rng=np.random.default_rng(3))
    expected = conv.weight.data.copy()
    expected[0, 0, 1, 2] += 1                                          # filter d, input channel d, centre tap
    expected[1, 1, 1, 2] += 1
    bias = conv.bias.data.copy()
    init.partial_identity_(conv, add=True)
    np.testing.assert_array_equal(conv.weight.data, expected)
    np.testing.assert_array_equal(conv.bias.data, bias)                # adding keeps the bias
    with pytest.raises(ValueError, match=r"even kernel size \(2, 2\); an identity needs a centre tap"):
        init.partial_identity_(tc.Conv2D(2, 2, 2))
    with pytest.raises(ValueError, match="has groups=2; the partial identity is defined for groups=1"):
        init.partial_identity_(tc.Conv2D(2, 2, 3, groups=2))
