"""index.json and oci-layout: their bytes, and replacing them atomically and durably.

The one writer of a layout's top-level files, shared by publishing (layout.py) and by gc, which
rewrites index.json when it drops the entries of referrers whose subject is gone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..oci import model
from ..oci.model import Descriptor
from .staging import write_beside

DIR_MODE = 0o755
FILE_MODE = 0o644  # set explicitly: the umask of whoever builds must not show in the layout
OCI_LAYOUT_BYTES = model.canonical_json({"imageLayoutVersion": model.OCI_LAYOUT_VERSION})


def fsync_dir(path: Path) -> None:
    """Make the names in `path` durable: a rename is not on disk until its folder is synced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a complete temporary file in the same folder, then rename."""
    tmp = write_beside(path, data, FILE_MODE)
    try:
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


def write_index(root: Path, index: bytes) -> None:
    """Replace the index.json of a layout whose lock the caller holds."""
    write_file_atomically(root / "index.json", index)
    fsync_dir(root)
