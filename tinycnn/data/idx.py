"""The IDX format of MNIST and Fashion-MNIST, read and written (plain or gzip-compressed).

An IDX file is a big-endian header followed by the raw array, C order::

    bytes 0-1  zero
    byte  2    element type: 0x08 = uint8 (the only type MNIST uses, the only one read here)
    byte  3    number of dimensions D (3 for images, 1 for labels)
    4*D bytes  each dimension as a big-endian uint32: N (, rows, cols)
    then       prod(dims) bytes of data

So ``train-images-idx3-ubyte`` starts ``00 00 08 03 | 00 00 ea 60 | 00 00 00 1c | 00 00 00 1c``
(60000 images of 28 x 28) and ``train-labels-idx1-ubyte`` starts ``00 00 08 01 | 00 00 ea 60``.
A name ending in ``.gz`` is gzip-decompressed first.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

UINT8 = 0x08


MAX_BYTES = 1 << 31       # the largest IDX payload read (MNIST's biggest file holds 47 MB)
_CHUNK = 1 << 20


def _open(path: Path):
    if not path.is_file():
        raise DataError(f"read_idx: file {path} does not exist")
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _read_up_to(f, n: int) -> bytes:
    """At most ``n`` bytes, read in chunks (so a huge ``n`` never allocates more than the file has)."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(_CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _count_rest(f) -> int:
    """Bytes left in ``f``, read and discarded (a gzip stream is checked to its end this way)."""
    n = 0
    while chunk := f.read(_CHUNK):
        n += len(chunk)
    return n


def _payload_size(dims: tuple, where: str) -> int:
    size = math.prod(dims)                               # Python ints: the product cannot overflow
    if size > MAX_BYTES:
        raise DataError(f"read_idx: {where}: its header announces shape {dims} = {size} bytes, more than the "
                        f"{MAX_BYTES} an IDX file may hold here (a damaged header)")
    return size


def _parse_header(data: bytes, where: str) -> tuple[int, tuple]:
    """(header length, dims) from the first bytes of an IDX file."""
    if len(data) < 4:
        raise DataError(f"read_idx: {where} is {len(data)} bytes long, too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or ndim == 0:
        raise DataError(f"read_idx: {where} does not start with an IDX header "
                        f"(first 4 bytes {data[:4].hex()}, expected 0000 08 <D>)")
    if dtype_code != UINT8:
        raise DataError(f"read_idx: {where} holds element type 0x{dtype_code:02x}; only 0x08 "
                        "(unsigned byte, as in MNIST) is supported")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"read_idx: {where} is truncated inside its header ({len(data)} bytes, "
                        f"the header of a {ndim}-D file has {header})")
    return header, struct.unpack(f">{ndim}I", data[4:header])


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode the bytes of one IDX file into a uint8 array of the shape its header gives."""
    header, dims = _parse_header(data, where)
    expected = header + _payload_size(dims, where)
    if len(data) < expected:
        raise DataError(f"read_idx: {where} is truncated: its header announces shape {dims} = "
                        f"{expected} bytes with the header, but it has {len(data)}")
    if len(data) > expected:
        raise DataError(f"read_idx: {where} has {len(data) - expected} bytes after the "
                        f"{expected} its header (shape {dims}) announces")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) -> uint8 array, e.g. (60000, 28, 28) or (60000,).

    The header is read first; then exactly the bytes it announces (at most ``MAX_BYTES``), so a
    damaged header or a gzip bomb cannot make this allocate more; the rest of the file is counted
    (and a gzip stream checked to its end) without being kept."""
    path = Path(path)
    where = str(path)
    try:
        with _open(path) as f:
            head = _read_up_to(f, 4)
            if len(head) == 4:
                head += _read_up_to(f, 4 * head[3])
            header, dims = _parse_header(head, where)
            data = head + _read_up_to(f, _payload_size(dims, where))
            rest = _count_rest(f)
    except EOFError as err:
        raise DataError(f"read_idx: {path} is truncated: the gzip stream ends early ({err}); "
                        "delete it and download it again") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"read_idx: {path} is not a valid gzip file ({err}); "
                        "delete it and download it again") from None
    except OSError as err:
        raise DataError(f"read_idx: {path} cannot be read ({err})") from None
    if rest:
        raise DataError(f"read_idx: {where} has {rest} bytes after the {len(data)} its header "
                        f"(shape {dims}) announces")
    return parse_idx(data, where)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array of 1 to 255 dimensions."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8 or not 1 <= a.ndim <= 255:
        raise ValueError(f"idx_bytes: need a uint8 array of 1..255 dimensions, got {a.dtype} {a.shape}")
    return struct.pack(f">HBB{a.ndim}I", 0, UINT8, a.ndim, *a.shape) + a.tobytes()


def write_idx(path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX to ``path``, gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path
