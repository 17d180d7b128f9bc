"""Layer streams: their compression, inflating them in bounded steps, and tar headers parsed
from the stream.

A layer is untrusted and may inflate to any size, so nothing here holds more than a chunk: gzip
and zstd are inflated step by step (a bomb stays a stream), and tar headers, PAX records and GNU
long names are parsed as they go by, a header that claims more bytes than the stream holds being
an error rather than a spin. The reader verifies the blob these bytes come from.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Generator, Iterator
from typing import Any

from ..errors import LayoutError
from . import model
from .model import Descriptor
from .safefile import CHUNK

MAX_TAR_META = 1 << 20  # a PAX record set or GNU long name: real ones are a few hundred bytes

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compression_of(media_type: str) -> str | None:
    """gzip, zstd or none for a layer media type; None for types that are not layers we read."""
    if media_type in (model.MEDIA_LAYER_GZIP, model.MEDIA_DOCKER_LAYER_GZIP):
        return "gzip"
    if media_type == model.MEDIA_LAYER_ZSTD:
        return "zstd"
    if media_type == model.MEDIA_LAYER_TAR:
        return "none"
    return None


def sniff(head: bytes) -> str:
    """The compression the first bytes of a layer show: gzip, zstd, none (a tar) or unknown."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[257:262] == b"ustar" or head == b"\0" * len(head):
        return "none"
    return "unknown"


class Member:
    """One tar entry of a layer, as read from the stream."""

    # A plain class (see oci/value.py): one is made per entry of every layer read.
    __slots__ = (
        "_stream",
        "absolute",
        "gid",
        "gname",
        "kind",
        "linkname",
        "mode",
        "mtime",
        "path",
        "size",
        "typeflag",
        "uid",
        "uname",
    )

    def __init__(self, *, path: str, kind: str, mode: int, uid: int, gid: int, mtime: int,
                 size: int, linkname: str, uname: str, gname: str, absolute: bool = False,
                 typeflag: str = "", stream: TarStream | None = None) -> None:
        self.path = path  # leading "./" and "/" stripped; may hold ".." (a layer is untrusted)
        self.kind = kind  # file, dir, symlink, hardlink, char, block, fifo
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.size = size
        self.linkname = linkname
        self.uname = uname
        self.gname = gname
        self.absolute = absolute  # the name began with "/" (read inside the root all the same)
        self.typeflag = typeflag  # the tar type as written, to name an unknown one
        self._stream = stream  # where a regular file's content is read from

    def __repr__(self) -> str:
        return f"Member(path={self.path!r}, kind={self.kind!r}, size={self.size})"

    def chunks(self) -> Iterator[bytes]:
        """The content of a regular file, read from the layer stream (once, before advancing)."""
        if self._stream is None or self.kind != "file":
            return iter(())
        return self._stream.content(self.size, self.path)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """`first` (a chunk already taken to sniff it), then the rest of the stream."""
    if first:
        yield first
    yield from rest


def layer_compression(layer: Descriptor) -> str:
    """The compression of a layer we read (gzip, zstd, none); any other media type is refused."""
    compression = compression_of(layer.media_type)
    if compression is None:
        raise LayoutError(f"layer {layer.digest} has media type {layer.media_type}, "
                          "which is not a layer this tool reads")
    return compression


def inflate(source: Generator[bytes, None, None], compression: str, layer: Descriptor) -> Iterator[bytes]:
    """The uncompressed bytes of a layer whose blob streams as `source`, once its first bytes
    show the compression its media type says."""
    first = next(source, b"")
    actual = sniff(first[:512])
    if actual != compression and not (compression == "none" and first == b""):
        source.close()
        raise LayoutError(f"layer {layer.digest}: media type {layer.media_type} says "
                          f"{compression}, but the bytes are {actual}")
    try:
        yield from decompress(_prepend(first, source), compression, layer.digest)
    except LayoutError:
        # Damaged bytes usually break the compression before the digest can be compared;
        # the digest is the root cause worth naming, so finish hashing and report it first.
        for _ in source:
            pass
        raise


def decompress(chunks: Iterator[bytes], compression: str, name: str) -> Iterator[bytes]:
    """Inflate a layer stream with bounded output per step (a gzip bomb stays a stream)."""
    if compression == "none":
        yield from chunks
    elif compression == "gzip":
        yield from _gunzip(chunks, name)
    elif compression == "zstd":
        yield from _unzstd(chunks, name)
    else:
        raise LayoutError(f"cannot decompress {compression} data")


def _gunzip(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    leftover = b""
    try:
        for chunk in chunks:
            data, leftover = leftover + chunk, b""
            while data:
                if decompressor.eof:
                    # A gzip file may hold several members back to back (pigz -i, cat a.gz b.gz);
                    # anything else after a member is damage.
                    if len(data) < len(GZIP_MAGIC):
                        leftover = data  # wait for the next chunk to see the magic
                        break
                    if not data.startswith(GZIP_MAGIC):
                        raise LayoutError(f"layer {name}: trailing garbage after the gzip data")
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = decompressor.decompress(data, CHUNK)
                if out:
                    yield out
                # Input beyond what fits in CHUNK of output waits in unconsumed_tail; when all
                # input went in but the output filled up, zlib may still hold more output.
                while not decompressor.eof and not decompressor.unconsumed_tail \
                        and len(out) == CHUNK:
                    out = decompressor.decompress(b"", CHUNK)
                    if out:
                        yield out
                data = decompressor.unused_data if decompressor.eof \
                    else decompressor.unconsumed_tail
    except zlib.error as error:
        raise LayoutError(f"layer {name} is not valid gzip: {error}") from None
    if leftover:
        raise LayoutError(f"layer {name}: trailing garbage after the gzip data")
    if not decompressor.eof:
        raise LayoutError(f"layer {name}: the gzip stream is truncated")


def _unzstd(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise LayoutError("reading a zstd layer needs the optional Python module zstandard "
                          "(pip install zstandard)") from None
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            # zstandard's decompressobj has no output bound; feed small slices instead, so one
            # step inflates at most a slice's worth of frames.
            for start in range(0, len(chunk), 4096):
                out = decompressor.decompress(chunk[start:start + 4096])
                for i in range(0, len(out), CHUNK):
                    yield out[i:i + CHUNK]
    except zstandard.ZstdError as error:
        raise LayoutError(f"layer {name} is not valid zstd: {error}") from None


class TarStream:
    """Parse tar headers from a stream of chunks, never holding more than one chunk."""

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._name = name
        self._taken = 0  # content bytes taken so far: what a consumer left of a member is skipped

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def _take(self, size: int, path: str, claimed: int) -> Iterator[bytes]:
        """The next `size` bytes of the stream, at most CHUNK at a time."""
        remaining = size
        while remaining > 0:
            if not self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    raise LayoutError(f"layer {self._name}: the layer ends inside the content "
                                      f"of {path}, which claims {claimed} bytes; the layer is "
                                      "truncated")
                self._buffer += chunk
            step = min(remaining, len(self._buffer), CHUNK)
            out = bytes(self._buffer[:step])
            del self._buffer[:step]
            remaining -= step
            self._taken += step
            yield out

    def content(self, size: int, path: str) -> Iterator[bytes]:
        return self._take(size, path, size)

    def _skip(self, size: int, path: str, claimed: int) -> None:
        for _ in self._take(size, path, claimed):
            pass

    def drain(self) -> None:
        """Read the rest of the stream, so that the blob's digest is checked at its end."""
        self._buffer.clear()
        for _ in self._chunks:
            pass

    def members(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            header = self._read(512)
            if len(header) == 0 or header == b"\0" * 512:
                if pax or long_name is not None or long_link is not None:
                    raise LayoutError(f"layer {self._name}: the tar stream ends after an "
                                      "extended header, before the member it describes")
                self.drain()
                return
            if len(header) < 512:
                raise LayoutError(f"layer {self._name}: the tar stream ends inside a header")
            fields = _parse_header(header, self._name)
            typeflag = fields["type"]
            size = fields["size"]
            padded = size + (-size % 512)
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > MAX_TAR_META:
                    raise LayoutError(f"layer {self._name}: a tar extended header of {size} bytes "
                                      "is too large")
                data = self._read(padded)[:size]
                if len(data) < size:
                    raise LayoutError(f"layer {self._name}: the tar stream ends inside a header")
                if typeflag == b"x":
                    pax.update(_parse_pax(data, self._name))
                elif typeflag == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif typeflag == b"K":
                    long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue  # global headers ('g') carry nothing we report
            path = pax.get("path") or long_name or fields["name"]
            linkname = pax.get("linkpath") or long_link or fields["linkname"]
            size = _pax_int(pax, "size", size, self._name)
            kind = _KIND.get(typeflag, "other")
            member = Member(
                path=_clean(path), kind=kind,
                mode=fields["mode"] & 0o7777,
                uid=_pax_int(pax, "uid", fields["uid"], self._name),
                gid=_pax_int(pax, "gid", fields["gid"], self._name),
                mtime=_pax_mtime(pax, fields["mtime"], self._name),
                size=size if typeflag in (b"0", b"\0", b"7") else 0,
                linkname=linkname,
                uname=pax.get("uname", fields["uname"]), gname=pax.get("gname", fields["gname"]),
                absolute=path.startswith("/"),
                typeflag=typeflag.decode("latin-1"),
                stream=self if kind == "file" else None,
            )
            data_size = size if typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
            pax, long_name, long_link = {}, None, None
            # The consumer may read the content via chunks(); whatever it leaves is skipped, then
            # the padding to the next 512-byte block.
            start = self._taken
            yield member
            self._skip(start + data_size - self._taken, member.path, data_size)
            # The padding to the next block. A stream that ends right after the content, with
            # neither padding nor end-of-archive blocks (umoci 0.4.7's `insert` writes such
            # layers), ends there: Go's archive/tar, and so containers/storage, reads it so.
            # A stream that ends inside the padding is cut short, and refused.
            padding = -data_size % 512
            if 0 < len(self._read(padding)) < padding:
                raise LayoutError(f"layer {self._name}: the layer ends inside the padding after "
                                  f"{member.path}; the layer is truncated")


_KIND = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
         b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}


def _clean(path: str) -> str:
    """Tar names as written (`./usr/bin`, `/usr/bin`, `usr/bin/`) reduced to `usr/bin`."""
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/").rstrip("/") if path not in (".", "./") else ""


def _number(field: bytes, name: str) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise LayoutError(f"layer {name}: a tar header has a malformed number {text!r}") from None


def _parse_header(header: bytes, name: str) -> dict[str, Any]:
    stored = _number(header[148:156], name)
    actual = sum(header[:148]) + 8 * 32 + sum(header[156:])
    if stored != actual:
        raise LayoutError(f"layer {name}: a tar header's checksum is wrong; the layer is damaged")

    def text(start: int, end: int) -> str:
        return header[start:end].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    member = text(0, 100)
    if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
        member = text(345, 500) + "/" + member
    size = _number(header[124:136], name)
    if size < 0:
        raise LayoutError(f"layer {name}: a tar header has a negative size")
    return {"name": member, "mode": _number(header[100:108], name),
            "uid": _number(header[108:116], name), "gid": _number(header[116:124], name),
            "size": size, "mtime": _number(header[136:148], name), "type": header[156:157],
            "linkname": text(157, 257), "uname": text(265, 297), "gname": text(297, 329)}


def _parse_pax(data: bytes, name: str) -> dict[str, str]:
    """PAX records: `LEN key=value\\n`, LEN counting the whole record."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            raise LayoutError(f"layer {name}: a PAX header is malformed") from None
        if space < 0 or length <= 0 or position + length > len(data):
            raise LayoutError(f"layer {name}: a PAX header is malformed")
        record = data[space + 1:position + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


# POSIX pax: a time is decimal seconds, optionally with a fraction ("1700000000.123456789").
# `float()` would take nan, 1e400 and "  1_0", and int(float("1e400")) raises OverflowError.
_PAX_NUMBER = re.compile(r"-?[0-9]{1,19}")
_PAX_TIME = re.compile(r"(-?[0-9]{1,19})(?:\.[0-9]{1,64})?")


def _pax_mtime(pax: dict[str, str], default: int, name: str) -> int:
    """A PAX mtime as whole seconds (the fraction dropped, as ustar keeps them), or one error."""
    if "mtime" not in pax:
        return default
    match = _PAX_TIME.fullmatch(pax["mtime"])
    if match is None:
        raise LayoutError(f"layer {name}: PAX mtime {pax['mtime']!r} is not a time in seconds")
    return int(match.group(1))


def _pax_int(pax: dict[str, str], key: str, default: int, name: str) -> int:
    if key not in pax:
        return default
    if not _PAX_NUMBER.fullmatch(pax[key]):  # int() would also take " 1", "1_0" and "+1"
        raise LayoutError(f"layer {name}: PAX {key} {pax[key]!r} is not a number")
    value = int(pax[key])
    if value < 0:
        raise LayoutError(f"layer {name}: PAX {key} is negative")
    return value
