"""Downloads against a local HTTP server on 127.0.0.1 serving files the test makes.

Never touches the internet: every address is 127.0.0.1. Checks: success, checksum failure,
truncation (short file, and a connection that closes before its Content-Length), HTTP errors,
mirror fallback, the offline error, the cache (re-check, corrupt file, download=False) -- and that
nothing half-written is ever left in the cache folder.
"""
import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import threading
import time

import numpy as np
import pytest
from data_files import MNIST_NAMES, idx_by_hand, mnist_arrays, mnist_gz_files

from tinycnn import data
from tinycnn.data import cache, registry
from tinycnn.data.download import fetch
from tinycnn.data.registry import RemoteFile


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}        # path -> bytes, served whole
    liars: dict = {}        # path -> bytes: announce len(bytes), send half, close

    def do_GET(self):
        if self.path in self.files:
            body = self.files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path in self.liars:
            body = self.liars[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "no such file")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    files, liars = {}, {}
    handler = type("H", (Handler,), {"files": files, "liars": liars})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, files, liars
    httpd.shutdown()
    httpd.server_close()


def remote_for(name, body, urls):
    return RemoteFile(name, tuple(urls), len(body), hashlib.sha256(body).hexdigest())


def tiny_idx_gz(seed=0):
    return gzip.compress(idx_by_hand(np.random.default_rng(seed).integers(0, 256, (6, 5, 5), dtype=np.uint8)))


def test_success(server, tmp_path):
    base, files, _ = server
    body = tiny_idx_gz()
    files["/d/a.gz"] = body
    seen = []
    path = fetch(remote_for("a.gz", body, [base + "/d/a.gz"]), tmp_path / "c",
                 progress=lambda name, got, total: seen.append((name, got, total)))
    assert path == tmp_path / "c" / "a.gz" and path.read_bytes() == body
    assert os.listdir(tmp_path / "c") == ["a.gz"]
    assert seen[-1] == ("a.gz", len(body), len(body))
    np.testing.assert_array_equal(data.idx.read_idx(path).shape, (6, 5, 5))


def test_checksum_failure_leaves_nothing(server, tmp_path):
    base, files, _ = server
    good = tiny_idx_gz()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01                        # one flipped bit, same size
    files["/a.gz"] = bytes(bad)
    with pytest.raises(data.ChecksumError, match=r"could not download a.gz; tried:\n  http://127.0.0.1:\d+/a.gz: "
                                                 r"SHA-256 [0-9a-f]{64} differs from the published"):
        fetch(remote_for("a.gz", good, [base + "/a.gz"]), tmp_path)
    assert os.listdir(tmp_path) == []


def test_truncated_file_leaves_nothing(server, tmp_path):
    base, files, _ = server
    body = tiny_idx_gz()
    files["/a.gz"] = body[:-10]                       # the server has a short copy
    expected = rf"truncated transfer: received {len(body) - 10:,} of {len(body):,} bytes"
    with pytest.raises(data.DownloadError, match=expected):
        fetch(remote_for("a.gz", body, [base + "/a.gz"]), tmp_path)
    assert os.listdir(tmp_path) == []


def test_connection_closed_early_leaves_nothing(server, tmp_path):
    base, _, liars = server
    body = os.urandom(300_000)
    liars["/big.bin"] = body
    with pytest.raises(data.DownloadError, match=r"could not download big.bin") as info:
        fetch(remote_for("big.bin", body, [base + "/big.bin"]), tmp_path)
    assert "IncompleteRead" in str(info.value) or "truncated" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_too_long_is_refused(server, tmp_path):
    base, files, _ = server
    body = tiny_idx_gz()
    files["/a.gz"] = body + b"extra"
    with pytest.raises(data.DownloadError, match=r"more than the expected"):
        fetch(remote_for("a.gz", body, [base + "/a.gz"]), tmp_path)
    assert os.listdir(tmp_path) == []


def test_http_error_then_mirror(server, tmp_path):
    base, files, _ = server
    body = tiny_idx_gz()
    files["/mirror/a.gz"] = body
    path = fetch(remote_for("a.gz", body, [base + "/gone/a.gz", base + "/mirror/a.gz"]), tmp_path)
    assert path.read_bytes() == body
    with pytest.raises(data.DownloadError, match=r"/gone/b.gz: HTTP 404"):
        fetch(remote_for("b.gz", body, [base + "/gone/b.gz"]), tmp_path / "x")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_error_says_what_to_put_where(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/train-images-idx3-ubyte.gz"
    remote = dataclasses.replace(registry.MNIST_FILES[0], urls=(url,))
    with pytest.raises(data.DownloadError) as info:
        fetch(remote, tmp_path / "mnist", timeout=2)
    msg = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg and "refused" in msg.lower()
    assert f"Put the file(s) by hand into {tmp_path / 'mnist'}/" in msg
    assert "9,912,422 bytes, sha256 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in msg
    assert not (tmp_path / "mnist").exists() or os.listdir(tmp_path / "mnist") == []


def test_stale_partial_files_are_cleared(server, tmp_path):
    base, files, _ = server
    body = tiny_idx_gz()
    files["/a.gz"] = body
    stale = tmp_path / ".a.gz.partial-old"
    fresh = tmp_path / ".a.gz.partial-live"          # another process still writing: kept
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fetch(remote_for("a.gz", body, [base + "/a.gz"]), tmp_path)
    assert sorted(os.listdir(tmp_path)) == [".a.gz.partial-live", "a.gz"]


def test_atomic_writer_removes_its_temp_file_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with cache.atomic_writer(tmp_path / "f.bin") as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYCNN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "tinycnn"
    monkeypatch.setenv("TINYCNN_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"
    assert cache.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TINYCNN_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "tinycnn"


@pytest.fixture
def fake_mnist(monkeypatch):
    """Point the registry's "mnist" at small files made here (their own sizes and SHA-256)."""
    arrays = mnist_arrays(np.random.default_rng(5))
    bodies = mnist_gz_files(*arrays)
    files = tuple(remote_for(n, bodies[n], ["http://127.0.0.1:9/unused/" + n]) for n in MNIST_NAMES)
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(registry.DATASETS["mnist"], files=files))
    return arrays, bodies


def test_load_downloads_into_cache_then_works_offline(server, tmp_path, fake_mnist, monkeypatch):
    (x_tr, y_tr, x_te, y_te), bodies = fake_mnist
    base, files, _ = server
    for name, body in bodies.items():
        files["/m/" + name] = body
    monkeypatch.setenv("TINYCNN_CACHE_DIR", str(tmp_path / "cache"))
    ds = data.load("mnist", mirror=base + "/m/")
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(MNIST_NAMES)
    np.testing.assert_array_equal(ds.x_train[:, 0], x_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    files.clear()                                     # the server forgets everything: offline
    again = data.load("mnist", download=False)
    np.testing.assert_array_equal(again.x_test[:, 0], x_te)


def test_corrupt_cached_file(server, tmp_path, fake_mnist):
    _, bodies = fake_mnist
    base, files, _ = server
    for name, body in bodies.items():
        files["/m/" + name] = body
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, body in bodies.items():
        (folder / name).write_bytes(body)
    (folder / MNIST_NAMES[1]).write_bytes(b"garbage")
    with pytest.raises(data.ChecksumError, match=r"train-labels-idx1-ubyte.gz: SHA-256 .* Delete it"):
        data.load("mnist", cache_dir=tmp_path, download=False)
    with pytest.warns(RuntimeWarning, match="deleting it and downloading it again"):
        ds = data.load("mnist", cache_dir=tmp_path, mirror=base + "/m")
    assert (folder / MNIST_NAMES[1]).read_bytes() == bodies[MNIST_NAMES[1]]
    assert len(ds.y_train) == 30


def test_missing_without_download(tmp_path, fake_mnist):
    with pytest.raises(data.MissingFilesError, match=r"files missing and download=False.\nPut the file\(s\) "
                                                     rf"by hand into {tmp_path / 'mnist'}/"):
        data.load("mnist", cache_dir=tmp_path, download=False)


def test_load_offline_fails_at_once_and_leaves_nothing(tmp_path, fake_mnist):
    with pytest.raises(data.DownloadError, match=r"could not download train-images-idx3-ubyte.gz"):
        data.load("mnist", cache_dir=tmp_path, mirror=f"http://127.0.0.1:{closed_port()}", timeout=2)
    assert not (tmp_path / "mnist").exists() or os.listdir(tmp_path / "mnist") == []


def test_offline_error_lists_every_missing_file(tmp_path, fake_mnist):
    _, bodies = fake_mnist
    mirror = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(data.DownloadError) as info:
        data.load("mnist", cache_dir=tmp_path, mirror=mirror, timeout=2)
    msg = str(info.value)
    for name in MNIST_NAMES:
        assert f"  {name}  ({len(bodies[name]):,} bytes, sha256 " in msg, name
    (tmp_path / "mnist").mkdir(exist_ok=True)
    (tmp_path / "mnist" / MNIST_NAMES[0]).write_bytes(bodies[MNIST_NAMES[0]])   # one already in the cache
    with pytest.raises(data.DownloadError) as info:
        data.load("mnist", cache_dir=tmp_path, mirror=mirror, timeout=2)
    msg = str(info.value)
    assert f"could not download {MNIST_NAMES[1]}" in msg and f"  {MNIST_NAMES[0]}  (" not in msg
    assert all(f"  {name}  (" in msg for name in MNIST_NAMES[1:])
