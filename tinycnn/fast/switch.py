"""Whether ``Sequential`` runs through the executor: on unless ``TINYCNN_FAST=0`` or ``set_enabled(False)``.

A plain plan (``compile(layers, plain=True)``) turns it off while it runs, so that a Sequential nested
inside one of its layers (a residual block's block) runs its layers' own code too.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

_ENABLED = os.environ.get("TINYCNN_FAST", "1") != "0"


def enabled() -> bool:
    return _ENABLED


def set_enabled(on: bool) -> bool:
    """Run Sequential through the executor (True) or through the layers' own code (False); returns
    the old setting."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(on)
    return old


@contextmanager
def off():
    old = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(old)
