"""Small dataset files in the original formats, made by the tests themselves (not by tinycnn).

IDX bytes are packed here with ``struct`` from the format's definition, and CIFAR batches are
pickled here as dicts with bytes keys like the originals, so the readers are checked against
independently made files.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_by_hand(a: np.ndarray) -> bytes:
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim, each dim as big-endian uint32, then the bytes."""
    assert a.dtype == np.uint8
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return header + np.ascontiguousarray(a).tobytes()


def mnist_arrays(rng, n_train=30, n_test=12, h=28, w=28, classes=10):
    x_tr = rng.integers(0, 256, (n_train, h, w), dtype=np.uint8)
    x_te = rng.integers(0, 256, (n_test, h, w), dtype=np.uint8)
    y_tr = (np.arange(n_train) % classes).astype(np.uint8)
    y_te = (np.arange(n_test) % classes).astype(np.uint8)
    return x_tr, y_tr, x_te, y_te


def mnist_gz_files(x_tr, y_tr, x_te, y_te) -> dict:
    """{file name: gzip bytes} for the four MNIST files."""
    return {name: gzip.compress(idx_by_hand(a), mtime=0)
            for name, a in zip(MNIST_NAMES, (x_tr, y_tr, x_te, y_te))}


def write_files(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with every bytes and str written as a Python 2 ``str`` (opcodes SHORT_BINSTRING /
    BINSTRING), as cPickle wrote the CIFAR batches. (Python 3's own protocol 2 writes bytes through
    ``_codecs.encode``, which the originals never contain.)"""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_style_pickle(d: dict) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(d)
    return buf.getvalue()


def cifar_tar(path: Path, members: dict) -> Path:
    """Write a .tar.gz with {member path: bytes}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def cifar10_archive(path: Path, rng, per_batch=4):
    """A CIFAR-10-format archive with 5 training batches and a test batch of ``per_batch`` images.

    Returns (planar rows (N, 3072) train, labels, planar rows test, labels, names).
    """
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    members, tr_rows, tr_labels = {}, [], []
    for i in range(1, 7):
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        name = f"data_batch_{i}" if i <= 5 else "test_batch"
        members[f"cifar-10-batches-py/{name}"] = py2_style_pickle(
            {b"batch_label": name.encode(), b"labels": labels, b"data": rows,
             b"filenames": [b"x.png"] * per_batch})
        if i <= 5:
            tr_rows.append(rows)
            tr_labels += labels
        else:
            te_rows, te_labels = rows, labels
    members["cifar-10-batches-py/batches.meta"] = py2_style_pickle(
        {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    cifar_tar(path, members)
    return np.concatenate(tr_rows), np.array(tr_labels), te_rows, np.array(te_labels), names


def cifar100_archive(path: Path, rng, n_train=8, n_test=4):
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [f"coarse{i}".encode() for i in range(20)]
    out = {}
    members = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        f = [int(v) for v in rng.integers(0, 100, n)]
        c = [int(v) for v in rng.integers(0, 20, n)]
        members[f"cifar-100-python/{split}"] = py2_style_pickle(
            {b"data": rows, b"fine_labels": f, b"coarse_labels": c, b"filenames": [b"x"] * n})
        out[split] = (rows, np.array(f), np.array(c))
    members["cifar-100-python/meta"] = py2_style_pickle(
        {b"fine_label_names": fine, b"coarse_label_names": coarse})
    cifar_tar(path, members)
    return out, fine, coarse
