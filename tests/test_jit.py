"""How the kernels are compiled: ``cache=True``, a clean fallback when no cache folder is writable,
and no ``fastmath`` anywhere.

When Numba cannot cache (numba/core/caching.py, ``CacheImpl.__init__``): ``njit(cache=True)`` asks each
cache locator in turn for a folder it can create and write a temporary file into --
NUMBA_CACHE_DIR (only if set), then ``__pycache__`` beside the source file, then the user-wide cache
folder (``$XDG_CACHE_HOME/numba``, default ``~/.cache/numba``) -- and raises
``RuntimeError("cannot cache function ...: no locator available for file ...")`` at decoration time,
i.e. when ``import tinycnn`` runs, if none can. tinycnn/_jit.py catches that, warns once and
compiles without a cache.

The fallback test triggers exactly that, for real, in a subprocess on a copy of the package: the
copy's ``__pycache__`` folders are replaced by plain files, and NUMBA_CACHE_DIR and XDG_CACHE_HOME
point below a plain file, so every ``os.makedirs`` fails (this works for root too, for whom
read-only permissions would not). The copy is also made read-only, as an installed package would be.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import pkgutil
import shutil
import stat
import subprocess
import sys

import numba
import pytest
from numba.core.registry import CPUDispatcher

import tinycnn
import tinycnn.kernels

PACKAGE = pathlib.Path(tinycnn.__file__).parent

# Runs in the subprocess: import tinycnn, record warnings, run conv and pooling forward/backward and
# compare them with plain NumPy written here; report as JSON on the last line of stdout.
CHILD = r"""
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import tinycnn as tc
    import tinycnn.kernels, importlib, pkgutil
    from numba.core.registry import CPUDispatcher
    from numpy.lib.stride_tricks import sliding_window_view as windows

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    conv = tc.Conv2D(3, 4, 3, stride=(2, 1), padding=1, dtype=np.float64, rng=rng)
    y = conv.forward(x)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(g)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = windows(xp, (3, 3), axis=(2, 3))[:, :, ::2, :]                      # (N, C, OH, OW, 3, 3)
    y_ref = np.einsum("ncyxij,ocij->noyx", win, conv.weight.data) + conv.bias.data[:, None, None]
    dw_ref = np.einsum("ncyxij,noyx->ocij", win, g)
    # dx by the adjoint identity on random directions would need more code; compare <dx, v> instead
    v = rng.standard_normal(x.shape)
    vp = np.pad(v, ((0, 0), (0, 0), (1, 1), (1, 1)))
    jv = np.einsum("ncyxij,ocij->noyx", windows(vp, (3, 3), axis=(2, 3))[:, :, ::2, :], conv.weight.data)
    pool = tc.MaxPool2D(2)
    xm = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6).astype(np.float64)
    ym = pool.forward(xm)
    dxm = pool.backward(np.ones_like(ym))
    ym_ref = windows(xm, (2, 2), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))
    dispatchers = []
    for mod in pkgutil.iter_modules(tinycnn.kernels.__path__):
        m = importlib.import_module("tinycnn.kernels." + mod.name)
        dispatchers += [f"{mod.name}.{k}:{type(v._cache).__name__}" for k, v in vars(m).items()
                        if isinstance(v, CPUDispatcher)]
        dispatchers += [f"{mod.name}.{k}.serial:{type(v.serial._cache).__name__}" for k, v in vars(m).items()
                        if isinstance(v, CPUDispatcher) and hasattr(v, "serial")]
print(json.dumps({
    "file": tc.__file__,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught if "tinycnn" in str(w.message)],
    "other_warnings": [f"{w.category.__name__}: {w.message}" for w in caught if "tinycnn" not in str(w.message)],
    "conv_forward_ok": bool(np.allclose(y, y_ref, rtol=1e-12, atol=1e-12)),
    "conv_weight_grad_ok": bool(np.allclose(conv.weight.grad, dw_ref, rtol=1e-12, atol=1e-12)),
    "conv_input_grad_ok": bool(np.isclose(np.vdot(dx, v), np.vdot(g, jv), rtol=1e-12)),
    "maxpool_ok": bool(np.array_equal(ym, ym_ref) and dxm.sum() == ym.size
                       and np.array_equal(dxm == 1, xm == np.repeat(np.repeat(ym, 2, 2), 2, 3))),
    "dispatchers": dispatchers,
}))
"""


def run_child(env_updates: dict, pythonpath: str | None, cwd) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_updates)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"child failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_read_only(root: pathlib.Path):
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: pathlib.Path):
    for path in [root] + sorted(root.rglob("*")):
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")
def test_kernels_fall_back_cleanly_when_no_cache_folder_is_writable(tmp_path):
    site = tmp_path / "site"
    copy = site / "tinycnn"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    for folder in [copy] + [p for p in copy.rglob("*") if p.is_dir()]:
        (folder / "__pycache__").write_text("a plain file where Numba wants its in-tree cache folder\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a plain file: nothing can be created below it\n")
    make_read_only(site)
    try:
        result = run_child({"NUMBA_CACHE_DIR": str(blocker / "numba"), "XDG_CACHE_HOME": str(blocker / "xdg"),
                            "HOME": str(blocker / "home")}, str(site), cwd=tmp_path)
    finally:
        make_writable(site)
    assert pathlib.Path(result["file"]).resolve().is_relative_to(copy.resolve()), result["file"]
    assert len(result["warnings"]) == 1, f"expected exactly one warning, got {result['warnings']}"
    warning = result["warnings"][0]
    assert warning.startswith("RuntimeWarning: tinycnn: Numba found no writable folder") and \
        "no locator available" in warning and "NUMBA_CACHE_DIR" in warning, warning
    assert not result["other_warnings"], result["other_warnings"]
    assert result["conv_forward_ok"] and result["conv_weight_grad_ok"] and result["conv_input_grad_ok"], result
    assert result["maxpool_ok"], result
    assert result["dispatchers"], "no Numba kernels found in tinycnn.kernels"
    cached = [d for d in result["dispatchers"] if not d.endswith(":NullCache")]
    assert not cached, f"kernels that still claim a cache: {cached}"


def kernel_dispatchers():
    found = {}
    for mod in pkgutil.iter_modules(tinycnn.kernels.__path__):
        module = importlib.import_module(f"tinycnn.kernels.{mod.name}")
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher):
                found[f"{mod.name}.{name}"] = value
                if hasattr(value, "serial"):                     # the serial twin (tinycnn/_jit.py)
                    found[f"{mod.name}.{name}.serial"] = value.serial
    return found


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")
def test_kernels_are_cached_on_disk():
    """The normal path (this process: the source tree or NUMBA_CACHE_DIR is writable): every kernel
    has an on-disk cache, and a kernel that ran has its index file there."""
    import numpy as np
    dispatchers = kernel_dispatchers()
    not_cached = {name: type(d._cache).__name__ for name, d in dispatchers.items()
                  if type(d._cache).__name__ != "FunctionCache"}
    assert not not_cached, f"kernels compiled without cache=True: {not_cached}"
    tinycnn.MaxPool2D(2).forward(np.zeros((1, 1, 4, 4)))
    index = pathlib.Path(dispatchers["pool.maxpool2d_forward"]._cache._cache_file._index_path)
    assert index.exists(), f"no cache index at {index}"


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: the kernels are plain functions")
def test_no_kernel_is_compiled_with_fastmath():
    dispatchers = kernel_dispatchers()
    assert len(dispatchers) >= 6, f"expected the im2col/col2im/pooling kernels, found {sorted(dispatchers)}"
    with_fastmath = {name: d.targetoptions["fastmath"] for name, d in dispatchers.items()
                     if d.targetoptions.get("fastmath")}
    assert not with_fastmath, f"kernels compiled with fastmath: {with_fastmath}"


def test_no_fastmath_in_the_source():
    """No call anywhere in the package passes a ``fastmath`` argument (docstrings may mention it)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and any(k.arg == "fastmath" for k in node.keywords):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"fastmath passed at {offenders}"
