"""The loading pipeline: stratified split, normalisation, augmentation, batching, make_loaders."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.data import (
    Augment,
    Batches,
    DataError,
    Dataset,
    Normalizer,
    make_loaders,
    random_crop_flip,
    stratified_split,
)

U32 = float(np.finfo(np.float32).eps)


# -- stratified_split ------------------------------------------------------------------------------

@given(counts=st.lists(st.integers(0, 12), min_size=1, max_size=5), fraction=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**31))
def test_split_partitions_and_keeps_class_shares(counts, fraction, seed):
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    kept, held = stratified_split(labels, fraction, np.random.default_rng(seed))
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    for c, n in enumerate(counts):
        h = int(np.sum(labels[held] == c))
        if fraction == 0 or n < 2:
            assert h == 0
        else:
            assert h == min(max(round(fraction * n), 1), n - 1)


def test_split_is_driven_by_the_rng():
    y = np.arange(100) % 4
    a = stratified_split(y, 0.2, np.random.default_rng(1))[1]
    b = stratified_split(y, 0.2, np.random.default_rng(1))[1]
    c = stratified_split(y, 0.2, np.random.default_rng(2))[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\), got 1.0"):
        stratified_split(y, 1.0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        stratified_split(y, 0.1, 0)


# -- Normalizer -------------------------------------------------------------------------------------

@given(n=st.integers(1, 6), c=st.sampled_from([1, 3]), seed=st.integers(0, 2**31))
def test_normalised_training_data_has_zero_mean_unit_std(n, c, seed):
    x = np.random.default_rng(seed).integers(0, 256, (n, c, 5, 4), dtype=np.uint8)
    x[0, :, 0, 0], x[0, :, 0, 1] = 0, 255               # no constant channel
    norm = Normalizer.fit(x)
    z = norm(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    # each z is (x - m) / s rounded a few times in float32: error <= 4 u (|x| + |m|) / s per element
    # (tests/tolerances.py, elementwise row); a mean or a std of such values inherits that bound.
    bound = 4 * U32 * (255 + norm.mean) / norm.std
    zc = z.astype(np.float64).transpose(1, 0, 2, 3).reshape(c, -1)
    assert np.all(np.abs(zc.mean(axis=1)) <= bound)
    assert np.all(np.abs(zc.std(axis=1) - 1) <= 2 * bound)


def test_normalizer_statistics_and_errors():
    x = np.zeros((2, 2, 1, 2), np.uint8)
    x[:, 0] = [[[0, 10]], [[20, 30]]]                   # channel 0 values 0, 10, 20, 30
    x[:, 1] = 7
    with pytest.raises(DataError, match=r"channel 1 has the same value 7 in every training pixel"):
        Normalizer.fit(x)
    x[1, 1] = 9                                           # channel 1: 7, 7, 9, 9
    norm = Normalizer.fit(x)
    np.testing.assert_allclose(norm.mean, [15.0, 8.0], rtol=1e-15)
    np.testing.assert_allclose(norm.std, [np.sqrt(125.0), 1.0], rtol=1e-15)
    again = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again(x), norm(x))
    with pytest.raises(DataError, match=r"expected \(N, 2, H, W\) images, got shape \(1, 3, 2, 2\)"):
        norm(np.zeros((1, 3, 2, 2), np.uint8))
    with pytest.raises(DataError, match="need uint8"):
        Normalizer.fit(np.zeros((2, 1, 2, 2), np.float32))


# -- augmentation -----------------------------------------------------------------------------------

def candidates(img, pad):
    """Every crop window (and its mirror) of the zero-padded image: the allowed outputs."""
    c, h, w = img.shape
    p = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
    wins = [p[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return wins + [win[:, :, ::-1] for win in wins]


@given(n=st.integers(1, 4), c=st.sampled_from([1, 3]), h=st.integers(1, 6), w=st.integers(1, 6),
       pad=st.integers(0, 3), flip=st.booleans(), seed=st.integers(0, 2**31))
def test_each_output_is_a_padded_window_or_its_mirror(n, c, h, w, pad, flip, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, (n, c, h, w), dtype=np.uint8)
    out = random_crop_flip(x, rng, pad, flip)
    assert out.shape == x.shape and out.dtype == x.dtype
    for img, res in zip(x, out):
        allowed = candidates(img, pad) if flip else candidates(img, pad)[: (2 * pad + 1) ** 2]
        assert any(np.array_equal(res, a) for a in allowed)


def test_augmentation_covers_every_shift_and_both_flips():
    rng = np.random.default_rng(0)
    h = w = 5
    x = np.zeros((400, 1, h, w), np.uint8)
    x[:, 0, 0, 0] = 255                                 # a marker pixel at the top-left corner
    out = random_crop_flip(x, rng, pad=2, flip=True)
    shifts = set()
    for img in out[:, 0]:
        r, c = np.argwhere(img == 255)[0] if (img == 255).any() else (None, None)
        if r is not None:
            shifts.add((int(r), int(c)))
    # the marker at (0, 0) lands at (dy', dx') for dy' in 0..2 and dx' in 0..2 (or mirrored columns)
    assert {(r, c) for r in range(3) for c in (0, 1, 2)} <= shifts
    assert {(r, c) for r in range(3) for c in (w - 1, w - 2, w - 3)} <= shifts
    assert np.array_equal(random_crop_flip(x[:3], np.random.default_rng(5)),
                          random_crop_flip(x[:3], np.random.default_rng(5)))
    assert np.array_equal(random_crop_flip(x[:3], rng, pad=0, flip=False), x[:3])


def test_augmentation_errors():
    with pytest.raises(ValueError, match=r"expected \(N, C, H, W\), got shape \(3, 3\)"):
        random_crop_flip(np.zeros((3, 3)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        random_crop_flip(np.zeros((1, 1, 3, 3)), None)
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        random_crop_flip(np.zeros((1, 1, 3, 3)), np.random.default_rng(0), pad=-1)


# -- Batches ----------------------------------------------------------------------------------------

@given(n=st.integers(1, 40), bs=st.integers(1, 50), shuffle=st.booleans(), seed=st.integers(0, 2**31))
def test_batches_cover_every_sample_once_and_keep_the_last_partial(n, bs, shuffle, seed):
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)       # the image value is its index
    y = np.arange(n) * 10
    b = Batches(x, y, bs, shuffle=shuffle, rng=np.random.default_rng(seed))
    batches = list(b)
    assert len(batches) == len(b) == -(-n // bs)
    sizes = [len(yb) for _, yb in batches]
    assert sizes[:-1] == [bs] * (len(sizes) - 1) and sizes[-1] == n - bs * (len(sizes) - 1)
    idx = np.concatenate([np.rint(xb[:, 0, 0, 0] * 255).astype(int) for xb, _ in batches])
    assert np.array_equal(np.sort(idx), np.arange(n))
    assert np.array_equal(np.concatenate([yb for _, yb in batches]), idx * 10)   # labels follow images
    if not shuffle:
        assert np.array_equal(idx, np.arange(n))


def test_batches_reshuffle_every_epoch_from_the_rng():
    x = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    y = np.zeros(50, np.int64)

    def order(batches):                                          # image values are their indices
        return np.concatenate([np.rint(xb[:, 0, 0, 0] * 255) for xb, _ in batches])
    b1 = Batches(x, y, 8, shuffle=True, rng=np.random.default_rng(3))
    b2 = Batches(x, y, 8, shuffle=True, rng=np.random.default_rng(3))
    e1, e2 = order(b1), order(b1)
    assert not np.array_equal(e1, e2)                            # a new permutation per epoch
    assert np.array_equal(e1, order(b2))                         # same seed, same first epoch
    with pytest.raises(ValueError, match="needs rng=np.random.default_rng"):
        Batches(x, y, 8, shuffle=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        Batches(x, y, 0)
    with pytest.raises(DataError, match=r"50 images but labels of shape \(49,\)"):
        Batches(x, y[:49], 8)


def test_batches_apply_augment_then_normalise():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    norm = Normalizer.fit(x)
    calls = []

    def aug(xb, r):
        calls.append(xb.dtype)
        return xb[:, :, ::-1, :]                                  # a visible, deterministic change
    xb, _ = next(iter(Batches(x, np.zeros(10), 4, augment=aug, normalizer=norm, rng=rng)))
    assert calls == [np.uint8]                                    # augmentation sees uint8
    np.testing.assert_array_equal(xb, norm(x[:4, :, ::-1, :]))
    plain, _ = next(iter(Batches(x, np.zeros(10), 4)))
    np.testing.assert_array_equal(plain, x[:4].astype(np.float32) / np.float32(255))


# -- make_loaders -----------------------------------------------------------------------------------

def small_dataset(augment, c=3):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (60, c, 6, 6), dtype=np.uint8)
    y = np.arange(60) % 3
    return Dataset("tiny", x, y, x[:9], y[:9], ("a", "b", "c"), augment=augment)


def test_make_loaders_holds_out_validation_and_fits_on_train_only():
    ds = small_dataset(augment=True)
    L = make_loaders(ds, batch_size=16, rng=np.random.default_rng(0), val_fraction=0.2)
    assert L.train.num_samples == 48 and L.val.num_samples == 12 and L.test.num_samples == 9
    assert len(L.train) == 3 and isinstance(L.augment, Augment) and L.val.augment is None
    train_imgs = {L.train.x[i].tobytes() for i in range(48)}
    assert not train_imgs & {L.val.x[i].tobytes() for i in range(12)}
    ref = Normalizer.fit(L.train.x)
    np.testing.assert_array_equal(L.normalizer.mean, ref.mean)
    xb, yb = next(iter(L.test))
    assert xb.dtype == np.float32 and xb.shape == (9, 3, 6, 6) and yb.dtype == np.int64
    assert L.classes == ("a", "b", "c") and L.image_shape == (3, 6, 6)


def test_make_loaders_augment_defaults_and_overrides():
    rng = np.random.default_rng(0)
    assert make_loaders(small_dataset(False), rng=rng).augment is None
    assert make_loaders(small_dataset(False), rng=rng, augment=True).augment == Augment(4, True)
    assert make_loaders(small_dataset(True), rng=rng, augment=False).augment is None
    assert make_loaders(small_dataset(True), rng=rng, val_fraction=0).val is None
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        make_loaders(small_dataset(True), rng=None)
    with pytest.raises(TypeError, match="augment must be None, a bool or an Augment"):
        make_loaders(small_dataset(True), rng=rng, augment="yes")
