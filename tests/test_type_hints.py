"""Type hints on the public API: every public function and method (parameters and return) of the
names in ``tinycnn.__all__`` and of the public sub-modules it lists, and of ``tinycnn.layers``.

Public: a module's ``__all__`` if it has one, else its names without a leading underscore that it
defines itself; a class's methods, properties, static and class methods without a leading underscore
(``__init__`` included), inherited ones too when a tinycnn class defines them. The first parameter of a
method (``self``/``cls``) needs no hint. The hints are checked for presence here; ``mypy`` checks that
they are right.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import tinycnn

PACKAGE = Path(tinycnn.__file__).resolve().parent

# Files being edited elsewhere at the moment, whose hints come with those changes: each entry is to be
# removed when they are in (test_every_excused_file_still_lacks_hints fails once an entry excuses
# nothing). A path ending in "/" covers a folder; "file.py:name" one function of a file.
NOT_YET_HINTED = {
    "optim.py",
    "schedules.py",
    "layers/base.py",
    "data/",
    "fast/",
}

MODULES = ["tinycnn", "tinycnn.layers"] + [f"tinycnn.{name}" for name in tinycnn.__all__
                                           if inspect.ismodule(getattr(tinycnn, name))]


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]


def _source(fn) -> str:
    """The function's file relative to the package ('layers/conv.py'), or '' outside tinycnn."""
    try:
        path = Path(inspect.getsourcefile(fn) or "").resolve()
    except TypeError:
        return ""
    return path.relative_to(PACKAGE).as_posix() if PACKAGE in path.parents else ""


def _matches(entry: str, rel: str, name: str) -> bool:
    return rel == entry or (entry.endswith("/") and rel.startswith(entry)) or f"{rel}:{name}" == entry


def _excused(rel: str, name: str) -> bool:
    return any(_matches(entry, rel, name) for entry in NOT_YET_HINTED)


def _methods(cls):
    """(qualified name, function) for the class's public callables written in tinycnn."""
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        elif isinstance(raw, property):
            raw = raw.fget
        if inspect.isfunction(raw):
            yield f"{cls.__name__}.{name}", raw, not isinstance(inspect.getattr_static(cls, name), staticmethod)


def _api():
    """(where, function, is_method) for every public function and method, each once."""
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            obj = getattr(module, name)
            if inspect.isclass(obj) and obj.__module__.startswith("tinycnn"):
                items = _methods(obj)
            elif inspect.isfunction(obj):
                items = [(name, obj, False)]
            else:
                continue
            for where, fn, is_method in items:
                if fn not in seen:
                    seen.add(fn)
                    yield f"{module_name}: {where}", fn, is_method


def _missing(fn, is_method: bool) -> list[str]:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if is_method else 0:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_function_and_method_has_type_hints():
    unhinted = []
    for where, fn, is_method in _api():
        rel = _source(fn)
        if not rel or _excused(rel, fn.__name__):
            continue
        missing = _missing(fn, is_method)
        if missing:
            unhinted.append(f"{where} ({rel}): {', '.join(missing)}")
    assert not unhinted, "public functions without type hints:\n  " + "\n  ".join(unhinted)


def test_the_walk_sees_the_api():
    """The walk is not empty-handed: it finds the layers' methods, the model's and module functions."""
    found = {where for where, _, _ in _api()}
    for expected in ("tinycnn: Conv2D.forward", "tinycnn: Conv2D.__init__", "tinycnn: Sequential.fit",
                     "tinycnn.zoo: build", "tinycnn.metrics: accuracy", "tinycnn.callbacks: EarlyStopping.__init__"):
        assert any(w == expected for w in found), expected


def test_the_check_catches_a_missing_hint():
    def half(x: int, y) -> int:
        return x

    def no_return(x: int):
        return x

    assert _missing(half, is_method=False) == ["y"]
    assert _missing(no_return, is_method=False) == ["return"]


@pytest.mark.parametrize("entry", sorted(NOT_YET_HINTED))
def test_every_excused_file_still_lacks_hints(entry):
    """An entry that excuses nothing any more (its hints are in) is to be deleted from NOT_YET_HINTED."""
    assert (PACKAGE / entry.split(":")[0]).exists(), entry
    excused = [where for where, fn, is_method in _api()
               if _matches(entry, _source(fn), fn.__name__) and _missing(fn, is_method)]
    assert excused, f"{entry} has its type hints now: remove it from NOT_YET_HINTED"
