"""Find (or download) a named dataset's files and read them into a Dataset.

With ``data_dir`` (files placed by hand; nothing is downloaded), in this order:

    1. the original files in ``data_dir/<folder>/`` or ``data_dir/`` (MNIST-style ``*-ubyte.gz``,
       or ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``), checked against their
       published SHA-256 unless ``verify=False`` (for a trusted re-compressed copy);
    2. the .npz layout (see ``npz.py``) in ``data_dir/<folder>/`` or ``data_dir/``.

Without ``data_dir``: the cache folder ``cache_root(cache_dir)/<folder>/``. A file already there is
re-checked against its SHA-256 (a corrupt one is deleted and fetched again, or reported when
``download=False``); a missing one is downloaded when ``download=True``. If anything is missing the
error says which files to put where.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from .cache import cache_root, sha256_file
from .cifar import read_cifar
from .dataset import Dataset, as_nchw
from .download import DEFAULT_TIMEOUT, fetch, placement_hint
from .errors import ChecksumError, DataError, DownloadError, MissingFilesError
from .idx import read_idx
from .npz import npz_files, read_npz
from .registry import DatasetSpec


def _check(path: Path, remote, hint: str, fixes: dict | None = None) -> None:
    """ChecksumError unless ``path`` has ``remote``'s SHA-256. ``hint``: advice for a Python caller;
    ``fixes``: the keyword arguments it names (see DataError), for other front ends."""
    digest = sha256_file(path)
    if digest != remote.sha256:
        fact = (f"{path}: SHA-256 {digest} differs from the published {remote.sha256} of {remote.name} "
                f"({remote.size:,} bytes; this file has {path.stat().st_size:,})")
        raise ChecksumError(f"{fact}. {hint}".rstrip(), fact=fact if fixes is not None else None, fixes=fixes)


def read_original(spec: DatasetSpec, folder: Path) -> Dataset:
    """Read the original files of ``spec`` from ``folder`` (no checksum here)."""
    if spec.reader == "idx":
        tr_x, tr_y, te_x, te_y = (read_idx(folder / f.name) for f in spec.files)
        for split, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataError(
                    f"{spec.name}: the {split} IDX files in {folder} do not match: images "
                    f"{x.shape}, labels {y.shape} (need (N, H, W) images and N labels)")
        return Dataset(spec.name, as_nchw(tr_x, "NHW", str(folder)), tr_y,
                       as_nchw(te_x, "NHW", str(folder)), te_y, spec.classes,
                       augment=spec.augment, source=str(folder))
    x_tr, y_tr, x_te, y_te, classes = read_cifar(folder / spec.files[0].name, spec.label_key)
    return Dataset(spec.name, x_tr, y_tr, x_te, y_te, classes, augment=spec.augment,
                   source=str(folder / spec.files[0].name))


def _from_data_dir(spec: DatasetSpec, root: Path, verify: bool) -> Dataset:
    if not root.is_dir():
        raise MissingFilesError(f"load({spec.name!r}): data_dir {root} is not a folder",
                                fact=f"--data-dir {root} is not a folder")
    candidates = [root / spec.folder, root]
    for folder in candidates:
        if all((folder / f.name).is_file() for f in spec.files):
            if verify:
                for f in spec.files:
                    _check(folder / f.name, f, "If it is a copy you trust (e.g. re-compressed), "
                           "pass verify=False; otherwise replace it with the original file.",
                           fixes={"verify": "if it is a copy you trust (e.g. re-compressed); otherwise replace "
                                            "it with the original file"})
            return read_original(spec, folder)
    for folder in candidates:
        if npz_files(folder) is not None:
            key = "y_coarse" if spec.name == "cifar100_coarse" else "y"
            x_tr, y_tr, x_te, y_te, classes = read_npz(folder, key)
            if classes is None:
                classes = spec.classes or tuple(str(k) for k in range(int(max(y_tr.max(), y_te.max())) + 1))
            return Dataset(spec.name, x_tr, y_tr, x_te, y_te, classes, augment=spec.augment,
                           source=str(folder))
    present = [f.name for folder in candidates for f in spec.files if (folder / f.name).is_file()]
    missing = [f for f in spec.files if f.name not in present]
    got = f" Found only {present}; missing {[f.name for f in missing]}." if present else ""
    fact = (f"no {spec.name} files in {root} or {root / spec.folder}.{got}\n"
            + placement_hint(missing or spec.files, root / spec.folder)
            + f"\nor the .npz layout: {root / spec.folder}/train.npz (or train-0.npz, train-1.npz, ...) "
              "and test.npz with arrays x and y.")
    raise MissingFilesError(f"load({spec.name!r}): {fact}", fact=fact)


def _from_cache(spec: DatasetSpec, folder: Path, download: bool, timeout: float, mirror,
                progress) -> Dataset:
    missing = []
    for f in spec.files:
        path = folder / f.name
        if path.is_file():
            try:
                _check(path, f, "Delete it to download it again." if not download else "")
            except ChecksumError as err:
                if not download:
                    raise
                warnings.warn(f"{err} -- deleting it and downloading it again", RuntimeWarning,
                              stacklevel=4)
                path.unlink()
        if not path.is_file():
            if not download:
                missing.append(f)
                continue
            urls = (mirror.rstrip("/") + "/" + f.name,) if mirror else None
            try:
                fetch(f, folder, timeout=timeout, urls=urls, progress=progress)
            except DownloadError as err:       # (and ChecksumError) name every file still missing
                rest = [g for g in spec.files[spec.files.index(f) + 1:] if not (folder / g.name).is_file()]
                todo = [*missing, f, *rest]
                later = (f" The other missing file{'s' if len(todo) > 2 else ''} "
                         f"({', '.join(g.name for g in todo if g is not f)}) {'were' if len(todo) > 2 else 'was'} "
                         "not tried." if len(todo) > 1 else "")
                fact = (f"could not download {f.name}; tried:\n" + "\n".join(getattr(err, "tried", [str(err)]))
                        + f"\n{later.strip()}\n" + placement_hint(todo, folder))
                raise type(err)(f"load({spec.name!r}): {fact}", fact=fact) from None
    if missing:
        raise MissingFilesError(f"load({spec.name!r}): files missing and download=False.\n"
                                + placement_hint(missing, folder))
    return read_original(spec, folder)


def load_named(spec: DatasetSpec, *, data_dir=None, cache_dir=None, download: bool = True,
               verify: bool = True, timeout: float = DEFAULT_TIMEOUT, mirror=None,
               progress=None) -> Dataset:
    if data_dir is not None:
        return _from_data_dir(spec, Path(data_dir).expanduser(), verify)
    return _from_cache(spec, cache_root(cache_dir) / spec.folder, download, timeout, mirror, progress)
