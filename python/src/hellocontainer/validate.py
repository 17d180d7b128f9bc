"""Check an image layout, ours or another tool's, against the schemas and against its own bytes.

Schemas cannot say that a digest equals the sha256 of the blob, that a diff_id equals the
uncompressed layer, or that a "+gzip" layer really is gzip; this module checks all of that and
reports every problem it finds rather than stopping at the first. The build runs the same checks
on a new image before publishing it.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import model, schema
from .errors import LayoutError
from .layout import Layout
from .model import Descriptor

CHUNK = 1 << 20
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


def _sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[257:262] == b"ustar" or head == b"\0" * len(head):
        return "none"
    return "unknown"


def decompressed_chunks(stream: BinaryIO, compression: str) -> Iterator[bytes]:
    """The uncompressed bytes of a layer stream, a chunk at a time (constant memory)."""
    if compression == "none":
        yield from iter(lambda: stream.read(CHUNK), b"")
    elif compression == "gzip":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            while chunk:
                yield decompressor.decompress(chunk)
                # A gzip file may hold several members back to back (pigz -i, cat a.gz b.gz).
                chunk = decompressor.unused_data if decompressor.eof else b""
                if chunk:
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not decompressor.eof:
            raise zlib.error("gzip stream is truncated")
    elif compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise LayoutError(
                "reading a zstd layer needs the optional Python module zstandard (pip install zstandard)"
            ) from None
        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
        yield from iter(lambda: reader.read(CHUNK), b"")
    else:
        raise LayoutError(f"cannot decompress {compression} data")


def _hash_file(path: Path) -> tuple[str, int]:
    """sha256 digest and size of a file, read a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


class Checker:
    """Collects the problems of one layout; each blob is verified at most once."""

    def __init__(self, layout: Layout, written: dict[str, str] | None = None) -> None:
        self.layout = layout
        self.problems: list[str] = []
        self._verified: dict[str, bool] = {}
        # Layer digest → diff_id of layers this process has just written, hashing the
        # compressed and the uncompressed bytes as they streamed by (a build checking its own
        # new image). Reading, hashing and decompressing them again would cost a quarter of a
        # large build and could only find a bug in hashlib or the compressor, which have tests
        # of their own; their presence, size and format are still checked.
        self._written = written or {}

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def check_blob(self, descriptor: Descriptor, where: str) -> bool:
        """Digest grammar, presence, size and sha256 of the blob a descriptor names."""
        if descriptor.digest in self._verified:
            return self._verified[descriptor.digest]
        ok = self._verify_blob(descriptor, where)
        self._verified[descriptor.digest] = ok
        return ok

    def _verify_blob(self, descriptor: Descriptor, where: str) -> bool:
        try:
            path = self.layout.blob_path(descriptor.digest)
        except LayoutError as error:
            self.problem(f"{where}: {error}")
            return False
        try:
            if descriptor.digest in self._written:
                actual, size = descriptor.digest, path.stat().st_size  # hashed while written
            else:
                actual, size = _hash_file(path)
        except FileNotFoundError:
            self.problem(f"{where}: blob {descriptor.digest} is missing")
            return False
        except OSError as error:
            self.problem(f"{where}: blob {descriptor.digest} cannot be read: {error.strerror}")
            return False
        ok = True
        if size != descriptor.size:
            self.problem(f"{where}: blob {descriptor.digest} has {size} bytes, "
                         f"but the descriptor says {descriptor.size}")
            ok = False
        if actual != descriptor.digest:
            self.problem(f"{where}: blob {descriptor.digest} does not match its digest "
                         f"(its bytes hash to {actual})")
            ok = False
        return ok

    def load_json(self, descriptor: Descriptor, schema_name: str, where: str) -> Any | None:
        if not self.check_blob(descriptor, where):
            return None
        try:
            document = self.layout.read_blob_json(descriptor.digest)
        except LayoutError as error:
            self.problem(f"{where}: {error}")
            return None
        found = schema.problems(document, schema_name)
        for message in found:
            self.problem(f"{where} ({schema_name} {descriptor.digest[:19]}): {message}")
        return None if found else document

    def check_descriptor(self, descriptor: Descriptor, where: str) -> None:
        """Follow a descriptor from an index: an image manifest or a nested index."""
        if descriptor.media_type in model.INDEX_TYPES:
            self.check_index_blob(descriptor, where)
        elif descriptor.media_type in model.MANIFEST_TYPES:
            self.check_manifest(descriptor, where)
        else:
            self.check_blob(descriptor, where)

    def check_media_type(self, document: dict[str, Any], descriptor: Descriptor, where: str) -> None:
        """A document's own mediaType, when it has one, must be what its descriptor says."""
        if document.get("mediaType", descriptor.media_type) != descriptor.media_type:
            self.problem(f"{where}: mediaType {document['mediaType']} differs from the "
                         f"descriptor's {descriptor.media_type}")

    def check_index_blob(self, descriptor: Descriptor, where: str) -> None:
        document = self.load_json(descriptor, "index", where)
        if document is None:
            return
        self.check_media_type(document, descriptor, where)
        for i, child in enumerate(document["manifests"]):
            self.check_descriptor(Descriptor.from_json(child), f"{where} > manifests[{i}]")

    def check_manifest(self, descriptor: Descriptor, where: str) -> None:
        manifest = self.load_json(descriptor, "manifest", where)
        if manifest is None:
            return
        self.check_media_type(manifest, descriptor, where)
        config_descriptor = Descriptor.from_json(manifest["config"])
        if config_descriptor.media_type not in (model.MEDIA_CONFIG, model.MEDIA_DOCKER_CONFIG):
            # An OCI 1.1 artifact (a signature, an SBOM, …): its config is not an image
            # config, and its layers have no diff_ids; only the blobs themselves can be checked.
            self.check_blob(config_descriptor, f"{where} > config")
            for i, layer in enumerate(manifest["layers"]):
                self.check_blob(Descriptor.from_json(layer), f"{where} > layers[{i}]")
            return
        config = self.load_json(config_descriptor, "config", f"{where} > config")
        layers = [Descriptor.from_json(layer) for layer in manifest["layers"]]
        diff_ids = [self.check_layer(layer, f"{where} > layers[{i}]")
                    for i, layer in enumerate(layers)]
        if config is None:
            return
        self.check_config(config, diff_ids, descriptor, where)

    def check_config(self, config: dict[str, Any], diff_ids: list[str | None],
                     descriptor: Descriptor, where: str) -> None:
        expected = config["rootfs"]["diff_ids"]
        if len(expected) != len(diff_ids):
            self.problem(f"{where}: the config lists {len(expected)} diff_ids "
                         f"but the manifest has {len(diff_ids)} layers")
        for i, (want, got) in enumerate(zip(expected, diff_ids)):
            if got is not None and want != got:
                self.problem(f"{where} > layers[{i}]: uncompressed layer hashes to {got}, "
                             f"but the config's diff_id is {want}")
        history = [h for h in config.get("history", []) if not h.get("empty_layer", False)]
        if "history" in config and len(history) != len(expected):
            self.problem(f"{where}: the config has {len(history)} non-empty history entries "
                         f"for {len(expected)} layers")
        if descriptor.platform:
            own = model.config_platform(config)
            said = {k: v for k, v in descriptor.platform.items() if k in model.PLATFORM_FIELDS}
            if own != said:
                self.problem(f"{where}: the index says platform {said} but the config says {own}")

    def check_layer(self, layer: Descriptor, where: str) -> str | None:
        """Verify a layer blob and return its diff_id (None when it cannot be computed)."""
        if not self.check_blob(layer, where):
            return None
        compression = compression_of(layer.media_type)
        if compression is None:
            return None  # a foreign layer type: the digest check above is all we can do
        path = self.layout.blob_path(layer.digest)
        with path.open("rb") as stream:
            actual = _sniff(stream.read(512))
            if actual != compression:
                self.problem(f"{where}: media type {layer.media_type} says {compression}, "
                             f"but the bytes are {actual}")
                return None
            if layer.digest in self._written:
                return self._written[layer.digest]
            stream.seek(0)
            diff = hashlib.sha256()
            try:
                for chunk in decompressed_chunks(stream, compression):
                    diff.update(chunk)
            except (zlib.error, OSError, LayoutError) as error:
                self.problem(f"{where}: layer cannot be decompressed: {error}")
                return None
            except Exception as error:  # zstandard raises its own ZstdError
                self.problem(f"{where}: layer cannot be decompressed: {error}")
                return None
        return "sha256:" + diff.hexdigest()


def selected(manifests: list[dict[str, Any]], tag: str | None) -> list[tuple[int, Descriptor]]:
    """Index entries to check: all, or those whose ref.name is `tag`."""
    entries = [(i, Descriptor.from_json(d)) for i, d in enumerate(manifests)]
    return [(i, d) for i, d in entries if tag is None or d.ref_name == tag]


def validate_layout(root: Path, tag: str | None = None) -> list[str]:
    """Every problem of the layout at `root` (or of one tag in it); empty when valid."""
    layout = Layout(root)
    checker = Checker(layout)
    if not root.is_dir():
        return [f"{root} is not a directory"]
    try:
        oci_layout = layout.read_json("oci-layout")
        index = layout.read_json("index.json")
    except LayoutError as error:
        return [str(error)]
    for message in schema.problems(oci_layout, "oci-layout"):
        checker.problem(f"oci-layout: {message}")
    found = schema.problems(index, "index")
    for message in found:
        checker.problem(f"index.json: {message}")
    if found:
        return checker.problems
    entries = selected(index["manifests"], tag)
    if tag is not None and not entries:
        tags = sorted({d.ref_name for _, d in selected(index["manifests"], None) if d.ref_name})
        return [f"{root} has no tag {tag!r} (tags: {', '.join(tags) or 'none'})"]
    for i, descriptor in entries:
        where = f"index.json manifests[{i}]" + (f" ({descriptor.ref_name})"
                                                if descriptor.ref_name else "")
        if descriptor.ref_name is not None and not model.REF_NAME.fullmatch(descriptor.ref_name):
            checker.problem(f"{where}: tag {descriptor.ref_name!r} does not match the OCI "
                            "ref-name grammar")
        checker.check_descriptor(descriptor, where)
    return checker.problems
