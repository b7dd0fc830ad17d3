"""Image folders (one sub-folder per class) read through Pillow, and their bad inputs."""
import numpy as np
import pytest

from tinycnn import data
from tinycnn.data import DataError, load_folder

Image = pytest.importorskip("PIL.Image", reason="Pillow is the optional 'images' extra")


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def rgb(rng, h=6, w=5):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_flat_layout_rgb_with_split(tmp_path):
    rng = np.random.default_rng(0)
    pics = {}
    for cls, n in (("cat", 5), ("dog", 4), ("bird", 2)):
        for i in range(n):
            pics[(cls, i)] = save(tmp_path / cls / f"{i}.png", rgb(rng))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"ignored")
    ds = load_folder(tmp_path, test_fraction=0.25, seed=3)
    assert ds.classes == ("bird", "cat", "dog")                      # sorted folder names
    assert ds.x_train.shape[1:] == (3, 6, 5) and ds.augment is True
    # per class round(0.25 n), at least 1: bird 2 -> 1, cat 5 -> 1, dog 4 -> 1
    assert np.bincount(ds.y_test, minlength=3).tolist() == [1, 1, 1]
    assert np.bincount(ds.y_train, minlength=3).tolist() == [1, 4, 3]
    # every loaded image is one of the saved ones of its class, each used exactly once (PNG is lossless)
    seen = []
    for x, y in [(ds.x_train, ds.y_train), (ds.x_test, ds.y_test)]:
        for img, label in zip(x, y):
            hwc = img.transpose(1, 2, 0)
            match = [k for k, a in pics.items() if k[0] == ds.classes[label] and np.array_equal(a, hwc)]
            assert len(match) == 1
            seen.append(match[0])
    assert sorted(seen) == sorted(pics)
    again = data.load(f"folder:{tmp_path}", test_fraction=0.25, seed=3)        # deterministic
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_train_test_subfolders_grey(tmp_path):
    rng = np.random.default_rng(1)
    a = save(tmp_path / "train" / "a" / "0.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    save(tmp_path / "train" / "b" / "sub" / "1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    t = save(tmp_path / "test" / "b" / "2.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    ds = load_folder(tmp_path)
    assert ds.classes == ("a", "b") and ds.x_train.shape == (2, 1, 4, 4) and ds.augment is False
    np.testing.assert_array_equal(ds.x_train[0, 0], a)
    np.testing.assert_array_equal(ds.x_test[0, 0], t)
    assert ds.y_test.tolist() == [1]
    save(tmp_path / "test" / "zebra" / "3.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"has class folders \['zebra'\] that .*train lacks"):
        load_folder(tmp_path)


def test_mixed_sizes(tmp_path):
    rng = np.random.default_rng(2)
    save(tmp_path / "a" / "0.png", rgb(rng, 6, 5))
    save(tmp_path / "a" / "1.png", rgb(rng, 6, 5))
    save(tmp_path / "b" / "2.png", rgb(rng, 8, 7))
    save(tmp_path / "b" / "3.png", rgb(rng, 6, 5))
    with pytest.raises(DataError, match=r"different sizes: .*0.png is 6x5 \(HxW\), .*2.png is 8x7; pass size=\(H, W\)"):
        load_folder(tmp_path)
    ds = load_folder(tmp_path, size=(4, 4))
    assert ds.x_train.shape[1:] == (3, 4, 4)


def test_grey_and_colour_mixed(tmp_path):
    rng = np.random.default_rng(3)
    save(tmp_path / "a" / "0.png", rgb(rng))
    save(tmp_path / "a" / "1.png", rgb(rng))
    save(tmp_path / "b" / "2.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    save(tmp_path / "b" / "3.png", rgb(rng))
    with pytest.raises(DataError, match=r"grey and colour images are mixed: .*0.png is RGB, .*2.png is grey; "
                                        r"pass mode='RGB'"):
        load_folder(tmp_path)
    ds = load_folder(tmp_path, mode="RGB")
    assert ds.x_train.shape[1] == 3
    assert load_folder(tmp_path, mode="L").x_train.shape[1] == 1


def test_no_images_one_class_empty_class(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"holds no class sub-folders with images. It holds 1 images directly; "
                                        r"move them into one sub-folder per class"):
        load_folder(tmp_path)
    save(tmp_path / "only" / "0.png", np.zeros((3, 3), np.uint8))
    save(tmp_path / "only" / "1.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match=r"has only one class folder \['only'\]; a classifier needs at least 2"):
        load_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder .*empty holds no images"):
        load_folder(tmp_path)


def test_corrupt_image_and_too_few(tmp_path):
    save(tmp_path / "a" / "0.png", np.zeros((3, 3), np.uint8))
    save(tmp_path / "b" / "1.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match="too few images to hold out a test split"):
        load_folder(tmp_path)
    save(tmp_path / "a" / "2.png", np.zeros((3, 3), np.uint8))
    (tmp_path / "b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"cannot read image .*3.png"):
        load_folder(tmp_path)


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 1.5"):
        load_folder(tmp_path, test_fraction=1.5)
    with pytest.raises(ValueError, match="mode must be None, 'L' or 'RGB'"):
        load_folder(tmp_path, mode="CMYK")
    with pytest.raises(ValueError, match=r"size must be \(H, W\)"):
        load_folder(tmp_path, size=(0, 4))
