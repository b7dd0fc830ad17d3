"""Shared test settings.

Hypothesis profiles (choose with TINYCNN_PROFILE): ``ci`` (default, >= 50 examples per property) and
``thorough`` (>= 500). The deadline is off: the first call of a kernel includes its JIT compile.

Torch is the oracle. Where it is not installed the oracle tests skip with a reason, except when
``CI=true`` or ``TINYCNN_REQUIRE_TORCH=1``: there a missing torch fails the run instead.
"""
import os
import signal

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("TINYCNN_PROFILE", "ci"))

REQUIRE_TORCH = os.environ.get("CI", "").lower() == "true" or os.environ.get("TINYCNN_REQUIRE_TORCH") == "1"


def import_torch():
    """Import torch, or skip (fail under CI / TINYCNN_REQUIRE_TORCH=1) with the reason."""
    try:
        import torch
    except ImportError as err:
        msg = f"torch is not installed ({err}); install the oracle with: pip install torch==2.13.0"
        if REQUIRE_TORCH:
            pytest.fail("torch is required here (CI=true or TINYCNN_REQUIRE_TORCH=1): " + msg, pytrace=False)
        pytest.skip(msg)
    return torch


@pytest.fixture(scope="session")
def torch():
    t = import_torch()
    # One thread: the oracle's inputs are tiny, and on a shared 2-core machine torch's thread pool
    # costs far more than it gains (a small batch_norm call: ~16 ms with 2 threads, ~20 us with 1).
    t.set_num_threads(1)
    return t


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: the signal's default disposition.
    A shell starts a background job (``cmd &``) with SIGINT ignored and children inherit that, so a
    suite started that way would send signals the child never receives (Python installs its
    KeyboardInterrupt handler only where SIGINT is not ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
