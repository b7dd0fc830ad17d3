"""The errors the data package raises. Every one is a ``ValueError`` with a message that names the
function, the file and the numbers involved, and says what to do next.

    DataError            bad or missing data (base class)
    ├── ChecksumError    a file's SHA-256 is not the published one
    ├── DownloadError    a download failed (offline, HTTP error, truncated transfer)
    └── MissingFilesError  the files a dataset needs are not where they should be
"""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data: an unreadable, truncated or inconsistent file or folder.

    Besides the message (written for Python callers), an error may carry its parts, so that a front
    end such as the command line can say the same in its own terms: ``fact`` (what is wrong, without
    the function's name or advice) and ``fixes``, the keyword arguments that would fix it, as
    ``{keyword: what it does}`` (e.g. ``{"mode": "to convert them all"}``)."""

    def __init__(self, message: str, *, fact: str | None = None, fixes: dict | None = None):
        super().__init__(message)
        self.fact = fact
        self.fixes = dict(fixes or {})


class ChecksumError(DataError):
    """A file's SHA-256 differs from the published value."""


class DownloadError(DataError):
    """A download failed; the message lists every address tried and where to put the file by hand."""


class MissingFilesError(DataError):
    """A dataset's files are absent and downloading is off (or impossible)."""
