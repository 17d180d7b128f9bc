"""Garbage in a layout: what a killed build left behind, and blobs no tag needs any more.

The rule for deleting blobs, chosen so that readers never lose a blob under their feet:
a build never deletes the blobs of a tag it replaces, because a reader (`skopeo copy`,
`podman run`) may have resolved that tag a moment earlier and still be reading them. Those
blobs become garbage, and garbage is removed

- by `hellocontainer gc LAYOUT`, at once: run it when no reader of a replaced tag is left, and
- by a later build, but only once the index.json it replaces has stood for GRACE_SECONDS: every
  unreferenced blob was unreferenced at least that long, longer than any reader takes.

Temporary index files (`.index.json.*`) and staging folders of dead builds are never read by
anyone, so both remove them whenever they hold the layout's lock. What counts as garbage is
defined, read-only, in `oci/leftovers.py`; this module only deletes.

Referrers (an SBOM, a signature) live as long as their subject. Ours sit in the image index
beside the image, so they become garbage with it. Another tool's untagged referrer is dropped
from index.json (its blobs then being garbage) once the subject's last tag is gone, by a build
rewriting the index or by `gc`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci.leftovers import LAYOUT_STAGING_KIND, live_entries, temporary_index_files, unreferenced_blobs
from ..oci.reader import LayoutReader
from ..oci.value import Value
from . import staging
from .index import index_document, write_index

GRACE_SECONDS = 300


class Collected(Value):
    __slots__ = ("bytes", "removed")

    def __init__(self, removed: tuple[str, ...], bytes: int) -> None:
        self.removed = removed  # paths relative to the layout (staging folders: beside it)
        self.bytes = bytes


def collect(root: Path, reader: LayoutReader, blobs: bool = True) -> Collected:
    """Remove debris and (with `blobs`) unreferenced blobs. The caller holds the layout's lock.

    Blobs go only after index.json no longer lists the referrers whose subject is gone: their
    blobs count as unreferenced, and an entry must never outlive its blobs, even when the caller
    (a build) fails before writing an index.json of its own."""
    removed: list[str] = []
    size = 0
    if blobs:
        removed += _prune_index(root, reader)
    victims = temporary_index_files(root)
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
        removed += [f"../{name}" for name in staging.remove_stale(root, LAYOUT_STAGING_KIND)]
    return Collected(tuple(removed), size)


def _prune_index(root: Path, reader: LayoutReader) -> list[str]:
    """Rewrite index.json without the referrers whose subject is gone; what was dropped."""
    entries = reader.entries()
    live = live_entries(reader, entries)
    if len(live) == len(entries):
        return []
    write_index(root, index_document(live, reader.index_document().get("annotations")))
    return [f"index.json entry {d.digest} (a referrer whose subject is gone)"
            for d in entries if d not in live]


def index_is_settled(root: Path) -> bool:
    """Whether index.json has stood unchanged for GRACE_SECONDS (see the module's rule). The
    caller has read it under the lock a moment ago: an OSError here is the caller's to report."""
    return time.time() - os.stat(root / "index.json").st_mtime >= GRACE_SECONDS
