"""OCI 1.1 referrers (an SBOM, a signature) and where a layout keeps them so every tool still works.

The hard part is not the artifact manifest, which image-spec 1.1 defines exactly (an
`artifactType`, the empty config descriptor, the payload as its layers, a `subject` naming the
image), but where to list it. Listed beside the image in index.json, as the referrers an OCI 1.1
registry returns, it breaks the most common command there is: containers/image (podman, skopeo)
refuses `oci:LAYOUT` without a tag as soon as index.json holds more than one entry ("more than
one image in oci, choose an image").

So a tag names an image index holding the platform image(s) and, after them, their referrers,
each with platform unknown/unknown and Docker's attestation annotations (the shape buildx
writes for its SBOM and provenance). Runtimes choose an image by platform and never pick
unknown/unknown; `skopeo copy --all` carries the referrers to a registry with the image; and the
`subject` of each artifact manifest keeps it findable the OCI 1.1 way.

The index descriptor of a referrer carries no `artifactType`, although descriptor.md allows
one: containers/image 5.23 (skopeo 1.9, podman 4.3) drops the unknown field while copying, sees
a changed index and rewrites it, so the index digest would not survive a registry round trip.
The artifact manifest itself carries the type.
"""

from __future__ import annotations

from typing import Any

from . import model
from .model import Descriptor

MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
# manifest.md, "Guidance for an Empty Descriptor": exactly these values.
EMPTY_DESCRIPTOR = Descriptor(MEDIA_EMPTY, model.sha256_digest(EMPTY_BYTES), len(EMPTY_BYTES),
                              extra={"data": "e30="})

# Docker's attestation convention (buildx), which containers/image and Docker both skip when
# choosing an image to run.
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ANNOTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
REFERENCE_TYPE_ATTESTATION = "attestation-manifest"
UNKNOWN_PLATFORM = {"os": "unknown", "architecture": "unknown"}


def artifact_manifest(artifact_type: str, payload: Descriptor, subject: Descriptor) -> dict[str, Any]:
    """An image-spec 1.1 artifact manifest: `payload` as its one layer, about `subject`."""
    return {
        "schemaVersion": 2,
        "mediaType": model.MEDIA_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_DESCRIPTOR.to_json(),
        "layers": [payload.to_json()],
        # Only what identifies the subject: a platform or tag would tie the artifact to a name.
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
    }


def index_entry(artifact: Descriptor, subject: Descriptor) -> Descriptor:
    """The descriptor that lists a referrer in an image index beside its subject."""
    return Descriptor(artifact.media_type, artifact.digest, artifact.size, dict(UNKNOWN_PLATFORM),
                      {ANNOTATION_REFERENCE_DIGEST: subject.digest,
                       ANNOTATION_REFERENCE_TYPE: REFERENCE_TYPE_ATTESTATION})


def is_listed_referrer(descriptor: Descriptor) -> bool:
    """Whether an image index entry is a referrer (ours or buildx's), never an image to run."""
    return (descriptor.annotations.get(ANNOTATION_REFERENCE_TYPE) == REFERENCE_TYPE_ATTESTATION
            or model.platform_name(descriptor.platform or {}) == "unknown/unknown")


def image_index(images: list[Descriptor], referrers: list[Descriptor]) -> dict[str, Any]:
    """An image index of platform images, then their referrers (already index entries)."""
    return {
        "schemaVersion": 2,
        "mediaType": model.MEDIA_INDEX,
        "manifests": [d.to_json() for d in images] + [d.to_json() for d in referrers],
    }
