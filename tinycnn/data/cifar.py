"""CIFAR-10 and CIFAR-100 from their original python archives, unpickled safely.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``;
``cifar-100-python.tar.gz`` holds ``cifar-100-python/{train, test, meta}``. Each batch is a Python 2
pickle of a dict::

    b"data":   uint8 ndarray (n, 3072), each row an image as three 32x32 planes R, G, B
    b"labels" (CIFAR-10) or b"fine_labels" and b"coarse_labels" (CIFAR-100): list of n ints
    meta:      b"label_names" (CIFAR-10) or b"fine_label_names" / b"coarse_label_names"

**Pickles can run arbitrary code when loaded.** Here they go through :class:`SafeUnpickler`, whose
``find_class`` resolves only the three globals a pickled NumPy array needs (``ndarray``, ``dtype``
and ``_reconstruct``) and refuses everything else, so a tampered archive raises a ``DataError``
instead of running code. Only the archive members listed above are read; nothing is extracted to
disk. After unpickling, every value is checked: ``data`` must be a uint8 (n, 3072) array and the
labels plain ints.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import as_nchw
from .errors import DataError

try:                                            # NumPy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:                             # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,   # name in the original (NumPy 1) pickles
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # name NumPy 2 writes
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

CIFAR10_MEMBERS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                   "meta": "batches.meta"}
CIFAR100_MEMBERS = {"train": ["train"], "test": ["test"], "meta": "meta"}
NAMES_KEY = {"labels": "label_names", "fine_labels": "fine_label_names",
             "coarse_labels": "coarse_label_names"}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that builds only dicts, lists, str/bytes, ints, floats and NumPy arrays."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch holds only dicts, lists, "
                "strings, ints and NumPy arrays") from None


def safe_unpickle(data: bytes, where: str) -> dict:
    """Unpickle one CIFAR member with :class:`SafeUnpickler`; return a dict with str keys."""
    try:
        obj = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:      # UnpicklingError, EOFError, ValueError, ... from a bad pickle
        raise DataError(f"read_cifar: cannot unpickle {where}: {err}") from None
    if not isinstance(obj, dict):
        raise DataError(f"read_cifar: {where} should hold a dict, found {type(obj).__name__}")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _members(path: Path, wanted: set) -> dict:
    """Read the wanted members (by base name) of a .tar.gz in one streaming pass -> {name: bytes}."""
    found = {}
    try:
        with tarfile.open(path, "r|gz") as tar:
            for info in tar:
                base = info.name.rsplit("/", 1)[-1]
                if base in wanted and info.isfile():
                    if base in found:
                        raise DataError(f"read_cifar: {path} holds two members named {base!r}")
                    found[base] = tar.extractfile(info).read()
    except FileNotFoundError:
        raise DataError(f"read_cifar: file {path} does not exist") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"read_cifar: {path} is truncated or not a .tar.gz archive ({err}); "
                        "delete it and download it again") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"read_cifar: {path} lacks the member(s) {missing}; is it the python "
                        "version of CIFAR (cifar-10-python.tar.gz / cifar-100-python.tar.gz)?")
    return found


def _batch(d: dict, label_key: str, where: str):
    """-> images uint8 (n, 3, 32, 32), labels (n,) from one unpickled batch."""
    data, labels = d.get("data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"read_cifar: {where}['data'] should be a uint8 (n, 3072) array, got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}")
    if not isinstance(labels, list) or not all(isinstance(v, int) for v in labels):
        raise DataError(f"read_cifar: {where} has no list of int labels under {label_key!r} "
                        f"(keys: {sorted(d)})")
    if len(labels) != len(data):
        raise DataError(f"read_cifar: {where} has {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)   # planes R, G, B


def read_cifar(path, label_key: str = "labels"):
    """Read a CIFAR python archive.

    label_key: "labels" (CIFAR-10), "fine_labels" or "coarse_labels" (CIFAR-100).
    Returns x_train uint8 (N, 3, 32, 32), y_train int64 (N,), x_test, y_test, class names (tuple).
    """
    path = Path(path)
    if label_key not in NAMES_KEY:
        raise ValueError(f"read_cifar: label_key must be one of {list(NAMES_KEY)}, got {label_key!r}")
    layout = CIFAR10_MEMBERS if label_key == "labels" else CIFAR100_MEMBERS
    raw = _members(path, set(layout["train"] + layout["test"] + [layout["meta"]]))
    split = {}
    for part in ("train", "test"):
        xs, ys = zip(*(_batch(safe_unpickle(raw[m], f"{path}:{m}"), label_key, f"{path}:{m}")
                       for m in layout[part]))
        split[part] = (as_nchw(np.concatenate(xs), "NCHW", str(path)), np.concatenate(ys))
    meta = safe_unpickle(raw[layout["meta"]], f"{path}:{layout['meta']}")
    names = meta.get(NAMES_KEY[label_key])
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"read_cifar: {path}:{layout['meta']} has no list of class names under "
                        f"{NAMES_KEY[label_key]!r} (keys: {sorted(meta)})")
    classes = tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    return (*split["train"], *split["test"], classes)
