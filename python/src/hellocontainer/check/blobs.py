"""The bytes of a layout's blobs: present, of the declared size, hashing to their digest, and
(for layers) inflating to what the config's diff_ids say, holding entries `bundle` extracts.

This is the half of validation that reads blobs, not documents: validate.py walks the graph of
documents and asks here about each blob it meets. Each blob is read once, however many
descriptors name it, and a build checking its own new image skips re-hashing what it has just
hashed while writing. A layer's tar entries are judged in the same pass that hashes it
(layertree.py); a layer that several images share above different layers is read again for each,
since what its entries do depends on the layers below.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from ..errors import LayoutError
from ..oci import model, schema
from ..oci.digests import short_digest, verifiable
from ..oci.model import Descriptor
from ..oci.parsing import parse_json
from ..oci.reader import LayoutReader
from ..oci.tarstream import TarStream, compression_of
from .layertree import ImageEntries


class Report:
    """What a check found: problems make a layout invalid, warnings do not."""

    __slots__ = ("problems", "warnings")  # a plain class: see oci/value.py

    def __init__(self, problems: list[str] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.problems = [] if problems is None else problems
        self.warnings = [] if warnings is None else warnings


class BlobChecker:
    """Collects the problems of one layout's bytes; each blob is verified at most once."""

    def __init__(self, reader: LayoutReader, written: dict[str, str] | None = None) -> None:
        self.reader = reader
        self.report = Report()
        self._verified: dict[str, bool] = {}
        self._kept: dict[str, bytes] = {}  # verified document bytes, until load_json parses them
        self._diff_ids: dict[str, str | None] = {}
        self._chains: set[tuple[str, ...]] = set()  # the layer lists whose entries were judged
        # Layer digest → diff_id of layers this process has just written, hashing the
        # compressed and the uncompressed bytes as they streamed by (a build checking its own
        # new image). Reading, hashing and decompressing them again would cost a quarter of a
        # large build and could only find a bug in hashlib or the compressor, which have tests
        # of their own; their presence, size and format are still checked.
        self._written = written or {}

    @property
    def problems(self) -> list[str]:
        return self.report.problems

    def problem(self, message: str) -> None:
        if message not in self.report.problems:
            self.report.problems.append(message)

    def warning(self, message: str) -> None:
        if message not in self.report.warnings:
            self.report.warnings.append(message)

    def check_blob(self, descriptor: Descriptor, where: str, keep: bool = False) -> bool:
        """Presence, size and digest of the blob a descriptor names, once per digest. With
        `keep`, the verified bytes of a document are kept for `load_json`, so that it is read
        and hashed once, not once to verify and again to parse."""
        if descriptor.digest not in self._verified:
            self._verified[descriptor.digest] = self._verify_blob(descriptor, where, keep)
        return self._verified[descriptor.digest]

    def _verify_blob(self, descriptor: Descriptor, where: str, keep: bool) -> bool:
        if not verifiable(descriptor.digest):
            self.warning(f"{where}: digest algorithm of {descriptor.digest} is not one this "
                         "tool can compute; the blob was not verified")
        if "data" in descriptor.extra and not self._check_embedded(descriptor, where):
            return False
        try:
            if descriptor.digest in self._written:
                fd = self.reader.open_blob(descriptor)  # hashed while it was written
                size = os.fstat(fd).st_size
                os.close(fd)
                if size != descriptor.size:
                    raise LayoutError(f"blob {descriptor.digest} has {size} bytes, but its "
                                      f"descriptor says {descriptor.size}")
            elif keep:
                self._kept[descriptor.digest] = self.reader.blob_bytes(descriptor)
            else:
                self.reader.verify_blob(descriptor)
        except LayoutError as error:
            self.problem(f"{where}: {error}")
            return False
        return True

    def _check_embedded(self, descriptor: Descriptor, where: str) -> bool:
        """descriptor.md: `data` is base64 (RFC 4648 §4) of exactly the blob's bytes."""
        import base64
        import binascii

        data = descriptor.extra["data"]
        try:
            decoded = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is None:
            self.problem(f"{where}: data is not standard base64 (RFC 4648 section 4, padded)")
            return False
        if len(decoded) != descriptor.size or (
                descriptor.digest.startswith("sha256:")
                and model.sha256_digest(decoded) != descriptor.digest):
            self.problem(f"{where}: the embedded data does not match the descriptor's digest "
                         "and size")
            return False
        return True

    def load_json(self, descriptor: Descriptor, schema_name: str, where: str) -> Any | None:
        if not self.check_blob(descriptor, where, keep=True):
            return None
        try:
            # Verified by check_blob just now, or (met before) read and verified again here.
            data = self._kept.pop(descriptor.digest, None) or self.reader.blob_bytes(descriptor)
            document = parse_json(data, f"blob {descriptor.digest}")
        except LayoutError as error:
            self.problem(f"{where}: {error}")
            return None
        found = schema.problems(document, schema_name)
        for message in found:
            self.problem(f"{where} ({schema_name} {short_digest(descriptor.digest)}): {message}")
        return None if found else document

    def check_layers(self, layers: list[Descriptor], where: str) -> list[str | None]:
        """Verify an image's layers and judge their entries in order (each list of layers once);
        return their diff_ids (None where one cannot be computed)."""
        chain = tuple(layer.digest for layer in layers)
        fresh = chain not in self._chains
        self._chains.add(chain)
        image = ImageEntries(model=fresh)
        diff_ids = [self.check_layer(layer, f"{where} > layers[{i}]", image)
                    for i, layer in enumerate(layers)]
        if fresh:
            for message in image.problems(where):
                self.problem(message)
            for message in image.warnings(where):
                self.warning(message)
        return diff_ids

    def check_layer(self, layer: Descriptor, where: str, image: ImageEntries) -> str | None:
        """Verify a layer blob, its entries judged into `image`, and return its diff_id (None
        when it cannot be computed). A layer read before is read again only for the model of
        a new image's tree."""
        if layer.digest in self._diff_ids:
            if self._diff_ids[layer.digest] is None:
                image.stop()
            if image.tree is None or self._diff_ids[layer.digest] is None:
                return self._diff_ids[layer.digest]
        self._diff_ids[layer.digest] = diff_id = self._layer_diff_id(layer, where, image)
        return diff_id

    def _layer_diff_id(self, layer: Descriptor, where: str, image: ImageEntries) -> str | None:
        compression = compression_of(layer.media_type)
        if compression is None:
            image.stop()
            self.check_blob(layer, where)
            return None  # a foreign layer type: the digest check is all we can do
        if layer.digest in self._written:
            image.stop()  # ours, made from a binary and folders: nothing to judge
            return self._written[layer.digest] if self.check_blob(layer, where) else None
        # One pass over the blob verifies its digest and size, hashes what it inflates to and
        # judges the tar entries in it.
        diff = hashlib.sha256()
        chunks = _hashed(self.reader.layer_chunks(layer), diff)
        try:
            image.read(TarStream(chunks, layer.digest).members(), layer, where)
        except LayoutError as error:
            message = str(error)
            # A broken tar may come from broken bytes: read on, so that a wrong digest (the
            # root cause) is what is reported.
            try:
                for _ in chunks:
                    pass
            except LayoutError as cause:
                message = str(cause)
            self.problem(f"{where}: {message}")
            self._verified[layer.digest] = False
            image.stop()
            return None
        self._verified[layer.digest] = True
        if not verifiable(layer.digest):
            self.warning(f"{where}: digest algorithm of {layer.digest} is not one this tool can "
                         "compute; the blob was not verified")
        return "sha256:" + diff.hexdigest()


def _hashed(chunks: Iterator[bytes], hasher: Any) -> Iterator[bytes]:
    """`chunks`, each fed to `hasher` on the way."""
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
