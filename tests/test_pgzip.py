"""The parallel gzip writer: real gzip reads its output, and the bytes ignore the thread count."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from hellocontainer.pgzip import DEFAULT_BLOCK_SIZE, GzipWriter

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


INPUTS = {
    "empty": lambda: b"",
    "smaller-than-a-block": lambda: realistic(5000),
    "exactly-one-block": lambda: realistic(BLOCK),
    "one-block-and-a-byte": lambda: realistic(BLOCK + 1),
    "many-blocks": lambda: realistic(10 * BLOCK + 12345),
    "incompressible": lambda: incompressible(3 * BLOCK + 7),
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
    assert pgzip(data, chunk=1) != b""  # sanity: a byte at a time works at all
    assert pgzip(data, chunk=7) == pgzip(data, chunk=BLOCK) == pgzip(data, chunk=len(data))


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
