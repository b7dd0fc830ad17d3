"""Optional packages the tests need (onnx, onnxruntime, safetensors), skipped as tests/conftest.py
skips torch: where one is missing its tests skip with the reason and the install line, except when
``CI=true`` or ``TINYCNN_REQUIRE_EXTRAS=1``: there a missing package fails the run instead."""
import importlib
import os

import pytest

REQUIRE_EXTRAS = os.environ.get("CI", "").lower() == "true" or os.environ.get("TINYCNN_REQUIRE_EXTRAS") == "1"


def require(module: str, extra: str):
    """Import ``module`` or skip (fail under CI / TINYCNN_REQUIRE_EXTRAS=1) naming tinycnn's extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = f"{module} is not installed ({err}); install it with: pip install 'tinycnn[{extra}]'"
        if REQUIRE_EXTRAS:
            pytest.fail(f"{module} is required here (CI=true or TINYCNN_REQUIRE_EXTRAS=1): " + msg, pytrace=False)
        pytest.skip(msg)
