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
- Index graphs are walked iteratively with a visited set and a depth cap (walk.py): each blob
  once, time linear in the number of distinct blobs.

Every failure is a LayoutError carrying one line. The parts that are not about a layout live
beside it: safefile.py (bounded reads of untrusted files), digests.py, parsing.py (untrusted
JSON) and tarstream.py (decompressing layers, parsing tar headers from the stream).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from ..errors import LayoutError, os_error_message
from . import model, referrers, schema
from .digests import check_digest, diff_checked, hashed, short_digest, verified_chunks, verify
from .model import Descriptor
from .parsing import descriptor_from, parse_json
from .safefile import file_kind, open_regular, read_bounded
from .tarstream import Member, TarStream, inflate, layer_compression
from .value import Value
from .walk import Edge, Node, walk

JSON_CAP = 16 << 20  # index.json, manifests, configs: far above any real one (a few KiB)
KEPT_DOCUMENT_BYTES = 64 << 10  # documents this small are read once per reader (real: a few KiB)


class Image(Value):
    """One single-platform image of a layout, its documents verified."""

    __slots__ = ("config", "config_descriptor", "layers", "manifest", "manifest_descriptor")

    def __init__(
        self,
        manifest_descriptor: Descriptor,
        manifest: dict[str, Any],
        config_descriptor: Descriptor,
        config: dict[str, Any],
        layers: list[Descriptor],
    ) -> None:
        self.manifest_descriptor = manifest_descriptor
        self.manifest = manifest
        self.config_descriptor = config_descriptor
        self.config = config
        self.layers = layers

    @property
    def platform(self) -> dict[str, str]:
        return model.config_platform(self.config)


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
        verify(descriptor, hashed(descriptor.digest, [data]), len(data))
        return data

    def verify_blob(self, descriptor: Descriptor) -> None:
        """Stream the blob once, checking its size and digest."""
        for _ in verified_chunks(self.open_blob(descriptor), descriptor):
            pass

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
            names = ", ".join(sorted(d.ref_name or short_digest(d.digest) for d in entries))
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
            children = [descriptor_from(d, f"index {short_digest(current.digest)}")
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
        (descriptor,) = chosen  # one child is chosen at each index
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
        return [descriptor_from(d, short_digest(descriptor.digest)) for d in found]

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

    def layer_chunks(self, layer: Descriptor,
                     read: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """The uncompressed bytes of a layer, in bounded chunks; the blob is verified as it streams.

        The digest and size are checked when the compressed stream ends, so a consumer that reads
        to the end has read only verified bytes by the time it draws conclusions. `read`, if
        given, is told the size of each chunk of the blob (compressed) as it is read.
        """
        compression = layer_compression(layer)
        blob = verified_chunks(self.open_blob(layer), layer)
        yield from inflate(blob if read is None else _told(blob, read), compression, layer)

    def layer_members(self, layer: Descriptor, diff_id: str | None = None,
                      read: Callable[[int], None] | None = None) -> Iterator[Member]:
        """The tar entries of a layer, streamed; a file's content via `member.chunks()`.

        With `diff_id` (the config's), the uncompressed stream is checked against it too; like
        the blob's digest, when the stream ends, so a consumer that stages what it reads and
        publishes only after the last member never publishes unverified content. `read`: as
        for `layer_chunks`.
        """
        chunks = self.layer_chunks(layer, read)
        if diff_id is not None:
            chunks = diff_checked(chunks, layer.digest, diff_id)
        stream = TarStream(chunks, layer.digest)
        yield from stream.members()


def _told(chunks: Generator[bytes, None, None],
          read: Callable[[int], None]) -> Generator[bytes, None, None]:
    """`chunks`, telling `read` the size of each."""
    try:
        for chunk in chunks:
            read(len(chunk))
            yield chunk
    finally:
        chunks.close()
