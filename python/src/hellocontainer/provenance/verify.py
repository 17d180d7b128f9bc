"""Checking a signed image in a layout: `hellocontainer verify`.

What passes is exactly what a runtime could be given: every platform image the tag names, and
every referrer listed with it that is not a signature (the SBOM), must carry a signature that
the given public key verifies, whose payload names that very manifest digest; then every blob
those manifests reach (config, layers, the SBOM's document) is read and hashed against its
descriptor. A manifest names its blobs by digest, so a signature over the manifest plus those
hashes proves every byte. The image index the tag names is not signed (it lists the
signatures), and neither is index.json: a tag could be moved to another image signed by the
same key, which is why the board checks the digests it was built with (README, "Signing").

Any failure is one line naming it: a changed byte (the blob whose digest no longer matches), no
signature, a signature from another key (or a changed payload), a payload for another image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HelloContainerError, LayoutError
from ..oci import model, referrers
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from . import signature
from .signing import SIMPLE_SIGNING_TYPE, VerifyKey

UNATTACHED = ""  # signatures_of's key for signatures that name no subject


class SignatureCheckFailed(HelloContainerError):
    """The layout is readable, but what it holds is not proven by the key."""


@dataclass
class Proven:
    """What one tag's check proved."""

    ref: str
    index: str  # the digest the tag names (an index, or the image itself)
    images: list[tuple[Descriptor, str]] = field(default_factory=list)  # (manifest, platform)
    referrers: list[Descriptor] = field(default_factory=list)  # signed SBOMs and the like
    signatures: list[Descriptor] = field(default_factory=list)  # the signatures that verified
    claims: dict[str, signature.Claim] = field(default_factory=dict)  # subject digest → its proof
    blobs: int = 0  # blobs read and hashed


def verify_layout(root: Path, tag: str | None, key: VerifyKey, key_name: str) -> list[Proven]:
    """Check the image `tag` names (every tagged image when None); one Proven per tag."""
    reader = LayoutReader(root)
    entries = reader.select(tag)
    loose = [d for d in reader.entries() if d.ref_name is None]
    # Without tags (cosign's own layout), the images are the entries that refer to nothing.
    chosen = [d for d in entries if d.ref_name] or [d for d in loose if not _refers(reader, d)]
    if not chosen:
        raise LayoutError(f"{root} holds no image")
    results = []
    for entry in chosen:
        ref = f"{root}:{entry.ref_name}" if entry.ref_name else str(root)
        try:
            results.append(_verify_entry(reader, entry, loose, key, key_name, ref))
        except LayoutError as error:  # a damaged or changed blob: what failed, in one line
            raise SignatureCheckFailed(f"{ref}: signature check failed: {error}") from None
    return results


def _refers(reader: LayoutReader, descriptor: Descriptor) -> bool:
    """Whether an index.json entry is a signature or another referrer rather than an image."""
    if descriptor.media_type not in model.MANIFEST_TYPES:
        return False
    manifest = reader.document(descriptor, "manifest")
    return "subject" in manifest or signature.is_signature(manifest)


def _verify_entry(reader: LayoutReader, entry: Descriptor, loose: list[Descriptor],
                  key: VerifyKey, key_name: str, ref: str) -> Proven:
    if entry.media_type in model.INDEX_TYPES:
        children = reader.children(entry)
        images = [c for c in children if not referrers.is_listed_referrer(c)]
        listed = [c for c in children if referrers.is_listed_referrer(c)]
    else:
        images, listed = [entry], []
    # Another tool (cosign's own layout) may list signatures untagged in index.json instead.
    candidates = [d for d in listed + loose if d.media_type in model.MANIFEST_TYPES]
    manifests = {d.digest: reader.document(d, "manifest") for d in candidates}
    signatures_of: dict[str, list[Descriptor]] = {}
    others = []
    for descriptor in candidates:
        manifest = manifests[descriptor.digest]
        # A signature without a subject (cosign's classic `.sig` image) may be for any image:
        # only the digest its verified payload names counts, for every signature alike.
        subject = (manifest.get("subject") or {}).get("digest", UNATTACHED)
        if signature.is_signature(manifest):
            signatures_of.setdefault(subject, []).append(descriptor)
        elif descriptor in listed:
            others.append(descriptor)
    proven = Proven(ref, entry.digest)
    for image in images:
        if image.media_type not in model.MANIFEST_TYPES:
            raise SignatureCheckFailed(f"{ref}: signature check failed: {image.digest} is a "
                                       f"nested {image.media_type}, which is not checked")
        platform = model.platform_name(model.config_platform(
            reader.platform_image(image, None).config))
        what = f"the {platform} image {image.digest}"
        found, proven.claims[image.digest] = _check_signed(reader, image, signatures_of,
                                                           manifests, key, key_name, ref, what)
        proven.signatures.append(found)
        proven.images.append((image, platform))
    for other in others:
        kind = manifests[other.digest].get("artifactType") or "artifact"
        what = f"the {'SBOM' if 'spdx' in kind else kind} {other.digest}"
        found, proven.claims[other.digest] = _check_signed(reader, other, signatures_of,
                                                           manifests, key, key_name, ref, what)
        proven.signatures.append(found)
        proven.referrers.append(other)
    proven.blobs = _verify_blobs(reader, [d for d, _ in proven.images] + proven.referrers
                                 + proven.signatures)
    return proven


def _check_signed(reader: LayoutReader, subject: Descriptor, signatures_of: dict[str, list[Descriptor]],
                  manifests: dict[str, dict[str, Any]], key: VerifyKey, key_name: str, ref: str,
                  what: str) -> tuple[Descriptor, signature.Claim]:
    """The signature manifest that proves `subject` and the claim in it that does, or
    SignatureCheckFailed saying why none does."""
    found = signatures_of.get(subject.digest, []) + signatures_of.get(UNATTACHED, [])
    if not found:
        raise SignatureCheckFailed(f"{ref}: signature check failed: {what} has no signature; "
                                   "sign it with 'hellocontainer sign' or build --sign-key")
    elsewhere = None
    for descriptor in found:
        layers = [Descriptor.from_json(d) for d in manifests[descriptor.digest]["layers"]]
        payloads = [reader.blob_bytes(d) if d.media_type == signature.MEDIA_SIMPLE_SIGNING else b""
                    for d in layers]
        for claim in signature.claims(layers, payloads):
            if claim.signature is None or not key.verify(claim.payload, claim.signature):
                continue
            if claim.manifest_digest == subject.digest and claim.type == SIMPLE_SIGNING_TYPE:
                return descriptor, claim
            elsewhere = claim.manifest_digest
    if elsewhere is not None:
        raise SignatureCheckFailed(f"{ref}: signature check failed: the payload signed by "
                                   f"{key_name} is for another image ({elsewhere}), not {what}")
    raise SignatureCheckFailed(f"{ref}: signature check failed: no signature of {what} verifies "
                               f"with {key_name} (signed with another key, or the payload was "
                               "changed)")


def _verify_blobs(reader: LayoutReader, roots: list[Descriptor]) -> int:
    """Read and hash every blob the roots reach, each once; the number of blobs."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        descriptor = stack.pop()
        if descriptor.digest in seen:
            continue
        seen.add(descriptor.digest)
        if descriptor.media_type in model.MANIFEST_TYPES + model.INDEX_TYPES:
            stack.extend(reader.children(descriptor))  # the document is verified as it is read
        else:
            reader.verify_blob(descriptor)
    return len(seen)
