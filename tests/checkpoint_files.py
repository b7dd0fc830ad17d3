"""Checkpoint files for the hostile-input tests, taken apart and put together by the tests themselves.

``members(path)`` reads a checkpoint's zip members as raw bytes with ``zipfile`` (trusted test code
reading a file the test wrote); ``write_zip`` writes any list of (name, bytes) back, stored or
deflated, so a test can change one member, add or drop members, or lie in a ``.npy`` header.
``npy_bytes`` packs an ``.npy`` member by the format's definition (magic, version 1.0, header dict
padded to a multiple of 64, raw data) with any header it is told to write.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

import tinycnn as tc
from tinycnn import zoo

EMBEDDED_CLASSES = [str(d) for d in range(10)]


def npy_bytes(arr: np.ndarray | None = None, *, descr=None, shape=None, fortran=False, data=None,
              header_text=None) -> bytes:
    """An .npy file: by default ``arr``'s; ``descr``/``shape``/``data``/``header_text`` override parts."""
    if arr is not None:
        arr = np.array(arr, order="C")              # (ascontiguousarray would make 0-d arrays 1-d)
        descr = arr.dtype.str if descr is None else descr
        shape = arr.shape if shape is None else shape
        data = arr.tobytes() if data is None else data
    if header_text is None:
        header_text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    raw = header_text.encode("latin1")
    pad = (-(10 + len(raw) + 1)) % 64
    raw = raw + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data


def members(path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, items, compress=False) -> Path:
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=mode) as z:
        for name, data in items:
            z.writestr(name, data)
    return Path(path)


def meta_of(items) -> dict:
    raw = dict(items)["meta.npy"]
    arr = np.lib.format.read_array(__import__("io").BytesIO(raw), allow_pickle=False)
    return json.loads(arr.tobytes().decode("utf-8"))


def with_meta(items, meta) -> list:
    """``items`` with ``meta.npy`` replaced by ``meta`` (a dict, or raw bytes for the JSON text)."""
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode("utf-8")
    new = npy_bytes(np.frombuffer(text, dtype=np.uint8))
    return [(n, new if n == "meta.npy" else d) for n, d in items]


def rewrite_meta(src, dst, change) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with ``change(meta)`` applied to its metadata dict."""
    items = members(src)
    meta = meta_of(items)
    change(meta)
    return write_zip(dst, with_meta(items, meta))


def run_checkpoint(path, *, shape=(1, 28, 28), classes=EMBEDDED_CLASSES, optimizer="adam", schedule="constant",
                   epochs=2, steps=3, seed=0) -> Path:
    """A checkpoint laid out as ``tinycnn train`` writes it (lenet on ``shape``; Adam or SGD stepped
    ``steps`` times on random data), quickly, without training a real run."""
    rng = np.random.default_rng(seed)
    model = zoo.build("lenet", shape, len(classes), rng)
    opt = (tc.Adam(model.parameters(), lr=2e-3) if optimizer == "adam"
           else tc.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True))
    sched = None
    if schedule == "cosine":
        sched = tc.schedules.CosineAnnealingLR(opt, T_max=epochs)
    elif schedule == "onecycle":
        sched = tc.schedules.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps, pct_start=0.3)
    loss = tc.SoftmaxCrossEntropy()
    x = rng.standard_normal((8, *shape)).astype(np.float32)
    y = rng.integers(0, len(classes), 8)
    for _ in range(steps):
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
        if sched is not None and schedule == "onecycle":
            sched.step()
    if sched is not None and schedule == "cosine":
        sched.step()
    done = 1
    config = {"dataset": "embedded", "model": "lenet", "epochs": epochs, "batch_size": 8, "lr": 2e-3,
              "optimizer": optimizer, "schedule": schedule, "weight_decay": 0.0, "augment": "auto", "seed": 0,
              "val_split": 0.1, "subset": None, "image_size": None}
    data = {"dataset": "embedded", "source": "test", "classes": list(classes), "image_shape": list(shape),
            "train": 8, "val": 0, "test": 8, "augment": None,
            "normalization": {"mean": [33.3] * shape[0], "std": [78.5] * shape[0]}}
    history = {"loss": [2.3] * done, "accuracy": [0.1] * done, "lr": [2e-3] * done}
    extra = {"model": zoo.describe("lenet", shape, len(classes)), "config": config, "data": data,
             "tinycnn_version": tc.__version__, "history": history,
             "schedule": sched.state_dict() if sched is not None else None}
    tc.save_checkpoint(path, model, opt, epoch=done, rng=np.random.default_rng(seed + 1), extra=extra)
    return Path(path)
