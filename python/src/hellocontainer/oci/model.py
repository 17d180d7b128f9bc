"""The OCI image model: media types, descriptors and the canonical JSON every document is written in.

Nothing here touches the disk. A document's digest is the sha256 of exactly the bytes
`canonical_json` returns, so the same settings always give the same digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .value import Value

OCI_LAYOUT_VERSION = "1.0.0"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = MEDIA_LAYER_TAR + "+gzip"
MEDIA_LAYER_ZSTD = MEDIA_LAYER_TAR + "+zstd"
# Docker's types appear in layouts written by other tools; `validate` and `inspect` accept them.
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (MEDIA_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, MEDIA_DOCKER_LIST)
CONFIG_TYPES = (MEDIA_CONFIG, MEDIA_DOCKER_CONFIG)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"

# image-layout spec, "index.json file": the grammar of org.opencontainers.image.ref.name.
#   ref := component ("/" component)*;  component := alphanum (separator alphanum)*
#   alphanum := [A-Za-z0-9]+;  separator := [-._:@+] | "--"
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
REF_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# image-spec descriptor.md: sha256 digests are exactly 64 lowercase hex characters. Checking
# this before a digest becomes a path is what keeps `blobs/sha256/../../x` out.
SHA256_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def canonical_json(document: Any) -> bytes:
    """The one serialisation of every JSON document we write.

    Sorted keys and no insignificant whitespace make the bytes a pure function of the content,
    whatever order a dict was filled in; UTF-8 without \\u escapes keeps them short.
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


PLATFORM_FIELDS = ("os", "architecture", "variant")


def config_platform(config: dict[str, Any]) -> dict[str, str]:
    """The platform an image config declares, as an index descriptor's `platform` spells it."""
    return {key: config[key] for key in PLATFORM_FIELDS if config.get(key)}


def platform_name(platform: dict[str, str]) -> str:
    """`linux/arm/v7`: the name podman's --platform takes."""
    return "/".join(platform[key] for key in PLATFORM_FIELDS if platform.get(key))


# The default of a descriptor's mappings: one object every descriptor shares, so it must not be
# changeable.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Descriptor(Value):
    """An image-spec descriptor: what a blob is, its digest and size, and optional extras."""

    __slots__ = ("annotations", "digest", "extra", "media_type", "platform", "size")

    def __init__(
        self,
        media_type: str,
        digest: str,
        size: int,
        platform: dict[str, str] | None = None,
        annotations: Mapping[str, str] = _EMPTY,
        extra: Mapping[str, Any] = _EMPTY,
    ) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.platform = platform
        self.annotations = annotations
        # Fields we do not interpret (artifactType, urls, data, …), kept so that rewriting an index
        # another tool wrote loses nothing of its entries.
        self.extra = extra

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "mediaType": self.media_type,
                               "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        known = ("mediaType", "digest", "size", "platform", "annotations")
        return cls(data["mediaType"], data["digest"], data["size"], data.get("platform"),
                   dict(data.get("annotations") or {}),
                   {k: v for k, v in data.items() if k not in known})

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get(ANNOTATION_REF_NAME)
