"""The recording file: an uncompressed ZIP of JSON, Parquet and ``.npy`` members.

Layout (format version 1)::

    manifest.json            format name and version, environment, taps (written first)
    c000001/<name>.parquet   a chunk: what the recorder flushed at once
    c000001/<name>.npy       (tap message arrays, saved without pickle)
    c000001/done.json        the chunk's index, written last: a chunk counts only with it
    ...
    final.json               written by stop(): stop time, counts (absent: cut short)

Why a ZIP: one file, readable by any unzip tool, members are plain Parquet/NPY/JSON,
and it grows by appending. Each flush reopens it in append mode, adds the chunk and
rewrites the central directory, so after every flush the file is a valid ZIP. A writer
killed in the middle of a flush leaves a broken directory; the reader then walks the
local file headers from the start (each checked against its CRC-32) and keeps every
chunk whose ``done.json`` made it, i.e. everything flushed before the cut.

Reading never unpickles and never imports: JSON through ``json``, tables through
pyarrow, arrays through ``numpy.load(allow_pickle=False)`` after refusing object dtypes.
Anything else (an unknown member name, compression, a pickle) is refused with a
:class:`~ezmsg_lab.errors.RecordingError`.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError

FORMAT_NAME = "ezmsg-lab-recording"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FINAL = "final.json"
_CHUNK_MEMBER = re.compile(r"^c(\d{6})/([a-z0-9_]+)\.(parquet|npy|json)$")
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50


def chunk_member(seq: int, name: str) -> str:
    return f"c{seq:06d}/{name}"


class ContainerWriter:
    """Create a recording file and append chunks to it (one thread at a time)."""

    def __init__(self, path: str | Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise RecordingError(f"{str(self.path)!r} is a folder; give a file name.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bytes_written = 0
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED) as zf:
            self._put(zf, MANIFEST, _json_bytes(manifest))

    def _put(self, zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_STORED
        zf.writestr(info, data)
        self.bytes_written += len(data)

    def append(self, members: Iterable[tuple[str, bytes]]) -> None:
        """Add members and rewrite the central directory (the file is valid after)."""
        with zipfile.ZipFile(self.path, "a", zipfile.ZIP_STORED) as zf:
            for name, data in members:
                self._put(zf, name, data)

    def write_chunk(
        self, seq: int, members: list[tuple[str, bytes]], index: dict[str, Any]
    ) -> None:
        """One chunk: its members, then its ``done.json`` (which makes it count)."""
        named = [(chunk_member(seq, name), data) for name, data in members]
        done = {**index, "seq": seq, "members": [name for name, _ in members]}
        self.append([*named, (chunk_member(seq, "done.json"), _json_bytes(done))])

    def finish(self, final: dict[str, Any]) -> None:
        self.append([(FINAL, _json_bytes(final))])


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1).encode()


class Container:
    """A recording file opened for reading: its members by name, read on demand."""

    def __init__(self, path: Path, members: dict[str, tuple[int, int]], salvaged: bool) -> None:
        self.path = path
        self._members = members  # name -> (offset of data, size)
        self.salvaged = salvaged

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes:
        offset, size = self._members[name]
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise RecordingError(f"The member {name!r} of {str(self.path)!r} is cut short.")
        return data

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RecordingError(
                f"The member {name!r} of {str(self.path)!r} is not JSON ({exc}); the file is "
                "damaged."
            ) from None

    def npy(self, name: str) -> np.ndarray:
        return load_npy(self.read(name), name)


def load_npy(data: bytes, member: str) -> np.ndarray:
    """An ``.npy`` array, refusing object dtypes (they would need unpickling)."""
    f = io.BytesIO(data)
    try:
        major, _minor = np.lib.format.read_magic(f)
        header = (
            np.lib.format.read_array_header_1_0(f)
            if major == 1
            else np.lib.format.read_array_header_2_0(f)
        )
        dtype = header[2]
        if dtype.hasobject:
            raise RecordingError(
                f"The array {member!r} has an object dtype ({dtype}): reading it would "
                "unpickle (run) code from the file, so it is refused. Recordings written "
                "by ezmsg-lab never contain one; this file was crafted or altered."
            )
        f.seek(0)
        arr: np.ndarray = np.load(f, allow_pickle=False)
    except RecordingError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise RecordingError(
            f"The member {member!r} is not a readable .npy array ({exc}); the file is damaged."
        ) from None
    return arr


def open_container(path: str | Path) -> Container:
    """Open a recording for reading; RecordingError for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"No recording at {str(path)!r}: no such file.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        kind = "a pickle" if head[:1] == b"\x80" else "not a ZIP container"
        raise RecordingError(
            f"{str(path)!r} is not an ezmsg-lab recording ({kind}); recordings are made by "
            "lab.record(path) and opened with ezmsg_lab.load(path)."
        )
    try:
        members, salvaged = _central_directory(path), False
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        members, salvaged = _scan_local_headers(path), True
    if MANIFEST not in members:
        raise RecordingError(
            f"{str(path)!r} is a ZIP file but not an ezmsg-lab recording (no {MANIFEST})."
        )
    for name in members:
        if name not in (MANIFEST, FINAL) and not _CHUNK_MEMBER.match(name):
            raise RecordingError(
                f"{str(path)!r} holds an unexpected member {name!r}; a recording holds only "
                "its manifest and chunks of Parquet, .npy and JSON members. Not read."
            )
    return Container(path, members, salvaged)


def _central_directory(path: Path) -> dict[str, tuple[int, int]]:
    members: dict[str, tuple[int, int]] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise RecordingError(
                    f"The member {info.filename!r} of {str(path)!r} is compressed or "
                    "encrypted; ezmsg-lab writes stored members only. Not read."
                )
            f.seek(info.header_offset)
            header = f.read(_LOCAL_HEADER.size)
            if len(header) < _LOCAL_HEADER.size:
                raise zipfile.BadZipFile("local header past the end")
            fields = _LOCAL_HEADER.unpack(header)
            if fields[0] != _LOCAL_SIG:
                raise zipfile.BadZipFile("bad local header")
            start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            members[info.filename] = (start, info.file_size)
    return members


def _scan_local_headers(path: Path) -> dict[str, tuple[int, int]]:
    """Members found by walking local headers from the start (a writer cut short)."""
    members: dict[str, tuple[int, int]] = {}
    size = os.path.getsize(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 0
        while pos + _LOCAL_HEADER.size <= size:
            sig, _v, flags, method, _t, _d, crc, csize, usize, nlen, xlen = (
                _LOCAL_HEADER.unpack_from(data, pos)
            )
            if sig != _LOCAL_SIG or method != 0 or flags & 0x9 or csize != usize:
                break
            start = pos + _LOCAL_HEADER.size + nlen + xlen
            end = start + csize
            if end > size or zlib.crc32(data[start:end]) != crc:
                break
            try:
                name = bytes(data[pos + _LOCAL_HEADER.size : pos + _LOCAL_HEADER.size + nlen])
                members[name.decode()] = (start, csize)
            except UnicodeDecodeError:
                break
            pos = end
    return members
