"""The errors the data package raises. Every one is a ``ValueError`` with a message that names the
function, the file and the numbers involved, and says what to do next.

    DataError            bad or missing data (base class)
    ├── ChecksumError    a file's SHA-256 is not the published one
    ├── DownloadError    a download failed (offline, HTTP error, truncated transfer)
    └── MissingFilesError  the files a dataset needs are not where they should be
"""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data: an unreadable, truncated or inconsistent file or folder."""


class ChecksumError(DataError):
    """A file's SHA-256 differs from the published value."""


class DownloadError(DataError):
    """A download failed; the message lists every address tried and where to put the file by hand."""


class MissingFilesError(DataError):
    """A dataset's files are absent and downloading is off (or impossible)."""
