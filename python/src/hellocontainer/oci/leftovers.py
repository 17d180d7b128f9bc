"""What lies in or beside a layout without being part of it: the leftovers of interrupted work.

Read-only, so that `validate` can warn of them and `gc` can delete them from one definition:

- temporary index files (`.index.json.*`), written beside index.json and renamed over it;
- staging folders (`.NAME.KIND-*`) beside an output, whose run has died (its flock is free);
- blobs that no live index.json entry reaches.

Referrers (an SBOM, a signature) live as long as their subject. Other tools list them untagged in
index.json; such an entry is live while its subject is reachable from the other live entries.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import LayoutError
from . import model
from .digests import DIGEST
from .model import Descriptor
from .reader import LayoutReader

INDEX_TEMP_PREFIX = ".index.json."
LAYOUT_STAGING_KIND = "hellocontainer"  # the staging folders of builds into a layout


def staging_prefix(output: Path, kind: str) -> str:
    """`.NAME.KIND-`: hidden, and named after the output it belongs to."""
    return f".{output.name}.{kind}-"


def abandoned(path: Path) -> bool:
    """Whether `path` (a file or folder, not a link) is no live run's: its flock is free.

    A run holds its temporary file or folder locked while it lives; the kernel releases the
    lock when the run dies, however it dies.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live run holds it
    finally:
        os.close(fd)
    return True


def stale_staging(output: Path, kind: str = LAYOUT_STAGING_KIND) -> list[Path]:
    """Staging folders of `kind` beside `output` whose run is gone (a hint: a folder made this
    instant and not yet locked looks gone too; remove only under the parent's lock)."""
    return [candidate for candidate in sorted(output.parent.glob(staging_prefix(output, kind) + "*"))
            if candidate.is_dir() and abandoned(candidate)]


def temporary_index_files(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if name.startswith(INDEX_TEMP_PREFIX))


def blob_files(root: Path) -> list[str]:
    """`blobs/ALG/ENCODED` of every regular file named like a blob, sorted."""
    found = []
    blobs = root / "blobs"
    if not blobs.is_dir() or blobs.is_symlink():
        return []
    for algorithm in sorted(os.listdir(blobs)):
        folder = blobs / algorithm
        if folder.is_symlink() or not folder.is_dir():
            continue
        for name in sorted(os.listdir(folder)):
            if DIGEST.fullmatch(f"{algorithm}:{name}") and not (folder / name).is_dir():
                found.append(f"blobs/{algorithm}/{name}")
    return found


def _loose_subject(reader: LayoutReader, descriptor: Descriptor) -> str | None:
    """The subject digest of an untagged index.json entry that is a referrer, else None."""
    kinds = {**{t: "manifest" for t in model.MANIFEST_TYPES}, **{t: "index" for t in model.INDEX_TYPES}}
    if descriptor.ref_name is not None or descriptor.media_type not in kinds:
        return None
    try:
        document = reader.document(descriptor, kinds[descriptor.media_type])
    except LayoutError:
        return None  # unreadable: not known to be a referrer, so kept like any entry
    subject = document.get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


def live_entries(reader: LayoutReader, entries: list[Descriptor]) -> list[Descriptor]:
    """`entries` without the untagged referrers whose subject no other live entry reaches."""
    live, loose = [], []
    for descriptor in entries:
        subject = _loose_subject(reader, descriptor)
        if subject is None:
            live.append(descriptor)
        else:
            loose.append((descriptor, subject))
    reached = reader.reachable(live, strict=False)
    grew = True
    while grew:  # a referrer of a referrer (a signature of the SBOM) lives through it
        grew = False
        for item in list(loose):
            if item[1] in reached:
                loose.remove(item)
                live.append(item[0])
                reached |= reader.reachable([item[0]], strict=False)
                grew = True
    return [d for d in entries if d in live]


def unreferenced_blobs(root: Path, reader: LayoutReader) -> list[str]:
    """Blob files that no live index.json entry reaches. Any unreadable document aborts: a
    damaged manifest might still be what a blob is for, and garbage collection must never guess."""
    reachable = reader.reachable(live_entries(reader, reader.entries()))
    used = {f"blobs/{d.replace(':', '/', 1)}" for d in reachable}
    return [path for path in blob_files(root) if path not in used]


def debris(root: Path, reader: LayoutReader) -> list[str]:
    """What `gc` would remove, for `validate` to warn of; empty when the layout is clean."""
    try:
        blobs = unreferenced_blobs(root, reader)
    except LayoutError:
        blobs = []
    staging = [f"../{p.name}" for p in stale_staging(root)]
    return temporary_index_files(root) + blobs + staging
