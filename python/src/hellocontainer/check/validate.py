"""Check an image layout, ours or another tool's, against the schemas and against its own bytes.

Schemas cannot say that a digest equals the hash of the blob, that a diff_id equals the
uncompressed layer, or that a "+gzip" layer really is gzip; this module (the documents and the
graph they form) and blobs.py (the bytes of each blob) check all of that and report every
problem found rather than stopping at the first. It reads only through
`reader`, so a hostile layout (links out of it, FIFOs, bombs, cycles) is a problem to report,
never a hang or a crash. The build runs the same checks on a new image before publishing it.

Problems make a layout invalid. Warnings do not: they are what the spec says SHOULD (not MUST)
hold, digests we cannot compute, and debris a killed build left behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import LayoutError
from ..oci import leftovers, model, referrers, schema
from ..oci.model import Descriptor
from ..oci.parsing import descriptor_from, parse_json
from ..oci.reader import LayoutReader
from ..oci.walk import Edge, Node, walk
from .blobs import BlobChecker, Report


class Checker(BlobChecker):
    """Collects the problems of one layout's documents and of the graph they form, following
    each descriptor to its blob (blobs.py); each document is checked once."""

    def __init__(self, reader: LayoutReader, written: dict[str, str] | None = None) -> None:
        super().__init__(reader, written)
        self._configs: dict[str, dict[str, Any] | None] = {}
        self._visited: set[tuple[str, str]] = set()  # see _claim

    def check_descriptor(self, descriptor: Descriptor, where: str, depth: int = 0) -> None:
        """Follow a descriptor and everything below it (walk.py): each blob once, depth capped.

        `depth` is that of what lists it: 0 for index.json, a manifest's own for its subject.
        """
        walk([(descriptor, where)], self._check_node, where=_location, depth=depth,
             seen=self._visited, key=_claim, too_deep=lambda error: self.problem(str(error)))

    def _check_node(self, node: Node[str]) -> list[Edge[str]]:
        current, at = node.descriptor, node.context
        if current.media_type in model.INDEX_TYPES:
            children = self.check_index_blob(current, at)
            return [(child, f"{at} > manifests[{i}]") for i, child in enumerate(children)]
        if current.media_type in model.MANIFEST_TYPES:
            self.check_manifest(current, at, node.depth)
        else:
            self.check_blob(current, at)
        return []

    def check_media_type(self, document: dict[str, Any], descriptor: Descriptor, where: str) -> None:
        """A document's own mediaType, when it has one, must be what its descriptor says."""
        if document.get("mediaType", descriptor.media_type) != descriptor.media_type:
            self.problem(f"{where}: mediaType {document['mediaType']} differs from the "
                         f"descriptor's {descriptor.media_type}")

    def check_index_blob(self, descriptor: Descriptor, where: str) -> list[Descriptor]:
        document = self.load_json(descriptor, "index", where)
        if document is None:
            return []
        self.check_media_type(document, descriptor, where)
        children = self._descriptors(document["manifests"], f"{where} > manifests")
        self.check_listed_referrers(children, f"{where} > manifests")
        return children

    def check_listed_referrers(self, children: list[Descriptor], where: str) -> None:
        """Referrers listed in an image index beside their subject (Docker's attestation shape,
        which ours follows): each names a manifest of the same index, and carries the platform
        that keeps runtimes from choosing it."""
        listed = {child.digest for child in children}
        for i, child in enumerate(children):
            named = child.annotations.get(referrers.ANNOTATION_REFERENCE_DIGEST)
            if not referrers.is_listed_referrer(child):
                continue
            if named is not None and named not in listed:
                self.problem(f"{where}[{i}]: {referrers.ANNOTATION_REFERENCE_DIGEST} {named} is "
                             "not a manifest of this index; a referrer is listed beside its subject")
            if model.platform_name(child.platform or {}) != "unknown/unknown":
                self.warning(f"{where}[{i}]: a referrer listed in an image index should have "
                             "platform unknown/unknown, or runtimes may choose it as the image")

    def _descriptors(self, items: list[Any], where: str) -> list[Descriptor]:
        out = []
        for i, item in enumerate(items):
            try:
                out.append(descriptor_from(item, f"{where}[{i}]"))
            except LayoutError as error:
                self.problem(str(error))
        return out

    def check_manifest(self, descriptor: Descriptor, where: str, depth: int = 0) -> None:
        manifest = self.load_json(descriptor, "manifest", where)
        if manifest is None:
            return
        self.check_media_type(manifest, descriptor, where)
        self.check_referrer(manifest, descriptor, where, depth)
        try:
            config_descriptor = descriptor_from(manifest["config"], f"{where} > config")
        except LayoutError as error:
            self.problem(str(error))
            return
        layers = self._descriptors(manifest["layers"], f"{where} > layers")
        if not layers:
            # image-manifest: "the array SHOULD have at least one item".
            self.warning(f"{where}: the manifest has no layers")
        if config_descriptor.media_type not in (model.MEDIA_CONFIG, model.MEDIA_DOCKER_CONFIG):
            # An OCI 1.1 artifact (a signature, an SBOM, …): its config is not an image
            # config, and its layers have no diff_ids; only the blobs themselves can be checked.
            self.check_blob(config_descriptor, f"{where} > config")
            for i, layer in enumerate(layers):
                self.check_blob(layer, f"{where} > layers[{i}]")
            return
        if config_descriptor.digest in self._configs:
            config = self._configs[config_descriptor.digest]
        else:
            config = self.load_json(config_descriptor, "config", f"{where} > config")
            self._configs[config_descriptor.digest] = config
        diff_ids = self.check_layers(layers, where)
        if config is None:
            return
        self.check_config(config, diff_ids, descriptor, where)

    def check_referrer(self, manifest: dict[str, Any], descriptor: Descriptor, where: str,
                       depth: int = 0) -> None:
        """image-spec 1.1 artifacts and referrers: manifest.md, "Guidelines for Artifact Usage".

        A manifest whose config is the empty descriptor must say what it is (artifactType); an
        empty descriptor must be exactly `{}`; a `subject` missing from the layout is a warning
        (the referrer describes nothing that anyone received, but the specs allow it).
        """
        config = manifest.get("config")
        artifact_type = manifest.get("artifactType")
        if isinstance(config, dict) and config.get("mediaType") == referrers.MEDIA_EMPTY \
                and artifact_type is None:
            self.problem(f"{where}: the config is the empty descriptor, so artifactType must be "
                         "set (image-spec manifest.md)")
        for key, item in [("config", config)] + [(f"layers[{i}]", layer) for i, layer
                                                 in enumerate(manifest.get("layers") or [])]:
            if isinstance(item, dict) and item.get("mediaType") == referrers.MEDIA_EMPTY:
                self.check_empty(item, f"{where} > {key}")
        said = descriptor.extra.get("artifactType")
        if said is not None and said != artifact_type:
            self.problem(f"{where}: the descriptor's artifactType {said} differs from the "
                         f"manifest's {artifact_type}")
        if "subject" not in manifest:
            return
        try:
            subject = descriptor_from(manifest["subject"], f"{where} > subject")
        except LayoutError as error:
            self.problem(str(error))
            return
        named = descriptor.annotations.get(referrers.ANNOTATION_REFERENCE_DIGEST)
        if named is not None and named != subject.digest:
            self.problem(f"{where}: {referrers.ANNOTATION_REFERENCE_DIGEST} {named} differs from "
                         f"the subject {subject.digest}")
        if subject.media_type not in model.MANIFEST_TYPES + model.INDEX_TYPES:
            self.problem(f"{where} > subject: {subject.media_type} is not a manifest or index "
                         "media type; a referrer's subject is an image")
            return
        if not os.path.lexists(self.reader.blob_path(subject.digest)):
            # image-layout.md lets a layout lack referenced blobs, and manifest.md calls the
            # subject a weak association: a warning, which --strict turns into a failure.
            self.warning(f"{where} > subject: {subject.digest} is not in the layout; the "
                         "referrer describes an image this layout does not hold")
            return
        self.check_descriptor(subject, f"{where} > subject", depth)

    def check_empty(self, item: dict[str, Any], where: str) -> None:
        """manifest.md, "Guidance for an Empty Descriptor": `{}`, so digest and size are fixed."""
        empty = referrers.EMPTY_DESCRIPTOR
        if item.get("digest") != empty.digest or item.get("size") != empty.size:
            self.problem(f"{where}: an empty descriptor ({referrers.MEDIA_EMPTY}) must have "
                         f"digest {empty.digest} and size {empty.size}")
        if "data" in item and item["data"] != empty.extra["data"]:
            self.problem(f"{where}: the empty descriptor's data must be {empty.extra['data']!r}")

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
        history = [h for h in config.get("history") or [] if not h.get("empty_layer", False)]
        if config.get("history") is not None and len(history) != len(expected):
            self.problem(f"{where}: the config has {len(history)} non-empty history entries "
                         f"for {len(expected)} layers")
        if descriptor.platform:
            own = model.config_platform(config)
            said = {k: v for k, v in descriptor.platform.items() if k in model.PLATFORM_FIELDS}
            if own != said:
                self.problem(f"{where}: the index says platform {said} but the config says {own}")


def _claim(descriptor: Descriptor) -> tuple[str, str]:
    """Each document once, but a manifest once per platform claim made of it: the claims are
    what differ between two descriptors of the same digest."""
    return descriptor.digest, model.platform_name(descriptor.platform or {})


def _location(node: Node[str]) -> str:
    return node.context


def _oci_layout_problems(reader: LayoutReader) -> list[str]:
    try:
        document = reader.oci_layout()
    except LayoutError as error:
        return [str(error)]
    return [f"oci-layout: {message}" for message in schema.problems(document, "oci-layout")]


def validate_layout(root: Path, tag: str | None = None) -> Report:
    """Every problem and warning of the layout at `root` (or of one tag in it)."""
    try:
        reader = LayoutReader(root, check=False)
    except LayoutError as error:
        return Report([str(error)])
    checker = Checker(reader)
    for message in _oci_layout_problems(reader):
        checker.problem(message)
    try:
        index = parse_json(reader.read_file("index.json"), f"{root}/index.json")
    except LayoutError as error:
        checker.problem(str(error))
        return checker.report
    found = schema.problems(index, "index")
    for message in found:
        checker.problem(f"index.json: {message}")
    if found:
        return checker.report
    entries = checker._descriptors(index["manifests"], "index.json manifests")
    if checker.problems:
        return checker.report
    chosen = [(i, d) for i, d in enumerate(entries) if tag is None or d.ref_name == tag]
    if tag is not None and not chosen:
        tags = sorted({d.ref_name for d in entries if d.ref_name})
        raise LayoutError(f"{root} has no tag {tag!r} (tags: {', '.join(tags) or 'none'}); "
                          "the layout itself was not checked")
    for i, descriptor in chosen:
        where = f"index.json manifests[{i}]" + (f" ({descriptor.ref_name})"
                                                if descriptor.ref_name else "")
        if descriptor.ref_name is not None and not model.REF_NAME.fullmatch(descriptor.ref_name):
            checker.problem(f"{where}: tag {descriptor.ref_name!r} does not match the OCI "
                            "ref-name grammar")
        checker.check_descriptor(descriptor, where)
    if tag is None and not checker.problems:
        stray = leftovers.debris(root, reader)
        if stray:
            checker.warning(f"{len(stray)} file{'s' if len(stray) > 1 else ''} in the layout "
                            f"{'are' if len(stray) > 1 else 'is'} not part of any image "
                            f"(e.g. {stray[0]}); remove them with: hellocontainer gc {root}")
    return checker.report
