"""The output folder of ``tinycnn train``: complete or absent, never half-written.

Everything a run writes goes into a hidden staging folder beside ``--out``
(``<parent>/.<name>.partial-<pid>-<hex>``); only when the run has finished does ``commit()`` rename
the staging folder to ``--out`` in one step. When the run fails (an exception, Ctrl-C, a non-finite
loss), ``abandon()`` deletes the staging folder; if at least one epoch had finished, its checkpoint --
a complete file, written atomically -- is first moved beside ``--out`` as ``<out>.epoch<E>.npz`` so
the run can be resumed with ``--resume``. (A process killed with SIGKILL cannot clean up: its hidden
staging folder stays behind, and ``--out`` is still absent.)

``replace=True`` (``--resume`` of a finished run's own ``checkpoint.npz``, trained on to more epochs):
``out`` may exist and hold that run; ``commit()`` moves it aside (``.<name>.old-<pid>-<hex>``), renames
the staging folder to ``out`` and only then deletes the old folder, so a crash between the steps
leaves the old run in the hidden folder, never nothing.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


class RunDirError(ValueError):
    """--out cannot be used (it exists and is not empty, or it is a file)."""


class RunDir:
    """Staging folder for one run. ``path``: where files go now; ``out``: where they end up."""

    @staticmethod
    def check(out, *, replace: bool = False) -> Path:
        """Raise RunDirError unless ``out`` is absent or an empty folder (or, with ``replace``, any
        folder); return it as an absolute path."""
        out = Path(out).expanduser().absolute()
        if out.exists() and not out.is_dir():
            raise RunDirError(f"tinycnn train: --out {out} is a file; give a folder path")
        if out.is_dir() and any(out.iterdir()) and not replace:
            raise RunDirError(f"tinycnn train: --out {out} already exists and is not empty; choose "
                              f"another folder (the default is a new runs/<date>-<time> folder)")
        return out

    def __init__(self, out, *, replace: bool = False):
        self.out = self.check(out, replace=replace)
        self.replace = replace
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.out.parent / f".{self.out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        self.done = False

    def file(self, name: str) -> Path:
        """Where to write ``name`` now (inside the staging folder)."""
        return self.path / name

    def commit(self) -> Path:
        """Make the run visible: the staging folder becomes ``out``. Returns ``out``."""
        if self.out.is_dir() and self.replace and any(self.out.iterdir()):     # the run being resumed
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.replace(self.out, old)
            os.replace(self.path, self.out)
            shutil.rmtree(old, ignore_errors=True)
            self.done = True
            return self.out
        if self.out.is_dir():                      # an empty folder the user made: replace it
            self.out.rmdir()
        os.replace(self.path, self.out)
        self.done = True
        return self.out

    def abandon(self, keep_checkpoint: str | None = None, epoch: int | None = None) -> Path | None:
        """Delete the staging folder. If ``keep_checkpoint`` (a file name in it) exists, move it to
        ``<out>.epoch<epoch>.npz`` first and return that path."""
        kept = None
        if keep_checkpoint is not None and self.file(keep_checkpoint).is_file():
            kept = self.out.parent / f"{self.out.name}.epoch{epoch}.npz"
            os.replace(self.file(keep_checkpoint), kept)
        shutil.rmtree(self.path, ignore_errors=True)
        self.done = True
        return kept
