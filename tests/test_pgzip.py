"""The parallel gzip writer: real gzip reads its output, and the bytes ignore the thread count."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import require_tool
from hellocontainer.image.pgzip import DEFAULT_BLOCK_SIZE, GzipWriter, default_jobs

BLOCK = DEFAULT_BLOCK_SIZE


@functools.cache
def machine_code() -> bytes:
    """The ELF files mapped into this process (interpreter, libc, extensions): real code."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    paths = sorted({line.split()[-1] for line in maps if line.split()[-1].startswith("/")})
    # is_file: skip device mappings such as /dev/zero, which never end.
    contents = (Path(path).read_bytes() for path in paths if Path(path).is_file())
    return b"".join(data for data in contents if data.startswith(b"\x7fELF"))


def realistic(size: int) -> bytes:
    """`size` bytes of real machine code (repeated if this process maps less than that)."""
    code = machine_code()
    return (code * (size // len(code) + 1))[:size]


def incompressible(size: int) -> bytes:
    """`size` bytes that deflate cannot shrink, the same on every run (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def half_random(size: int, run: int = 48 * 1024) -> bytes:
    """Machine code and random bytes taking turns in runs of `run` bytes: every block holds
    some of each, or is one of them, depending on the run length."""
    pieces, random_turn, left = [], False, size
    code, noise = realistic(size), incompressible(size)
    while left > 0:
        take = min(run, left)
        start = size - left
        pieces.append((noise if random_turn else code)[start:start + take])
        random_turn, left = not random_turn, left - take
    return b"".join(pieces)


INPUTS = {
    "empty": lambda: b"",
    "smaller-than-a-block": lambda: realistic(5000),
    "exactly-one-block": lambda: realistic(BLOCK),
    "one-block-and-a-byte": lambda: realistic(BLOCK + 1),
    "many-blocks": lambda: realistic(10 * BLOCK + 12345),
    "incompressible": lambda: incompressible(3 * BLOCK + 7),
    "half-random": lambda: half_random(6 * BLOCK + 99),
}


def pgzip(data: bytes, jobs: int = 2, level: int = 9, block_size: int = BLOCK,
          chunk: int = 65536) -> bytes:
    sink = io.BytesIO()
    with GzipWriter(sink, level=level, jobs=jobs, block_size=block_size) as writer:
        for start in range(0, len(data), chunk):
            writer.write(data[start:start + chunk])
    return sink.getvalue()


@pytest.mark.parametrize("name", INPUTS)
def test_gzip_tool_decompresses_output_to_input(name: str, tmp_path: Path) -> None:
    tool = require_tool("gzip", "gzip")
    data = INPUTS[name]()
    compressed = tmp_path / "layer.gz"
    compressed.write_bytes(pgzip(data))
    result = subprocess.run([tool, "-d", "-c", str(compressed)], capture_output=True, check=True)
    assert result.stdout == data


@pytest.mark.parametrize("name", INPUTS)
def test_python_gzip_decompresses_output_to_input(name: str) -> None:
    data = INPUTS[name]()
    assert gzip.decompress(pgzip(data)) == data


@pytest.mark.parametrize("name", INPUTS)
def test_output_bytes_are_the_same_for_1_2_and_4_threads(name: str) -> None:
    data = INPUTS[name]()
    outputs = {jobs: pgzip(data, jobs=jobs) for jobs in (1, 2, 4)}
    assert outputs[1] == outputs[2] == outputs[4]


def test_output_bytes_do_not_depend_on_how_writes_are_chunked() -> None:
    data = realistic(3 * BLOCK + 100)
    one_byte_at_a_time = pgzip(data, chunk=1)
    assert gzip.decompress(one_byte_at_a_time) == data
    assert one_byte_at_a_time == pgzip(data, chunk=7) == pgzip(data, chunk=BLOCK) \
        == pgzip(data, chunk=len(data))


def test_blocks_smaller_than_the_deflate_window_decompress_and_ignore_threads() -> None:
    # With 4 KiB blocks a block's 32 KiB dictionary spans eight earlier blocks.
    data = realistic(200_000)
    outputs = {jobs: pgzip(data, jobs=jobs, block_size=4096) for jobs in (1, 3)}
    assert outputs[1] == outputs[3]
    assert gzip.decompress(outputs[1]) == data


@pytest.mark.parametrize(("level", "xfl"), [(9, 2), (1, 4), (6, 0)])
def test_header_is_pinned_with_no_name_no_time_and_unknown_os(level: int, xfl: int) -> None:
    header = pgzip(realistic(1000), level=level)[:10]
    #                 ID1   ID2   CM    FLG   MTIME---------------  XFL   OS
    assert header == bytes([0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, xfl, 0xFF])


def test_close_writes_the_trailer_but_leaves_the_sink_open() -> None:
    sink = io.BytesIO()
    writer = GzipWriter(sink, jobs=2)
    writer.write(b"hello")
    writer.close()
    assert not sink.closed
    assert sink.getvalue()[-8:] == (0x3610A686).to_bytes(4, "little") + (5).to_bytes(4, "little")


def test_sink_needs_only_a_write_method() -> None:
    class WriteOnly:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes) -> int:
            self.data += data
            return len(data)

    sink = WriteOnly()
    with GzipWriter(sink, jobs=2) as writer:  # type: ignore[arg-type]
        writer.write(realistic(3 * BLOCK))
        writer.flush()
    assert gzip.decompress(bytes(sink.data)) == realistic(3 * BLOCK)


def test_failure_inside_the_with_block_leaves_no_valid_stream() -> None:
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), GzipWriter(sink, jobs=2) as writer:
        writer.write(realistic(3 * BLOCK))
        raise RuntimeError("input ended early")
    with pytest.raises((EOFError, gzip.BadGzipFile)):
        gzip.decompress(sink.getvalue())


@pytest.mark.parametrize("level", [0, 10])
def test_level_outside_1_to_9_is_refused(level: int) -> None:
    with pytest.raises(ValueError, match="level"):
        GzipWriter(io.BytesIO(), level=level)


# --- the level: the deflate stream itself, not only the header byte that names it ----------

def deflate_body(member: bytes) -> bytes:
    """The deflate stream of a gzip member with no optional header fields."""
    assert member[3] == 0, "FLG must be 0: no optional fields"
    return member[10:-8]


def zlib_raw_deflate(data: bytes, level: int, zdict: bytes = b"", last: bool = True) -> bytes:
    extra = (zdict,) if zdict else ()
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, *extra)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize("level", range(1, 10))
def test_one_block_is_exactly_zlibs_deflate_at_the_level(level: int) -> None:
    data = realistic(50_000)
    assert deflate_body(pgzip(data, level=level)) == zlib_raw_deflate(data, level)


# The format's constants, written out rather than imported: changing either changes the bytes
# of every layer, so a change must show up here as a decision, not slip through.
FORMAT_BLOCK = 128 * 1024
FORMAT_WINDOW = 32 * 1024


def stored_blocks(data: bytes, last: bool) -> bytes:
    """`data` as RFC 1951 stored blocks of at most 65,535 bytes, starting byte-aligned."""
    starts = list(range(0, len(data), 65535)) or [0]
    return b"".join(bytes([int(last and start == starts[-1])])
                    + struct.pack("<HH", len(data[start:start + 65535]),
                                  0xFFFF ^ len(data[start:start + 65535]))
                    + data[start:start + 65535] for start in starts)


def reference_piece(block: bytes, level: int, zdict: bytes, last: bool) -> bytes:
    """One block as the module docstring's rule writes it: stored when four 2 KiB samples at
    quarters of a block of at least 8 KiB do not deflate (level 1), else deflated unless that
    is longer than stored."""
    stored = stored_blocks(block, last)
    samples = [block[q * len(block) // 4:][:2048] for q in range(4)]
    if len(block) >= 8192 and all(len(zlib_raw_deflate(s, 1)) >= len(s) for s in samples):
        return stored
    deflated = zlib_raw_deflate(block, level, zdict, last)
    return stored if len(deflated) > len(stored) else deflated


def reference_pieces(data: bytes, level: int, block: int = FORMAT_BLOCK) -> list[bytes]:
    """Each block's piece, from zlib calls alone: the format the module docstring promises
    (fixed cuts, the 32 KiB before a block as its dictionary, sync-flushed, stored when deflate
    does not pay)."""
    cuts = range(0, len(data), block) if data else range(1)
    return [reference_piece(data[start:start + block], level,
                            zdict=data[max(0, start - FORMAT_WINDOW):start],
                            last=start == cuts[-1]) for start in cuts]


@pytest.mark.parametrize("level", [1, 6, 9])
def test_each_block_is_zlibs_deflate_at_the_level_primed_with_the_32_kib_before_it(
        level: int) -> None:
    data = realistic(3 * FORMAT_BLOCK + 4321)
    assert BLOCK == FORMAT_BLOCK
    expected = b"".join(reference_pieces(data, level))
    assert deflate_body(pgzip(data, level=level, jobs=3)) == expected


@pytest.mark.parametrize("block_size", [4096, 40_000, 70_000])
def test_blocks_of_any_size_are_primed_with_the_whole_window(block_size: int) -> None:
    """Smaller than the window, between one and two windows, and larger: each block's
    dictionary is the 32 KiB before it, however many blocks that spans."""
    data = realistic(5 * block_size + 17)
    expected = b"".join(reference_pieces(data, 6, block=block_size))
    assert deflate_body(pgzip(data, level=6, jobs=2, block_size=block_size)) == expected


def test_at_most_twice_the_threads_blocks_wait_in_memory() -> None:
    """Memory stays bounded: after each block goes to the threads, all but the newest
    2 x jobs blocks have been written to the sink (and dropped from memory)."""
    jobs, block = 2, 4096
    data = realistic(20 * block)
    pieces = reference_pieces(data, 9, block=block)
    sink = io.BytesIO()
    writer = GzipWriter(sink, level=9, jobs=jobs, block_size=block)
    for n in range(20):
        writer.write(data[n * block:(n + 1) * block])
        submitted = n  # the block just written is held back until more input shows it is not last
        written = max(0, submitted - 2 * jobs)
        assert len(sink.getvalue()) == 10 + sum(map(len, pieces[:written])), f"after block {n}"
    writer.close()
    assert deflate_body(sink.getvalue()) == b"".join(pieces)


def test_higher_levels_give_smaller_layers() -> None:
    data = realistic(4 * BLOCK)
    sizes = [len(pgzip(data, level=level)) for level in (1, 4, 9)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[2], sizes


def test_trailer_holds_the_length_modulo_2_to_the_32() -> None:
    """ISIZE wraps, as RFC 1952 says; checked on a writer that only counts (no 4 GiB input)."""
    sink = io.BytesIO()
    writer = GzipWriter(sink, jobs=1)
    writer.write(b"x")
    writer._size = (1 << 32) + 1  # as if 4 GiB more had gone through
    writer.close()
    assert sink.getvalue()[-4:] == (1).to_bytes(4, "little")


def test_tell_counts_uncompressed_bytes() -> None:
    writer = GzipWriter(io.BytesIO(), jobs=2)
    writer.write(b"abc")
    writer.write(memoryview(b"defg"))
    assert writer.tell() == 7 and writer.writable()
    writer.close()


def test_write_after_close_is_refused_and_close_twice_is_harmless() -> None:
    sink = io.BytesIO()
    writer = GzipWriter(sink, jobs=2)
    writer.write(b"data")
    writer.close()
    length = len(sink.getvalue())
    writer.close()
    writer.flush()  # a closed writer's flush touches nothing
    assert len(sink.getvalue()) == length
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_flush_passes_on_to_the_sink_while_open() -> None:
    flushed = []

    class Sink(io.BytesIO):
        def flush(self) -> None:
            flushed.append(len(self.getvalue()))

    writer = GzipWriter(Sink(), jobs=2)
    writer.flush()
    assert flushed == [10]  # the header, nothing else: no deflate flush point
    writer.close()
    before = list(flushed)
    writer.flush()  # closed: nothing to pass on
    assert flushed == before


def test_flush_adds_no_deflate_flush_point() -> None:
    """Flushing between writes must not change the bytes: they may only depend on the input."""
    data = realistic(2 * BLOCK + 99)
    sink = io.BytesIO()
    with GzipWriter(sink, jobs=2) as writer:
        for start in range(0, len(data), 1000):
            writer.write(data[start:start + 1000])
            writer.flush()
    assert sink.getvalue() == pgzip(data)


def test_abandoned_writer_leaves_no_plausible_stream() -> None:
    """A writer dropped without close (an exception elsewhere) writes no trailer."""
    sink = io.BytesIO()
    writer = GzipWriter(sink, jobs=2)
    writer.write(realistic(3 * BLOCK))
    del writer
    with pytest.raises((EOFError, gzip.BadGzipFile)):
        gzip.decompress(sink.getvalue())


@pytest.mark.parametrize(("argument", "value"), [("jobs", 0), ("block_size", 0)])
def test_jobs_and_block_size_below_one_are_refused(argument: str, value: int) -> None:
    with pytest.raises(ValueError, match=argument):
        GzipWriter(io.BytesIO(), **{argument: value})


def test_default_jobs_is_the_cores_this_process_may_use() -> None:
    import os

    assert default_jobs() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("jobs", "threads"), [(1, False), (2, True)])
def test_one_job_compresses_on_the_calling_thread(jobs: int, threads: bool) -> None:
    """jobs=1 (a one-core build machine, or -j 1) starts no thread at all."""
    import threading

    with GzipWriter(io.BytesIO(), jobs=jobs) as writer:
        writer.write(realistic(4 * BLOCK))
        started = any(t.name.startswith("hellocontainer-gzip") for t in threading.enumerate())
    assert started == threads


def test_a_match_almost_32_kib_back_across_a_cut_is_found() -> None:
    """zlib reaches back 32 KiB - 262 bytes: a block's dictionary must hold all of that.
    Random bytes, where the only repeat starts 32068 bytes before the second block."""
    first = incompressible(FORMAT_WINDOW)
    data = first + first[700:800] + incompressible(1000)[::-1]
    output = pgzip(data, level=9, jobs=1, block_size=FORMAT_WINDOW)
    pieces = reference_pieces(data, 9, block=FORMAT_WINDOW)
    assert deflate_body(output) == b"".join(pieces)
    # The first block is random: stored. The repeat really is found: the second block is far
    # smaller than its 1100 input bytes.
    assert pieces[0] == stored_blocks(first, last=False)
    assert len(pieces[1]) < 1100


def test_blocks_of_one_byte_are_allowed() -> None:
    data = realistic(300)
    assert gzip.decompress(pgzip(data, block_size=1)) == data


def test_default_jobs_follows_the_cpu_affinity() -> None:
    """`taskset -c 0 hellocontainer build …` compresses on one thread."""
    import os

    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert default_jobs() == 1
    finally:
        os.sched_setaffinity(0, allowed)


def test_refused_writer_leaves_nothing_to_clean_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer whose arguments were refused has no threads or blocks: freeing it must not
    fail (an exception in __del__ is printed on stderr as "Exception ignored in")."""
    import gc
    import sys

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    for arguments in ({"level": 0}, {"jobs": 0}, {"block_size": 0}):
        with pytest.raises(ValueError) as refused:
            GzipWriter(io.BytesIO(), **arguments)  # type: ignore[arg-type]
        del refused  # its traceback holds the half-made writer
        gc.collect()
    assert unraisable == []


def test_incompressible_blocks_are_stored_and_smaller_than_zlibs_own_fallback() -> None:
    data = incompressible(3 * FORMAT_BLOCK + 7)
    output = pgzip(data, level=9)
    # Each full 128 KiB block as stored pieces of 65,535 bytes and 5 header bytes; the 7-byte
    # tail, too short to sample, is deflated as before (shorter than stored there).
    full = 3 * FORMAT_BLOCK
    assert deflate_body(output) == b"".join(
        stored_blocks(data[s:s + FORMAT_BLOCK], last=False) for s in range(0, full, FORMAT_BLOCK)
    ) + zlib_raw_deflate(data[full:], 9, data[full - FORMAT_WINDOW:full])
    assert gzip.decompress(output) == data
    assert len(output) < len(gzip.compress(data, 9, mtime=0))


@pytest.mark.parametrize("run", [4096, 48 * 1024, 300 * 1024])
@pytest.mark.parametrize("level", [1, 3, 9])
def test_half_random_input_is_no_bigger_than_plain_deflate(run: int, level: int) -> None:
    """Whatever the mix within a block, the stored fallback never makes a layer bigger than
    deflating every block as before would."""
    data = half_random(8 * FORMAT_BLOCK + 1234, run)
    output = pgzip(data, level=level)
    assert gzip.decompress(output) == data
    cuts = range(0, len(data), FORMAT_BLOCK)
    plain = sum(len(zlib_raw_deflate(data[s:s + FORMAT_BLOCK], level,
                                     data[max(0, s - FORMAT_WINDOW):s], s == cuts[-1]))
                for s in cuts)
    assert len(deflate_body(output)) <= plain


def test_compressible_blocks_keep_their_bytes() -> None:
    """Code is deflated exactly as before the stored fallback: its layers' digests stand."""
    data = realistic(4 * FORMAT_BLOCK + 99)
    cuts = range(0, len(data), FORMAT_BLOCK)
    assert deflate_body(pgzip(data)) == b"".join(
        zlib_raw_deflate(data[s:s + FORMAT_BLOCK], 9, data[max(0, s - FORMAT_WINDOW):s],
                         s == cuts[-1]) for s in cuts)
