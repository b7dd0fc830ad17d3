"""Datasets and the loading pipeline: ``load`` a dataset, ``make_loaders`` to iterate over it.

The whole API::

    import numpy as np
    from tinycnn import data

    ds = data.load("embedded")           # the default: MNIST subset inside the package, offline
    ds = data.load("mnist")              # downloads once into the cache, SHA-256 checked
    ds = data.load("cifar10", data_dir="../shared/datasets")   # files placed by hand, no download
    ds = data.load("folder:~/photos")    # one sub-folder per class (needs Pillow)
    (x_train, y_train), (x_test, y_test) = data.load_arrays("embedded")   # float32, normalised: for fit

    ds.x_train  uint8 (N, C, H, W)   ds.y_train int64 (N,)     ds.classes  tuple of K names
    ds.x_test   uint8 (M, C, H, W)   ds.y_test  int64 (M,)     ds.augment  recommended default

    loaders = data.make_loaders(ds, batch_size=64, rng=np.random.default_rng(0), val_fraction=0.1)
    for xb, yb in loaders.train:         # float32 (B, C, H, W) normalised, int64 (B,); new order
        ...                              # every epoch; last partial batch kept
    loaders.val, loaders.test            # same, unshuffled, unaugmented
    loaders.normalizer.to_dict()         # {"mean", "std"} per channel: save with the checkpoint

    # augmentation of the training batches (default: the dataset's recommendation, Augment() or none)
    data.make_loaders(ds, batch_size=64, rng=rng, augment=data.Augment(pad=2, flip="alternate",
                                                                      padding_mode="reflect"))

Names (``data.NAMES``): ``embedded``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``
(100 fine labels), ``cifar100_coarse`` (20 superclasses), and ``folder:PATH``.

Layout: NCHW uint8 everywhere (the engine's layout), converted in one place
(``dataset.as_nchw``). Labels int64.

Where files come from (``load`` keywords):
    data_dir   a folder with files placed by hand: the originals (``train-images-idx3-ubyte.gz``
               ..., ``cifar-10-python.tar.gz``) in ``data_dir/<name>/`` or ``data_dir/``, or the
               .npz layout of ``shared/datasets`` (``data_dir/mnist/train.npz`` ...). Never
               downloads. ``verify=False`` accepts originals whose SHA-256 differs (a re-gzipped copy).
    cache_dir  otherwise files live in the cache: ``$TINYCNN_CACHE_DIR``, else
               ``$XDG_CACHE_HOME/tinycnn``, else ``~/.cache/tinycnn``; missing ones are downloaded
               (``download=True``) from the canonical addresses, SHA-256 checked, written atomically.
    mirror     a base URL to download from instead (``mirror + "/" + file name``).
    timeout    seconds per network operation (default 5); offline, the failure is immediate and
               the error says which files to put where.

Errors are ``data.DataError`` (a ValueError) or its subclasses ``ChecksumError``, ``DownloadError``,
``MissingFilesError``, each naming the file and what to do.

Modules: dataset (Dataset, as_nchw), arrays (load_arrays), preprocess (pictures for predict),
registry (names, addresses, checksums), idx, cifar, npz, folder, embedded (readers), cache,
download, sources (finding files), split, normalize, augment, batches, pipeline (make_loaders).
"""
from __future__ import annotations

from pathlib import Path

from .arrays import dataset_arrays, load_arrays
from .augment import AlternatingFlip, Augment, random_crop_flip, translate_flip
from .batches import Batches
from .dataset import Dataset, as_nchw
from .download import DEFAULT_TIMEOUT
from .embedded import load_embedded
from .errors import ChecksumError, DataError, DownloadError, MissingFilesError
from .folder import load_folder
from .normalize import Normalizer
from .pipeline import Loaders, make_loaders
from .registry import ALIASES, DATASETS
from .sources import load_named
from .split import stratified_split

NAMES = ("embedded", *DATASETS, "folder:PATH")
DEFAULT = "embedded"

__all__ = [
    "load", "load_arrays", "dataset_arrays", "NAMES", "DEFAULT", "Dataset", "as_nchw", "make_loaders", "Loaders",
    "Batches",
    "Normalizer", "Augment", "AlternatingFlip", "random_crop_flip", "translate_flip", "stratified_split",
    "load_folder", "load_embedded",
    "DataError", "ChecksumError", "DownloadError", "MissingFilesError",
]


def load(name: str = DEFAULT, *, data_dir=None, cache_dir=None, download: bool = True,
         verify: bool = True, timeout: float = DEFAULT_TIMEOUT, mirror=None, progress=None,
         **folder_options) -> Dataset:
    """Load the dataset called ``name`` (see the module docstring) as a uint8 NCHW ``Dataset``.

    folder_options (only for ``folder:PATH``): test_fraction, seed, size, mode, augment -- see
    ``load_folder``. progress: optional callable(file_name, bytes_so_far, total_bytes), called
    during downloads (e.g. to drive a tqdm bar).
    """
    if not isinstance(name, str):
        raise TypeError(f"data.load: name must be a string, got {type(name).__name__}")
    if name.startswith("folder:"):
        return load_folder(name[len("folder:"):], **folder_options)
    if folder_options:
        raise TypeError(f"data.load: options {sorted(folder_options)} apply only to folder:PATH")
    key = ALIASES.get(name.lower(), name.lower())
    if key == "embedded":
        return load_embedded()
    if key not in DATASETS:
        hint = (f" {name!r} is a folder: did you mean 'folder:{name}'?"
                if Path(name).expanduser().is_dir() else "")
        fact = f"unknown dataset {name!r}; known: {', '.join(NAMES)}.{hint}"
        raise DataError(f"data.load: {fact}", fact=fact)
    return load_named(DATASETS[key], data_dir=data_dir, cache_dir=cache_dir, download=download,
                      verify=verify, timeout=timeout, mirror=mirror, progress=progress)
