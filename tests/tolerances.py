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
| finite differences (central, h = 1e-6)        | float64 | norm-wise relative error < 1e-7 (issue 2 bar) |
| adjoint <Jv, u> = <v, J^T u> (central diff.)  | float64 | relative difference < 1e-7                   |
| tinycnn vs torch, forward and gradients       | float64 | relative 1e-10 of the tensor's max magnitude  |
| tinycnn vs torch / fast vs reference          | float32 | 2 * gamma_n(u32) * S elementwise              |
| trajectory (10 steps SGD / Adam) vs torch     | float64 | relative 1e-9 for every loss and weight       |
| elementwise ops with no reduction             | float32 | 4 * u * |value| (a few roundings apart)       |
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
