"""Where downloaded files live, and how they are written so that no half-written file is ever left.

Cache folder, first match wins::

    cache_root(override)         an explicit folder (``load(..., cache_dir=...)``)
    $TINYCNN_CACHE_DIR           environment override
    $XDG_CACHE_HOME/tinycnn      the XDG convention
    ~/.cache/tinycnn             otherwise

Atomic writes: :func:`atomic_writer` writes into a hidden temporary file in the destination folder
(``.<name>.partial-XXXX``) and renames it over the destination only when the ``with`` block ends
without an exception; on any exception the temporary file is deleted. A rename within one folder is
atomic on POSIX and Windows, so readers see either no file or the whole file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

ENV_CACHE_DIR = "TINYCNN_CACHE_DIR"
PARTIAL_MARK = ".partial-"
STALE_AFTER_S = 600.0      # a partial file untouched this long belongs to a killed process


def cache_root(override=None) -> Path:
    """The cache folder (not created here)."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tinycnn"
    return Path.home() / ".cache" / "tinycnn"


def sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def partial_prefix(dest: Path) -> str:
    return f".{dest.name}{PARTIAL_MARK}"


def remove_stale_partials(dest: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete leftovers of ``dest`` from killed processes (untouched for ``older_than_s`` seconds)."""
    removed = []
    if not dest.parent.is_dir():
        return removed
    now = time.time()
    for p in dest.parent.glob(partial_prefix(dest) + "*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            pass
    return removed


@contextlib.contextmanager
def atomic_writer(dest):
    """``with atomic_writer(path) as f: f.write(...)``: ``path`` appears complete or not at all."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(dest), dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
