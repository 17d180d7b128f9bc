"""`hellocontainer build`: one static binary and its settings in, a published image out.

    spec → ELF check → layer → config → manifest → validate → publish (atomic) → archive

Every input is checked before anything is written; anything written goes to a staging folder
that disappears on failure, so an error never leaves partial output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from ..check.validate import Checker
from ..errors import BinaryError, LayoutError, SpecError, os_error_message
from ..oci import model, platforms, referrers
from ..oci.model import Descriptor
from ..oci.platforms import Platform
from ..oci.reader import LayoutReader
from ..oci.safefile import file_kind
from ..oci.value import Value
from ..store.archive import ArchiveWriter
from ..store.layout import Staging, preflight, publish
from . import elfcheck
from .documents import config_document, manifest_document
from .layer import Progress, layer_entries, write_layer
from .spec import ExtraFile, ImageSpec, check_tags


class BuildRequest(Value):
    __slots__ = ("archive", "binary", "epoch", "jobs", "output", "sbom_copy", "spec", "sysroot")

    def __init__(
        self,
        binary: str,
        output: Path,
        spec: ImageSpec,
        epoch: int,
        archive: Path | None = None,
        jobs: int | None = None,
        sysroot: Path | None = None,
        sbom_copy: tuple[Path, ...] = (),
    ) -> None:
        self.binary = binary  # a path, or with `sysroot` a path inside it
        self.output = output
        self.spec = spec
        self.epoch = epoch
        self.archive = archive
        self.jobs = jobs
        self.sysroot = sysroot
        # also write the SBOMs here (the deploy folder's <name>.spdx.json), one per format in order
        self.sbom_copy = sbom_copy


class BuildResult(Value):
    __slots__ = ("index", "manifest", "platform", "sboms", "signatures", "tags")

    def __init__(
        self,
        manifest: Descriptor,
        platform: Platform,
        tags: tuple[str, ...],
        index: Descriptor | None = None,
        sboms: tuple[tuple[str, Descriptor], ...] = (),
        signatures: tuple[Descriptor, ...] = (),
    ) -> None:
        self.manifest = manifest
        self.platform = platform
        self.tags = tags
        self.index = index  # what the tags name when an SBOM or signature is attached
        self.sboms = sboms  # (format, its artifact manifest) in order
        self.signatures = signatures  # the signature manifests (image first, then SBOMs)

    @property
    def sbom(self) -> Descriptor | None:
        """The first SBOM's artifact manifest (the one format when only one is written)."""
        return self.sboms[0][1] if self.sboms else None


def resolve_in_root(root: Path, path: str) -> Path:
    """`path` as a program inside `root` would see it (as under chroot).

    A sysroot holds the target's files, and its symbolic links are meant for the target:
    `usr/bin/hello -> /bin/busybox` must lead to the sysroot's busybox, never the build
    machine's. Links are followed component by component, absolute ones from `root`, and `..`
    stops at `root`, so nothing outside it can be reached.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:  # the kernel's own limit (MAXSYMLINKS)
                raise BinaryError(f"{path} in sysroot {root}: too many levels of symbolic "
                                  "links (a loop?); fix the links in the sysroot")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def resolve_binary(binary: str, sysroot: Path | None) -> Path:
    """The binary's path on the build machine; inside the sysroot when one is given."""
    if sysroot is None:
        return Path(binary)
    if not sysroot.is_dir():
        raise BinaryError(f"sysroot {sysroot} is not a directory; check --sysroot")
    return resolve_in_root(sysroot, "/" + binary.lstrip("/"))


def resolve_file(extra: ExtraFile, sysroot: Path | None) -> Path:
    """Where an extra file's bytes come from: an absolute source lives in the sysroot, if any."""
    if sysroot is not None and extra.src.startswith("/"):
        return resolve_in_root(sysroot, extra.src)
    return extra.base / extra.src


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """Build and publish the image; `progress`, if given, is told the layer's bytes written
    and their total."""
    spec = request.spec
    binary = resolve_binary(request.binary, request.sysroot)
    check_tags(spec.tags)
    _check_regular(binary, "binary", "check the path (and --sysroot)")
    declared = platforms.resolve(spec.arch, spec.tune) if spec.arch else None
    platform = elfcheck.check_binary(binary, declared, spec.allow_dynamic)
    # Named as the user named it: a sysroot's usr/bin/hello may be a link to /bin/busybox.
    dest = spec.path or "/" + os.path.basename(request.binary.rstrip("/"))
    files = [(resolve_file(f, request.sysroot), f) for f in spec.files]
    for source, extra in files:
        _check_regular(source, "file source", f"fix {extra.origin}")
    entries = layer_entries(binary, dest, files, request.epoch)
    _check_archive_target(request.archive, request.output)
    if request.sbom_copy and spec.sbom is None:
        raise SpecError("--sbom-copy needs an SBOM; add --sbom (or the spec key sbom)")
    # The provenance modules (SBOM formats, signing) are imported when the build asks for
    # them: a plain build does without their start-up cost.
    if spec.sbom is not None:
        from ..provenance import sbom

        sbom.require_complete(spec.sbom, os.path.basename(dest))
        if request.sbom_copy and len(request.sbom_copy) != len(spec.sbom.formats):
            raise SpecError(f"{len(request.sbom_copy)} --sbom-copy for "
                            f"{len(spec.sbom.formats)} SBOM format(s) "
                            f"({', '.join(spec.sbom.formats)}); give one --sbom-copy per format, "
                            "in the same order")
    for copy_path in request.sbom_copy:
        _check_beside_layout(copy_path, request.output, "--sbom-copy")
    # Loaded before any work: a wrong passphrase must not cost a compressed layer.
    key = None
    if spec.sign_key:
        from ..provenance.signing import load_signing_key

        key = load_signing_key(Path(spec.sign_key))
    preflight(request.output)

    with Staging(request.output) as staging:
        layer = write_layer(entries, staging, spec.compression, spec.gzip_level, request.jobs,
                            progress)
        config = config_document(spec, platform, dest, layer.diff_id, request.epoch)
        config_descriptor = staging.add_blob(model.MEDIA_CONFIG, model.canonical_json(config))
        manifest = manifest_document(config_descriptor, [layer.descriptor], spec)
        manifest_descriptor = staging.add_blob(model.MEDIA_MANIFEST, model.canonical_json(manifest))
        image = Descriptor(manifest_descriptor.media_type, manifest_descriptor.digest,
                           manifest_descriptor.size, platform.to_oci())
        index = None
        sboms: list[tuple[str, Descriptor]] = []
        documents: list[bytes] = []
        listed: list[Descriptor] = []  # the image's referrers, as its index lists them
        if spec.sbom is not None:
            from ..provenance.formats import FORMATS

            facts = sbom.ImageFacts(image, platform.to_oci(), dest, *_file_hashes(binary))
            bom = sbom.resolve(spec.sbom, facts, request.epoch)
            for name in spec.sbom.formats:
                form = FORMATS[name]
                documents.append(form.write(bom))
                sboms.append((name, _attach(staging, image, form.media_type, documents[-1])))
                listed.append(referrers.index_entry(sboms[-1][1], image))
        signatures: list[Descriptor] = []
        if key is not None:
            from . import signing

            subjects = [image] + [artifact for _, artifact in sboms]
            signed = signing.attach(staging, subjects, key, spec.sign_identity)
            listed += signed
            signatures = [Descriptor(d.media_type, d.digest, d.size) for d in signed]
        if listed:
            # referrers.py says why the tags then name an index rather than the image.
            document = model.canonical_json(referrers.image_index([image], listed))
            index = staging.add_blob(model.MEDIA_INDEX, document)
        named = index or image
        tagged = [Descriptor(named.media_type, named.digest, named.size, named.platform,
                             {model.ANNOTATION_REF_NAME: tag}) for tag in spec.tags]
        # The new image is checked like any layout before anyone can see it.
        checker = Checker(LayoutReader(staging.dir, check=False), {layer.descriptor.digest: layer.diff_id})
        for descriptor in tagged:
            checker.check_descriptor(descriptor, f"new image {descriptor.ref_name}")
        if checker.problems:
            raise LayoutError("internal error, the new image is invalid: " + "; ".join(checker.problems))
        copies: list[_PendingFile] = []
        try:
            for path, data in zip(request.sbom_copy, documents):
                copies.append(_PendingFile(path, data, "--sbom-copy"))
            archive = None if request.archive is None \
                else ArchiveWriter(request.archive, request.epoch)
        except BaseException:
            for copy in copies:
                copy.discard()
            raise

        def then() -> None:
            if archive is not None:
                archive.commit()
            for copy in copies:
                copy.commit()

        try:
            publish(staging, tagged, archive=archive.write if archive else None, then=then)
        finally:
            if archive is not None:
                archive.discard()
            for copy in copies:
                copy.discard()
    return BuildResult(manifest_descriptor, platform, spec.tags, index, tuple(sboms),
                       tuple(signatures))


def _file_hashes(path: Path) -> tuple[str, str]:
    """sha256 and sha1 (hex) of a file, streamed."""
    # SHA1 only because SPDX 2.3 tools still expect it beside SHA256.
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def _attach(staging: Staging, image: Descriptor, media_type: str, data: bytes) -> Descriptor:
    """Stage `data` as an OCI 1.1 referrer of `image` whose artifactType is its media type:
    its artifact manifest."""
    payload = staging.add_blob(media_type, data)
    staging.add_blob(referrers.MEDIA_EMPTY, referrers.EMPTY_BYTES)
    artifact = referrers.artifact_manifest(media_type, payload, image)
    return staging.add_blob(model.MEDIA_MANIFEST, model.canonical_json(artifact))


class _PendingFile:
    """A file written completely beside its destination now, and renamed into place only once
    the image is published: a failure before that leaves neither."""

    def __init__(self, path: Path, data: bytes, flag: str) -> None:
        self.path, self._flag = path, flag
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            self._tmp: str | None = tmp
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(tmp, 0o644)
        except OSError as error:
            self.discard()
            raise LayoutError(os_error_message(error, f"{flag} {path}", f"choose another {flag}")) \
                from None

    def commit(self) -> None:
        if self._tmp is not None:
            os.replace(self._tmp, self.path)
            self._tmp = None

    def discard(self) -> None:
        tmp, self._tmp = getattr(self, "_tmp", None), None
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _check_beside_layout(path: Path | None, output: Path, flag: str) -> None:
    """Refuse, before any work, a file path inside the layout or that is a directory."""
    if path is None:
        return
    file_path, output_path = Path(os.path.abspath(path)), Path(os.path.abspath(output))
    if file_path == output_path or output_path in file_path.parents:
        raise LayoutError(f"{flag} {path} lies inside the layout {output}; write it beside it")
    if path.is_dir():
        raise LayoutError(f"{flag} {path} is a directory; name the file to write")


def _check_archive_target(archive: Path | None, output: Path) -> None:
    """Refuse an archive path that cannot be written before anything is published."""
    if archive is None:
        return
    archive_path, output_path = Path(os.path.abspath(archive)), Path(os.path.abspath(output))
    if archive_path == output_path:
        raise LayoutError(f"--archive {archive} is the layout's own path; write it beside it")
    if output_path in archive_path.parents:
        raise LayoutError(f"--archive {archive} lies inside the layout {output}; write it beside it")
    if archive_path in output_path.parents:
        raise LayoutError(f"--archive {archive} would be a file where the folder of --output "
                          f"{output} must be; choose another --archive")
    if archive.is_dir():
        raise LayoutError(f"--archive {archive} is a directory; name the .tar file to write")
    blocker = next((p for p in archive.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise LayoutError(f"--archive {archive}: {blocker} is not a directory; choose another path")


def _check_regular(path: Path, what: str, fix: str) -> None:
    """Refuse, without blocking or reading it, an input that is not a regular file.

    stat (which follows links: a sysroot's program may be one) tells a FIFO, device or
    directory apart before anything opens it; opening a FIFO would wait for a writer forever.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BinaryError(f"{what} {path} does not exist; {fix}") from None
    except OSError as error:
        raise BinaryError(os_error_message(error, f"{what} {path}", fix)) from None
    if not stat.S_ISREG(info.st_mode):
        kind = file_kind(info.st_mode)
        raise BinaryError(f"{what} {path} is {kind}, not a regular file; {fix}")
