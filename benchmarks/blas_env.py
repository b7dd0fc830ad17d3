"""Run the suite without this machine's OpenBLAS overrides, and say so.

The environment sets ``OPENBLAS_CORETYPE=Haswell`` and ``OPENBLAS_L2_SIZE`` as a workaround for bugs
in old OpenBLAS builds. They pin a current NumPy's OpenBLAS to its AVX2 (Haswell) kernels, which on an
AVX-512 CPU run float32 matrix multiplies at about half speed. The suite removes *both* together, in
its own process only, by re-executing itself before NumPy is imported; tests and CI never change them.
``--keep-blas-env`` keeps them. The JSON result records what was removed and which kernel OpenBLAS
reports through threadpoolctl.
"""
from __future__ import annotations

import json
import os
import sys

OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MARKER = "TINYCNN_BENCH_REMOVED_BLAS_ENV"


def reexec_without_overrides(argv: list[str], module: str = "benchmarks") -> None:
    """Replace this process by ``python -m <module> argv`` without the overrides (no-op if none)."""
    if "--keep-blas-env" in argv or MARKER in os.environ or "numpy" in sys.modules:
        return
    removed = {k: os.environ[k] for k in OVERRIDES if k in os.environ}
    if not removed:
        return
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env[MARKER] = json.dumps(removed)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


def removed_overrides() -> dict[str, str]:
    """The overrides this process was started without (empty if none were removed)."""
    return json.loads(os.environ.get(MARKER, "{}"))
