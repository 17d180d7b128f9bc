"""Garbage in a layout: what a killed build left behind, and blobs no tag needs any more.

The rule for deleting blobs, chosen so that readers never lose a blob under their feet:
a build never deletes the blobs of a tag it replaces, because a reader (`skopeo copy`,
`podman run`) may have resolved that tag a moment earlier and still be reading them. Those
blobs become garbage, and garbage is removed

- by `hellocontainer gc LAYOUT`, at once: run it when no reader of a replaced tag is left, and
- by a later build, but only once the index.json it replaces has stood for GRACE_SECONDS: every
  unreferenced blob was unreferenced at least that long, longer than any reader takes.

Temporary index files (`.index.json.*`) and staging folders of dead builds are never read by
anyone, so both remove them whenever they hold the layout's lock.

Referrers (an SBOM, a signature) live as long as their subject. Ours sit in the image index
beside the image, so they become garbage with it. Other tools list them untagged in index.json;
such an entry is kept while its subject is reachable from the other entries, and dropped from
index.json (its blobs then being garbage) once the subject's last tag is gone, by a build
rewriting the index or by `gc`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import model, staging
from .errors import LayoutError, os_error_message
from .model import Descriptor
from .reader import DIGEST, LayoutReader

GRACE_SECONDS = 300
INDEX_TEMP_PREFIX = ".index.json."


@dataclass(frozen=True)
class Collected:
    removed: tuple[str, ...]  # paths relative to the layout (staging folders: beside it)
    bytes: int


def _blob_files(root: Path) -> list[str]:
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


def _temporary_index_files(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if name.startswith(INDEX_TEMP_PREFIX))


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
    return [path for path in _blob_files(root) if path not in used]


def debris(root: Path, reader: LayoutReader) -> list[str]:
    """What `gc` would remove, for `validate` to warn of; empty when the layout is clean."""
    from .layout import stale_staging

    try:
        blobs = unreferenced_blobs(root, reader)
    except LayoutError:
        blobs = []
    staging = [f"../{p.name}" for p in stale_staging(root)]
    return _temporary_index_files(root) + blobs + staging


def collect(root: Path, reader: LayoutReader, blobs: bool = True, prune: bool = True) -> Collected:
    """Remove debris and (with `blobs`) unreferenced blobs, and (with `prune`) the index.json
    entries of referrers whose subject is gone. The caller holds the layout's lock."""
    from .layout import remove_stale_staging

    removed: list[str] = []
    size = 0
    if blobs and prune:
        removed += _prune_index(root, reader)
    victims = _temporary_index_files(root)
    if blobs:
        victims += unreferenced_blobs(root, reader)
    for relative in victims:
        path = root / relative
        try:
            size += path.lstat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise LayoutError(os_error_message(error, f"cannot remove {path}")) from None
        removed.append(relative)
    # Under the parent folder's lock, as builds create their staging folders: a folder made a
    # moment ago and not yet locked by its build must not look abandoned.
    with staging.locked(root.parent):
        removed += [f"../{name}" for name in remove_stale_staging(root)]
    return Collected(tuple(removed), size)


def _prune_index(root: Path, reader: LayoutReader) -> list[str]:
    """Rewrite index.json without the referrers whose subject is gone; what was dropped."""
    from .layout import index_document, write_index

    entries = reader.entries()
    live = live_entries(reader, entries)
    if len(live) == len(entries):
        return []
    write_index(root, index_document(live, reader.index_document().get("annotations")))
    return [f"index.json entry {d.digest} (a referrer whose subject is gone)"
            for d in entries if d not in live]


def index_is_settled(root: Path) -> bool:
    """Whether index.json has stood unchanged for GRACE_SECONDS (see the module's rule)."""
    try:
        age = time.time() - os.stat(root / "index.json").st_mtime
    except OSError:
        return False
    return age >= GRACE_SECONDS
