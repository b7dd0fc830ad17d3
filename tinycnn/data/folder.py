"""A folder of your own images, one sub-folder per class, read through Pillow (optional extra).

Two layouts::

    root/<class>/<image>                  all images; a stratified ``test_fraction`` is held out
    root/train/<class>/<image>            an explicit split (test classes must also be train classes)
    root/test/<class>/<image>

Class names are the sub-folder names, sorted, so label k is the k-th name in alphabetical order.
Images: .png .jpg .jpeg .bmp .gif .tif .tiff .webp (other files and hidden entries are ignored;
images may sit in nested folders under their class folder).

All images must share one size and one kind (grey, or colour) -- a mix is an error naming two files
that differ -- unless ``size=(H, W)`` (resize everything, bilinear) and/or ``mode="L"`` / ``"RGB"``
(convert everything) ask for a conversion. Errors are ``DataError`` with ``fact`` and ``fixes`` set
(the command line turns ``fixes`` into its flags). Alpha channels are dropped; palette images become RGB.
Returns a :class:`Dataset` in uint8 NCHW.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import Dataset, as_nchw
from .errors import DataError
from .split import stratified_split

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
GREY_MODES = {"1", "L", "LA"}
COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"}


# How the keyword arguments that fix an error are spelled for a Python caller (DataError.fixes).
PYTHON_FIXES = {"mode": "pass mode='RGB' (or 'L')", "size": "pass size=(H, W)"}


def _error(fact: str, **fixes: str) -> DataError:
    """A DataError "load_folder: <fact>[; pass <keyword> <what it does>]" that keeps its parts."""
    advice = "".join(f"; {PYTHON_FIXES[k]} {what}" for k, what in fixes.items())
    return DataError(f"load_folder: {fact}{advice}", fact=fact, fixes=fixes)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("tinycnn.data.folder needs Pillow to read images: "
                          "pip install 'tinycnn[images]' (or pip install pillow)") from None
    return Image


def _class_dirs(root: Path) -> dict:
    """{class name: sorted list of image paths} for the non-hidden sub-folders of root."""
    if not root.is_dir():
        raise _error(f"{root} is not a folder")
    classes = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if not files:
            raise _error(f"class folder {d} holds no images ({', '.join(sorted(SUFFIXES))}); "
                         "remove it or put images in it")
        classes[d.name] = files
    if not classes:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in SUFFIXES]
        hint = (f" It holds {len(loose)} images directly; move them into one sub-folder per class."
                if loose else "")
        raise _error(f"{root} holds no class sub-folders with images.{hint}")
    return classes


def _read(path: Path, size, mode, Image) -> np.ndarray:
    """-> uint8 (H, W) grey or (H, W, 3) RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            if mode is None:
                if im.mode in GREY_MODES:
                    im = im.convert("L")
                elif im.mode in COLOUR_MODES:
                    im = im.convert("RGB")
                else:
                    raise _error(f"{path} has Pillow mode {im.mode!r}; supported: grey {sorted(GREY_MODES)} "
                                 f"or colour {sorted(COLOUR_MODES)}", mode="to convert it")
            else:
                im = im.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as err:           # UnidentifiedImageError, truncated file, ...
        raise _error(f"cannot read image {path} ({type(err).__name__}: {err})") from None


def _stack(paths: list, size, mode, Image) -> np.ndarray:
    """Read every path -> uint8 (N, C, H, W), checking that sizes and kinds agree."""
    arrays = [_read(p, size, mode, Image) for p in paths]
    first = {}
    for p, a in zip(paths, arrays):
        kind = "grey" if a.ndim == 2 else "RGB"
        first.setdefault(("kind", kind), p)
        first.setdefault(("size", a.shape[:2]), p)
    kinds = [k for k in first if k[0] == "kind"]
    if len(kinds) > 1:
        a, b = kinds[:2]
        raise _error(f"grey and colour images are mixed: {first[a]} is {a[1]}, {first[b]} is {b[1]}",
                     mode="to convert them all")
    sizes = [k for k in first if k[0] == "size"]
    if len(sizes) > 1:
        a, b = sizes[:2]
        raise _error(f"images have different sizes: {first[a]} is {a[1][0]}x{a[1][1]} (HxW), {first[b]} is "
                     f"{b[1][0]}x{b[1][1]}", size="to resize them all")
    x = np.stack(arrays)                                    # (N, H, W) or (N, H, W, 3)
    return as_nchw(x, "NHW" if x.ndim == 3 else "NHWC", "load_folder")


def load_folder(root, *, test_fraction: float = 0.2, seed: int = 0, size=None, mode=None,
                augment: bool | None = None) -> Dataset:
    """Load ``root`` (see module docstring) as a Dataset.

    test_fraction: share of each class held out as the test split when there is no train/test
    sub-folder pair (seeded by ``seed``). size: (H, W) to resize to, or None. mode: None, "L" or
    "RGB". augment: the recommended-augmentation flag; None = on for colour, off for grey.
    """
    Image = _pillow()
    root = Path(root).expanduser()
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_folder: test_fraction must be in (0, 1), got {test_fraction}")
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"load_folder: mode must be None, 'L' or 'RGB', got {mode!r}")
    if size is not None:
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"load_folder: size must be (H, W) with H, W >= 1, got {size}")
    pre_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_dirs = _class_dirs(root / "train" if pre_split else root)
    classes = tuple(train_dirs)
    if len(classes) < 2:
        raise _error(f"{root} has only one class folder {list(classes)}; a classifier needs at least 2 "
                     "(one sub-folder per class)")
    paths = [p for c in classes for p in train_dirs[c]]
    labels = np.array([k for k, c in enumerate(classes) for _ in train_dirs[c]], dtype=np.int64)
    if pre_split:
        test_dirs = _class_dirs(root / "test")
        unknown = sorted(set(test_dirs) - set(classes))
        if unknown:
            raise _error(f"{root / 'test'} has class folders {unknown} that {root / 'train'} lacks "
                         f"(train classes: {list(classes)})")
        test_paths = [p for c in classes for p in test_dirs.get(c, [])]
        y_test = np.array([k for k, c in enumerate(classes) for _ in test_dirs.get(c, [])], np.int64)
        x_all = _stack(paths + test_paths, size, mode, Image)
        x_train, x_test, y_train = x_all[:len(paths)], x_all[len(paths):], labels
    else:
        tr, te = stratified_split(labels, test_fraction, np.random.default_rng(seed))
        if len(te) == 0:
            raise _error(f"{root} has too few images to hold out a test split (every class needs at least 2)")
        x_all = _stack(paths, size, mode, Image)
        x_train, y_train, x_test, y_test = x_all[tr], labels[tr], x_all[te], labels[te]
    if augment is None:
        augment = x_train.shape[1] == 3
    return Dataset(f"folder:{root}", x_train, y_train, x_test, y_test, classes, augment=augment,
                   source=str(root))
