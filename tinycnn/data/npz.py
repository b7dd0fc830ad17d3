"""The ``.npz`` layout of ``shared/datasets`` (and of any folder laid out the same way).

One folder per dataset::

    <folder>/train.npz                     or  <folder>/train-0.npz, train-1.npz, ...  (concatenated in order)
    <folder>/test.npz

Each file holds ``x``: uint8 (N, H, W) for grey or (N, H, W, C) channels-last with C = 1 or 3, and
``y``: integer labels (N,). Optional: ``classes``, a string array of class names. For
``cifar100_coarse`` the labels are read from ``y_coarse`` instead of ``y``. Files are opened with
``allow_pickle=False``: an .npz that needs pickle is refused. Members may be deflate- or
LZMA-compressed (``np.load`` reads both).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from .dataset import as_nchw
from .errors import DataError


def npz_files(folder) -> dict | None:
    """{"train": [paths in order], "test": path} if ``folder`` holds the layout, else None."""
    folder = Path(folder)
    test = folder / "test.npz"
    if not test.is_file():
        return None
    if (folder / "train.npz").is_file():
        return {"train": [folder / "train.npz"], "test": test}
    parts = {}
    for p in folder.glob("train-*.npz"):
        m = re.fullmatch(r"train-(\d+)\.npz", p.name)
        if m:
            parts[int(m.group(1))] = p
    if not parts:
        return None
    if sorted(parts) != list(range(len(parts))):
        raise DataError(f"read_npz: {folder} holds training parts {sorted(parts)}; they must be "
                        f"numbered 0..{len(parts) - 1} without gaps")
    return {"train": [parts[i] for i in range(len(parts))], "test": test}


def _read_one(path: Path, label_key: str):
    """-> images uint8 NCHW, labels, classes (tuple or None) from one .npz file."""
    try:
        with np.load(path, allow_pickle=False) as d:
            keys = set(d.files)
            if "x" not in keys or label_key not in keys:
                raise DataError(f"read_npz: {path} must hold arrays 'x' and {label_key!r}; it holds "
                                f"{sorted(keys)}")
            x, y = d["x"], d[label_key]
            classes = tuple(str(c) for c in d["classes"]) if "classes" in keys else None
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"read_npz: file {path} does not exist") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise DataError(f"read_npz: cannot read {path} ({type(err).__name__}: {err}); the file is "
                        "truncated, corrupted or not an .npz written without pickle") from None
    if x.ndim == 3:
        layout = "NHW"
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        layout = "NHWC"
    else:
        raise DataError(f"read_npz: {path}: 'x' must be (N, H, W) or channels-last (N, H, W, C) with "
                        f"C = 1 or 3, got shape {x.shape}")
    return as_nchw(x, layout, str(path)), y, classes


def read_npz(folder, label_key: str = "y"):
    """Read the layout in ``folder``.

    Returns x_train uint8 (N, C, H, W), y_train (N,), x_test (M, C, H, W), y_test (M,), and the
    class names stored in the test file (tuple) or None.
    """
    folder = Path(folder)
    files = npz_files(folder)
    if files is None:
        raise DataError(f"read_npz: {folder} does not hold the .npz layout (test.npz and train.npz "
                        "or train-0.npz, train-1.npz, ...)")
    parts = [_read_one(p, label_key) for p in files["train"]]
    shapes = {p[0].shape[1:] for p in parts}
    if len(shapes) > 1:
        raise DataError(f"read_npz: the training parts in {folder} have different image shapes "
                        f"{sorted(shapes)}")
    x_test, y_test, classes = _read_one(files["test"], label_key)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([np.asarray(p[1]) for p in parts])
    return x_train, y_train, x_test, y_test, classes
