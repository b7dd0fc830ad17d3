"""Reading ``.npz`` members from a file nobody vouches for: bounded, checked, pickle-free.

An ``.npz`` is a zip archive whose members are ``.npy`` files. ``np.load`` trusts both layers: the
zip's sizes and the ``.npy`` header's shape, allocating what they claim. Here every number is
checked before it is used:

* the zip's end record and central directory are parsed here (``list_members``), strictly: one
  archive that starts at byte 0 and ends with its end record, no encryption, no multi-disk, stored
  (0) or deflated (8) members only, names unique, and every member's data lying inside the file,
  before the central directory, not overlapping another member's;
* a member is read (``read_array``) by first decompressing only its ``.npy`` header (at most
  ``MAX_NPY_HEADER`` bytes), parsing it here (no ``eval``), and handing ``(name, dtype, shape)`` to
  the caller's ``check``, which raises if the shape or dtype is not what it expects and otherwise
  returns how many data bytes it allows. Only then is the data read, into one array of exactly
  the size the header claims, which must equal what the zip entry declares; decompression never
  produces more than that (zlib's ``max_length``), and the CRC-32 of the member is verified.

Errors are ``NpzError`` (a ValueError) naming the member; the caller adds the file's name.
Shapes: ``.npy`` shapes are tuples of non-negative ints; ``dtype`` is one of ``ALLOWED_DTYPES``.
"""
from __future__ import annotations

import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable

import numpy as np

MAX_NPY_HEADER = 65536                 # bytes of .npy header dict; NumPy writes < 200 for our arrays
MAX_NAME = 1024                        # bytes of a member name
CHUNK = 1 << 20                        # bytes read from the file (and decompressed) at a time
# numeric dtypes a checkpoint may hold, little- or big-endian; no objects, strings, structured
ALLOWED_DTYPES = {f"{order}{kind}{size}" for order in "<>" for kind, size in
                  [("f", 2), ("f", 4), ("f", 8), ("i", 1), ("i", 2), ("i", 4), ("i", 8),
                   ("u", 2), ("u", 4), ("u", 8)]} | {"|u1", "|i1", "|b1"}

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


class NpzError(ValueError):
    """The archive or one of its members is malformed, or not what the caller expects."""

    def __init__(self, message: str, member: str | None = None):
        super().__init__(message)
        self.member = member


@dataclass(frozen=True)
class Member:
    """One central-directory entry (sizes as declared; checked against the data when read)."""
    name: str
    method: int              # 0 stored, 8 deflated
    crc: int
    compressed_size: int
    size: int                # declared uncompressed size
    header_at: int           # offset of its local header
    data_start: int          # offset of the member's (compressed) data in the file


def _u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def _u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def _u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def _read_at(f: BinaryIO, offset: int, n: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise NpzError(f"the file ends inside the {what} (wanted {n} bytes at offset {offset})")
    return data


def _end_record(f: BinaryIO, file_size: int) -> tuple[int, int, int, int]:
    """(number of entries, central directory offset, its size, offset where it must end)."""
    if file_size < 22:
        raise NpzError(f"{file_size} bytes is too short for a zip archive (its end record alone has 22)")
    tail_len = min(file_size, 22 + 65535)
    tail = _read_at(f, file_size - tail_len, tail_len, "end of the archive")
    pos = -1
    for i in range(tail_len - 22, -1, -1):                 # the comment (if any) ends the file exactly
        if tail[i:i + 4] == _EOCD and i + 22 + _u16(tail, i + 20) == tail_len:
            pos = i
            break
    if pos < 0:
        raise NpzError("no zip end-of-central-directory record at the end of the file: not a zip archive "
                       "(or truncated)")
    eocd_at = file_size - tail_len + pos
    disk, cd_disk, n_disk, n, cd_size, cd_offset = struct.unpack_from("<HHHHII", tail, pos + 4)
    if disk != 0 or cd_disk != 0 or n_disk != n:
        raise NpzError("a multi-disk (split) zip archive; a checkpoint is one file")
    cd_end = eocd_at
    if n == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        if eocd_at < 20 + 56:
            raise NpzError("the zip end record asks for a zip64 record that cannot fit before it")
        loc = _read_at(f, eocd_at - 20, 20, "zip64 end locator")
        if loc[:4] != _ZIP64_LOCATOR:
            raise NpzError("the zip end record asks for a zip64 record, but there is no zip64 locator")
        z64_at = _u64(loc, 8)
        if z64_at != eocd_at - 20 - 56:
            raise NpzError(f"the zip64 locator points to offset {z64_at}, not to the record just before it")
        z64 = _read_at(f, z64_at, 56, "zip64 end record")
        if z64[:4] != _ZIP64_EOCD:
            raise NpzError("the zip64 end record has a wrong signature")
        n, n_total, cd_size, cd_offset = (_u64(z64, 24), _u64(z64, 32), _u64(z64, 40), _u64(z64, 48))
        if n != n_total or _u32(z64, 16) != 0 or _u32(z64, 20) != 0:
            raise NpzError("a multi-disk (split) zip64 archive; a checkpoint is one file")
        cd_end = z64_at
    if cd_offset + cd_size != cd_end:
        raise NpzError(f"the central directory (offset {cd_offset}, {cd_size} bytes) does not end where the "
                       f"end record starts (offset {cd_end}): data before or after the archive, or a damaged file")
    if n * 46 > cd_size:
        raise NpzError(f"the end record claims {n} members, more than a {cd_size}-byte central directory holds")
    return n, cd_offset, cd_size, cd_end


def _zip64_extra(extra: bytes, need: list[str], fields: dict) -> None:
    """Fill ``fields[name]`` for each name in ``need`` (in order) from the zip64 extra field (0x0001)."""
    o = 0
    while o + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, o)
        body = extra[o + 4:o + 4 + size]
        if len(body) != size:
            raise NpzError("a truncated extra field in the central directory")
        if tag == 0x0001:
            if len(body) < 8 * len(need):
                raise NpzError("a zip64 extra field too short for the sizes it must hold")
            for i, name in enumerate(need):
                fields[name] = _u64(body, 8 * i)
            return
        o += 4 + size
    if need:
        raise NpzError("a member's sizes are marked as zip64 but it has no zip64 extra field")


def list_members(f: BinaryIO, file_size: int, max_members: int) -> list[Member]:
    """The archive's members in central-directory order, every field checked (see module docstring)."""
    n, cd_offset, cd_size, _ = _end_record(f, file_size)
    if n > max_members:
        raise NpzError(f"the archive has {n} members; a checkpoint of this kind has at most {max_members}")
    cd = _read_at(f, cd_offset, cd_size, "central directory")
    members, names, o = [], set(), 0
    for _ in range(n):
        if o + 46 > len(cd) or cd[o:o + 4] != _CENTRAL:
            raise NpzError(f"central directory entry {len(members)} is damaged (no signature at offset {o})")
        (flags, method, crc, csize, usize, name_len, extra_len, comment_len, disk,
         local_at) = (_u16(cd, o + 8), _u16(cd, o + 10), _u32(cd, o + 16), _u32(cd, o + 20),
                      _u32(cd, o + 24), _u16(cd, o + 28), _u16(cd, o + 30), _u16(cd, o + 32),
                      _u16(cd, o + 34), _u32(cd, o + 42))
        end = o + 46 + name_len + extra_len + comment_len
        if end > len(cd):
            raise NpzError(f"central directory entry {len(members)} runs past the directory's end")
        raw_name = cd[o + 46:o + 46 + name_len]
        extra = cd[o + 46 + name_len:o + 46 + name_len + extra_len]
        o = end
        try:
            name = raw_name.decode("utf-8" if flags & 0x800 else "ascii")
        except UnicodeDecodeError:
            raise NpzError(f"member name {raw_name[:60]!r} is not valid text") from None
        if not name or name_len > MAX_NAME:
            raise NpzError(f"a member name of {name_len} bytes")
        fields = {"usize": usize, "csize": csize, "local_at": local_at}
        need = [k for k, v in (("usize", usize), ("csize", csize), ("local_at", local_at)) if v == 0xFFFFFFFF]
        _zip64_extra(extra, need, fields)
        if flags & 0x1:
            raise NpzError(f"member {name!r} is encrypted", name)
        if method not in (0, 8):
            raise NpzError(f"member {name!r} uses zip compression method {method}; only stored (0) and "
                           f"deflated (8) are read", name)
        if disk != 0:
            raise NpzError(f"member {name!r} lies on another disk of a split archive", name)
        if name in names:
            raise NpzError(f"member {name!r} appears twice in the archive", name)
        names.add(name)
        if method == 0 and fields["csize"] != fields["usize"]:
            raise NpzError(f"stored member {name!r} declares {fields['csize']} bytes in the file but "
                           f"{fields['usize']} uncompressed", name)
        # the local header: same name; its own sizes are not used (the central directory's are)
        lh = _read_at(f, fields["local_at"], 30, f"local header of member {name!r}") \
            if fields["local_at"] + 30 <= cd_offset else None
        if lh is None or lh[:4] != _LOCAL:
            raise NpzError(f"member {name!r}: no local header at offset {fields['local_at']}", name)
        l_name_len, l_extra_len = _u16(lh, 26), _u16(lh, 28)
        if _read_at(f, fields["local_at"] + 30, l_name_len, "member name") != raw_name:
            raise NpzError(f"member {name!r}: its local header names another file", name)
        start = fields["local_at"] + 30 + l_name_len + l_extra_len
        members.append(Member(name, method, crc, fields["csize"], fields["usize"], fields["local_at"], start))
    if o != len(cd):
        raise NpzError(f"the central directory has {len(cd) - o} bytes after its {n} entries")
    spans = sorted((m.header_at, m.data_start + m.compressed_size, m.name) for m in members)
    for (_, a_end, an), (b_start, _, bn) in zip(spans, spans[1:]):
        if a_end > b_start:
            raise NpzError(f"members {an!r} and {bn!r} overlap in the file", bn)
    if spans and spans[-1][1] > cd_offset:
        raise NpzError(f"member {spans[-1][2]!r} runs into the central directory", spans[-1][2])
    return members


class _MemberStream:
    """The uncompressed bytes of one member, never more than its declared size; CRC-32 checked at
    the end (``finish``)."""

    def __init__(self, f: BinaryIO, m: Member):
        self.f, self.m = f, m
        self.left_in = m.compressed_size         # compressed bytes not yet read from the file
        self.left_out = m.size                   # uncompressed bytes not yet produced
        self.crc = 0
        self.pos = m.data_start
        self.z = zlib.decompressobj(-15) if m.method == 8 else None
        self.pending = b""                       # compressed input not yet consumed

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the member)."""
        n = min(n, self.left_out)
        out = []
        got = 0
        while got < n:
            if self.z is None:
                want = min(n - got, self.left_in)
                if want == 0:
                    break
                self.f.seek(self.pos)
                chunk = self.f.read(want)
                if len(chunk) != want:
                    raise NpzError(f"member {self.m.name!r} is truncated", self.m.name)
                self.pos += want
                self.left_in -= want
            else:
                if not self.pending:
                    self._refill()
                before = self.pending
                chunk = self._inflate(n - got)                            # never more than asked
                if not chunk and (self.z.eof or self.pending == before and (self.pending or not self.left_in)):
                    break
            out.append(chunk)
            got += len(chunk)
            self.crc = zlib.crc32(chunk, self.crc)
        self.left_out -= got
        return b"".join(out)

    def _inflate(self, max_length: int) -> bytes:
        try:
            chunk = self.z.decompress(self.pending, max_length)
        except zlib.error as err:
            raise NpzError(f"member {self.m.name!r}: its deflate data is damaged ({err})", self.m.name) from None
        self.pending = self.z.unconsumed_tail
        return chunk

    def _refill(self) -> bool:
        """Read the next compressed chunk into ``pending``; False when the member's bytes are used up."""
        if self.left_in == 0:
            return False
        want = min(CHUNK, self.left_in)
        self.f.seek(self.pos)
        self.pending = self.f.read(want)
        if len(self.pending) != want:
            raise NpzError(f"member {self.m.name!r} is truncated", self.m.name)
        self.pos += want
        self.left_in -= want
        return True

    def readinto(self, buf: memoryview) -> None:
        """Fill ``buf`` completely, or raise."""
        o = 0
        while o < len(buf):
            chunk = self.read(min(CHUNK, len(buf) - o))
            if not chunk:
                raise NpzError(f"member {self.m.name!r} holds fewer bytes than its zip entry declares",
                               self.m.name)
            buf[o:o + len(chunk)] = chunk
            o += len(chunk)

    def finish(self) -> None:
        if self.left_out != 0:
            raise NpzError(f"member {self.m.name!r}: {self.left_out} declared bytes were not read", self.m.name)
        while self.z is not None and not self.z.eof:         # only the end of the deflate stream may remain
            if not self.pending and not self._refill():
                raise NpzError(f"member {self.m.name!r}: its deflate stream ends early", self.m.name)
            before = self.pending
            if self._inflate(1):
                raise NpzError(f"member {self.m.name!r} decompresses to more bytes than its zip entry "
                               f"declares", self.m.name)
            if not self.z.eof and self.pending and self.pending == before:
                raise NpzError(f"member {self.m.name!r}: its deflate stream does not end", self.m.name)
        if self.crc != self.m.crc:
            raise NpzError(f"member {self.m.name!r}: CRC-32 mismatch (the data is damaged)", self.m.name)


# .npy header: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces, '\n'
_ITEM = re.compile(r"\s*'(descr|fortran_order|shape)'\s*:\s*('[^'\\]{1,16}'|True|False|\((?:\s*\d{1,19}\s*,)*"
                   r"(?:\s*\d{1,19}\s*)?\))\s*(,|(?=\}))")


def _parse_npy_header(text: str, name: str) -> tuple[str, bool, tuple]:
    text = text.rstrip(" \n")
    if not (text.startswith("{") and text.endswith("}")):
        raise NpzError(f"member {name!r}: its .npy header is not a dict literal", name)
    body, found, o = text[1:-1], {}, 0
    while o < len(body) and body[o:].strip():
        m = _ITEM.match(body, o)
        if m is None or m.group(1) in found:
            raise NpzError(f"member {name!r}: its .npy header {text[:120]!r} is not one NumPy writes "
                           f"(keys descr, fortran_order, shape)", name)
        found[m.group(1)] = m.group(2)
        o = m.end()
    if set(found) != {"descr", "fortran_order", "shape"}:
        raise NpzError(f"member {name!r}: its .npy header lacks "
                       f"{sorted({'descr', 'fortran_order', 'shape'} - set(found))}",
                       name)
    descr = found["descr"]
    if not descr.startswith("'") or descr[1:-1] not in ALLOWED_DTYPES:
        raise NpzError(f"member {name!r}: dtype {descr} is not a plain numeric type (allowed: "
                       f"{', '.join(sorted(ALLOWED_DTYPES))})", name)
    if found["fortran_order"] not in ("True", "False"):
        raise NpzError(f"member {name!r}: fortran_order is {found['fortran_order']}", name)
    if not found["shape"].startswith("("):
        raise NpzError(f"member {name!r}: shape is {found['shape']}", name)
    shape = tuple(int(d) for d in re.findall(r"\d+", found["shape"]))
    return descr[1:-1], found["fortran_order"] == "True", shape


def _header(s: "_MemberStream", m: Member) -> tuple[np.dtype, bool, tuple, int]:
    """Decompress and parse only the member's .npy header: (dtype, fortran_order, shape, its length)."""
    head = s.read(10)
    if len(head) < 10 or head[:6] != _NPY_MAGIC:
        raise NpzError(f"member {m.name!r} is not a .npy array (it starts {head[:10]!r})", m.name)
    major, minor = head[6], head[7]
    if minor != 0 or major not in (1, 2, 3):
        raise NpzError(f"member {m.name!r}: .npy format version {major}.{minor} is unknown (1.0, 2.0 and 3.0 "
                       f"exist)", m.name)
    if major == 1:
        header_len = _u16(head, 8)
    elif major in (2, 3):
        head += s.read(2)
        if len(head) < 12:
            raise NpzError(f"member {m.name!r}: truncated .npy header", m.name)
        header_len = _u32(head, 8)
    else:
        raise NpzError(f"member {m.name!r}: .npy format version {major} is unknown", m.name)
    if header_len > MAX_NPY_HEADER:
        raise NpzError(f"member {m.name!r}: its .npy header claims {header_len} bytes (at most "
                       f"{MAX_NPY_HEADER} are read)", m.name)
    raw = s.read(header_len)
    if len(raw) != header_len:
        raise NpzError(f"member {m.name!r}: truncated .npy header", m.name)
    try:
        text = raw.decode("latin1" if major < 3 else "utf-8")
    except UnicodeDecodeError:
        raise NpzError(f"member {m.name!r}: its .npy header is not text", m.name) from None
    descr, fortran, shape = _parse_npy_header(text, m.name)
    dtype = np.dtype(descr)
    n_bytes = math.prod(shape) * dtype.itemsize                       # Python ints: no overflow
    if len(head) + header_len + n_bytes != m.size:
        raise NpzError(f"member {m.name!r}: its .npy header claims shape {shape} {dtype} = {n_bytes} data bytes, "
                       f"but its zip entry declares {m.size - len(head) - header_len}", m.name)
    return dtype, fortran, shape, len(head) + header_len


def read_header(f: BinaryIO, m: Member) -> tuple[np.dtype, tuple]:
    """(dtype, shape) from the member's .npy header, decompressing nothing but the header."""
    dtype, _, shape, _ = _header(_MemberStream(f, m), m)
    return dtype, shape


def read_array(f: BinaryIO, m: Member, check: Callable[[str, np.dtype, tuple], int]) -> np.ndarray:
    """The array member ``m`` holds. ``check(name, dtype, shape)`` sees the parsed header first and
    returns the largest number of data bytes it allows (or raises); nothing larger is allocated."""
    s = _MemberStream(f, m)
    dtype, fortran, shape, _ = _header(s, m)
    allowed = check(m.name, dtype, shape)
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > allowed:
        raise NpzError(f"member {m.name!r}: its .npy header claims shape {shape} {dtype} = {n_bytes} bytes, "
                       f"more than the {allowed} allowed", m.name)
    buf = np.empty(n_bytes, dtype=np.uint8)
    s.readinto(memoryview(buf))
    s.finish()
    arr = buf.view(dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
