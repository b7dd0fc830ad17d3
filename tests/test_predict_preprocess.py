"""`tinycnn predict` on pictures as people make them: dark on white, on a transparent background,
small and off-centre on a large canvas, on a non-square canvas; and colour photos for a CIFAR-like
network. The preparation (``tinycnn.data.preprocess``) must bring each back to what the network was
trained on: a LeNet trained here for two epochs on part of the embedded MNIST subset (about 95 %
on the test digits) must classify the transformed test digits within 2 points of its accuracy on the
untouched ones. (After one epoch, at 91 %, the network was so unsure of blurred strokes that the
twice-resampled wide-canvas digits lost 1.9-2.1 points depending on the last bits of its training
arithmetic; at 95 % they lose 0.3.)

Expected geometry is measured on the output (centre of mass, bounding box), not copied from the
code under test; the transformed pictures are made with Pillow and NumPy independently of it.
"""
import re

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import zoo
from tinycnn.cli import main
from tinycnn.data.preprocess import Preparation, prepare

Image = pytest.importorskip("PIL.Image", reason="reading pictures needs Pillow (the images extra)")

N_TEST = 1000                # 2 points of accuracy = 20 of these images


@pytest.fixture(scope="module")
def digits():
    ds = tc.data.load("embedded")
    return ds


@pytest.fixture(scope="module")
def trained(digits):
    """(model, normalizer): LeNet after two epochs of Adam on 6,000 embedded training digits."""
    ds = digits
    x, y = ds.x_train[:6000], ds.y_train[:6000]
    norm = tc.data.Normalizer.fit(x)
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(0))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(norm(x), y, epochs=2, batch_size=64, verbose=0, rng=np.random.default_rng(1))
    return model.eval(), norm


def on_white(d):
    return 255 - d


def transparent(d):
    """Black strokes whose opacity is the digit; transparent pixels are (0, 0, 0, 0)."""
    a = np.zeros(d.shape + (4,), np.uint8)
    a[..., 3] = d
    return a


def small_off_centre(d, rng):
    """The digit, dark on white, at its own size somewhere on a 96x128 canvas."""
    canvas = np.full((96, 128), 255, np.uint8)
    top, left = int(rng.integers(0, 96 - 28)), int(rng.integers(0, 128 - 28))
    canvas[top:top + 28, left:left + 28] = 255 - d
    return canvas


def wide_canvas(d, rng):
    """The digit drawn twice as large, dark on off-white, on an 80x200 canvas."""
    big = np.asarray(Image.fromarray(255 - d).resize((56, 56), Image.Resampling.BILINEAR))
    canvas = np.full((80, 200), 250, np.uint8)
    left = int(rng.integers(0, 200 - 56))
    canvas[12:68, left:left + 56] = np.minimum(250, big)
    return canvas


def accuracy(model, norm, x, y):
    return float(np.mean(model.predict(norm(x), batch_size=256).argmax(axis=1) == y))


@pytest.mark.parametrize("transform", [on_white, transparent, small_off_centre, wide_canvas])
def test_drawn_digits_are_classified_within_two_points_of_the_originals(trained, digits, transform):
    model, norm = trained
    x, y = digits.x_test[:N_TEST, 0], digits.y_test[:N_TEST]
    prep = Preparation.for_training_data("embedded", (1, 28, 28), mean=norm.mean)
    base = accuracy(model, norm, x[:, None], y)
    rng = np.random.default_rng(7)
    pictures = [transform(d) if transform in (on_white, transparent) else transform(d, rng) for d in x]
    prepared = np.stack([prepare(p, prep)[0] for p in pictures])
    got = accuracy(model, norm, prepared, y)
    # Without preparation (Pillow's grey conversion and resize only) the same pictures are near chance:
    # the test would catch a preparation that did nothing.
    naive = np.stack([np.asarray(Image.fromarray(p).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
                      for p in pictures])[:, None]
    assert base > 0.9, base
    assert accuracy(model, norm, naive, y) < 0.5
    assert got >= base - 0.02, (transform.__name__, got, base)


def test_mnist_digits_pass_through_unchanged(digits):
    prep = Preparation.for_training_data("embedded", (1, 28, 28), mean=[33.3])
    for d in digits.x_test[:300, 0]:
        out, steps = prepare(d, prep)
        assert np.array_equal(out[0], d)
        assert "not inverted" in steps[0]


def test_a_shape_is_scaled_into_the_box_and_centred_by_its_centre_of_mass():
    canvas = np.full((50, 70), 255.0)
    canvas[30:45, 5:14] = 0.0                      # a dark 15x9 bar, low and to the left, on white
    out, steps = prepare(canvas, Preparation.for_training_data("mnist", (1, 28, 28)))
    img = out[0].astype(float)
    rows, cols = np.flatnonzero(img.max(axis=1) > 38), np.flatnonzero(img.max(axis=0) > 38)
    assert rows[-1] - rows[0] + 1 in (20, 21)     # the longer side fills the 20-pixel box
    assert cols[-1] - cols[0] + 1 in (12, 13)     # 9 * 20/15 = 12, aspect ratio kept
    ys, xs = np.indices(img.shape)
    com = ((ys * img).sum() / img.sum(), (xs * img).sum() / img.sum())
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5, com
    assert any("inverted (override with --no-invert)" in s for s in steps)
    assert any("scaled to 20x12" in s and "centre of mass" in s for s in steps)


def test_fashion_items_fill_the_whole_input():
    canvas = np.zeros((100, 100))
    canvas[10:90, 30:70] = 200.0
    out, _ = prepare(canvas, Preparation.for_training_data("fashion_mnist", (1, 28, 28)))
    rows = np.flatnonzero(out[0].max(axis=1) > 38)
    assert rows[-1] - rows[0] + 1 >= 27


def test_a_colour_photo_for_a_cifar_network_keeps_its_aspect_ratio():
    ys, xs = np.indices((40, 80))
    photo = np.stack([128 + 80 * np.sin(xs / 7 + k) * np.cos(ys / 9 - k) for k in range(3)], axis=2).astype(np.uint8)
    prep = Preparation.for_training_data("cifar10", (3, 32, 32), mean=[125, 123, 114])
    out, steps = prepare(photo, prep)
    assert out.shape == (3, 32, 32)
    assert steps == ["resized 40x80 -> 32x64 (aspect kept), centre 32x32 cut out"]
    ref = np.asarray(Image.fromarray(photo).resize((64, 32), Image.Resampling.LANCZOS))[:, 16:48]
    assert np.abs(out.transpose(1, 2, 0).astype(int) - ref).max() <= 1     # Pillow's own uint8 resize


def test_blank_and_fully_transparent_pictures_are_refused():
    prep = Preparation.for_training_data("embedded", (1, 28, 28))
    with pytest.raises(ValueError, match="looks blank"):
        prepare(np.full((40, 40), 250.0), prep)
    with pytest.raises(ValueError, match="fully transparent"):
        prepare(np.zeros((40, 40, 4)), prep)


# -- the command --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, trained):
    """A checkpoint as `tinycnn train` writes it, holding the network trained above."""
    model, norm = trained
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    extra = {"model": zoo.describe("lenet", (1, 28, 28), 10), "config": {},
             "data": {"dataset": "embedded", "classes": [str(k) for k in range(10)], "image_shape": [1, 28, 28],
                      "normalization": {k: v.tolist() for k, v in norm.to_dict().items()}}}
    tc.save_checkpoint(path, model, epoch=1, extra=extra)
    return path


def test_predict_prints_each_step_and_honours_the_override(checkpoint, digits, tmp_path, capsys):
    d, label = digits.x_test[0, 0], digits.y_test[0]
    drawn = tmp_path / "drawn.png"
    Image.fromarray(small_off_centre(d, np.random.default_rng(0))).save(drawn)
    assert main(["predict", str(checkpoint), str(drawn)]) == 0
    out = capsys.readouterr().out
    assert f"{drawn}: read 96x128 L" in out
    assert re.search(rf"{re.escape(str(drawn))}: background light .*: inverted \(override with --no-invert\)", out)
    assert f"{drawn}: content " in out and "centre of mass put at the centre of 28x28" in out
    assert re.search(rf"^{re.escape(str(drawn))}\s+{label}\s+\(p = ", out, re.M), out

    assert main(["predict", str(checkpoint), str(drawn), "--no-invert"]) == 2     # all white is read as ink
    err = capsys.readouterr().err
    assert "looks blank" in err and "needs inverting (--invert)" in err
    assert main(["predict", str(checkpoint), str(drawn), "--invert"]) == 0
    out = capsys.readouterr().out
    assert f"{drawn}: inverted (--invert)" in out and "background light" not in out


def test_transparent_png_through_the_command(checkpoint, digits, tmp_path, capsys):
    d, label = digits.x_test[1, 0], digits.y_test[1]
    path = tmp_path / "transparent.png"
    Image.fromarray(transparent(d), mode="RGBA").save(path)
    assert main(["predict", str(checkpoint), str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: read 28x28 RGBA" in out and "filled with white behind the dark content" in out
    assert re.search(rf"^{re.escape(str(path))}\s+{label}\s+\(p = ", out, re.M), out


def test_an_image_over_the_decompression_bomb_limit_gets_the_folder_loaders_message(
        checkpoint, tmp_path, monkeypatch, capsys):
    big = tmp_path / "bomb" / "a" / "big.png"
    for name in "ab":
        (tmp_path / "bomb" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "bomb" / name / f"small{i}.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)          # 4096 pixels > 2 x the limit: refused
    assert main(["predict", str(checkpoint), str(big)]) == 2
    err = capsys.readouterr().err
    with pytest.raises(tc.data.DataError) as info:
        tc.data.load_folder(tmp_path / "bomb")
    folder_msg = str(info.value)
    assert f"cannot read image {big} (DecompressionBombError: " in err
    assert err.strip().split("cannot read image", 1)[1] == folder_msg.split("cannot read image", 1)[1]
    assert "Traceback" not in err


def test_predict_with_a_cifar_like_network_keeps_the_aspect_ratio(tmp_path, capsys):
    path = tmp_path / "checkpoint.npz"
    model = zoo.build("seed-keras", (3, 32, 32), 10, np.random.default_rng(0))
    extra = {"model": zoo.describe("seed-keras", (3, 32, 32), 10), "config": {},
             "data": {"dataset": "cifar10", "classes": [f"c{k}" for k in range(10)], "image_shape": [3, 32, 32],
                      "normalization": {"mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7]}}}
    tc.save_checkpoint(path, model, epoch=1, extra=extra)
    photo = tmp_path / "wide.png"
    ys, xs = np.indices((40, 80))
    Image.fromarray(np.stack([(xs * 3) % 256, (ys * 5) % 256, (xs + ys) % 256], axis=2).astype(np.uint8)).save(photo)
    assert main(["predict", str(path), str(photo)]) == 0
    out = capsys.readouterr().out
    assert f"{photo}: read 40x80 RGB" in out
    assert f"{photo}: resized 40x80 -> 32x64 (aspect kept), centre 32x32 cut out" in out
    assert "inverted" not in out and "background" not in out                  # no polarity guess for photos
    assert re.search(rf"^{re.escape(str(photo))}\s+c\d\s+\(p = ", out, re.M), out
