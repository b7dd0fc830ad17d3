"""The embedded default dataset, and the real files in ../shared/datasets (skipped when absent).

Expected values here come from outside tinycnn: the class counts and MD5s published in
shared/datasets/README.md (the MD5s are those of the original uncompressed MNIST IDX files).
"""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from tinycnn import data
from tinycnn.data.idx import idx_bytes

PACKAGE_DATA = Path(data.__file__).parent
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not (SHARED / "mnist" / "train.npz").is_file(),
                                  reason=f"real datasets not found at {SHARED}")


def test_embedded_file_is_small_and_documented():
    size = (PACKAGE_DATA / "embedded_mnist.npz").stat().st_size
    assert size <= 3_000_000, f"embedded_mnist.npz is {size:,} bytes, over the 3 MB limit"
    readme = (PACKAGE_DATA / "README.md").read_text()
    for fact in ("CC BY-SA 3.0", "Yann LeCun", "Corinna Cortes", "scripts/make_embedded_mnist.py",
                 "train_index", "test_index", f"{size:,} bytes"):
        assert fact in readme, f"tinycnn/data/README.md does not state {fact!r}"


def test_embedded_is_balanced_real_mnist_layout():
    ds = data.load()                                      # the default
    assert ds.name == "embedded" and ds.classes == tuple("0123456789") and ds.augment is False
    assert ds.x_train.shape == (15000, 1, 28, 28) and ds.x_test.shape == (5000, 1, 28, 28)
    assert ds.x_train.dtype == np.uint8
    assert np.bincount(ds.y_train).tolist() == [1500] * 10
    assert np.bincount(ds.y_test).tolist() == [500] * 10
    # MNIST digits: dark background (0) and some full-ink pixels (255) in every image
    assert (ds.x_train[:, 0, 0, 0] == 0).all() and (ds.x_train.max(axis=(1, 2, 3)) >= 250).all()


@needs_shared
def test_embedded_images_are_the_stated_mnist_images():
    with np.load(PACKAGE_DATA / "embedded_mnist.npz") as d:
        tr, te = d["train_index"].astype(np.int64), d["test_index"].astype(np.int64)
    assert len(np.unique(tr)) == 15000 and len(np.unique(te)) == 5000
    ds = data.load()
    for split, idx, x, y in (("train", tr, ds.x_train, ds.y_train), ("test", te, ds.x_test, ds.y_test)):
        with np.load(SHARED / "mnist" / f"{split}.npz") as d:
            np.testing.assert_array_equal(x[:, 0], d["x"][idx])
            np.testing.assert_array_equal(y, d["y"][idx])


@needs_shared
@pytest.mark.parametrize("name,counts,md5_train_images", [
    ("mnist", [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
     "6bbc9ace898e44ae57da46a324031adb"),
    ("fashion_mnist", [6000] * 10, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
])
def test_shared_npz_layout_gives_the_original_arrays(name, counts, md5_train_images):
    ds = data.load(name, data_dir=SHARED)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.y_train).tolist() == counts
    # re-serialised as IDX, the training images are byte-identical to the published original
    assert hashlib.md5(idx_bytes(ds.x_train[:, 0])).hexdigest() == md5_train_images


@needs_shared
def test_shared_cifar_layout_channels_last_to_nchw(tmp_path):
    """The lossless CIFAR-10 subset (1000 real images, NHWC) used as both parts of the layout."""
    src = SHARED / "cifar10" / "train_lossless_subset.npz"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "train.npz").symlink_to(src)
    (tmp_path / "cifar10" / "test.npz").symlink_to(src)
    ds = data.load("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (1000, 3, 32, 32)
    assert np.bincount(ds.y_train).tolist() == [102, 112, 99, 92, 99, 85, 107, 102, 99, 103]
    with np.load(src) as d:
        np.testing.assert_array_equal(ds.x_train, d["x"].transpose(0, 3, 1, 2))
