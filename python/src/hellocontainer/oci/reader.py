"""The one way into an image layout on disk: safe, streaming and bounded, whoever wrote it.

validate, inspect, diff, index, bundle, gc and a build merging into an existing layout all read
layouts through this module, because a layout is untrusted input: another tool, a half-finished
copy or an attacker may have written it. The hard part is that every byte of it can lie, so:

- A file is opened only if it is a regular file inside the layout. A symbolic link that leads out
  of the layout is refused before anything is opened, so no outside file is ever read, hashed or
  reported; FIFOs and devices are refused without blocking (O_NONBLOCK, then fstat).
- JSON documents are read with a size cap and parsed with a depth guard; a blob is verified against
  its descriptor's digest and size before its content is believed.
- Layers are decompressed in bounded steps and tar headers parsed from the stream, so memory stays
  constant whatever a layer inflates to, and a header claiming more bytes than the stream holds is
  an error rather than a spin.
- Index graphs are walked iteratively with a visited set and a depth cap: each blob once, time
  linear in the number of distinct blobs.

Every failure is a LayoutError carrying one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LayoutError, SpecError, os_error_message
from . import model, referrers, schema
from .model import Descriptor
from .walk import Edge, Node, walk

CHUNK = 1 << 20  # read and inflate 1 MiB at a time: memory does not grow with a blob's size
JSON_CAP = 16 << 20  # index.json, manifests, configs: far above any real one (a few KiB)
KEPT_DOCUMENT_BYTES = 64 << 10  # documents this small are read once per reader (real: a few KiB)
MAX_TAR_META = 1 << 20  # a PAX record set or GNU long name: real ones are a few hundred bytes

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# descriptor.md: digest := algorithm ":" encoded. Only this grammar ever becomes a path, which is
# what keeps `blobs/sha256/../../x` out: neither part can hold "/" or "..".
DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
# The registered algorithms we can verify, with the encoding each must have ([A-F] must not be used).
ALGORITHMS: dict[str, tuple[Callable[[], Any], re.Pattern[str]]] = {
    "sha256": (hashlib.sha256, re.compile(r"[a-f0-9]{64}")),
    "sha512": (hashlib.sha512, re.compile(r"[a-f0-9]{128}")),
}


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


def check_digest(digest: str) -> tuple[str, str]:
    """(algorithm, encoded) of a digest, or a LayoutError if it breaks the grammar."""
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise LayoutError(f"digest {digest!r} does not match the OCI digest grammar "
                          "(algorithm:encoded, e.g. sha256 and 64 lowercase hex digits)")
    algorithm, encoded = match.groups()
    known = ALGORITHMS.get(algorithm)
    if known is not None and not known[1].fullmatch(encoded):
        raise LayoutError(f"digest {digest!r} is not {algorithm} followed by its hex digits "
                          "in lowercase")
    return algorithm, encoded


def verifiable(digest: str) -> bool:
    """Whether we can compute this digest (registered algorithms); others can only be warned of."""
    return digest.split(":", 1)[0] in ALGORITHMS


def descriptor_from(data: Any, where: str) -> Descriptor:
    """A Descriptor from untrusted JSON: shape-checked, so no KeyError or TypeError escapes."""
    if not isinstance(data, dict):
        raise LayoutError(f"{where}: a descriptor must be a JSON object, not {_json_type(data)}")
    for key, kind in (("mediaType", str), ("digest", str), ("size", int)):
        value = data.get(key)
        if value is None:
            raise LayoutError(f"{where}: the descriptor has no {key}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LayoutError(f"{where}: the descriptor's {key} is {_json_type(value)}")
    if data["size"] < 0:
        raise LayoutError(f"{where}: the descriptor's size is negative")
    try:
        check_digest(data["digest"])
    except LayoutError as error:
        raise LayoutError(f"{where}: {error}") from None  # which descriptor, like the others
    for key in ("platform", "annotations"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            raise LayoutError(f"{where}: the descriptor's {key} is {_json_type(data[key])}")
    annotations = data.get("annotations") or {}
    if not all(isinstance(v, str) for v in annotations.values()):
        raise LayoutError(f"{where}: the descriptor's annotations must map strings to strings")
    return Descriptor.from_json(data)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, what: str) -> Any:
    """JSON from bytes we read; any malformation is one LayoutError line."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise LayoutError(f"{what} nests JSON too deeply to be an OCI document") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise LayoutError(f"{what} is not valid JSON: {error}") from None


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link",
          stat.S_IFREG: "a regular file"}  # `validate FILE`: "layout FILE is a regular file"


def file_kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: Path, what: str, follow: bool = True) -> int:
    """A read-only descriptor of `path`, refusing (without blocking) anything but a regular file.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; fstat on the
    open descriptor then decides, so the check and the read concern the same file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise LayoutError(os_error_message(error, what)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LayoutError(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_bounded(fd: int, cap: int, what: str) -> bytes:
    """At most `cap` bytes of an open file; more is an error, so /dev/zero-like input cannot grow us."""
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            part = os.read(fd, min(CHUNK, cap + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
            if total > cap:
                raise LayoutError(f"{what} is larger than {cap >> 20} MiB, the limit for this file")
    except OSError as error:
        raise LayoutError(os_error_message(error, what)) from None
    finally:
        os.close(fd)
    return b"".join(parts)


def read_input_text(path: Path, what: str, cap: int, fix: str, encoding_fix: str) -> str:
    """The UTF-8 text of a small file the user names (a spec file, the target's passwd): a
    regular file of at most `cap` bytes. Every problem is one SpecError ending in `fix`
    (`encoding_fix` for text that is not UTF-8)."""
    try:
        data = read_bounded(open_regular(path, what), cap, f"{what} {path}")
    except LayoutError as error:
        raise SpecError(f"{error}; {fix}") from None
    except OSError as error:
        raise SpecError(os_error_message(error, f"{what} {path}", fix)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{what} {path} is not UTF-8 text ({error.reason} at byte "
                        f"{error.start}); {encoding_fix}") from None


@dataclass(frozen=True)
class Image:
    """One single-platform image of a layout, its documents verified."""

    manifest_descriptor: Descriptor
    manifest: dict[str, Any]
    config_descriptor: Descriptor
    config: dict[str, Any]
    layers: list[Descriptor]

    @property
    def platform(self) -> dict[str, str]:
        return model.config_platform(self.config)


@dataclass
class Member:
    """One tar entry of a layer, as read from the stream."""

    path: str  # leading "./" and "/" stripped; may hold ".." (a layer is untrusted)
    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    linkname: str
    uname: str
    gname: str
    _stream: _TarStream | None = None

    def chunks(self) -> Iterator[bytes]:
        """The content of a regular file, read from the layer stream (once, before advancing)."""
        if self._stream is None or self.kind != "file":
            return iter(())
        return self._stream.content(self.size, self.path)


class LayoutReader:
    """Read access to the image layout at `root`, ours or another tool's, trusting none of it."""

    def __init__(self, root: Path, check: bool = True) -> None:
        self.root = root
        try:
            info = os.stat(root)
        except OSError as error:
            raise LayoutError(os_error_message(error, "layout")) from None
        if not stat.S_ISDIR(info.st_mode):
            raise LayoutError(f"layout {root} is {file_kind(info.st_mode)}, not a directory")
        # The layout itself may be reached through a link (a deploy folder's stable name); what is
        # inside it may not leave it.
        self._real_root = os.path.realpath(root)
        self._documents: dict[tuple[str, int, str], bytes] = {}  # see document()
        if check:
            # Every command reads oci-layout first: a folder that is not a layout, or whose
            # marker file is a FIFO or a bomb, is refused before anything else is opened.
            document = self.oci_layout()
            if not isinstance(document, dict) or not isinstance(
                    document.get("imageLayoutVersion"), str):
                raise LayoutError(f"{root}/oci-layout has no imageLayoutVersion; is it an OCI "
                                  "image layout?")

    # --- files --------------------------------------------------------------------------------

    def _inside(self, relative: str, what: str) -> Path:
        """The path of `relative` inside the layout, refusing symlinks that lead out of it."""
        path = self.root / relative
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._real_root]) != self._real_root:
            raise LayoutError(f"{path} ({what}) is a symbolic link leading outside the layout; "
                              "refused (replace it with the file itself)")
        return Path(real)

    def open_file(self, relative: str, what: str) -> int:
        return open_regular(self._inside(relative, what), what, follow=False)

    def read_file(self, relative: str, cap: int = JSON_CAP) -> bytes:
        what = f"{self.root}/{relative}"
        try:
            fd = self.open_file(relative, "a file of the layout")
        except LayoutError as error:
            if not os.path.lexists(self.root / relative):
                raise LayoutError(f"{self.root} has no {relative}; is it an OCI image layout?") \
                    from None
            raise error
        return read_bounded(fd, cap, what)

    def blob_relative(self, digest: str) -> str:
        algorithm, encoded = check_digest(digest)
        return f"blobs/{algorithm}/{encoded}"

    def blob_path(self, digest: str) -> Path:
        return self.root / self.blob_relative(digest)

    def open_blob(self, descriptor: Descriptor) -> int:
        """A descriptor of the blob's file: regular, inside the layout; its bytes not yet verified."""
        relative = self.blob_relative(descriptor.digest)
        if not os.path.lexists(self.root / relative):
            raise LayoutError(f"blob {descriptor.digest} is missing from {self.root}")
        return self.open_file(relative, f"blob {descriptor.digest}")

    def blob_bytes(self, descriptor: Descriptor, cap: int = JSON_CAP) -> bytes:
        """The verified bytes of a small blob (a JSON document)."""
        if descriptor.size > cap:
            raise LayoutError(f"blob {descriptor.digest} claims {descriptor.size} bytes; documents "
                              f"are limited to {cap >> 20} MiB")
        fd = self.open_blob(descriptor)
        data = read_bounded(fd, descriptor.size + 1, f"blob {descriptor.digest}")
        _verify(descriptor, hashed(descriptor.digest, [data]), len(data))
        return data

    def verify_blob(self, descriptor: Descriptor) -> None:
        """Stream the blob once, checking its size and digest."""
        fd = self.open_blob(descriptor)
        size = 0
        hasher = new_hasher(descriptor.digest)
        try:
            with os.fdopen(fd, "rb", closefd=True) as stream:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > descriptor.size:
                        break  # longer than declared: no need to read a /dev/zero-sized rest
                    if hasher is not None:
                        hasher.update(chunk)
        except OSError as error:
            raise LayoutError(os_error_message(error, f"blob {descriptor.digest}")) from None
        _verify(descriptor, hasher, size)

    # --- documents ----------------------------------------------------------------------------

    def oci_layout(self) -> Any:
        return parse_json(self.read_file("oci-layout", cap=1 << 16), f"{self.root}/oci-layout")

    def index_document(self) -> dict[str, Any]:
        """index.json, shape-checked against the image-index schema."""
        document = parse_json(self.read_file("index.json"), f"{self.root}/index.json")
        found = schema.problems(document, "index")
        if found:
            raise LayoutError(f"{self.root}/index.json is malformed: {found[0]}; run "
                              f"'hellocontainer validate {self.root}'")
        return document

    def entries(self) -> list[Descriptor]:
        """index.json's manifests, in order."""
        document = self.index_document()
        return [descriptor_from(d, f"index.json manifests[{i}]")
                for i, d in enumerate(document["manifests"])]

    def tags(self) -> list[str]:
        return sorted({d.ref_name for d in self.entries() if d.ref_name})

    def select(self, tag: str | None) -> list[Descriptor]:
        """The index entries of `tag` (all when None), or one line naming the tags there are."""
        entries = self.entries()
        if tag is None:
            return entries
        chosen = [d for d in entries if d.ref_name == tag]
        if not chosen:
            tags = sorted({d.ref_name for d in entries if d.ref_name})
            raise LayoutError(f"{self.root} has no tag {tag!r} "
                              f"(tags: {', '.join(tags) or 'none'})")
        return chosen

    def document(self, descriptor: Descriptor, schema_name: str) -> dict[str, Any]:
        """A verified JSON blob that satisfies schema `schema_name` (index, manifest or config).

        A command often meets one document several times (a build checks the kept tags, then
        collects garbage, then archives; gc walks live entries twice). Blobs are content-
        addressed, so the verified bytes of a small document are kept and only parsed again:
        each is read, hashed and schema-checked once per reader. Large ones are not kept, so a
        hostile layout of many huge documents costs no more memory than one.
        """
        key = (descriptor.digest, descriptor.size, schema_name)
        data = self._documents.get(key)
        if data is not None:
            return parse_json(data, f"blob {descriptor.digest}")
        data = self.blob_bytes(descriptor)
        document = parse_json(data, f"blob {descriptor.digest}")
        found = schema.problems(document, schema_name)
        if found:
            raise LayoutError(f"{schema_name} {descriptor.digest} is malformed: {found[0]}; run "
                              f"'hellocontainer validate {self.root}'")
        if len(data) <= KEPT_DOCUMENT_BYTES:
            self._documents[key] = data
        return document

    def image(self, tag: str | None = None, platform: str | None = None) -> Image:
        """The single-platform image a tag (or the layout's only image) names, for `platform`."""
        entries = self.select(tag)
        if len({d.digest for d in entries}) > 1:
            names = ", ".join(sorted(d.ref_name or d.digest[:19] for d in entries))
            raise LayoutError(f"{self.root} holds several images ({names}); name one as "
                              "LAYOUT:TAG")
        if not entries:
            raise LayoutError(f"{self.root} holds no image")
        return self.platform_image(entries[0], platform)

    def platform_image(self, descriptor: Descriptor, platform: str | None) -> Image:
        """The image `descriptor` names for `platform`, choosing down through image indexes."""
        chosen: list[Descriptor] = []

        def choose(node: Node[None]) -> list[Edge[None]]:
            current = node.descriptor
            if current.media_type not in model.INDEX_TYPES:
                chosen.append(current)
                return []
            index = self.document(current, "index")
            children = [descriptor_from(d, f"index {current.digest[:19]}")
                        for d in index["manifests"]]
            # Referrers (an SBOM) listed beside the image are never the image to run.
            by_name = {model.platform_name(c.platform or {}): c for c in children
                       if c.media_type in model.MANIFEST_TYPES + model.INDEX_TYPES
                       and not referrers.is_listed_referrer(c)}
            if platform is not None and platform in by_name:
                return [(by_name[platform], None)]
            if platform is None and len(by_name) == 1:
                return [(next(iter(by_name.values())), None)]
            have = ", ".join(sorted(n or "(no platform)" for n in by_name)) or "none"
            wanted = f"no platform {platform}" if platform else "several platforms"
            raise LayoutError(f"the image has {wanted} (platforms: {have}); choose one "
                              "with --platform")

        walk([(descriptor, None)], choose, where=self._where)
        descriptor = chosen[0]
        if descriptor.media_type not in model.MANIFEST_TYPES:
            raise LayoutError(f"{descriptor.digest} is a {descriptor.media_type}, not an image "
                              "manifest")
        manifest = self.document(descriptor, "manifest")
        config_descriptor = descriptor_from(manifest["config"], "manifest config")
        if config_descriptor.media_type not in (model.MEDIA_CONFIG, model.MEDIA_DOCKER_CONFIG):
            raise LayoutError(f"manifest {descriptor.digest} is an artifact "
                              f"({config_descriptor.media_type}), not a runnable image")
        config = self.document(config_descriptor, "config")
        layers = [descriptor_from(d, f"manifest layers[{i}]")
                  for i, d in enumerate(manifest["layers"])]
        own = model.config_platform(config)
        if platform is not None and model.platform_name(own) != platform:
            raise LayoutError(f"the image is for {model.platform_name(own)}, not {platform}")
        return Image(descriptor, manifest, config_descriptor, config, layers)

    # --- graphs -------------------------------------------------------------------------------

    def children(self, descriptor: Descriptor) -> list[Descriptor]:
        """The descriptors an index or manifest blob points at (none for other blobs)."""
        if descriptor.media_type in model.INDEX_TYPES:
            document = self.document(descriptor, "index")
            found = list(document["manifests"])
        elif descriptor.media_type in model.MANIFEST_TYPES:
            document = self.document(descriptor, "manifest")
            found = [document["config"], *document["layers"]]
        else:
            return []
        if "subject" in document:
            found.append(document["subject"])
        return [descriptor_from(d, f"{descriptor.digest[:19]}") for d in found]

    def reachable(self, roots: list[Descriptor], strict: bool = True) -> set[str]:
        """Digests of every blob reachable from `roots`, each blob read once, depth capped (walk.py).

        With `strict` off, a document that cannot be read ends that branch instead of the walk:
        garbage collection must not delete what a damaged manifest might still point at, so it
        asks for the blobs it can prove reachable and keeps whatever it cannot account for.
        """
        seen: set[str] = set()

        def follow(node: Node[None]) -> list[Edge[None]]:
            try:
                return [(child, None) for child in self.children(node.descriptor)]
            except LayoutError:
                if strict:
                    raise
                return []

        walk([(d, None) for d in roots], follow, where=self._where, seen=seen)
        return seen

    def _where(self, node: Node[Any]) -> str:
        """How a walk over this layout names where it stopped: the layout."""
        return str(self.root)

    # --- layers -------------------------------------------------------------------------------

    def layer_chunks(self, layer: Descriptor) -> Iterator[bytes]:
        """The uncompressed bytes of a layer, in bounded chunks; the blob is verified as it streams.

        The digest and size are checked when the compressed stream ends, so a consumer that reads
        to the end has read only verified bytes by the time it draws conclusions.
        """
        compression = compression_of(layer.media_type)
        if compression is None:
            raise LayoutError(f"layer {layer.digest} has media type {layer.media_type}, "
                              "which is not a layer this tool reads")
        fd = self.open_blob(layer)
        hasher = new_hasher(layer.digest)
        counted = [0]

        def raw() -> Iterator[bytes]:
            try:
                with os.fdopen(fd, "rb", closefd=True) as stream:
                    while chunk := stream.read(CHUNK):
                        counted[0] += len(chunk)
                        if counted[0] > layer.size:
                            raise LayoutError(f"blob {layer.digest} has more than {layer.size} "
                                              f"bytes, but the descriptor says {layer.size}")
                        if hasher is not None:
                            hasher.update(chunk)
                        yield chunk
            except OSError as error:
                raise LayoutError(os_error_message(error, f"blob {layer.digest}")) from None
            _verify(layer, hasher, counted[0])

        source = raw()
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

    def layer_members(self, layer: Descriptor, diff_id: str | None = None) -> Iterator[Member]:
        """The tar entries of a layer, streamed; a file's content via `member.chunks()`.

        With `diff_id` (the config's), the uncompressed stream is checked against it too; like
        the blob's digest, when the stream ends, so a consumer that stages what it reads and
        publishes only after the last member never publishes unverified content.
        """
        chunks = self.layer_chunks(layer)
        if diff_id is not None:
            chunks = _diff_checked(chunks, layer.digest, diff_id)
        stream = _TarStream(chunks, layer.digest)
        yield from stream.members()


def _diff_checked(chunks: Iterator[bytes], name: str, diff_id: str) -> Iterator[bytes]:
    check_digest(diff_id)
    hasher = new_hasher(diff_id)
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        yield chunk
    if hasher is not None and f"{diff_id.split(':', 1)[0]}:{hasher.hexdigest()}" != diff_id:
        raise LayoutError(f"layer {name} does not inflate to the config's diff_id {diff_id}; "
                          "the image is damaged")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def new_hasher(digest: str) -> Any | None:
    algorithm = digest.split(":", 1)[0]
    known = ALGORITHMS.get(algorithm)
    return known[0]() if known else None


def hashed(digest: str, chunks: list[bytes]) -> Any | None:
    hasher = new_hasher(digest)
    if hasher is not None:
        for chunk in chunks:
            hasher.update(chunk)
    return hasher


def _verify(descriptor: Descriptor, hasher: Any | None, size: int) -> None:
    if size != descriptor.size:
        amount = f"more than {descriptor.size}" if size > descriptor.size else str(size)
        raise LayoutError(f"blob {descriptor.digest} has {amount} bytes, but the descriptor says "
                          f"{descriptor.size}; the layout is damaged")
    if hasher is not None:
        actual = f"{descriptor.digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if actual != descriptor.digest:
            raise LayoutError(f"blob {descriptor.digest} does not match its digest; the layout "
                              "is damaged")


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


class _TarStream:
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
                    raise LayoutError(f"layer {self._name}: {path} claims {claimed} bytes, more "
                                      "than the layer holds")
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
            member = Member(
                path=_clean(path), kind=_KIND.get(typeflag, "other"),
                mode=fields["mode"] & 0o7777,
                uid=_pax_int(pax, "uid", fields["uid"], self._name),
                gid=_pax_int(pax, "gid", fields["gid"], self._name),
                mtime=int(float(pax.get("mtime", fields["mtime"]))),
                size=size if typeflag in (b"0", b"\0", b"7") else 0,
                linkname=linkname,
                uname=pax.get("uname", fields["uname"]), gname=pax.get("gname", fields["gname"]),
            )
            if member.kind == "file":
                member._stream = self
            data_size = size if typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
            pax, long_name, long_link = {}, None, None
            # The consumer may read the content via chunks(); whatever it leaves is skipped, then
            # the padding to the next 512-byte block.
            start = self._taken
            yield member
            self._skip(start + data_size - self._taken, member.path, data_size)
            self._skip(-data_size % 512, member.path, data_size)


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


def _pax_int(pax: dict[str, str], key: str, default: int, name: str) -> int:
    if key not in pax:
        return default
    try:
        value = int(pax[key])
    except ValueError:
        raise LayoutError(f"layer {name}: PAX {key} {pax[key]!r} is not a number") from None
    if value < 0:
        raise LayoutError(f"layer {name}: PAX {key} is negative")
    return value
