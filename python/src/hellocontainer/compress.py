"""Layer compression: the media type each choice gives, and a writer for each.

Every compressor here is deterministic: the bytes depend only on the input and the level
(and, for gzip and zstd, on the library build; see pgzip's docstring).
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol

from . import model
from .errors import SpecError
from .pgzip import GzipWriter

MEDIA_TYPES = {
    "none": model.MEDIA_LAYER_TAR,
    "gzip": model.MEDIA_LAYER_GZIP,
    "zstd": model.MEDIA_LAYER_ZSTD,
}
ZSTD_LEVEL = 19  # fixed: the level is part of what the bytes depend on


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


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def open_compressor(kind: str, sink: BinaryIO, level: int, jobs: int | None) -> Writer:
    """A writer that compresses into `sink` with `kind` (gzip, none, zstd)."""
    if kind == "gzip":
        return GzipWriter(sink, level=level, jobs=jobs)
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
