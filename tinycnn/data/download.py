"""Download one original file into the cache, checked and written atomically.

``fetch(remote, folder)`` tries each address of ``remote`` in order and returns
``folder / remote.name`` once a download has exactly ``remote.size`` bytes with SHA-256
``remote.sha256``. The bytes stream into a hidden temporary file beside the destination (see
``cache.atomic_writer``); a transfer that stops early, grows too long, or fails the checksum leaves
nothing behind. Offline, it fails at once: host names are resolved with a deadline (a hung DNS
server is not waited for), every socket operation has ``timeout`` seconds, and the error lists each
address tried and where to put the file by hand. (With no network at all, name resolution fails in
milliseconds; the worst case -- a firewall that silently drops packets -- costs ``timeout`` seconds
per address, e.g. 3 x 5 s for MNIST's three addresses.)
"""
from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .cache import atomic_writer, remove_stale_partials
from .errors import ChecksumError, DownloadError
from .registry import RemoteFile

DEFAULT_TIMEOUT = 5.0       # seconds, per connection attempt and per read (not per file)
CHUNK = 1 << 20


def _resolve(url: str, timeout: float) -> None:
    """Resolve the URL's host within ``timeout`` seconds or raise OSError (getaddrinfo has no timeout)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        raise OSError(f"no host in {url!r}")
    outcome = {}

    def work():
        try:
            outcome["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            outcome["err"] = err

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise OSError(f"cannot resolve {host} within {timeout:g} s (no network?)")
    if "err" in outcome:
        raise OSError(f"cannot resolve {host}: {outcome['err']}")


class _Mismatch(Exception):
    """A checksum failure on one address (kept apart from transport errors)."""


def _download_one(url: str, remote: RemoteFile, dest: Path, timeout: float, progress) -> None:
    _resolve(url, timeout)
    request = urllib.request.Request(url, headers={"User-Agent": "tinycnn"})
    with urllib.request.urlopen(request, timeout=timeout) as resp, atomic_writer(dest) as out:
        h, got = hashlib.sha256(), 0
        while block := resp.read(CHUNK):
            got += len(block)
            if got > remote.size:
                raise DownloadError(f"the server sent more than the expected {remote.size:,} bytes")
            h.update(block)
            out.write(block)
            if progress is not None:
                progress(remote.name, got, remote.size)
        if got != remote.size:
            raise DownloadError(f"truncated transfer: received {got:,} of {remote.size:,} bytes")
        if h.hexdigest() != remote.sha256:
            raise _Mismatch(f"SHA-256 {h.hexdigest()} differs from the published {remote.sha256}")


def placement_hint(remotes, folder: Path) -> str:
    """How to get the files by hand: which files, from where, into which folder."""
    lines = [f"Put the file(s) by hand into {folder}/ (or into a folder you pass as data_dir / "
             "--data-dir):"]
    for r in remotes:
        lines.append(f"  {r.name}  ({r.size:,} bytes, sha256 {r.sha256})  from {r.urls[0]}")
    return "\n".join(lines)


def fetch(remote: RemoteFile, folder, *, timeout: float = DEFAULT_TIMEOUT, urls=None,
          progress=None) -> Path:
    """Download ``remote`` into ``folder`` (created if needed) and return the file's path.

    urls: addresses to use instead of ``remote.urls`` (e.g. a local mirror). progress: optional
    callable(file_name, bytes_so_far, total_bytes), called after every chunk (1 MiB). Raises
    ChecksumError if every address that answered served other bytes, DownloadError otherwise (its
    ``tried`` attribute lists each address with what went wrong); either way nothing is left in
    ``folder``.
    """
    folder = Path(folder)
    dest = folder / remote.name
    remove_stale_partials(dest)
    tried, mismatch = [], False
    for url in urls or remote.urls:
        try:
            _download_one(url, remote, dest, timeout, progress)
            return dest
        except _Mismatch as err:
            mismatch = True
            tried.append(f"  {url}: {err}")
        except urllib.error.HTTPError as err:
            tried.append(f"  {url}: HTTP {err.code} {err.reason}")
        except urllib.error.URLError as err:
            tried.append(f"  {url}: {err.reason}")
        except DownloadError as err:
            tried.append(f"  {url}: {err}")
        except (http.client.HTTPException, OSError) as err:   # IncompleteRead, reset, timeout, ...
            tried.append(f"  {url}: {type(err).__name__}: {err}")
    kind = ChecksumError if mismatch else DownloadError
    err = kind(f"fetch: could not download {remote.name}; tried:\n" + "\n".join(tried) + "\n"
               + placement_hint([remote], folder))
    err.tried = tried                  # one line per address, for a caller that reports several files
    raise err
