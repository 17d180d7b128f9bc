"""`hellocontainer index`: one multi-platform image from images built separately.

Embedded builds make one architecture per Buildroot configuration or Yocto MACHINE. This joins
their single-platform images into one tag whose index.json entry points at an image index blob
listing each platform's manifest — the nesting `podman run --platform` and `skopeo copy --all`
expect. The index blob lists platforms in a fixed order, so the order of the sources never
changes its digest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import model
from .errors import LayoutError, SpecError
from .layout import Layout, Staging, publish
from .model import Descriptor
from .spec import check_tags
from .validate import Checker


@dataclass(frozen=True)
class Source:
    """One image to include: a layout and, when it holds several, the tag to take."""

    layout: Path
    tag: str | None


def _platform_key(platform: dict[str, str]) -> tuple[str, str, str]:
    return (platform.get("os", ""), platform.get("architecture", ""), platform.get("variant", ""))


def _entries(source: Source) -> list[Descriptor]:
    """The platform-specific manifests a source contributes (a nested index is flattened)."""
    layout = Layout(source.layout)
    entries = layout.index_manifests()
    if source.tag is not None:
        entries = [d for d in entries if d.ref_name == source.tag]
    if not entries:
        raise LayoutError(f"{source.layout} has no tag {source.tag!r}; check the source's :TAG")
    if len({d.digest for d in entries}) > 1:
        tags = ", ".join(sorted(d.ref_name or "(untagged)" for d in entries))
        raise SpecError(f"{source.layout} holds several images ({tags}); name one as LAYOUT:TAG")
    descriptor = entries[0]
    if descriptor.media_type in model.INDEX_TYPES:
        document = layout.read_blob_json(descriptor.digest)
        return [_with_platform(layout, Descriptor.from_json(d)) for d in document["manifests"]]
    return [_with_platform(layout, descriptor)]


def _with_platform(layout: Layout, descriptor: Descriptor) -> Descriptor:
    """The manifest descriptor with its platform, read from the config when the index lacks it."""
    if descriptor.media_type not in model.MANIFEST_TYPES:
        raise LayoutError(f"{layout.root}: {descriptor.digest} is a {descriptor.media_type}, "
                          "not an image manifest")
    config = layout.read_blob_json(layout.read_blob_json(descriptor.digest)["config"]["digest"])
    platform = model.config_platform(config)
    return Descriptor(descriptor.media_type, descriptor.digest, descriptor.size, platform)


def _copy_blobs(layout: Layout, descriptor: Descriptor, staging: Staging) -> None:
    for digest in sorted(layout.reachable([descriptor])):
        target = staging.blob_path(digest)
        if not target.exists():
            try:
                with staging.new_blob() as (stream, tmp), \
                        layout.blob_path(digest).open("rb") as blob:
                    shutil.copyfileobj(blob, stream, 1 << 20)
            except OSError as error:
                raise LayoutError(f"source {layout.root}: blob {digest} cannot be read "
                                  f"({error.strerror}); run 'hellocontainer validate' on it") from None
            staging.finish_blob(tmp, digest)


def build_index(sources: list[Source], output: Path, tags: tuple[str, ...]) -> Descriptor:
    """Write one image index of every source's platforms into `output` under `tags`."""
    check_tags(tags)
    by_platform: dict[tuple[str, str, str], tuple[Descriptor, Source]] = {}
    for source in sources:
        for descriptor in _entries(source):
            key = _platform_key(descriptor.platform or {})
            if key in by_platform and by_platform[key][0].digest != descriptor.digest:
                other = by_platform[key][1].layout
                name = model.platform_name(descriptor.platform or {})
                raise SpecError(f"{source.layout} and {other} both provide {name}; "
                                "give one image per platform")
            by_platform[key] = (descriptor, source)
    manifests = [by_platform[key][0] for key in sorted(by_platform)]

    with Staging(output) as staging:
        for descriptor, source in by_platform.values():
            _copy_blobs(Layout(source.layout), descriptor, staging)
        index = model.canonical_json({
            "schemaVersion": 2,
            "mediaType": model.MEDIA_INDEX,
            "manifests": [d.to_json() for d in manifests],
        })
        index_descriptor = staging.add_blob(model.MEDIA_INDEX, index)
        tagged = [Descriptor(model.MEDIA_INDEX, index_descriptor.digest, index_descriptor.size,
                             None, {model.ANNOTATION_REF_NAME: tag}) for tag in tags]
        checker = Checker(Layout(staging.dir))
        for descriptor in tagged:
            checker.check_descriptor(descriptor, f"new index {descriptor.ref_name}")
        if checker.problems:
            raise LayoutError("a source image is invalid: " + "; ".join(checker.problems)
                              + "; run 'hellocontainer validate' on the sources")
        publish(staging, tagged)
    return index_descriptor
