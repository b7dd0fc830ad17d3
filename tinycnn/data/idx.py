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
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

UINT8 = 0x08


def _raw_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"read_idx: file {path} does not exist") from None
    except EOFError as err:
        raise DataError(f"read_idx: {path} is truncated: the gzip stream ends early ({err}); "
                        "delete it and download it again") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise DataError(f"read_idx: {path} is not a valid gzip file ({err}); "
                        "delete it and download it again") from None


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode the bytes of one IDX file into a uint8 array of the shape its header gives."""
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
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise DataError(f"read_idx: {where} is truncated: its header announces shape {dims} = "
                        f"{expected} bytes with the header, but it has {len(data)}")
    if len(data) > expected:
        raise DataError(f"read_idx: {where} has {len(data) - expected} bytes after the "
                        f"{expected} its header (shape {dims}) announces")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) -> uint8 array, e.g. (60000, 28, 28) or (60000,)."""
    path = Path(path)
    return parse_idx(_raw_bytes(path), str(path))


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
