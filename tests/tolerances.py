"""Every numerical tolerance the tests use, in one table, each derived rather than tuned.

u = machine epsilon of the dtype (float32: 1.19e-7, float64: 2.22e-16). A sum of n terms computed in
floating point, in any order, is within gamma_n * S of the exact sum, where gamma_n = n*u / (1 - n*u)
~ n*u and S = the sum of the terms' absolute values (Higham, "Accuracy and Stability of Numerical
Algorithms", section 3.1). Two implementations that each round that way (tinycnn and torch, or a fast
kernel and its reference) differ by at most 2 * gamma_n * S. That is ``reduction_atol`` below: the
tests compute S for the actual operands (e.g. by running the op on |x| and |w|), so the bound scales
with the data instead of being a magic number.

| check                                        | dtype   | bound                                         |
|----------------------------------------------|---------|-----------------------------------------------|
| finite differences (central, h = 1e-6)        | float64 | norm-wise relative error < 1e-7               |
| adjoint <Jv, u> = <v, J^T u> (central diff.)  | float64 | |lhs-rhs| / max(|Jv||u|, |v||J^T u|) < 1e-7  |
| tinycnn vs torch, forward and gradients       | float64 | relative 1e-10 of the tensor's max magnitude  |
| tinycnn vs torch / fast vs reference          | float32 | 2 * gamma_n(u32) * S elementwise              |
| trajectory (10 steps SGD / Adam) vs torch     | float64 | relative 1e-9 for every loss and weight       |
| elementwise ops with no reduction             | float32 | 4 * u * |value| (a few roundings apart)       |
| sigmoid forward, tinycnn vs torch             | float32 | (E_np + E_torch + 2) * u * sigmoid(x)         |
| sigmoid backward, tinycnn vs torch            | float32 | (E_np+E_torch+2) u |g| s + 3 u |g s (1-s)|    |
| softmax cross-entropy loss and gradient       | float32 | first-order running bound, see softmax_ce_atol |
| softmax cross-entropy gradient vs torch       | float64 | relative 1e-10 of max, plus 8 u / N for the   |
|                                              |         |   cancellation in p - t (test_contract.py)    |
| optimizer trajectories (many steps)           | float32 | first-order running bound, see test_optim.py  |
| layer vs torch, no arithmetic (ReLU, Flatten, | both    | bitwise equal                                 |
|   max-pool forward, layout variants)          |         |                                               |
| tanh forward, tinycnn vs torch               | float32 | (0.5 + 2^-20 + E_tanh_torch) * u * |tanh x|   |
| tanh backward g (1 - y^2), tinycnn vs torch  | float32 | tanh_backward_atol (y's gap, 2 x 3 roundings)  |
| dropout y = x * mask / (1 - p) vs torch      | float32 | 4 * u * |value| (the elementwise row)         |
| dropout keep rate over n draws               | any     | Hoeffding: |k/n - q| < sqrt(ln(2/a)/(2n)),    |
|                                              |         |   false alarm a = 1e-9 per check             |
| batch norm y, dx, dweight, dbias vs torch    | both    | batchnorm_atol: first-order error analysis   |
|   (train: batch stats; eval: running stats)  |         |   of a two-pass batch norm, twice (2 sides)  |
| batch norm running mean / var after k steps  | both    | batchnorm_running_atol (same analysis, per   |
|                                              |         |   step, carried through the momentum update) |
| GELU kernels vs their references            | both    | bitwise (the same operations)                |
| GELU y and slope, executor op vs layer       | both    | gelu_atol: the kernel's 2e-12 + the layer's  |
|                                              |         |   libm error (LIBM_ULPS_F64), + 1 f32 round  |
| GELU input gradient, executor op vs layer    | both    | gelu_grad_atol: 1.5 u |g s| + |g| slope gap   |
| batch norm + GELU fused vs the two layers    | both    | batchnorm_gelu_atol: batchnorm_atol carried  |
|                                              |         |   through GELU's slope and curvature bounds  |
| one layer, tinycnn vs an ONNX runtime, same  | float32 | layer_forward_atol: 2 gamma_n S for Conv2D / |
|   input (exported graph, layer by layer)     |         |   Dense / AvgPool2D, batchnorm_atol (eval),  |
|                                              |         |   0 for ReLU, MaxPool2D, Flatten, Dropout    |
| whole network, tinycnn vs an ONNX runtime    | float32 | network_forward_atol: each layer's rounding  |
|                                              |         |   plus the propagated error (|W| e, ...), x2 |
| Winograd F(2x2, 3x3) conv vs float64 plain    | both    | winograd_atol: gamma_{C+11} S_W, S_W the     |
|   (forward; input gradient with C -> O)       |         |   algorithm on |x|, |w|, |b|, |transforms|   |
|   + the float64 layer's gamma_{9C+1} S        |         |   (derived in tinycnn/kernels/winograd.py)  |
| Winograd transforms, kernel vs reference      | both    | 2 gamma_3 (input), 2 gamma_9 (output) on    |
|                                              |         |   the transforms' |.| sums                  |
| a sum accumulated in float64 and stored in   | both    | float64_sum_atol: u |exact| + 3 gamma_{n+1}  |
|   the dtype, vs a float64 reference (the     |         |   (u_64) S: one final rounding each side,    |
|   depthwise weight and bias gradient)        |         |   the float64 sums' own bound                |

E_np, E_torch: documented accuracy (in ulps) of the exp/log each library uses, see the constants below.
"""
import numpy as np

FD_REL_TOL = 1e-7          # finite differences, float64
ADJOINT_REL_TOL = 1e-7     # dot-product test with a central directional difference, float64
TORCH_F64_REL_TOL = 1e-10  # float64 vs torch
TRAJECTORY_F64_REL_TOL = 1e-9


def gamma(n: int, dtype) -> float:
    """Higham's gamma_n = n u / (1 - n u) for a reduction of n terms in ``dtype``."""
    u = float(np.finfo(dtype).eps)
    n = max(int(n), 1)
    return n * u / (1 - n * u)


def reduction_atol(n: int, dtype, abs_sum):
    """Elementwise bound on |a - b| for two roundings of a sum of n terms with sum |terms| = abs_sum."""
    return 2 * gamma(n, dtype) * np.asarray(abs_sum, dtype=np.float64)


def float64_sum_atol(exact, n: int, dtype, abs_sum):
    """Elementwise bound on |a - b| for two sums of the same n terms that each accumulate in float64
    (in any order) and round once to ``dtype``: exact = the exact sum (computed in float64 from the
    dtype values), abs_sum = the sum of the terms' |values|. Each side's float64 value v is within
    gamma_{n+1}(u_64) S of exact (n terms; +1 for the product that forms each term, exact for float32
    operands and one rounding for float64 ones), and the rounding to dtype adds u/2 |v|:
    |a - b| <= u |exact| + (2 + u) gamma_{n+1}(u_64) S <= u |exact| + 3 gamma_{n+1}(u_64) S."""
    u = float(np.finfo(dtype).eps)
    return (u * np.abs(np.asarray(exact, dtype=np.float64))
            + 3 * gamma(n + 1, np.float64) * np.asarray(abs_sum, dtype=np.float64) + np.finfo(dtype).tiny)


def assert_close_reduction(actual, expected, n, dtype, abs_sum, name="tensor"):
    """Assert |actual - expected| <= 2 gamma_n S elementwise, with a message a learner can read."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    bound = reduction_atol(n, dtype, abs_sum) + np.finfo(dtype).tiny
    diff = np.abs(actual - expected)
    excess = diff - bound
    if diff.size and excess.max() > 0:
        i = np.unravel_index(int(np.argmax(excess)), diff.shape)
        raise AssertionError(
            f"{name} NOT OK: |diff| = {diff[i]:.3e} at {tuple(int(k) for k in i)} exceeds "
            f"2*gamma_{n}*S = {bound[i]:.3e} ({np.dtype(dtype).name}); max diff {diff.max():.3e}")


def assert_rel_close(actual, expected, rel, name="tensor"):
    """Assert max|actual - expected| <= rel * max|expected| (max-norm relative), readable on failure."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = np.abs(actual - expected)
    worst = float(diff.max()) if diff.size else 0.0
    if worst > rel * scale:
        i = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise AssertionError(f"{name} NOT OK: max diff {worst:.3e} at {tuple(int(k) for k in i)}, "
                             f"allowed {rel:.0e} * {scale:.3e} = {rel * scale:.3e}")


# ----------------------------------------------------------------------------------------------
# Elementwise transcendental functions: documented accuracy in ulps of the result (float32).
# A k-ulp error is a relative error of at most k * u (u = machine epsilon) for normal results.
# ----------------------------------------------------------------------------------------------
# NumPy's own accuracy tests (numpy/_core/tests/test_umath.py, TestAVXFloat32Transcendental) require
# float32 exp within 3 ulp and log within 4 ulp of the correctly rounded value; +0.5 ulp for that
# rounding gives the distance to the exact value.
NUMPY_EXP_ULPS_F32 = 3.5
NUMPY_LOG_ULPS_F32 = 4.5
# ATen's Vectorized<float>: exp() is SLEEF's expf*_u10 (1 ulp), log() is SLEEF's logf*_u10 (1 ulp);
# a faster exp_u20() ("ULP=20" in its header) exists and some kernels use it, so exp takes the worse.
TORCH_EXP_ULPS_F32 = 20.0
TORCH_LOG_ULPS_F32 = 1.0


def _sigmoid64(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def sigmoid_forward_atol(x, dtype=np.float32):
    """Bound on |sigmoid_tinycnn(x) - sigmoid_torch(x)| elementwise (x: the shared input).

    Each side computes 1/(1+e) or e/(1+e) from one exp (E ulps, its error damped by a factor <= 1)
    and two correctly rounded operations: relative error <= (E + 1) u. The two sides differ by at
    most the sum of their errors.
    """
    u = float(np.finfo(dtype).eps)
    return (NUMPY_EXP_ULPS_F32 + TORCH_EXP_ULPS_F32 + 2) * u * _sigmoid64(x)


def sigmoid_backward_atol(x, g, dtype=np.float32):
    """Bound on the difference of grad_x = g * (1 - y) * y between tinycnn and torch.

    Each side uses its own y (relative error (E + 1) u, so an absolute error in (1 - y) * y of at
    most (E + 1) u * s, with s = sigmoid(x), as |d/dy (1 - y) y| <= 1) and three roundings (1 - y and
    two products): 1.5 u |g s (1 - s)| per side.
    """
    u = float(np.finfo(dtype).eps)
    s = _sigmoid64(x)
    g = np.abs(np.asarray(g, dtype=np.float64))
    return (NUMPY_EXP_ULPS_F32 + TORCH_EXP_ULPS_F32 + 2) * u * g * s + 3 * u * g * s * (1 - s)


def _softmax_ce_error(z, t, c, exp_ulps, log_ulps, dtype):
    """First-order bound on one implementation's error in the mean softmax cross-entropy.

    z: (N, K) logits, t: (N, K) targets (one-hot for integer labels), c: the upstream scalar.
    Steps and their errors (u = machine epsilon, used as a generous unit roundoff):
      d = z - max z                      u |d|
      s = sum_k exp(d)                   relative: max_k(u |d_k|) + E u + gamma_K
      L = log s                          absolute: rel(s) + Elog u |L|
      logp = d - L                       absolute: u |d| + err(L) + u |logp|
      loss = -(1/N) sum t * logp         sum_n,k t err(logp) / N + gamma_{NK+2} sum |t logp| / N
      grad = (c/N) (p * sum t - t)       p = exp(logp): relative err(logp) + E u, then a few roundings
    Returns (loss_err: float, grad_err: (N, K)).
    """
    u = float(np.finfo(dtype).eps)
    z = np.asarray(z, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    n, k = z.shape
    d = z - z.max(axis=1, keepdims=True)
    s = np.exp(d).sum(axis=1, keepdims=True)
    big_l = np.log(s)
    logp = d - big_l
    p = np.exp(logp)
    tsum = t.sum(axis=1, keepdims=True)
    err_d = u * np.abs(d)
    rel_s = err_d.max(axis=1, keepdims=True) + exp_ulps * u + gamma(k + 1, dtype)
    err_l = rel_s + log_ulps * u * np.abs(big_l)
    err_logp = err_d + err_l + u * np.abs(logp)
    loss_err = float((np.abs(t) * err_logp).sum() / n
                     + gamma(n * k + 2, dtype) * np.abs(t * logp).sum() / n)
    grad = (abs(c) / n) * (p * tsum - t)
    grad_err = (abs(c) / n) * (p * np.abs(tsum) * (err_logp + exp_ulps * u + gamma(k + 1, dtype) + 3 * u)
                               + 2 * u * (np.abs(p * tsum - t) + np.abs(t))) + 3 * u * np.abs(grad)
    return loss_err, grad_err


def softmax_ce_atol(z, t, c=1.0, dtype=np.float32):
    """Bounds on |loss_tinycnn - loss_torch| and |grad_tinycnn - grad_torch| (elementwise), float32.

    The sum of each implementation's own first-order error bound (NumPy's exp/log for tinycnn,
    ATen's for torch); terms of order u**2 are dropped (they are ~1e-7 of the bound).
    """
    a_loss, a_grad = _softmax_ce_error(z, t, c, NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32, dtype)
    b_loss, b_grad = _softmax_ce_error(z, t, c, TORCH_EXP_ULPS_F32, TORCH_LOG_ULPS_F32, dtype)
    return a_loss + b_loss, a_grad + b_grad


# ----------------------------------------------------------------------------------------------
# Tanh, Dropout, BatchNorm2D.
# ----------------------------------------------------------------------------------------------
# tinycnn's float32 tanh is numpy's float64 tanh rounded once to float32: 0.5 ulp for the rounding,
# plus the float64 error (allowing even 512 float64 ulps, that is 2^-20 of a float32 ulp).
TINYCNN_TANH_ULPS_F32 = 0.5 + 2.0 ** -20
# ATen's Vectorized<float>::tanh() is SLEEF's tanhf8_u10 (1 ulp); scalar tails use std::tanh, glibc's
# tanhf, listed with at most 2 ulps in glibc's "Known Maximum Errors in Math Functions". The tests check
# this assumption against float64 directly (test_tanh.py), so a wrong figure shows as its own failure.
TORCH_TANH_ULPS_F32 = 2.0
DROPOUT_FALSE_ALARM = 1e-9      # chance that a correct dropout fails one keep-rate check


def hoeffding_halfwidth(n: int, alpha: float = DROPOUT_FALSE_ALARM) -> float:
    """t such that P(|K/n - q| >= t) <= alpha for K ~ Binomial(n, q), whatever q.

    Hoeffding's inequality for n independent draws in [0, 1]: P(|K/n - q| >= t) <= 2 exp(-2 n t^2);
    setting the right side to alpha gives t = sqrt(ln(2 / alpha) / (2 n)).
    """
    return float(np.sqrt(np.log(2.0 / alpha) / (2.0 * n)))


def tanh_forward_atol(x, dtype=np.float32, ulps=TINYCNN_TANH_ULPS_F32 + TORCH_TANH_ULPS_F32):
    """Bound on |tanh_a(x) - tanh_b(x)| for two float32 tanh's of ``ulps`` total ulps (1 ulp <= u |t|)."""
    u = float(np.finfo(dtype).eps)
    return ulps * u * np.abs(np.tanh(np.asarray(x, dtype=np.float64)))


def tanh_backward_atol(x, g, dtype=np.float32):
    """Bound on the gap in grad_x = g * (1 - y*y) when each side uses its own y.

    |y_a^2 - y_b^2| = |y_a - y_b| |y_a + y_b| <= d (2|t| + d), d = tanh_forward_atol; each side then
    rounds y*y, 1 - y*y and the product with g: u |g| (t^2 + 2 |1 - t^2|) per side, first order.
    """
    u = float(np.finfo(dtype).eps)
    t = np.tanh(np.asarray(x, dtype=np.float64))
    g = np.abs(np.asarray(g, dtype=np.float64))
    d = tanh_forward_atol(x, dtype)
    return g * d * (2 * np.abs(t) + d) + 2 * u * g * (t * t + 2 * np.abs(1 - t * t))


# GELU (exact, erf form). The layer evaluates x * 0.5 erfc(-x / sqrt 2) with Python's math.erfc and
# NumPy's exp in float64; the executor's kernels (tinycnn/kernels/gelu.py) use arithmetic alone and
# promise GELU_REL_ERR (2e-12) of the exact value. The layer side's error rests on one assumption:
# math.erfc and NumPy's float64 exp within LIBM_ULPS_F64 ulps of the exact value at their (float64)
# argument; tests/test_fast_gelu.py checks it, and the kernels' promise, against mpmath.
LIBM_ULPS_F64 = 8.0
GELU_SLOPE_MAX = 1.13        # max |GELU'(x)| = Phi(sqrt 2) + sqrt 2 phi(sqrt 2) = 1.1289...
GELU_CURVATURE_MAX = 0.8     # max |GELU''(x)| = max |phi(x) (2 - x^2)| = 2 phi(0) = 0.7979...


def _gelu_parts(z):
    """float64 z -> (y, slope, cdf, x phi) of the exact GELU, float64 (NumPy, for bounds only)."""
    import math
    z = np.asarray(z, dtype=np.float64)
    cdf = 0.5 * np.vectorize(math.erfc, otypes=[np.float64])(-z / math.sqrt(2.0))
    xphi = z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * cdf, cdf + xphi, cdf, xphi


def gelu_layer_rel_err(x):
    """Relative error bound (float64) of the layer's y and slope (the slope's of |cdf| + |x phi|).

    Its erfc argument t = fl(-x / sqrt 2) is 2 u_64 off (the constant and the division); erfc's
    condition number |t erfc'(t) / erfc(t)| is below 2 t^2 + 2 (Mills' ratio bound), so the argument
    costs (4 t^2 + 4) u_64; erfc itself E ulps, the 0.5 and the product with x 1 more. The slope's
    exp argument -x^2/2 is 1.5 u_64 off (3 t^2 / 2 relative after exp), exp E ulps, 3 more roundings.
    Together at most (E + 4 t^2 + 7) u_64, t^2 = x^2 / 2."""
    u64 = float(np.finfo(np.float64).eps)
    x = np.asarray(x, dtype=np.float64)
    return (LIBM_ULPS_F64 + 2.0 * x * x + 7.0) * u64


def gelu_atol(x, dtype):
    """Elementwise bounds (y, slope) on |executor - layer| for GELU's y and slope on the same x.

    float64 gap: (GELU_REL_ERR + gelu_layer_rel_err) |y| for y, and the same of |cdf| + |x phi| for
    the slope (a sum that cancels near x = -0.75, so its bound is on the sum of |terms|). Stored in
    float32 each side then rounds once more: u_32 (|value| + the float64 gap) between them."""
    from tinycnn.kernels.gelu import GELU_REL_ERR
    y, slope, cdf, xphi = _gelu_parts(x)
    r = GELU_REL_ERR + gelu_layer_rel_err(x)
    b_y = r * np.abs(y)
    b_s = r * (np.abs(cdf) + np.abs(xphi))
    if np.dtype(dtype) != np.float64:
        u = float(np.finfo(dtype).eps)
        tiny = float(np.finfo(dtype).smallest_subnormal)
        b_y = b_y + u * (np.abs(y) + b_y) + tiny
        b_s = b_s + u * (np.abs(slope) + b_s) + tiny
    return b_y, b_s


def gelu_grad_atol(x, g, dtype):
    """Elementwise bound on |dx_layer - dx_op| for GELU's input gradient on the same x and g.

    The layer rounds g * slope once from float64 (u/2 relative); the executor's op stores the slope
    in ``dtype`` and multiplies in ``dtype`` (two roundings: u relative, to first order): 1.5 u |g s|
    between them, plus |g| times the float64 gap of the two slopes (``gelu_atol``). In float64 every
    rounding is u_64."""
    u = float(np.finfo(dtype).eps)
    _, slope, _, _ = _gelu_parts(x)
    _, b_s = gelu_atol(x, np.float64)
    g = np.abs(np.asarray(g, dtype=np.float64))
    return (1.5 + 2.0 ** -20) * u * g * np.abs(slope) + g * b_s + float(np.finfo(dtype).smallest_subnormal)


def batchnorm_gelu_atol(x, g, weight, bias, bn_eps, dtype, *, running=None):
    """Bounds (dict y, dx, dweight, dbias as ``batchnorm_atol``) on |fused - plain| for BatchNorm2D
    followed by an exact GELU, the fused op against the two plain layers, same x and upstream g.

    z = gamma x_hat + beta (exact), e_z = batchnorm_atol's y bound (the two sides' z apart):
      y:  GELU is GELU_SLOPE_MAX-Lipschitz:  L e_z (1 + u) + gelu_atol(z)'s y bound
      g' = g GELU'(z) (the gradient at z): the sides' g' are delta apart,
          |delta| <= D = |g| K e_z (1 + u) + gelu_grad_atol(z, g)      (K = GELU_CURVATURE_MAX)
      The batch norm's backward is linear in g': the two sides differ by batchnorm_atol's bounds
      for g' (one side's own rounding each), plus the exact backward map applied to delta:
          dbias + sum D;  dweight + sum D |x_hat|;
          dx (batch) + |gamma|/(M sigma) (M D + sum D + |x_hat| sum D |x_hat|);  dx (running) + |gamma/sigma| D
    First order, like batchnorm_atol."""
    u = float(np.finfo(dtype).eps)
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[1]
    gam = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    bet = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    if running is None:
        mu, var, _, _, m = _bn_batch_stats(x, dtype)
    else:
        mu, var = (np.asarray(r, dtype=np.float64) for r in running)
        m = x.shape[0] * x.shape[2] * x.shape[3]
    sigma = np.sqrt(var + bn_eps)

    def b(v):                                    # (C,) -> (1, C, 1, 1)
        return np.asarray(v, dtype=np.float64).reshape(1, -1, 1, 1)

    xh = (x - b(mu)) / b(sigma)
    z = b(gam) * xh + b(bet)
    _, slope, _, _ = _gelu_parts(z)
    g = np.asarray(g, dtype=np.float64)
    gz = g * slope                                # the gradient at z
    e_z = batchnorm_atol(x, g, weight, bias, bn_eps, dtype, running=running)["y"]
    inner = batchnorm_atol(x, gz, weight, bias, bn_eps, dtype, running=running)
    y_bound = GELU_SLOPE_MAX * e_z * (1 + u) + gelu_atol(z, dtype)[0]
    d = np.abs(g) * GELU_CURVATURE_MAX * e_z * (1 + u) + gelu_grad_atol(z, g, dtype)
    sum_d = d.sum(axis=(0, 2, 3))
    sum_dx = (d * np.abs(xh)).sum(axis=(0, 2, 3))
    if running is None:
        k = b(np.abs(gam) / (m * sigma))
        dx = inner["dx"] + k * (m * d + b(sum_d) + np.abs(xh) * b(sum_dx))
    else:
        dx = inner["dx"] + b(np.abs(gam) / sigma) * d
    return {"y": y_bound, "dx": dx, "dweight": inner["dweight"] + sum_dx, "dbias": inner["dbias"] + sum_d}


def _bn_batch_stats(x, dtype):
    """Per channel of x (N, C, H, W): exact mean, biased variance, and the bounds on one two-pass
    dtype implementation's errors in them (each rounding counted as u = machine epsilon):
      mean = fl(sum x / M):           e_mu  = gamma_{M+1} * mean|x|
      var = fl(sum fl(x - mean)^2 / M): the squares of the computed deviations sum to
          M (var + (mean - mu)^2); each term carries 3 roundings, the sum M - 1 more, the division 1:
                                      e_var = gamma_{M+3} (var + e_mu^2) + e_mu^2
    """
    x = np.asarray(x, dtype=np.float64)
    n, _, h, w = x.shape
    m = n * h * w
    mu = x.mean(axis=(0, 2, 3))
    var = ((x - mu.reshape(1, -1, 1, 1)) ** 2).mean(axis=(0, 2, 3))
    e_mu = gamma(m + 1, dtype) * np.abs(x).mean(axis=(0, 2, 3))
    e_var = gamma(m + 3, dtype) * (var + e_mu ** 2) + e_mu ** 2
    return mu, var, e_mu, e_var, m


def batchnorm_atol(x, g, weight, bias, bn_eps, dtype, *, running=None):
    """Elementwise bounds on |tinycnn - torch| for BatchNorm2D's y, dx, dweight, dbias in ``dtype``.

    x, g: (N, C, H, W), the input and upstream gradient both sides got; weight, bias: (C,) or None
    (affine=False); running: None for batch statistics, else (running_mean, running_var), the same
    values on both sides (evaluation mode). Returns a dict of float64 arrays y, dx (N, C, H, W) and
    dweight, dbias (C,).

    One side's first-order error (u = machine epsilon per rounding, a generous unit roundoff), with
    mu, sigma = sqrt(var + eps), x_hat exact and e_mu, e_var from ``_bn_batch_stats`` (0 for running
    statistics):
      R_sigma = e_var / (2 (var + eps)) + 3u       relative error of 1/sigma (add eps, sqrt, divide)
      y  = gamma x_hat + beta, evaluated as gamma (x - mu)/sigma + beta or as x a + (beta - mu a):
           |gamma| e_mu / sigma + |gamma x_hat| R_sigma + 4u (|gamma| (|x| + |mu|) / sigma + |beta|)
      dbias   = G1 = sum g:           gamma_M sum|g|
      dweight = G2 = sum g x_hat:     |G1| e_mu / sigma + |G2| R_sigma + gamma_{M+5} sum|g x_hat|
      dx (batch) = A - B, A = gamma/(M sigma) (M g - G1), B = gamma/(M sigma) x_hat G2:
           |A| (R_sigma + 4u) + |B| (3 R_sigma + 6u) + |gamma|/(M sigma) [err G1 + u (M|g| + |G1|)
           + |G2| (e_mu/sigma + u |x_hat|) + |x_hat| (|G1| e_mu/sigma + gamma_{M+5} sum|g x_hat|)]
      dx (running) = g gamma / sigma:  |g gamma / sigma| (R_sigma + 3u)
    The two sides differ by at most twice that.
    """
    u = float(np.finfo(dtype).eps)
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    c = x.shape[1]

    def b(v):                                    # (C,) -> (1, C, 1, 1)
        return np.asarray(v, dtype=np.float64).reshape(1, -1, 1, 1)

    gam = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    bet = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    if running is None:
        mu, var, e_mu, e_var, m = _bn_batch_stats(x, dtype)
    else:
        mu, var = (np.asarray(r, dtype=np.float64) for r in running)
        e_mu = e_var = np.zeros(c)
        m = x.shape[0] * x.shape[2] * x.shape[3]
    sigma = np.sqrt(var + bn_eps)
    r_sigma = e_var / (2 * (var + bn_eps)) + 3 * u
    xh = (x - b(mu)) / b(sigma)
    ag = np.abs(gam)
    e_y = (b(ag * e_mu / sigma) + np.abs(b(gam) * xh) * b(r_sigma)
           + 4 * u * (b(ag / sigma) * (np.abs(x) + b(np.abs(mu))) + b(np.abs(bet))))
    g1, g2 = g.sum(axis=(0, 2, 3)), (g * xh).sum(axis=(0, 2, 3))
    s1, s2 = np.abs(g).sum(axis=(0, 2, 3)), np.abs(g * xh).sum(axis=(0, 2, 3))
    e_dbias = gamma(m, dtype) * s1
    e_g2_rounding = np.abs(g1) * e_mu / sigma + gamma(m + 5, dtype) * s2
    e_dweight = e_g2_rounding + np.abs(g2) * r_sigma
    if running is None:
        k = b(ag / (m * sigma))
        a_abs = k * np.abs(m * g - b(g1))
        b_abs = k * np.abs(xh * b(g2))
        e_dx = (a_abs * b(r_sigma + 4 * u) + b_abs * b(3 * r_sigma + 6 * u)
                + k * (b(e_dbias) + u * (m * np.abs(g) + b(np.abs(g1)))
                       + b(np.abs(g2)) * (b(e_mu / sigma) + u * np.abs(xh))
                       + np.abs(xh) * b(e_g2_rounding)))
    else:
        e_dx = np.abs(g * b(gam / sigma)) * b(r_sigma + 3 * u)
    return {"y": 2 * e_y, "dx": 2 * e_dx, "dweight": 2 * e_dweight, "dbias": 2 * e_dbias}


def batchnorm_running_atol(batches, momentum, dtype):
    """Bounds on |tinycnn - torch| for running_mean and running_var (C,) after training on ``batches``.

    Start: mean 0, var 1, exact. Step t with factor f (momentum, or 1/t when momentum is None), batch
    statistics mu_t, var_t (errors e_mu, e_var as in ``_bn_batch_stats``), v_t = var_t M / (M - 1):
      err_mean_t = (1-f) err_mean_{t-1} + f e_mu + 5u (|(1-f) mean_{t-1}| + |f mu_t|)
      err_var_t  = (1-f) err_var_{t-1} + f M/(M-1) e_var + 5u (|(1-f) var_{t-1}| + |f v_t|)
    (5 roundings: the two products, the sum, M/(M-1) and the store.) Twice that for two sides.
    """
    u = float(np.finfo(dtype).eps)
    rm = rv = err_m = err_v = None
    for t, x in enumerate(batches, start=1):
        mu, var, e_mu, e_var, m = _bn_batch_stats(x, dtype)
        if rm is None:
            rm, rv = np.zeros_like(mu), np.ones_like(mu)
            err_m, err_v = np.zeros_like(mu), np.zeros_like(mu)
        f = 1.0 / t if momentum is None else momentum
        v_unbiased = var * m / (m - 1)
        err_m = (1 - f) * err_m + f * e_mu + 5 * u * (np.abs((1 - f) * rm) + np.abs(f * mu))
        err_v = (1 - f) * err_v + f * m / (m - 1) * e_var + 5 * u * (np.abs((1 - f) * rv) + np.abs(f * v_unbiased))
        rm = (1 - f) * rm + f * mu
        rv = (1 - f) * rv + f * v_unbiased
    return 2 * err_m, 2 * err_v


def assert_within(actual, expected, bound, name="tensor"):
    """Assert |actual - expected| <= bound elementwise (bound: an array from the functions above)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), actual.shape)
    diff = np.abs(actual - expected)
    excess = diff - bound
    if diff.size and not (excess.max() <= 0):
        i = np.unravel_index(int(np.nanargmax(excess)) if np.isfinite(excess).any() else 0, diff.shape)
        raise AssertionError(f"{name} NOT OK: |diff| = {diff[i]:.3e} at {tuple(int(k) for k in i)} exceeds "
                             f"the derived bound {bound[i]:.3e}; max diff {diff.max():.3e}")


# ----------------------------------------------------------------------------------------------
# Forward passes in float32 by two implementations (tinycnn and an ONNX runtime), eval mode.
# ----------------------------------------------------------------------------------------------

def _conv_options(layer) -> dict:
    """A Conv2D's dilation, groups and padding_mode as keyword arguments (none for a Conv2D without them)."""
    return {name: getattr(layer, name) for name in ("dilation", "groups", "padding_mode") if hasattr(layer, name)}


def _same_pool(layer):
    """A fresh pooling layer with ``layer``'s settings, every option included."""
    import tinycnn as tc
    options = {name: getattr(layer, name) for name in ("dilation", "ceil_mode", "count_include_pad",
                                                       "divisor_override") if hasattr(layer, name)}
    return type(layer)(layer.kernel_size, layer.stride, layer.padding, **options) if isinstance(
        layer, (tc.MaxPool2D, tc.AvgPool2D)) else None


def _float64_copy(layer, abs_weights=False):
    """A float64 Conv2D / Dense with the layer's weights (or |W| and no bias, for sums of |terms|)."""
    import tinycnn as tc
    if isinstance(layer, tc.Conv2D):
        new = tc.Conv2D(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                        bias=layer.bias is not None and not abs_weights, dtype=np.float64,
                        **_conv_options(layer))
    else:
        new = tc.Dense(layer.in_features, layer.out_features, bias=layer.bias is not None and not abs_weights,
                       dtype=np.float64)
    new.weight.data[...] = np.abs(layer.weight.data) if abs_weights else layer.weight.data
    if new.bias is not None:
        new.bias.data[...] = layer.bias.data
    return new


def _rounding_and_exact(layer, v, dtype):
    """(exact output in float64, one side's rounding error bound) of ``layer`` on exact input ``v``;
    None for the error of a layer without arithmetic. Raises for a layer without a rule here."""
    import tinycnn as tc
    if isinstance(layer, (tc.Conv2D, tc.Dense)):
        n = layer.weight.data[0].size + (layer.bias is not None)      # terms per output (+1: the bias)
        abs_sum = np.array(_float64_copy(layer, abs_weights=True).forward(np.abs(v)))
        if layer.bias is not None:
            b = np.abs(layer.bias.data.astype(np.float64))
            abs_sum += b.reshape(1, -1, 1, 1) if isinstance(layer, tc.Conv2D) else b
        return np.array(_float64_copy(layer).forward(v)), gamma(n, dtype) * abs_sum
    if isinstance(layer, tc.AvgPool2D):
        pool = _same_pool(layer)
        k = layer.kernel_size[0] * layer.kernel_size[1]                 # k terms, then one divide
        return np.array(pool.forward(v)), gamma(k + 1, dtype) * np.array(pool.forward(np.abs(v)))
    if isinstance(layer, tc.BatchNorm2D):
        if not layer.track_running_stats:
            raise ValueError("batch norm without running statistics has no eval-mode rule here")
        c = layer.num_features
        gam = np.ones(c) if layer.weight is None else layer.weight.data.astype(np.float64)
        bet = np.zeros(c) if layer.bias is None else layer.bias.data.astype(np.float64)
        mu, var = layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)
        a = (gam / np.sqrt(var + layer.eps)).reshape(1, -1, 1, 1)
        y = a * (v - mu.reshape(1, -1, 1, 1)) + bet.reshape(1, -1, 1, 1)
        one_side = batchnorm_atol(v, np.zeros_like(v), gam, bet, layer.eps, dtype, running=(mu, var))["y"] / 2
        return y, one_side
    if isinstance(layer, tc.MaxPool2D):
        return np.array(_same_pool(layer).forward(v)), None
    if isinstance(layer, tc.ReLU):
        return np.maximum(v, 0), None
    if isinstance(layer, tc.Flatten):
        return v.reshape(len(v), -1), None
    if isinstance(layer, tc.Dropout):
        return v, None
    raise ValueError(f"no float32 error rule for {layer!r}")


def layer_forward_atol(layer, x, dtype=np.float32):
    """Elementwise bound on |y_a - y_b| for two evaluations of one eval-mode layer on the same input x:
    2 gamma_n S for Conv2D and Dense (n terms per output, S = |W| |x| + |b|) and AvgPool2D (k terms
    and a divide), ``batchnorm_atol`` with running statistics for BatchNorm2D, and 0 for ReLU, MaxPool2D,
    Flatten and Dropout (no arithmetic: the results are equal bit for bit)."""
    y, one_side = _rounding_and_exact(layer, np.asarray(x, dtype=np.float64), dtype)
    return np.zeros_like(y) if one_side is None else 2 * one_side


def network_forward_atol(layers, x, dtype=np.float32):
    """Elementwise bound on |y_a - y_b| for two float32 evaluations of an eval-mode chain of the layers
    ``layer_forward_atol`` knows, from the same input x (which both get exactly).

    First order, walking exact values v (float64) and a bound e on one side's error in them (e = 0 at
    the input): a layer adds its own rounding (as in ``layer_forward_atol``, one side) to the input
    error it passes on: |W| e for Conv2D and Dense, the window's max of e for MaxPool2D
    (|max a - max b| <= max |a - b|) and its mean for AvgPool2D, |a| e for batch norm
    (a = gamma / sqrt(var + eps)); ReLU, Flatten and Dropout pass e on unchanged (1-Lipschitz, exact).
    Each side is within e of the exact output, the two within 2 e. A worst case: with no cancellation
    assumed, it grows about as fast as the product of the layers' |W| norms with depth.
    """
    import tinycnn as tc
    v = np.asarray(x, dtype=np.float64)
    e = np.zeros_like(v)
    for layer in layers:
        y, rounding = _rounding_and_exact(layer, v, dtype)
        if isinstance(layer, (tc.Conv2D, tc.Dense)):
            e = np.array(_float64_copy(layer, abs_weights=True).forward(e))
        elif isinstance(layer, tc.MaxPool2D):
            e = np.array(_same_pool(layer).forward(e))
        elif isinstance(layer, tc.AvgPool2D):
            e = np.array(_same_pool(layer).forward(e))
        elif isinstance(layer, tc.BatchNorm2D):
            gam = np.ones(layer.num_features) if layer.weight is None else layer.weight.data.astype(np.float64)
            a = np.abs(gam / np.sqrt(layer.running_var.astype(np.float64) + layer.eps))
            e = a.reshape(1, -1, 1, 1) * e
        elif isinstance(layer, tc.Flatten):
            e = e.reshape(len(e), -1)
        e = e if rounding is None else e + rounding
        v = y
    return 2 * e


# ----------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) (tinycnn/kernels/winograd.py has the derivation of the bound).
# ----------------------------------------------------------------------------------------------

def winograd_abs_tiles(xs, ph, pw):
    """|xs| (C, H, W, N) -> its 4 x 4 input tiles (C, TH, TW, 4, 4, N) in float64, tile (ty, tx)
    starting at row 2 ty - ph and column 2 tx - pw, zero outside the input."""
    xs = np.abs(np.asarray(xs, dtype=np.float64))
    c, h, w, n = xs.shape
    th, tw = (h + 2 * ph - 1) // 2, (w + 2 * pw - 1) // 2          # ceil(OH / 2), OH = H + 2 ph - 2
    xp = np.zeros((c, 2 * th + 2 + h, 2 * tw + 2 + w, n))          # room for padding and overhang
    xp[:, ph:ph + h, pw:pw + w] = xs
    d = np.empty((c, th, tw, 4, 4, n))
    for i in range(4):
        for j in range(4):
            d[:, :, :, i, j] = xp[:, i:i + 2 * th:2, j:j + 2 * tw:2]
    return d


def winograd_abs_input(xs, ph, pw):
    """|B^T| |d| |B| for every input tile: (16, C, TH*TW*N), the S of the input transform."""
    from tinycnn.kernels.winograd import BT
    d = winograd_abs_tiles(xs, ph, pw)
    c, th, tw, _, _, n = d.shape
    v = np.einsum("ai,ctsijn,bj->abctsn", np.abs(BT), d, np.abs(BT))
    return v.reshape(16, c, th * tw * n)


def winograd_abs_output(m, bias, oh, ow):
    """|A^T| |m| |A| + |b| for m (16, O, TH*TW*N): (O, OH, OW, N), the S of the output transform."""
    from tinycnn.kernels.winograd import AT
    m = np.abs(np.asarray(m, dtype=np.float64))
    o, t = m.shape[1:]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    m6 = m.reshape(4, 4, o, th, tw, t // (th * tw))
    y = np.einsum("ai,ijotsn,bj->otasbn", np.abs(AT), m6, np.abs(AT)).reshape(o, 2 * th, 2 * tw, -1)
    y = y[:, :oh, :ow]
    if len(bias):
        y = y + np.abs(np.asarray(bias, dtype=np.float64)).reshape(-1, 1, 1, 1)
    return y


def winograd_abs_sum(x, weight, bias, ph, pw):
    """S_W (N, O, OH, OW) of Winograd F(2x2, 3x3) on x (N, C, H, W), weight (O, C, 3, 3), bias (O,) or
    None: the whole algorithm on |x|, |weight|, |bias| with the transforms' absolute matrices, in
    float64 (tinycnn/kernels/winograd.py: |computed - exact| <= gamma_{C+11} S_W)."""
    from tinycnn.kernels.winograd import G
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    v = winograd_abs_input(x.transpose(1, 2, 3, 0), ph, pw)        # (16, C, T)
    ag = np.abs(G)
    u = np.einsum("ak,ockl,bl->aboc", ag, np.abs(np.asarray(weight, dtype=np.float64)), ag)
    mm = np.matmul(u.reshape(16, *u.shape[2:]), v)                  # (16, O, T)
    y = winograd_abs_output(mm, [] if bias is None else bias, oh, ow)   # (O, OH, OW, N)
    return y.transpose(3, 0, 1, 2)


def winograd_atol(x, weight, bias, ph, pw, dtype):
    """Bound on |Winograd F(2x2, 3x3) in ``dtype`` - the exact convolution|: gamma_{C+11} S_W."""
    c = np.asarray(weight).shape[1]
    return gamma(c + 11, dtype) * winograd_abs_sum(x, weight, bias, ph, pw)
