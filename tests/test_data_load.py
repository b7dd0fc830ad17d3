"""``data.load``: names, data_dir with original files or the .npz layout, and the Dataset checks."""
import numpy as np
import pytest
from data_files import MNIST_NAMES, mnist_arrays, mnist_gz_files, write_files

from tinycnn import data
from tinycnn.data import DataError, Dataset, MissingFilesError, as_nchw


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset 'imagenet'; known: embedded, mnist, fashion_mnist, "
                                        r"cifar10, cifar100, cifar100_coarse, folder:PATH"):
        data.load("imagenet")
    with pytest.raises(DataError, match=rf"is a folder: did you mean 'folder:{tmp_path}'"):
        data.load(str(tmp_path))
    with pytest.raises(TypeError, match=r"options \['size'\] apply only to folder:PATH"):
        data.load("mnist", size=(8, 8))


def test_original_idx_files_by_hand(tmp_path):
    arrays = mnist_arrays(np.random.default_rng(0))
    write_files(tmp_path / "mnist", mnist_gz_files(*arrays))
    with pytest.raises(data.ChecksumError, match=r"train-images-idx3-ubyte.gz: SHA-256 [0-9a-f]{64} differs from the "
                                                 r"published 440fcabf.*pass verify=False"):
        data.load("mnist", data_dir=tmp_path)
    ds = data.load("mnist", data_dir=tmp_path, verify=False)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays[0])
    np.testing.assert_array_equal(ds.y_train, arrays[1])
    assert ds.classes == tuple("0123456789") and ds.augment is False
    # the same files directly in data_dir (no sub-folder) and through an alias
    write_files(tmp_path / "flat", mnist_gz_files(*arrays))
    assert len(data.load("MNIST", data_dir=tmp_path / "flat", verify=False).y_test) == 12


def test_idx_files_that_disagree(tmp_path):
    x_tr, y_tr, x_te, y_te = mnist_arrays(np.random.default_rng(0))
    write_files(tmp_path, mnist_gz_files(x_tr, y_tr[:-1], x_te, y_te))
    with pytest.raises(DataError, match=r"mnist: the train IDX files in .* do not match: images \(30, 28, 28\), "
                                        r"labels \(29,\)"):
        data.load("mnist", data_dir=tmp_path, verify=False)


def test_missing_and_partial_files(tmp_path):
    with pytest.raises(MissingFilesError, match="is not a folder"):
        data.load("mnist", data_dir=tmp_path / "nowhere")
    with pytest.raises(MissingFilesError, match=r"(?s)no fashion_mnist files in .*\nPut the file\(s\) by hand into "
                                                r".*fashion_mnist/.*\n  train-images-idx3-ubyte.gz  \(26,421,880 "
                                                r"bytes, sha256 3aede38d.*\nor the .npz layout"):
        data.load("fashion_mnist", data_dir=tmp_path)
    files = mnist_gz_files(*mnist_arrays(np.random.default_rng(0)))
    write_files(tmp_path, {MNIST_NAMES[0]: files[MNIST_NAMES[0]]})
    with pytest.raises(MissingFilesError, match=r"Found only \['train-images-idx3-ubyte.gz'\]; missing "
                                                r"\['train-labels-idx1-ubyte.gz', 't10k-images"):
        data.load("mnist", data_dir=tmp_path)


def test_npz_layout_single_file_grey(tmp_path):
    rng = np.random.default_rng(1)
    x_tr, y_tr, x_te, y_te = mnist_arrays(rng, 9, 4, 6, 5)
    (tmp_path / "fashion_mnist").mkdir()
    np.savez_compressed(tmp_path / "fashion_mnist" / "train.npz", x=x_tr, y=y_tr)
    np.savez_compressed(tmp_path / "fashion_mnist" / "test.npz", x=x_te, y=y_te)
    ds = data.load("fashion_mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (9, 1, 6, 5)
    np.testing.assert_array_equal(ds.x_train[:, 0], x_tr)
    assert ds.classes[0] == "T-shirt/top"


def test_npz_layout_parts_channels_last(tmp_path):
    rng = np.random.default_rng(2)
    parts = [rng.integers(0, 256, (n, 4, 5, 3), dtype=np.uint8) for n in (3, 2, 4)]
    labels = [rng.integers(0, 10, len(p)) for p in parts]
    folder = tmp_path / "cifar10"
    folder.mkdir()
    for i, (x, y) in enumerate(zip(parts, labels)):
        np.savez(folder / f"train-{i}.npz", x=x, y=y.astype(np.uint8))
    np.savez(folder / "test.npz", x=parts[0], y=labels[0].astype(np.uint8))
    ds = data.load("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (9, 3, 4, 5) and ds.augment is True
    x_all = np.concatenate(parts)                       # (9, H, W, C) in part order
    n, h, w, c = 7, 3, 1, 2
    assert ds.x_train[n, c, h, w] == x_all[n, h, w, c]
    np.testing.assert_array_equal(ds.y_train, np.concatenate(labels))
    (folder / "train-1.npz").unlink()
    with pytest.raises(DataError, match=r"training parts \[0, 2\]; they must be numbered 0..1 without gaps"):
        data.load("cifar10", data_dir=tmp_path)


def test_npz_bad_files(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    np.savez(folder / "train.npz", images=np.zeros((2, 3, 3), np.uint8))
    np.savez(folder / "test.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"train.npz must hold arrays 'x' and 'y'; it holds \['images'\]"):
        data.load("mnist", data_dir=tmp_path)
    np.savez(folder / "train.npz", x=np.array([object()] * 2), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"cannot read .*train.npz \(ValueError: .*allow_pickle"):
        data.load("mnist", data_dir=tmp_path)
    good = folder / "good.npz"
    np.savez_compressed(good, x=np.zeros((50, 9, 9), np.uint8), y=np.zeros(50, np.uint8))
    (folder / "train.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot read .*train.npz .*truncated, corrupted"):
        data.load("mnist", data_dir=tmp_path)
    np.savez(folder / "train.npz", x=np.zeros((2, 3, 3, 5), np.uint8), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"channels-last \(N, H, W, C\) with C = 1 or 3, got shape \(2, 3, 3, 5\)"):
        data.load("mnist", data_dir=tmp_path)
    np.savez(folder / "train.npz", x=np.zeros((2, 3, 3), np.float32), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"images must be uint8 \(0..255\), got dtype float32"):
        data.load("mnist", data_dir=tmp_path)
    np.savez(folder / "train.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 10]))
    with pytest.raises(DataError, match=r"labels must lie in 0..9 \(10 classes\), found min 0, max 10"):
        data.load("mnist", data_dir=tmp_path)
    np.savez(folder / "train.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"train images are \(1, 4, 4\) \(C, H, W\) but test images are \(1, 3, 3\)"):
        data.load("mnist", data_dir=tmp_path)


def test_as_nchw_layouts():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)           # (N, H, W, C)
    y = as_nchw(x, "NHWC", "t")
    assert y.shape == (2, 5, 3, 4) and y.flags.c_contiguous
    assert y[1, 4, 2, 3] == x[1, 2, 3, 4]
    assert as_nchw(x[..., 0], "NHW", "t").shape == (2, 1, 3, 4)
    assert as_nchw(x, "NCHW", "t") .shape == x.shape
    with pytest.raises(DataError, match=r"t: images must be NHW \(3 dimensions\), got shape \(2, 3, 4, 5\)"):
        as_nchw(x, "NHW", "t")


def test_dataset_checks():
    x = np.zeros((4, 1, 2, 2), np.uint8)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match=r"needs at least 2 classes, got 1: \['a'\]"):
        Dataset("d", x, y, x, y, ("a",))
    with pytest.raises(DataError, match=r"x_train must be a uint8 \(N, C, H, W\) array, got ndarray float64"):
        Dataset("d", x.astype(float), y, x, y, ("a", "b"))
    with pytest.raises(DataError, match="must have 1 \\(grey\\) or 3 \\(RGB\\) channels, got 2"):
        Dataset("d", np.zeros((4, 2, 2, 2), np.uint8), y, np.zeros((4, 2, 2, 2), np.uint8), y, ("a", "b"))
    ds = Dataset("d", x, y.astype(np.uint8), x, y, ("a", "b"))
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 2 and ds.image_shape == (1, 2, 2)
    assert "4 train + 4 test images, 1x2x2, 2 classes" in repr(ds)
