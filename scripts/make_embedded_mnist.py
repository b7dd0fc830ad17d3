"""Build tinycnn/data/embedded_mnist.npz, the embedded default dataset, from shared/datasets/mnist.

    python scripts/make_embedded_mnist.py [--shared ../shared/datasets] [--train-per-class 1500]
                                          [--test-per-class 500] [--seed 0]

What it does, so that the file can be rebuilt and audited:

1. checks the SHA-256 of ``mnist/train.npz`` and ``mnist/test.npz`` against the values in
   ``shared/datasets/README.md`` (those files are bit-exact MNIST, original order);
2. per digit, draws ``--train-per-class`` positions of the training file and ``--test-per-class``
   positions of the test file without replacement, with ``np.random.default_rng(seed)`` (train
   classes 0..9 first, then test classes 0..9), and sorts them, so the subset keeps MNIST's order;
3. writes x_train, y_train, train_index, x_test, y_test, test_index (see ``tinycnn/data/embedded.py``)
   as .npy members of a zip with LZMA compression (``np.load`` reads it; ~15% smaller than
   ``np.savez_compressed``), with fixed timestamps so the output is byte-for-byte reproducible;
4. refuses to write a file over 3,000,000 bytes, and prints its size and SHA-256.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = REPO / "tinycnn" / "data" / "embedded_mnist.npz"
LIMIT = 3_000_000
SOURCE_SHA256 = {   # from shared/datasets/README.md, "Files and SHA-256"
    "train.npz": "11bf48d67d8e90b9d940549ce9565b4921ad2ec150e4491e0c670aeb165169a9",
    "test.npz": "3ba302235efdc3e7e4e84db9ce6a6d6cbc9dd1162d4e79dd0b6a606afc745423",
}


def load_checked(path: Path):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256[path.name]:
        sys.exit(f"{path}: SHA-256 {digest} is not the documented {SOURCE_SHA256[path.name]}")
    with np.load(path, allow_pickle=False) as d:
        return d["x"], d["y"]


def balanced_indices(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """per_class positions of each label 0..9, drawn without replacement, sorted. -> (10*per_class,)"""
    picks = []
    for c in range(10):
        pool = np.flatnonzero(y == c)
        if len(pool) < per_class:
            sys.exit(f"class {c} has only {len(pool)} images, asked for {per_class}")
        picks.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def write_lzma_npz(path: Path, arrays: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--train-per-class", type=int, default=1500)
    ap.add_argument("--test-per-class", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    x_tr, y_tr = load_checked(args.shared / "mnist" / "train.npz")
    x_te, y_te = load_checked(args.shared / "mnist" / "test.npz")
    rng = np.random.default_rng(args.seed)
    tr = balanced_indices(y_tr, args.train_per_class, rng)
    te = balanced_indices(y_te, args.test_per_class, rng)
    data = write_lzma_npz(args.out, {
        "x_train": x_tr[tr], "y_train": y_tr[tr], "train_index": tr.astype(np.uint16),
        "x_test": x_te[te], "y_test": y_te[te], "test_index": te.astype(np.uint16),
    })
    if len(data) > LIMIT:
        sys.exit(f"{len(data):,} bytes is over the {LIMIT:,}-byte limit; use fewer images per class")
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(tr)} train + {len(te)} test images, {len(data):,} bytes, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
