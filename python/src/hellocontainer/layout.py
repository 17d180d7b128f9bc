"""The OCI image layout on disk: reading blobs safely, and publishing without half-written states.

The hard problem is a build killed at any instant, or two builds writing one layout at once.
The answer: every blob and the index are written to temporary names first and moved into place
with rename(2), which is atomic; blobs go in before the index.json that points at them, and
index.json is replaced last. A reader therefore sees the old layout or the new one, never an
index naming a missing blob. Builds into an existing layout serialise on flock(2) of the layout
directory and merge their tags into whatever index.json holds at that moment, so concurrent
builds keep each other's tags.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import model
from .errors import LayoutError
from .model import Descriptor

DIR_MODE = 0o755
FILE_MODE = 0o644  # set explicitly: the umask of whoever builds must not show in the layout


class Layout:
    """Read access to an image layout directory, ours or another tool's."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        """The file of blob `digest`; refuses any digest that is not plain sha256 hex.

        The digest becomes a path, so checking its grammar first is what stops a crafted
        index from pointing at `blobs/sha256/../../etc/passwd`.
        """
        if not model.SHA256_DIGEST.fullmatch(digest):
            raise LayoutError(f"digest {digest!r} is not sha256 followed by 64 lowercase hex digits")
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def read_json(self, name: str) -> Any:
        try:
            return json.loads((self.root / name).read_bytes())
        except FileNotFoundError:
            raise LayoutError(f"{self.root} has no {name}; is it an OCI image layout?") from None
        except (OSError, ValueError) as error:
            raise LayoutError(f"cannot read {self.root / name}: {error}") from None
        except RecursionError:
            raise LayoutError(f"{self.root / name} nests JSON too deeply to be an OCI document") from None

    def read_blob_json(self, digest: str) -> Any:
        try:
            return json.loads(self.blob_path(digest).read_bytes())
        except FileNotFoundError:
            raise LayoutError(f"blob {digest} is missing from {self.root}") from None
        except (OSError, ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else error
            raise LayoutError(f"blob {digest} in {self.root} is not readable JSON: {reason}") from None

    def index_manifests(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.read_json("index.json").get("manifests", [])]

    def reachable(self, roots: list[Descriptor]) -> set[str]:
        """Digests of every blob reachable from `roots` (indexes and manifests are followed)."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            descriptor = stack.pop()
            if descriptor.digest in seen:
                continue
            seen.add(descriptor.digest)
            if descriptor.media_type not in model.INDEX_TYPES + model.MANIFEST_TYPES:
                continue
            try:
                document = self.read_blob_json(descriptor.digest)
            except LayoutError:
                continue  # a missing child is validate's business, not garbage collection's
            children = document.get("manifests", []) + document.get("layers", [])
            if "config" in document:
                children.append(document["config"])
            stack.extend(Descriptor.from_json(c) for c in children if isinstance(c, dict))
        return seen


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def index_document(manifests: list[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    """index.json's bytes. Entries are sorted so the order builds ran in never changes them."""
    ordered = sorted(manifests, key=lambda d: (d.ref_name or "", d.digest, d.media_type))
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": model.MEDIA_INDEX,
        "manifests": [d.to_json() for d in ordered],
    }
    if annotations:
        document["annotations"] = annotations
    return model.canonical_json(document)


OCI_LAYOUT_BYTES = model.canonical_json({"imageLayoutVersion": model.OCI_LAYOUT_VERSION})


class Staging:
    """A private folder beside the output where a build writes its blobs before publishing.

    It sits in the output's parent folder so that moving blobs into the layout is a rename
    within one file system (atomic), and it is removed whatever happens.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.published = False  # True once the whole folder became the output
        self._created: list[Path] = []
        try:
            for parent in reversed([output.parent, *output.parent.parents]):
                if not parent.exists():
                    parent.mkdir()
                    self._created.append(parent)
            # Cleaning up and creating-then-locking happen under a short lock on the parent
            # folder: otherwise another build could take our new, not yet locked folder for
            # the debris of a killed build and delete it.
            with _locked(output.parent):
                _remove_stale_staging(output)
                self.dir = Path(tempfile.mkdtemp(prefix=_staging_prefix(output), dir=output.parent))
                # Held until this build ends, so that a later build can tell our live folder
                # from the debris of a killed one (whose lock the kernel released).
                self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self.blobs = self.dir / "blobs" / "sha256"
            self.blobs.mkdir(parents=True)
        except OSError as error:
            self._remove_created()
            raise LayoutError(
                f"cannot write output {output}: {error.strerror}; choose a writable --output"
            ) from None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock_fd)
        if exc_info[0] is not None:
            self._remove_created()

    def _remove_created(self) -> None:
        for parent in reversed(self._created):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only ever removes a folder we made and left empty

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


def _staging_prefix(output: Path) -> str:
    return f".{output.name}.hellocontainer-"


def _remove_stale_staging(output: Path) -> None:
    """Remove staging folders of builds that were killed (SIGKILL, power loss) before cleanup."""
    for candidate in output.parent.glob(_staging_prefix(output) + "*"):
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live build holds it
        finally:
            os.close(fd)
        shutil.rmtree(candidate, ignore_errors=True)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock(2) on the layout directory itself: no lock file to leave behind."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def publish(staging: Staging, manifests: list[Descriptor],
            then: Callable[[], None] | None = None) -> None:
    """Make `manifests` (tagged descriptors whose blobs are staged) visible in the output layout.

    A new output is created by renaming the complete staging folder into place. An existing one
    is updated under the lock: blobs first, index.json last, then blobs that only the replaced
    tags used are removed. `then` runs while the lock is still held, so that what it reads
    (an oci-archive of the layout, say) is exactly what was published.
    """
    output = staging.output
    if not output.exists():
        _write_file_atomically(staging.dir / "oci-layout", OCI_LAYOUT_BYTES)
        _write_file_atomically(staging.dir / "index.json", index_document(manifests))
        _fsync_dir(staging.blobs)
        for path in (staging.dir, staging.dir / "blobs", staging.blobs):
            os.chmod(path, DIR_MODE)  # mkdtemp made it 0700
        try:
            os.rename(staging.dir, output)
            _fsync_dir(output.parent)
            staging.published = True
            # The folder we renamed is the one this build has held locked since it was made.
            if then is not None:
                then()
            return
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise LayoutError(f"cannot create {output}: {error.strerror}") from None
            # Another build created the layout first: merge into it like any existing layout.
    if not output.is_dir():
        raise LayoutError(f"output {output} exists and is not a directory; choose another --output")
    with _locked(output):
        _merge(staging, manifests)
        if then is not None:
            then()


def _merge(staging: Staging, manifests: list[Descriptor]) -> None:
    output = staging.output
    layout = Layout(output)
    has_layout = (output / "oci-layout").exists()
    if not has_layout and any(output.iterdir()):
        raise LayoutError(
            f"output {output} exists but is not an OCI image layout (no oci-layout file); "
            "choose another --output or remove it"
        )
    document = layout.read_json("index.json") if has_layout else {"manifests": []}
    old = [Descriptor.from_json(d) for d in document.get("manifests", [])]
    new_tags = {d.ref_name for d in manifests}
    kept = [d for d in old if d.ref_name is None or d.ref_name not in new_tags]

    blobs = output / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    os.chmod(output / "blobs", DIR_MODE)
    os.chmod(blobs, DIR_MODE)
    for staged in sorted(staging.blobs.iterdir()):
        target = blobs / staged.name
        if not target.exists():  # content-addressed: an existing blob already has these bytes
            os.rename(staged, target)
    _fsync_dir(blobs)
    if not has_layout:
        _write_file_atomically(output / "oci-layout", OCI_LAYOUT_BYTES)
    _write_file_atomically(output / "index.json",
                           index_document(kept + manifests, document.get("annotations")))
    _fsync_dir(output)

    # Remove only what the replaced tags referenced and nothing references now: blobs that
    # another tool put here without an index entry are none of our business.
    orphans = layout.reachable(old) - layout.reachable(kept + manifests)
    for digest in sorted(orphans):
        with contextlib.suppress(OSError, LayoutError):
            layout.blob_path(digest).unlink()
