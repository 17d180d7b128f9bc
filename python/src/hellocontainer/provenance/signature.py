"""A cosign signature as an OCI 1.1 referrer: what is signed, how it is stored, how it is read.

cosign's key-based signature is a "simple signing" payload (signing.simple_signing_payload:
the image's manifest digest, a name, optional claims) and the signature of those exact bytes.
cosign stores the payload as a layer of media type `application/vnd.dev.cosign.simplesigning.v1+json`
and the signature, base64, in that layer's descriptor annotation `dev.cosignproject.cosign/signature`.
Its OCI 1.1 mode (`--registry-referrers-mode oci-1-1`) puts that layer in an artifact manifest
with `subject` naming the image; this module writes the image-spec 1.1 form of it
(`artifactType: application/vnd.dev.cosign.artifact.sig.v1+json`, the empty config), which the
layout lists beside the image as referrers.py describes, exactly like the SBOM. One signature
per artifact, so a second key adds a second referrer rather than rewriting the first.

The signature signs the image *manifest* (and the SBOM's artifact manifest), never the image
index the tag names: that index lists the signature, so it cannot be signed by it. A manifest
names its config and layers by digest, so proving the manifest proves every byte of the image.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..oci import model, referrers
from ..oci.model import Descriptor
from .signing import SigningKey, simple_signing_payload

MEDIA_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ARTIFACT_TYPE_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"


@dataclass(frozen=True)
class SignatureArtifact:
    """The blobs of one signature referrer, ready to be stored: the payload and the manifest."""

    payload: bytes
    payload_descriptor: Descriptor  # carries the signature annotation
    manifest: bytes
    manifest_descriptor: Descriptor

    def blobs(self) -> list[tuple[str, bytes]]:
        """(media type, bytes) of each blob to store, the empty config included."""
        return [(MEDIA_SIMPLE_SIGNING, self.payload), (referrers.MEDIA_EMPTY, referrers.EMPTY_BYTES),
                (model.MEDIA_MANIFEST, self.manifest)]


def sign(key: SigningKey, subject: Descriptor, identity: str = "",
         optional: dict[str, str] | None = None) -> SignatureArtifact:
    """The signature referrer of `subject` (an image or artifact manifest) by `key`.

    `identity` is the payload's docker-reference: the repository the image is published
    under, which containers/image's `sigstoreSigned` policy matches; cosign ignores it.
    `optional` claims are signed with it (cosign's `-a KEY=VALUE`).
    """
    payload = simple_signing_payload(subject.digest, identity, optional)
    signature = base64.b64encode(key.sign(payload)).decode()
    plain = Descriptor.of(MEDIA_SIMPLE_SIGNING, payload)
    layer = Descriptor(plain.media_type, plain.digest, plain.size,
                       annotations={ANNOTATION_SIGNATURE: signature})
    manifest = model.canonical_json(
        referrers.artifact_manifest(ARTIFACT_TYPE_SIGNATURE, layer, subject))
    return SignatureArtifact(payload, layer, manifest, Descriptor.of(model.MEDIA_MANIFEST, manifest))


def is_signature(manifest: dict[str, Any]) -> bool:
    """Whether a manifest holds cosign signatures: ours; cosign's OCI 1.1 form, which names the
    type in config.mediaType instead of artifactType; or cosign's classic `.sig` image (what
    `cosign save` writes), an image manifest whose layers are all simple-signing payloads."""
    config = manifest.get("config") or {}
    if ARTIFACT_TYPE_SIGNATURE in (manifest.get("artifactType"), config.get("mediaType")):
        return True
    layers = manifest.get("layers") or []
    return bool(layers) and all(isinstance(layer, dict)
                                and layer.get("mediaType") == MEDIA_SIMPLE_SIGNING
                                for layer in layers)


@dataclass(frozen=True)
class Claim:
    """One signed payload found in a signature manifest: the bytes and what they claim."""

    layer: Descriptor  # its descriptor, with the signature annotation
    payload: bytes
    signature: bytes | None  # None: the annotation is missing or not base64
    manifest_digest: str | None  # critical.image.docker-manifest-digest
    identity: str | None  # critical.identity.docker-reference
    type: str | None  # critical.type


def claims(layers: list[Descriptor], payloads: list[bytes]) -> list[Claim]:
    """What each simple-signing layer of a signature manifest claims (payloads already read
    and verified against their descriptors, in the same order)."""
    found = []
    for layer, payload in zip(layers, payloads):
        if layer.media_type != MEDIA_SIMPLE_SIGNING:
            continue
        try:
            signature: bytes | None = base64.b64decode(
                layer.annotations.get(ANNOTATION_SIGNATURE, ""), validate=True) or None
        except (binascii.Error, ValueError):
            signature = None
        digest = identity = kind = None
        try:
            critical = json.loads(payload)["critical"]
            digest = critical["image"]["docker-manifest-digest"]
            identity = (critical.get("identity") or {}).get("docker-reference")
            kind = critical.get("type")
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        found.append(Claim(layer, payload, signature, digest if isinstance(digest, str) else None,
                           identity if isinstance(identity, str) else None,
                           kind if isinstance(kind, str) else None))
    return found


# containers/image (skopeo, podman) keeps signatures of a `dir:` copy in files beside its
# manifest.json: `signature-N` for the manifest.json image, `<hex>.signature-N` for an instance
# of a copied index. A sigstore one is a zero byte, the format name, a newline, then JSON with
# the payload (base64, as Go encodes []byte) and the layer's annotations (internal/signature).
CONTAINERS_SIGSTORE_PREFIX = b"\x00sigstore-json\n"


def containers_image_blob(payload: bytes, annotations: dict[str, str]) -> bytes:
    """A signature as containers/image stores it for `dir:` (read by sigstoreSigned policies)."""
    document = {"mimeType": MEDIA_SIMPLE_SIGNING, "payload": base64.b64encode(payload).decode(),
                "annotations": dict(sorted(annotations.items()))}
    return CONTAINERS_SIGSTORE_PREFIX + json.dumps(document, separators=(",", ":")).encode()
