"""Deterministic parallel gzip: one gzip stream whose bytes do not depend on the thread count.

The hard part: deflate is a single sequential stream, yet we want several cores on it and the
same bytes from 1 thread or 16. The pigz technique gives both. The input is cut into fixed-size
blocks (cut points depend only on the input length and `block_size`, never on how `write` was
called nor on `jobs`). Each block is compressed on its own as raw deflate, primed with the 32 KiB
of input that precede it as the preset dictionary (so back-references across the cut still work
and the ratio stays within a fraction of a percent of plain gzip), and ended with Z_SYNC_FLUSH,
which closes the block on a byte boundary without marking it final. Those pieces concatenate
into one valid deflate stream; only the last block uses Z_FINISH. The CRC-32 runs over the input
in order on the calling thread. Since each block's output is a pure function of (level, the 32
KiB before it, the block), the thread count only changes *when* a block is compressed, never
its bytes.

zlib releases the GIL while it deflates, so plain threads give real parallelism.

Incompressible data (already compressed assets, random test vectors, encrypted blobs) is not
deflated at all: deflating it costs as much CPU as good data and saves nothing, zlib then falls
back to stored blocks itself. The rule, decided per block from the block alone, so the bytes
stay those of every other machine with the same zlib:
- a block of at least 8 KiB whose four 2 KiB samples (at 0, 1/4, 1/2 and 3/4 of it) each
  deflate, at level 1 with no dictionary, to at least as many bytes as they hold is written as
  stored deflate blocks (RFC 1951 BTYPE=00, at most 65,535 bytes each) without deflating it;
- any other block is deflated as above, and written stored instead when that is shorter.
A stored 128 KiB block costs 15 bytes over its data, less than zlib's own stored fallback (5
bytes per 16 KiB), so such a layer is also a little smaller. The price: a block whose samples
look random but which repeats itself at a distance deflate could reach is stored too.

Caveat: the bytes are a function of the zlib build (its version and any patches change the
matcher). Yocto and Buildroot pin their own native zlib, so within one of those builds the bytes
hold; uncompressed layers are identical everywhere.

Memory is bounded: at most 2 x jobs blocks are in flight, plus one being filled, whatever the
input size.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    # Imported when a second block needs a thread: a small layer does without (and without
    # the import's cost, logging included).
    from concurrent.futures import Future, ThreadPoolExecutor

DEFAULT_BLOCK_SIZE = 128 * 1024
# Deflate's window: a back-reference reaches at most 32 KiB back, so that much preceding input
# is all a block's dictionary can use.
WINDOW_SIZE = 32 * 1024


def default_jobs() -> int:
    """Cores this process may run on (respects taskset/cgroup cpusets, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux: sched_getaffinity does not exist
        return max(1, os.cpu_count() or 1)


def gzip_header(level: int) -> bytes:
    """The 10-byte gzip member header (RFC 1952 section 2.3), every byte pinned."""
    # XFL is informational only, but it is part of the bytes; derive it from the level exactly
    # as gzip(1) and Python's gzip module do, so nothing but the level influences it.
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    return bytes(
        [
            0x1F, 0x8B,  # ID1 ID2: gzip magic
            8,  # CM: deflate, the only method gzip defines
            0,  # FLG: no FNAME/FCOMMENT/FEXTRA/FHCRC, so no file name or host path can leak in
            0, 0, 0, 0,  # MTIME = 0 ("no time stamp"): a wall-clock time would differ per build
            xfl,  # XFL: 2 = best compression (level 9), 4 = fastest (level 1), else 0
            255,  # OS = 255 "unknown": the building host's OS must not show in the image
        ]
    )


# The stored-block rule of the module docstring.
_SAMPLED_BLOCK = 8 * 1024  # smaller blocks are deflated without sampling
_SAMPLE_SIZE = 2 * 1024
_SAMPLES = 4
_STORED_MAX = 65535  # LEN is 16 bits


def _incompressible(block: bytes) -> bool:
    """Whether each sample of `block` deflates to no fewer bytes than it holds."""
    if len(block) < _SAMPLED_BLOCK:
        return False
    for index in range(_SAMPLES):
        start = index * len(block) // _SAMPLES
        sample = block[start:start + _SAMPLE_SIZE]
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
        if len(compressor.compress(sample) + compressor.flush()) < len(sample):
            return False  # it compresses: deflate the block (most data stops at the first)
    return True


def _stored(block: bytes, last: bool) -> bytes:
    """`block` as stored deflate blocks (RFC 1951 3.2.4), byte-aligned like a synced piece: each
    a header byte (BFINAL, BTYPE=00, padding), LEN and its complement NLEN, then the bytes."""
    pieces = []
    starts = range(0, len(block), _STORED_MAX) if block else range(1)
    for start in starts:
        piece = block[start:start + _STORED_MAX]
        final = last and start + _STORED_MAX >= len(block)
        pieces += [struct.pack("<BHH", 1 if final else 0, len(piece), len(piece) ^ 0xFFFF), piece]
    return b"".join(pieces)


def _stored_size(block: bytes) -> int:
    return len(block) + 5 * max(1, -(-len(block) // _STORED_MAX))


def _compress_block(level: int, zdict: bytes, block: bytes, last: bool) -> bytes:
    """One block as the module docstring's rule writes it: stored, or deflated."""
    if _incompressible(block):
        return _stored(block, last)
    deflated = _deflate_block(level, zdict, block, last)
    return _stored(block, last) if len(deflated) > _stored_size(block) else deflated


def _deflate_block(level: int, zdict: bytes, block: bytes, last: bool) -> bytes:
    """Raw deflate of one block, primed with the input before it, ended byte-aligned."""
    # wbits=-15: raw deflate (no zlib header/adler32; gzip has its own framing), 32 KiB window.
    # memLevel and strategy are zlib's defaults, spelled out because they change the bytes.
    if zdict:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                                      zdict)
    else:
        # An empty zdict is not "no dictionary" to zlib's C API; omit it for the first block.
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    # Z_SYNC_FLUSH ends the piece on a byte boundary with BFINAL=0 so the next piece can follow;
    # only the stream's last piece sets BFINAL with Z_FINISH.
    return compressor.compress(block) + compressor.flush(zlib.Z_FINISH if last
                                                         else zlib.Z_SYNC_FLUSH)


class GzipWriter(io.BufferedIOBase):
    """A write-only binary stream that gzips into `sink` on `jobs` threads, deterministically.

    `close()` writes the trailer but leaves `sink` open (the caller owns it).
    """

    def __init__(self, sink: BinaryIO, level: int = 9, jobs: int | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        super().__init__()
        # Explicit checks, not assert: they must hold under `python -O` too.
        if not 1 <= level <= 9:
            raise ValueError(f"gzip level must be 1..9, not {level}")
        if jobs is None:
            jobs = default_jobs()
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, not {jobs}")
        if block_size < 1:
            raise ValueError(f"block_size must be positive, not {block_size}")
        self._sink = sink
        self._level = level
        self._jobs = jobs
        self._block_size = block_size
        self._pending = bytearray()  # input not yet handed to a compressor (<= block_size)
        self._window = b""  # the up to 32 KiB of input just before `_pending`
        self._crc = 0
        self._size = 0
        self._inflight: deque[Future[bytes]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._finished = False
        sink.write(gzip_header(level))

    # io.BufferedIOBase protocol -------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Uncompressed bytes written so far (what tarfile and GzipFile.tell report)."""
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed GzipWriter")
        view = memoryview(data).cast("B")
        self._crc = zlib.crc32(view, self._crc)
        self._size += len(view)
        pos = 0
        while pos < len(view):
            room = self._block_size - len(self._pending)
            if room == 0:
                # A full block with more input behind it: it is not the last one, so it can go.
                # (A full block is held back until then, so that an input of exactly N blocks
                # still ends with a Z_FINISH block of real data, not an empty one: the cut
                # points depend on the total length only.)
                self._submit(bytes(self._pending), last=False)
                self._pending = bytearray()
                continue
            take = min(room, len(view) - pos)
            self._pending += view[pos:pos + take]
            pos += take
        return len(view)

    def flush(self) -> None:
        # Deliberately no deflate flush: an extra flush point would make the bytes depend on
        # when the caller flushed. Only the sink is flushed, if it can be: a sink needs nothing
        # but write() (a hashing pass-through, say).
        sink_flush = getattr(self._sink, "flush", None)
        if not self.closed and sink_flush is not None:
            sink_flush()

    def close(self) -> None:
        """Compress what is left, write CRC32 and ISIZE, stop the threads; `sink` stays open."""
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._submit(bytes(self._pending), last=True)
                self._pending = bytearray()
                while self._inflight:
                    self._sink.write(self._inflight.popleft().result())
                # Trailer (RFC 1952): CRC-32 of the input, then its length modulo 2**32, both
                # little-endian.
                self._sink.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        finally:
            self._shutdown()
            super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            # The input was cut short: do not write a trailer that would make a truncated
            # stream look complete.
            self._abort()
        self.close()

    def __del__(self) -> None:
        # io.IOBase.__del__ would call close() and write a valid trailer for whatever was
        # written so far; an abandoned writer must not produce a plausible-looking stream.
        if not self.closed and hasattr(self, "_inflight"):  # hasattr: __init__ may have raised
            self._abort()
            self._shutdown()

    # internals ------------------------------------------------------------------------------

    def _abort(self) -> None:
        self._finished = True
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _submit(self, block: bytes, last: bool) -> None:
        zdict = self._window
        self._window = (zdict + block)[-WINDOW_SIZE:] if len(block) < WINDOW_SIZE \
            else block[-WINDOW_SIZE:]
        if self._jobs == 1:
            # One thread: compress inline, no pool, same bytes.
            self._sink.write(_compress_block(self._level, zdict, block, last))
            return
        # Bound memory: wait for the oldest block before a 2*jobs+1-th goes in flight. Twice
        # the thread count keeps every thread busy while the oldest result is being written.
        while len(self._inflight) >= 2 * self._jobs:
            self._sink.write(self._inflight.popleft().result())
        if last and not self._inflight:
            # A one-block input (a hello binary): compress here rather than start a thread.
            self._sink.write(_compress_block(self._level, zdict, block, last))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self._jobs,
                                            thread_name_prefix="hellocontainer-gzip")
        self._inflight.append(self._pool.submit(_compress_block, self._level, zdict, block,
                                                last))
