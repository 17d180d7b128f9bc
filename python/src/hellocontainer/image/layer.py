"""The image's single layer: which entries it holds, written as tar, compressed and hashed in one pass."""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import BinaryError, SpecError
from ..oci.model import Descriptor
from ..oci.value import Value
from ..store.layout import Staging
from ..store.tarwriter import BLOCK, TarEntry, write_tar
from .compress import MEDIA_TYPES, GzipLevel, HashingWriter, open_compressor
from .spec import ExtraFile

# Told the bytes done and the bytes in all (the CLI shows it; nothing here prints).
Progress = Callable[[int, int], None]
BINARY_MODE = 0o755
DIR_MODE = 0o755


class Layer(Value):
    __slots__ = ("descriptor", "diff_id")

    def __init__(self, descriptor: Descriptor, diff_id: str) -> None:
        self.descriptor = descriptor  # the compressed blob
        self.diff_id = diff_id  # sha256 of the uncompressed tar, for the config's rootfs


def _file_entry(source: Path, dest: str, mode: int | None, uid: int, gid: int,
                mtime: int, fix: str = "check the path") -> TarEntry:
    try:
        stat = source.stat()
    except OSError as error:
        raise BinaryError(f"cannot read file {source}: {error.strerror}; {fix}") from None
    if not source.is_file():
        raise BinaryError(f"{source} is not a regular file; name a file, not a directory or device")
    if mode is None:
        # Only the owner's execute bit is taken from the source: it is what git and tar keep,
        # while group/other bits depend on the umask of whoever checked the sources out.
        mode = 0o755 if stat.st_mode & 0o100 else 0o644
    return TarEntry(dest.lstrip("/"), mode, mtime, uid, gid, source, stat.st_size)


def layer_entries(binary: Path, binary_dest: str, files: list[tuple[Path, ExtraFile]],
                  mtime: int) -> list[TarEntry]:
    """The binary, the extra files, and an explicit entry for every parent directory.

    Explicit parents make the directories' mode, owner and mtime ours instead of whatever the
    unpacking runtime would invent. Every mtime is SOURCE_DATE_EPOCH itself rather than the
    file's own clamped to it: a file's mtime records when it was checked out or built.
    """
    entries = [_file_entry(binary, binary_dest, BINARY_MODE, 0, 0, mtime)]
    entries += [_file_entry(src, f.dest, f.mode, f.uid, f.gid, mtime, f"fix {f.origin}")
                for src, f in files]
    names = [e.name for e in entries]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)  # linear: 100k files
    if duplicates:
        raise SpecError(f"two files go to /{duplicates[0]}; give each file its own destination")
    parents = {p for n in names for p in _parents(n)}
    clashes = sorted(parents & set(names))
    if clashes:
        raise SpecError(f"/{clashes[0]} is both a file and the folder of another file; rename one")
    entries += [TarEntry(p, DIR_MODE, mtime) for p in parents]
    return entries


def _parents(name: str) -> list[str]:
    parts = []
    parent = posixpath.dirname(name)
    while parent:
        parts.append(parent)
        parent = posixpath.dirname(parent)
    return parts


# Default gzip levels. Level 9 costs about 0.15 CPU-seconds per MiB with zlib and saves a few
# percent over level 3, which costs 0.02: worth it for the few-kilobyte binaries this tool is
# for, not for a 256 MiB one whose build would wait half a minute to save 4 %. Level 3 is the
# last of zlib's fast levels and still gives smaller layers than umoci's default. The choice
# depends only on the layer's size, so it is as reproducible as everything else.
SMALL_LAYER_LEVEL = 9
LARGE_LAYER_LEVEL = 3
LARGE_LAYER_BYTES = 16 << 20


def tar_size(entries: list[TarEntry]) -> int:
    """Bytes of the uncompressed layer: a header and padded content per entry, two end blocks."""
    return sum(BLOCK + -(-entry.size // BLOCK) * BLOCK for entry in entries) + 2 * BLOCK


def gzip_level_for(entries: list[TarEntry], level: GzipLevel | None) -> GzipLevel:
    """The level asked for (1 to 9, or max), or by default 9 for layers up to 16 MiB and 3 above.

    `max` (zopfli) is never a default: it takes seconds per megabyte and needs an optional
    module, so only a user who asked for it waits for it.
    """
    if level is not None:
        return level
    return SMALL_LAYER_LEVEL if tar_size(entries) <= LARGE_LAYER_BYTES else LARGE_LAYER_LEVEL


class _Told:
    """A writer telling `progress` the bytes written through it so far, of `total`."""

    def __init__(self, out: BinaryIO, total: int, progress: Progress) -> None:
        self._out, self._total, self._progress, self._done = out, total, progress, 0

    def write(self, data: bytes) -> int:
        written = self._out.write(data)
        self._done += len(data)
        self._progress(self._done, self._total)
        return written


def write_layer(entries: list[TarEntry], staging: Staging, compression: str,
                level: GzipLevel | None, jobs: int | None,
                progress: Progress | None = None) -> Layer:
    """Stream the tar through the compressor into a staged blob, hashing both sides on the way;
    `progress`, if given, is told the tar bytes written and their total."""
    level = gzip_level_for(entries, level)
    with staging.new_blob() as (stream, tmp):
        compressed = HashingWriter(stream)
        compressor = open_compressor(compression, compressed, level, jobs)  # type: ignore[arg-type]
        uncompressed = HashingWriter(compressor)
        tar = uncompressed if progress is None \
            else _Told(uncompressed, tar_size(entries), progress)  # type: ignore[arg-type]
        write_tar(entries, tar)  # type: ignore[arg-type]
        compressor.close()
    staging.finish_blob(tmp, compressed.digest)
    descriptor = Descriptor(MEDIA_TYPES[compression], compressed.digest, compressed.size)
    return Layer(descriptor, uncompressed.digest)
