"""Reading an OCI image layout in tests, with nothing but the standard library.

Tests check the packager's output independently of the packager's own reading code, so a bug
in one cannot hide a bug in the other.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def tagged_manifests(layout: Path) -> dict[str, str]:
    """tag -> manifest digest, from index.json."""
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"]}


def manifest(layout: Path, tag: str = "latest") -> dict[str, Any]:
    return json.loads(blob(layout, tagged_manifests(layout)[tag]))


def image_config(layout: Path, tag: str = "latest") -> dict[str, Any]:
    return json.loads(blob(layout, manifest(layout, tag)["config"]["digest"]))


def image_file(layout: Path, name: str, tag: str = "latest") -> bytes:
    """A file's bytes from the image's (single) layer."""
    (layer,) = manifest(layout, tag)["layers"]
    data = blob(layout, layer["digest"])
    if layer["mediaType"].endswith("+gzip"):
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.name.lstrip("./") == name.lstrip("/"):
                extracted = tar.extractfile(member)
                assert extracted is not None, f"{name} is not a regular file in the layer"
                return extracted.read()
    raise AssertionError(f"{name} not in the layer")
