"""Layer compression: the media type each choice gives, and a writer for each.

Every compressor here is deterministic: the bytes depend only on the input and the level
(and, for gzip and zstd, on the library build; see pgzip's docstring; for gzip level `max`, on
the zopfli version).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import BinaryIO, Protocol, Union

from ..errors import SpecError
from ..oci import model
from .pgzip import GzipWriter, gzip_header

MEDIA_TYPES = {
    "none": model.MEDIA_LAYER_TAR,
    "gzip": model.MEDIA_LAYER_GZIP,
    "zstd": model.MEDIA_LAYER_ZSTD,
}
ZSTD_LEVEL = 19  # fixed: the level is part of what the bytes depend on

# gzip level `max`: zopfli's deflate, which searches far harder than zlib's level 9 and still
# writes plain deflate that every gzip reader inflates.
GZIP_MAX = "max"
GzipLevel = Union[int, str]  # 1..9, or GZIP_MAX
# zopfli's own defaults (its command line uses them too), spelled out because they change the
# bytes: more iterations shave a few more bytes at a proportional cost in time.
ZOPFLI_SETTINGS = {"numiterations": 15, "blocksplitting": 1, "blocksplittinglast": 0,
                   "blocksplittingmax": 15}


class Writer(Protocol):
    def write(self, data: bytes) -> int: ...
    def close(self) -> None: ...


class HashingWriter:
    """Pass bytes on to `sink` (if any) while counting them and computing their sha256.

    This is how a layer is hashed in the same pass that writes it: the tar stream goes through
    one HashingWriter (diff_id) into the compressor, whose output goes through another (digest).
    """

    def __init__(self, sink: Writer | BinaryIO | None = None) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self._sink is not None and hasattr(self._sink, "flush"):
            self._sink.flush()

    def close(self) -> None:
        """Nothing to release: the sink belongs to the caller."""

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class _Passthrough:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        return self._sink.write(data)

    def close(self) -> None:
        """Nothing buffered."""


class _Zstd:
    def __init__(self, sink: BinaryIO) -> None:
        import zstandard  # optional: checked by open_compressor

        # No content size (unknown while streaming) and no checksum: fewer bytes, same everywhere.
        params = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False,
                                          write_checksum=False, threads=0)
        self._writer = params.stream_writer(sink, closefd=False)

    def write(self, data: bytes) -> int:
        return self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


class _ZopfliGzip:
    """One gzip member whose deflate body comes from zopfli, every header byte ours.

    zopfli's Python module compresses one whole buffer, not a stream, so the tar is held in
    memory until `close` (a few kilobytes for the binaries `max` is meant for). Its gzip
    container says OS 3 (Unix); we keep only the deflate body and frame it with the same pinned
    header as every other gzip layer, so the compressor cannot show in the image's bytes.
    zopfli runs on one thread: nothing about the machine varies its output.
    """

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))  # a copy: the caller may reuse its buffer
        return len(data)

    def close(self) -> None:
        import zopfli.zopfli  # optional: checked by open_compressor

        data = b"".join(self._chunks)
        self._chunks = []
        member = zopfli.zopfli.compress(data, gzip_mode=1, **ZOPFLI_SETTINGS)
        # RFC 1952 trailer: CRC-32 and length modulo 2**32 of the input, little-endian.
        trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
        # FLG 0 means zopfli's header is the fixed 10 bytes (no name, comment or extra field),
        # so what lies between it and the trailer is exactly the deflate stream.
        if member[:4] != b"\x1f\x8b\x08\x00" or member[-8:] != trailer:
            raise RuntimeError("zopfli wrote an unexpected gzip member; report this zopfli version")
        # XFL 2 ("maximum compression"), as for level 9: nothing but the level decides it.
        self._sink.write(gzip_header(9) + member[10:-8] + trailer)


def zopfli_available() -> bool:
    try:
        import zopfli.zopfli  # noqa: F401
    except ImportError:
        return False
    return True


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def open_compressor(kind: str, sink: BinaryIO, level: GzipLevel, jobs: int | None) -> Writer:
    """A writer that compresses into `sink` with `kind` (gzip, none, zstd); `level` is gzip's."""
    if kind == "gzip" and level == GZIP_MAX:
        if not zopfli_available():
            raise SpecError(
                "gzip level 'max' needs the optional Python module zopfli; "
                "install it (pip install zopfli) or use level 9"
            )
        return _ZopfliGzip(sink)
    if kind == "gzip":
        return GzipWriter(sink, level=int(level), jobs=jobs)
    if kind == "none":
        return _Passthrough(sink)
    if kind == "zstd":
        if not zstd_available():
            raise SpecError(
                "compression 'zstd' needs the optional Python module zstandard; "
                "install it (pip install zstandard) or use gzip"
            )
        return _Zstd(sink)
    raise SpecError(f"unknown compression {kind!r}; use gzip, none or zstd")
