"""The OCI image layout on disk: publishing without half-written states, and without losing tags.

The hard problem is a build killed at any instant (SIGKILL, power loss, a full disk), two builds
writing one layout at once, and readers resolving tags while a build replaces them. The answer:

- Every blob and the index are written to temporary names first and moved into place with
  rename(2), which is atomic; blobs go in before the index.json that points at them, and
  index.json is replaced last. A reader sees the old layout or the new one, never an index
  naming a missing blob, and a kill at any point leaves every old tag valid.
- A new layout is a whole staging folder renamed into place. Builds into an existing layout
  serialise on flock(2) of the layout directory and merge their tags into whatever index.json
  holds at that moment, so concurrent builds keep each other's tags.
- Nothing on disk is trusted: the existing index.json must parse before anything is written,
  and an existing blob is reused only after its digest and size are verified.
- Replaced tags' blobs are not deleted by the build that replaced them: a reader may still be
  reading them. gc.py says when they go.
- The archive (`--archive`) is written completely before anything is published, so a full disk
  there publishes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from ..errors import LayoutError, os_error_message
from ..oci.leftovers import LAYOUT_STAGING_KIND, live_entries
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from . import gc
from . import staging as staging_module
from .index import DIR_MODE, FILE_MODE, OCI_LAYOUT_BYTES, fsync_dir, index_document, write_file_atomically
from .staging import StagingDir


class Staging(StagingDir):
    """The staging folder of a layout: a build writes its blobs here before publishing."""

    def __init__(self, output: Path) -> None:
        super().__init__(output, LAYOUT_STAGING_KIND, "--output")
        try:
            self.blobs = self.dir / "blobs" / "sha256"
            self.blobs.mkdir(parents=True)
        except OSError as error:
            self._cleanup(failed=True)
            raise LayoutError(os_error_message(error, f"cannot write output {output}")) from None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self._cleanup(failed=error is not None)
        if isinstance(error, OSError):
            # Whatever step hit the disk's limits (the layer, a blob, the index), the user needs
            # the output it concerns and the knowledge that nothing of it became visible.
            raise LayoutError(os_error_message(
                error, f"cannot write output {self.output}",
                "nothing was published" if not self.published else None)) from None

    @contextlib.contextmanager
    def new_blob(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A file to stream a blob into; `finish_blob` then names it by its digest."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix="blob.")
        with os.fdopen(fd, "wb") as stream:
            yield stream, Path(tmp)
            stream.flush()
            os.fsync(stream.fileno())

    def finish_blob(self, tmp: Path, digest: str) -> None:
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, self.blobs / digest.split(":", 1)[1])

    def add_blob(self, media_type: str, data: bytes) -> Descriptor:
        descriptor = Descriptor.of(media_type, data)
        with self.new_blob() as (stream, tmp):
            stream.write(data)
        self.finish_blob(tmp, descriptor.digest)
        return descriptor

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]


@contextlib.contextmanager
def locked_layout(root: Path) -> Iterator[None]:
    """The layout's lock, as builds take it: for `gc` and anything else that rewrites it."""
    try:
        with staging_module.locked(root):
            yield
    except OSError as error:
        raise LayoutError(os_error_message(error, "layout")) from None


# Writes the archive of the layout that is about to be published: (the folder holding its
# oci-layout and index.json, blob digest -> the file holding it). Called before anything is
# published; raising stops it.
ArchiveHook = Callable[[Path, dict[str, Path]], None]


def publish(staging: Staging, manifests: list[Descriptor], archive: ArchiveHook | None = None,
            then: Callable[[], None] | None = None,
            replaces: Mapping[str, str] | None = None) -> None:
    """Make `manifests` (tagged descriptors whose blobs are staged) visible in the output layout.

    A new output is created by renaming the complete staging folder into place. An existing one
    is updated under the lock: blobs first, index.json last. `archive` is given the exact
    content about to be published, and must have written it completely before anything is;
    `then` runs after publishing, while the lock is still held. `replaces` (tag → digest) is
    what a command that rewrites tags (`sign`) read before it worked: if another command moved
    one of those tags meanwhile, nothing is published.
    """
    output = staging.output
    try:
        if not os.path.lexists(output) and _publish_new(staging, manifests, archive):
            if then is not None:
                then()
            return
        if output.is_symlink() or not output.is_dir():
            raise LayoutError(f"output {output} exists and is not a directory; choose another --output")
        with staging_module.locked(output):
            _merge(staging, manifests, archive, replaces or {})
            if then is not None:
                then()
    except OSError as error:
        raise LayoutError(os_error_message(
            error, f"cannot publish to {output}",
            None if staging.published else "nothing was published")) from None


def _publish_new(staging: Staging, manifests: list[Descriptor],
                 archive: ArchiveHook | None) -> bool:
    """Create the output by one rename; False when another build created it first."""
    index = index_document(manifests)
    write_file_atomically(staging.dir / "oci-layout", OCI_LAYOUT_BYTES)
    write_file_atomically(staging.dir / "index.json", index)
    if archive is not None:
        archive(staging.dir, {f"sha256:{p.name}": p for p in staging.blobs.iterdir()})
    fsync_dir(staging.blobs)
    for path in (staging.dir, staging.dir / "blobs", staging.blobs):
        os.chmod(path, DIR_MODE)  # mkdtemp made it 0700
    try:
        os.rename(staging.dir, staging.output)
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        # Another build created the layout first: merge into it like any existing layout.
        os.unlink(staging.dir / "index.json")
        os.unlink(staging.dir / "oci-layout")
        return False
    staging.published = True
    fsync_dir(staging.output.parent)
    return True


def _merge(staging: Staging, manifests: list[Descriptor], archive: ArchiveHook | None,
           replaces: Mapping[str, str]) -> None:
    output = staging.output
    has_layout = os.path.lexists(output / "oci-layout")
    if not has_layout and any(output.iterdir()):
        raise LayoutError(
            f"output {output} exists but is not an OCI image layout (no oci-layout file); "
            "choose another --output or remove it"
        )
    # Read (and so check) everything we rely on before writing a byte.
    reader = LayoutReader(output, check=has_layout)
    if has_layout:
        document = reader.index_document()
        old = reader.entries()
        reader.reachable(old)  # every document of the kept tags parses and verifies
    else:
        document, old = {}, []
    current = {d.ref_name: d.digest for d in old if d.ref_name}
    moved = sorted(tag for tag, digest in replaces.items() if current.get(tag) != digest)
    if moved:
        raise LayoutError(f"tag {', '.join(moved)} of {output} changed while this command ran; "
                          "nothing was published: run it again")
    new_tags = {d.ref_name for d in manifests}
    kept = [d for d in old if d.ref_name is None or d.ref_name not in new_tags]
    if has_layout:
        # Another tool's untagged referrer goes when its subject's last tag does (gc.py); the
        # second condition keeps this index consistent with the blobs gc.collect removes below.
        live, live_before = live_entries(reader, kept + manifests), live_entries(reader, old)
        kept = [d for d in kept if d in live and d in live_before]
    index = index_document(kept + manifests, document.get("annotations"))

    # Debris of killed builds, and (once it is safe for readers) blobs no tag needs: removed
    # before our own blobs move in, which no index reaches yet.
    if has_layout:
        gc.collect(output, reader, blobs=gc.index_is_settled(output))

    blobs = output / "blobs" / "sha256"
    # What publishing adds is taken back if it fails: the folders (an empty --output has none),
    # the blobs that were not there, and oci-layout. index.json still names only what was there
    # before, and a full disk or a read-only folder must leave the output exactly as it was.
    made = [folder for folder in (output / "blobs", blobs) if not os.path.lexists(folder)]
    added: list[Path] = []
    try:
        blobs.mkdir(parents=True, exist_ok=True)
        os.chmod(output / "blobs", DIR_MODE)
        os.chmod(blobs, DIR_MODE)
        staged = sorted(p for p in staging.blobs.iterdir() if not p.name.startswith("."))
        replace = [p for p in staged if not _good_blob(reader, blobs / p.name, p)]
        if archive is not None:
            sources = {f"sha256:{p.name}": p for p in staged}
            for digest in reader.reachable(kept):
                sources.setdefault(digest, reader.blob_path(digest))
            # The archive is made from a copy of the merged layout's two files in staging: the
            # layout itself must not change before the archive is complete.
            write_file_atomically(staging.dir / "oci-layout", OCI_LAYOUT_BYTES)
            write_file_atomically(staging.dir / "index.json", index)
            archive(staging.dir, sources)
        for path in replace:
            # Content-addressed: a verified existing blob already has these bytes. A damaged one
            # (truncated, a symlink, wrong bytes) is replaced by rename, which never follows
            # links; a directory in its place must go first, as rename cannot replace it.
            target = blobs / path.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            existed = os.path.lexists(target)
            os.rename(path, target)
            if not existed:
                added.append(target)
        fsync_dir(blobs)
        if not has_layout:
            write_file_atomically(output / "oci-layout", OCI_LAYOUT_BYTES)
        write_file_atomically(output / "index.json", index)
    except BaseException:
        for target in [*added, *([] if has_layout else [output / "oci-layout"])]:
            with contextlib.suppress(OSError):
                target.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only ever empty here: what we put in went above
        raise
    fsync_dir(output)


def _good_blob(reader: LayoutReader, existing: Path, staged: Path) -> bool:
    """Whether the layout already holds a verified copy of the staged blob."""
    if not os.path.lexists(existing):
        return False
    descriptor = Descriptor("application/octet-stream", f"sha256:{staged.name}",
                            staged.stat().st_size)
    try:
        reader.verify_blob(descriptor)
    except LayoutError:
        return False
    return True


def preflight(output: Path) -> None:
    """Refuse, before any work, an existing output whose index or documents cannot be trusted.

    The same reads happen again under the lock when merging; doing them first means a damaged
    layout costs the user one line, not a compressed layer thrown away.
    """
    if not os.path.lexists(output / "oci-layout"):
        return
    reader = LayoutReader(output)
    reader.reachable(reader.entries())
