"""IDX (MNIST) reader and writer, on files the test packs by hand."""
import gzip

import numpy as np
import pytest
from data_files import idx_by_hand

from tinycnn.data import DataError
from tinycnn.data.idx import idx_bytes, parse_idx, read_idx, write_idx


@pytest.mark.parametrize("shape", [(5,), (3, 4, 6), (2, 28, 28), (0, 2, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reads_hand_packed_files(tmp_path, shape, suffix):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    raw = idx_by_hand(a)
    path = tmp_path / ("f-idx" + suffix)
    path.write_bytes(gzip.compress(raw) if suffix else raw)
    b = read_idx(path)
    assert b.dtype == np.uint8 and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_writer_matches_the_format_definition(tmp_path):
    a = np.random.default_rng(1).integers(0, 256, (4, 3, 2), dtype=np.uint8)
    assert idx_bytes(a) == idx_by_hand(a)
    # bytes 0..3 = 00 00 08 03, then 4, 3, 2 as big-endian uint32
    assert idx_bytes(a)[:16].hex() == "00000803" "00000004" "00000003" "00000002"
    p = write_idx(tmp_path / "a.gz", a)
    assert gzip.decompress(p.read_bytes()) == idx_by_hand(a)


def test_truncated_payload(tmp_path):
    raw = idx_by_hand(np.zeros((10, 4, 4), np.uint8))
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(raw[:-7]))          # a whole gzip stream of a cut IDX file
    with pytest.raises(DataError, match=r"truncated: its header announces shape \(10, 4, 4\) = 176 bytes.*169"):
        read_idx(p)


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(idx_by_hand(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.gz is truncated: the gzip stream ends early"):
        read_idx(p)


def test_corrupted_gzip(tmp_path):
    data = bytearray(gzip.compress(idx_by_hand(np.arange(200, dtype=np.uint8))))
    data[-6] ^= 0xFF                                  # inside the CRC32 / size trailer
    p = tmp_path / "bad.gz"
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad.gz is not a valid gzip file"):
        read_idx(p)


def test_not_gzip_at_all(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"this is plain text, not gzip")
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_idx(p)


def test_bad_magic_and_types():
    with pytest.raises(DataError, match="does not start with an IDX header"):
        parse_idx(b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(DataError, match=r"element type 0x0d; only 0x08"):
        parse_idx(b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x00")
    with pytest.raises(DataError, match="truncated inside its header"):
        parse_idx(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00")
    with pytest.raises(DataError, match="3 bytes after"):
        parse_idx(idx_by_hand(np.zeros(4, np.uint8)) + b"abc")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope-idx1-ubyte.gz")


def test_writer_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        idx_bytes(np.zeros(3, np.float32))
