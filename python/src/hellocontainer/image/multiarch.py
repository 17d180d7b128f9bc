"""`hellocontainer index`: one multi-platform image from images built separately.

Embedded builds make one architecture per Buildroot configuration or Yocto MACHINE. This joins
their single-platform images into one tag whose index.json entry points at an image index blob
listing each platform's manifest — the nesting `podman run --platform` and `skopeo copy --all`
expect. The index blob lists platforms in a fixed order, so the order of the sources never
changes its digest. Each source image's referrers (its SBOM) come along, listed after the
platform images as referrers.py describes: one SBOM per platform image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..check.validate import Checker
from ..errors import LayoutError, SpecError
from ..oci import model, referrers
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..oci.safefile import CHUNK
from ..store.layout import Staging, preflight, publish
from .spec import check_tags


@dataclass(frozen=True)
class Source:
    """One image to include: a layout and, when it holds several, the tag to take."""

    layout: Path
    tag: str | None


def _platform_key(platform: dict[str, str]) -> tuple[str, str, str]:
    return (platform.get("os", ""), platform.get("architecture", ""), platform.get("variant", ""))


Entry = tuple[Descriptor, dict[str, object], list[Descriptor]]


def _subject(reader: LayoutReader, descriptor: Descriptor) -> str | None:
    """The digest an artifact manifest refers to, or None."""
    if descriptor.media_type not in model.MANIFEST_TYPES:
        return None
    subject = reader.document(descriptor, "manifest").get("subject")
    return subject.get("digest") if isinstance(subject, dict) else None


def _entries(source: Source) -> list[Entry]:
    """The platform manifests a source contributes (a nested index is flattened), each with the
    runtime part of its image config and its referrers."""
    reader = LayoutReader(source.layout)
    all_entries = reader.entries()
    # Referrers another tool listed untagged in index.json are not images to choose from.
    loose = [d for d in all_entries if d.ref_name is None and _subject(reader, d)]
    entries = [d for d in reader.select(source.tag) if d not in loose]
    if not entries:
        raise LayoutError(f"{source.layout} holds no image; check the source")
    if len({d.digest for d in entries}) > 1:
        tags = ", ".join(sorted(d.ref_name or "(untagged)" for d in entries))
        raise SpecError(f"{source.layout} holds several images ({tags}); name one as LAYOUT:TAG")
    descriptor = entries[0]
    candidates = list(loose)
    if descriptor.media_type in model.INDEX_TYPES:
        listed = [c for c in reader.children(descriptor) if c.media_type in model.MANIFEST_TYPES]
        children = [c for c in listed if not referrers.is_listed_referrer(c)]
        candidates += [c for c in listed if referrers.is_listed_referrer(c)]
    else:
        children = [descriptor]
    out = []
    for child in children:
        image = reader.platform_image(child, None)
        platform = model.config_platform(image.config)
        # Its referrers, and theirs (the signature of its SBOM), each listed under its own
        # subject: they travel with the image they are about.
        about = {child.digest}
        found_by_digest: dict[str, Descriptor] = {}
        while True:
            more = {d.digest: Descriptor(d.media_type, d.digest, d.size, None,
                                         {referrers.ANNOTATION_REFERENCE_DIGEST: subject})
                    for d in candidates if d.digest not in found_by_digest
                    and (subject := _subject(reader, d)) in about}
            if not more:
                break
            found_by_digest.update(more)
            about |= set(more)
        found = sorted(found_by_digest.values(), key=lambda d: d.digest)
        out.append((Descriptor(child.media_type, child.digest, child.size, platform),
                    image.config.get("config") or {}, found))
    return out


def _copy_blobs(reader: LayoutReader, descriptor: Descriptor, staging: Staging) -> None:
    """Copy every blob the image reaches into staging, each verified as it is read."""
    for digest in sorted(reader.reachable([descriptor])):
        target = staging.blob_path(digest)
        if target.exists():
            continue
        with staging.new_blob() as (stream, tmp), \
                os.fdopen(reader.open_blob(Descriptor("", digest, 0)), "rb") as blob:
            while chunk := blob.read(CHUNK):
                stream.write(chunk)
        staging.finish_blob(tmp, digest)


Program = tuple[tuple[str, ...], tuple[str, ...]]


def _program(config: dict[str, object]) -> Program:
    """What a platform's image starts: its entrypoint and default arguments."""
    entrypoint, cmd = config.get("Entrypoint") or [], config.get("Cmd") or []
    return (tuple(map(str, entrypoint)), tuple(map(str, cmd)))  # type: ignore[call-overload]


def _words(program: Program) -> str:
    import shlex

    return shlex.join([*program[0], *program[1]]) or "(none)"


def build_index(sources: list[Source], output: Path, tags: tuple[str, ...],
                allow_different_programs: bool = False) -> Descriptor:
    """Write one image index of every source's platforms into `output` under `tags`."""
    check_tags(tags)
    by_platform: dict[tuple[str, str, str], tuple[Descriptor, Source]] = {}
    referrers_of: dict[str, list[tuple[Descriptor, Source]]] = {}
    programs: dict[Program, str] = {}
    for source in sources:
        for descriptor, runtime, found in _entries(source):
            for referrer in found:
                if referrer.digest not in {r.digest for r, _ in referrers_of.get(descriptor.digest, [])}:
                    referrers_of.setdefault(descriptor.digest, []).append((referrer, source))
            programs.setdefault(_program(runtime), model.platform_name(descriptor.platform or {}))
            key = _platform_key(descriptor.platform or {})
            if key in by_platform and by_platform[key][0].digest != descriptor.digest:
                other = by_platform[key][1].layout
                name = model.platform_name(descriptor.platform or {})
                raise SpecError(f"{source.layout} and {other} both provide {name}; "
                                "give one image per platform")
            by_platform[key] = (descriptor, source)
    manifests = [by_platform[key][0] for key in sorted(by_platform)]
    if len(programs) > 1 and not allow_different_programs:
        (a, name_a), (b, name_b) = list(programs.items())[:2]
        raise SpecError(f"the platforms start different programs ({name_a}: {_words(a)}; "
                        f"{name_b}: {_words(b)}); build them with the same --path and "
                        "--entrypoint, or pass --allow-different-programs")
    preflight(output)

    # Each listed under its own subject: the image, or the referrer it is about.
    listed = [referrers.index_entry(
                  Descriptor(referrer.media_type, referrer.digest, referrer.size),
                  Descriptor("", referrer.annotations[referrers.ANNOTATION_REFERENCE_DIGEST], 0))
              for image in manifests
              for referrer, _ in sorted(referrers_of.get(image.digest, []),
                                        key=lambda item: item[0].digest)]

    with Staging(output) as staging:
        for descriptor, source in by_platform.values():
            _copy_blobs(LayoutReader(source.layout), descriptor, staging)
            for referrer, origin in referrers_of.get(descriptor.digest, []):
                _copy_blobs(LayoutReader(origin.layout), referrer, staging)
        index = model.canonical_json(referrers.image_index(manifests, listed))
        index_descriptor = staging.add_blob(model.MEDIA_INDEX, index)
        tagged = [Descriptor(model.MEDIA_INDEX, index_descriptor.digest, index_descriptor.size,
                             None, {model.ANNOTATION_REF_NAME: tag}) for tag in tags]
        checker = Checker(LayoutReader(staging.dir, check=False))
        for descriptor in tagged:
            checker.check_descriptor(descriptor, f"new index {descriptor.ref_name}")
        if checker.problems:
            raise LayoutError("a source image is invalid: " + "; ".join(checker.problems)
                              + "; run 'hellocontainer validate' on the sources")
        publish(staging, tagged)
    return index_descriptor
