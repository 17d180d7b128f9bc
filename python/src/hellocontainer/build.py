"""`hellocontainer build`: one static binary and its settings in, a published image out.

    spec → ELF check → layer → config → manifest → validate → publish (atomic) → archive

Every input is checked before anything is written; anything written goes to a staging folder
that disappears on failure, so an error never leaves partial output.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from . import elfcheck, model, platforms
from .archive import write_archive
from .errors import BinaryError, LayoutError
from .image import config_document, manifest_document
from .layer import layer_entries, write_layer
from .layout import Layout, Staging, publish
from .model import Descriptor
from .platforms import Platform
from .spec import ImageSpec, check_tags
from .validate import Checker


@dataclass(frozen=True)
class BuildRequest:
    binary: Path  # already joined with --sysroot
    output: Path
    spec: ImageSpec
    epoch: int
    archive: Path | None = None
    jobs: int | None = None


@dataclass(frozen=True)
class BuildResult:
    manifest: Descriptor
    platform: Platform
    tags: tuple[str, ...]


def resolve_binary(binary: str, sysroot: str | None) -> Path:
    """The binary's path on the build machine; inside the sysroot when one is given."""
    if sysroot is None:
        return Path(binary)
    root = Path(sysroot)
    if not root.is_dir():
        raise BinaryError(f"sysroot {sysroot} is not a directory; check --sysroot")
    relative = posixpath.normpath("/" + binary).lstrip("/")
    return root / relative


def build(request: BuildRequest) -> BuildResult:
    spec, binary = request.spec, request.binary
    check_tags(spec.tags)
    if not binary.exists():
        raise BinaryError(f"binary {binary} does not exist; check the path (and --sysroot)")
    if binary.is_dir():
        raise BinaryError(f"binary {binary} is a directory; name the program file inside it")
    declared = platforms.resolve(spec.arch, spec.tune) if spec.arch else None
    platform = elfcheck.check_binary(binary, declared, spec.allow_dynamic)
    dest = spec.path or "/" + binary.name
    entries = layer_entries(binary, dest, spec.files, request.epoch)
    _check_archive_target(request.archive)

    with Staging(request.output) as staging:
        layer = write_layer(entries, staging, spec.compression, spec.gzip_level, request.jobs)
        config = config_document(spec, platform, dest, layer.diff_id, request.epoch)
        config_descriptor = staging.add_blob(model.MEDIA_CONFIG, model.canonical_json(config))
        manifest = manifest_document(config_descriptor, [layer.descriptor], spec)
        manifest_descriptor = staging.add_blob(model.MEDIA_MANIFEST, model.canonical_json(manifest))
        tagged = [
            Descriptor(manifest_descriptor.media_type, manifest_descriptor.digest,
                       manifest_descriptor.size, platform.to_oci(),
                       {model.ANNOTATION_REF_NAME: tag})
            for tag in spec.tags
        ]
        # The new image is checked like any layout before anyone can see it.
        checker = Checker(Layout(staging.dir), {layer.descriptor.digest: layer.diff_id})
        for descriptor in tagged:
            checker.check_descriptor(descriptor, f"new image {descriptor.ref_name}")
        if checker.problems:
            raise LayoutError("internal error, the new image is invalid: " + "; ".join(checker.problems))
        publish(staging, tagged)
    if request.archive is not None:
        write_archive(request.output, request.archive, request.epoch)
    return BuildResult(manifest_descriptor, platform, spec.tags)


def _check_archive_target(archive: Path | None) -> None:
    """Refuse an archive path that cannot be written before anything is published."""
    if archive is None:
        return
    if archive.is_dir():
        raise LayoutError(f"--archive {archive} is a directory; name the .tar file to write")
    blocker = next((p for p in archive.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise LayoutError(f"--archive {archive}: {blocker} is not a directory; choose another path")
