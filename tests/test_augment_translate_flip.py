"""Translation with zero / reflection / edge padding, and the derandomised alternating flip.

The translation is checked against a per-image reference built from ``np.pad`` (whose "reflect" is
torch's ``ReflectionPad2d``, checked against torch too); the alternating flip by reading each image's
orientation back out of the batches a shuffled pipeline yields, in ``Batches`` and through ``fit``.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import hoeffding_halfwidth

import tinycnn as tc
from tinycnn import data, training
from tinycnn.data import AlternatingFlip, Augment, Batches, random_crop_flip, translate_flip

NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}


def reference(img, sy, sx, flip, mode, pad):
    """One image (C, H, W): the H x W window at (pad + sy, pad + sx) of np.pad(img, pad), mirrored if flip."""
    c, h, w = img.shape
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode=NP_MODE[mode])
    win = padded[:, pad + sy:pad + sy + h, pad + sx:pad + sx + w]
    return win[:, :, ::-1] if flip else win


@st.composite
def batches_and_shifts(draw):
    n, c = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    mode = draw(st.sampled_from(sorted(NP_MODE)))
    limit_y, limit_x = (h - 1, w - 1) if mode == "reflect" else (h + 2, w + 2)
    sy = draw(st.lists(st.integers(-limit_y, limit_y), min_size=n, max_size=n))
    sx = draw(st.lists(st.integers(-limit_x, limit_x), min_size=n, max_size=n))
    flips = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return n, c, h, w, mode, np.array(sy), np.array(sx), np.array(flips)


@given(case=batches_and_shifts(), seed=st.integers(0, 2**31))
def test_translate_flip_equals_a_per_image_reference(case, seed):
    n, c, h, w, mode, sy, sx, flips = case
    x = np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)
    out = translate_flip(x, sy, sx, flips, padding_mode=mode)
    assert out.shape == x.shape and out.dtype == x.dtype
    pad = int(max(np.abs(sy).max(), np.abs(sx).max()))
    for i in range(n):
        np.testing.assert_array_equal(out[i], reference(x[i], sy[i], sx[i], flips[i], mode, pad), err_msg=f"image {i}")


@given(n=st.integers(1, 5), h=st.integers(2, 7), w=st.integers(2, 7), flip=st.booleans(),
       mode=st.sampled_from(sorted(NP_MODE)), seed=st.integers(0, 2**31), data_=st.data())
def test_random_crop_flip_draws_offsets_in_bounds_and_crops_the_padded_image(n, h, w, flip, mode, seed, data_):
    pad = data_.draw(st.integers(0, min(h, w) - 1 if mode == "reflect" else 3), label="pad")
    x = np.random.default_rng(seed).integers(0, 256, (n, 2, h, w), dtype=np.uint8)
    out = random_crop_flip(x, np.random.default_rng(seed + 1), pad, flip, padding_mode=mode)
    twin = np.random.default_rng(seed + 1)                       # the same draws, in the documented order
    dy, dx = twin.integers(0, 2 * pad + 1, size=n), twin.integers(0, 2 * pad + 1, size=n)
    mirrored = twin.random(n) < 0.5 if flip else np.zeros(n, bool)
    assert dy.min() >= 0 and dy.max() <= 2 * pad and dx.min() >= 0 and dx.max() <= 2 * pad
    for i in range(n):
        np.testing.assert_array_equal(out[i], reference(x[i], dy[i] - pad, dx[i] - pad, mirrored[i], mode, pad))


def test_reflect_padding_by_hand():
    row = np.array([0, 1, 2, 3], np.uint8).reshape(1, 1, 1, 4)
    # np.pad([0, 1, 2, 3], 2, mode="reflect") = [2, 1, 0, 1, 2, 3, 2, 1]: windows of 4 at offsets 0 and 4
    assert translate_flip(row, 0, -2, padding_mode="reflect")[0, 0, 0].tolist() == [2, 1, 0, 1]
    assert translate_flip(row, 0, 2, padding_mode="reflect")[0, 0, 0].tolist() == [2, 3, 2, 1]
    assert translate_flip(row, 0, 2, padding_mode="replicate")[0, 0, 0].tolist() == [2, 3, 3, 3]
    assert translate_flip(row, 0, 2, padding_mode="zeros")[0, 0, 0].tolist() == [2, 3, 0, 0]
    # the mirror acts on the window: shifted by -1, [1, 0, 1, 2]; mirrored, [2, 1, 0, 1]
    assert translate_flip(row, 0, -1, padding_mode="reflect")[0, 0, 0].tolist() == [1, 0, 1, 2]
    assert translate_flip(row, 0, -1, np.array([True]), padding_mode="reflect")[0, 0, 0].tolist() == [2, 1, 0, 1]


def test_reflect_padding_equals_torch_reflection_pad(torch):
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5))
    pad = 3
    padded = torch.nn.ReflectionPad2d(pad)(torch.from_numpy(x)).numpy()           # (2, 3, 12, 11)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect"))
    for sy in range(-pad, pad + 1):
        for sx in range(-pad, pad + 1):
            np.testing.assert_array_equal(translate_flip(x, sy, sx, padding_mode="reflect"),
                                          padded[:, :, pad + sy:pad + sy + 6, pad + sx:pad + sx + 5])


def test_translation_errors():
    x = np.zeros((2, 1, 3, 5), np.uint8)
    with pytest.raises(ValueError, match=r"shift must be at most height - 1 = 2 pixels; got \|sy\| = 3"):
        translate_flip(x, 3, 0, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"needs pad <= min\(H, W\) - 1 = 2 for images of 3x5, got pad=3"):
        random_crop_flip(x, np.random.default_rng(0), 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode must be one of zeros, reflect, replicate, got 'circular'"):
        random_crop_flip(x, np.random.default_rng(0), 1, padding_mode="circular")
    with pytest.raises(ValueError, match=r"flips must be a bool array \(2,\)"):
        translate_flip(x, 0, 0, np.array([1, 0]))
    with pytest.raises(TypeError, match="sy must be integer shifts, got dtype float64"):
        translate_flip(x, 0.5, 0)
    with pytest.raises(ValueError, match="Augment: flip must be True, False or one of none, random, alternate"):
        Augment(flip="sometimes")
    with pytest.raises(ValueError, match="Augment: pad must be an integer >= 0, got -1"):
        Augment(pad=-1)
    with pytest.raises(ValueError, match="each image's flip depends on its index in the dataset"):
        Augment(pad=0, flip="alternate")(x, np.random.default_rng(0))
    with pytest.raises(ValueError, match="flips= is only for flip='alternate'"):
        Augment(pad=0)(x, np.random.default_rng(0), flips=np.array([True, False]))


# -- the alternating flip ---------------------------------------------------------------------------

def marked_images(n):
    """(n, 1, 2, 3) uint8: row 0 = the image's index (symmetric), row 1 = 10, 20, 30 (its orientation)."""
    x = np.zeros((n, 1, 2, 3), np.uint8)
    x[:, 0, 0, :] = np.arange(n)[:, None]
    x[:, 0, 1, :] = [10, 20, 30]
    return x


def read_epoch(batches):
    """One pass -> (index of each image in the order seen (N,), mirrored flag per dataset index (N,))."""
    seen, mirrored = [], {}
    for xb, _ in batches:
        pix = np.rint(xb * 255).astype(int)                      # no normalizer: xb = x / 255
        for img in pix[:, 0]:
            i = int(img[0, 0])
            assert img[1].tolist() in ([10, 20, 30], [30, 20, 10])
            seen.append(i)
            mirrored[i] = img[1, 0] == 30
    return np.array(seen), np.array([mirrored[i] for i in range(len(seen))])


def test_alternating_flip_shows_every_image_both_ways_in_any_two_epochs_with_shuffling():
    n = 200
    x, y = marked_images(n), np.arange(n) % 3
    b = Batches(x, y, 16, shuffle=True, rng=np.random.default_rng(7), augment=Augment(pad=0, flip="alternate"))
    epochs = [read_epoch(b) for _ in range(4)]
    orders = [o for o, _ in epochs]
    assert all(np.array_equal(np.sort(o), np.arange(n)) for o in orders)
    assert not np.array_equal(orders[0], orders[1])              # shuffled: the flip must follow the image
    first = epochs[0][1]
    assert abs(first.mean() - 0.5) < hoeffding_halfwidth(n)      # epoch 0: each image with probability 1/2
    for e in range(3):
        assert np.array_equal(epochs[e + 1][1], ~epochs[e][1]), f"epoch {e + 1} is not epoch {e} reversed"
    assert b.epoch == 4


def test_alternating_flip_is_reproducible_and_resumable():
    x, y = marked_images(60), np.zeros(60, int)

    def pipeline(seed):
        return Batches(x, y, 7, shuffle=True, rng=np.random.default_rng(seed),
                       augment=Augment(pad=1, flip="alternate", padding_mode="reflect"))

    a, b, other = pipeline(1), pipeline(1), pipeline(2)
    runs_a = [[xb.copy() for xb, _ in a] for _ in range(3)]
    runs_b = [[xb.copy() for xb, _ in b] for _ in range(3)]
    assert all(np.array_equal(p, q) for ra, rb in zip(runs_a, runs_b) for p, q in zip(ra, rb))
    assert not np.array_equal(a.alternating.first, other.alternating.first)
    # a new pipeline of the same seed, told the epoch and given the generator's state, continues exactly
    state = a.rng.bit_generator.state
    fourth = [xb.copy() for xb, _ in a]
    resumed = pipeline(1)
    resumed.rng.bit_generator.state = state
    resumed.epoch = 3
    assert all(np.array_equal(p, q) for p, q in zip(fourth, [xb for xb, _ in resumed]))
    with pytest.raises(ValueError, match="Batches: epoch must be an integer >= 0, got -1"):
        resumed.epoch = -1
        next(iter(resumed))


def test_alternating_flip_object():
    flips = AlternatingFlip(10, np.random.default_rng(0))
    idx = np.array([3, 1, 4, 1, 5])
    assert np.array_equal(flips.flips(idx, 0), flips.first[idx])
    assert np.array_equal(flips.flips(idx, 1), ~flips.first[idx])
    assert np.array_equal(flips.flips(idx, 6), flips.first[idx])
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        AlternatingFlip(3, 0)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got 1.5"):
        flips.flips(idx, 1.5)


def test_fit_trains_on_each_image_both_ways_in_two_epochs():
    """Through fit: the batches fit is handed in epochs 0 and 1 hold every image once each way."""
    n = 30
    x, y = marked_images(n), np.arange(n) % 2
    seen = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for xb, yb in self.inner:
                seen.append(np.rint(xb * 255).astype(int))
                yield xb, yb

    model = tc.Sequential(tc.Flatten(), tc.Dense(6, 2, dtype=np.float32, rng=np.random.default_rng(0)))
    model.compile("sgd")
    pipeline = data.Batches(x, y, 8, shuffle=True, rng=np.random.default_rng(4),
                            augment=Augment(pad=0, flip="alternate"))
    training.fit(model, Recording(pipeline), epochs=2, verbose=0)
    pix = np.concatenate(seen)[:, 0]                             # (2N, 2, 3)
    assert len(pix) == 2 * n
    for i in range(n):
        ways = sorted(tuple(p[1]) for p in pix if p[0, 0] == i)
        assert ways == [(10, 20, 30), (30, 20, 10)], (i, ways)
