"""Which image-index entries are referrers (an SBOM, a signature) and never an image to run.

Two conventions mark one: Docker's attestation annotation (buildx) and the platform
unknown/unknown. Tools write either or both, so either alone must be enough.
"""

from __future__ import annotations

from hellocontainer.oci import model, referrers
from hellocontainer.oci.model import Descriptor

DIGEST = "sha256:" + "a" * 64
SUBJECT = "sha256:" + "b" * 64


def entry(platform: dict[str, str] | None, annotations: dict[str, str] | None) -> Descriptor:
    return Descriptor(model.MEDIA_MANIFEST, DIGEST, 100, platform, annotations or {})


def test_a_referrer_marked_only_by_the_attestation_annotation_is_recognised():
    marked = entry({"os": "linux", "architecture": "amd64"},
                   {referrers.ANNOTATION_REFERENCE_TYPE: referrers.REFERENCE_TYPE_ATTESTATION})
    assert referrers.is_listed_referrer(marked)


def test_a_referrer_marked_only_by_the_unknown_platform_is_recognised():
    assert referrers.is_listed_referrer(entry(dict(referrers.UNKNOWN_PLATFORM), None))


def test_an_image_or_an_unrelated_annotation_is_no_referrer():
    assert not referrers.is_listed_referrer(entry({"os": "linux", "architecture": "arm64"}, None))
    assert not referrers.is_listed_referrer(entry(None, {referrers.ANNOTATION_REFERENCE_TYPE: "other"}))


def test_our_index_entry_carries_both_marks_and_names_its_subject():
    subject = Descriptor(model.MEDIA_MANIFEST, SUBJECT, 10)
    listed = referrers.index_entry(Descriptor(model.MEDIA_MANIFEST, DIGEST, 100), subject)
    assert listed.platform == referrers.UNKNOWN_PLATFORM
    assert listed.annotations == {referrers.ANNOTATION_REFERENCE_DIGEST: SUBJECT,
                                  referrers.ANNOTATION_REFERENCE_TYPE: "attestation-manifest"}
