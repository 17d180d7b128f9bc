"""Signing images in a layout: at build time (`build --sign-key`) and afterwards (`sign`).

Both go through `attach`, so a layout signed while it was built and one built, then signed,
are the same bytes: the tag names an image index listing the platform image(s), then their
referrers (the SBOM), then one signature referrer for each image and each referrer that is not
itself a signature (provenance/signature.py has the artifact's shape). Signing is
deterministic, so signing twice with one key adds nothing the second time, and another key
adds its own signatures beside the first.

The private key is used in memory only: no byte of it, nor its path, is written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LayoutError
from ..oci import model, referrers
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..provenance import signature
from ..provenance.signing import SigningKey
from ..provenance.verify import Proven
from ..store.index import write_file_atomically
from ..store.layout import Staging, preflight, publish


def attach(staging: Staging, subjects: list[Descriptor], key: SigningKey, identity: str,
           listed: frozenset[str] = frozenset()) -> list[Descriptor]:
    """Stage a signature of each subject; return their index entries, leaving out those
    whose artifact (same key, same subject) is `listed` already."""
    entries = []
    for subject in subjects:
        artifact = signature.sign(key, Descriptor(subject.media_type, subject.digest, subject.size),
                                  identity)
        if artifact.manifest_descriptor.digest in listed:
            continue
        for media_type, data in artifact.blobs():
            staging.add_blob(media_type, data)
        entries.append(referrers.index_entry(artifact.manifest_descriptor, subject))
    return entries


@dataclass(frozen=True)
class Signed:
    """What `sign_layout` did for one tag."""

    tag: str
    index: Descriptor  # what the tag names now
    images: list[Descriptor]  # the image manifests signed
    signatures: list[Descriptor]  # the signature manifests added (none: signed already)


def sign_layout(root: Path, tag: str | None, key: SigningKey, identity: str = "") -> list[Signed]:
    """Sign the image `tag` names (every tagged image when None) and retag it to the signed index."""
    preflight(root)
    reader = LayoutReader(root)
    entries = [d for d in reader.select(tag) if d.ref_name]
    if not entries:
        raise LayoutError(f"{root} has no tagged image to sign; build one with a --tag")
    results: list[Signed] = []
    with Staging(root) as staging:
        planned: dict[str, tuple[Descriptor, list[Descriptor], list[Descriptor]]] = {}
        tagged = []
        for entry in entries:
            if entry.digest not in planned:
                planned[entry.digest] = _sign_entry(reader, staging, entry, key, identity)
            index, images, added = planned[entry.digest]
            results.append(Signed(entry.ref_name or "", index, images, added))
            if added:
                tagged.append(Descriptor(index.media_type, index.digest, index.size, None,
                                         dict(entry.annotations)))
        if tagged:
            # Under the lock, only if no build moved these tags since they were read.
            publish(staging, tagged, replaces={e.ref_name or "": e.digest for e in entries})
    return results


def _sign_entry(reader: LayoutReader, staging: Staging, entry: Descriptor, key: SigningKey,
                identity: str) -> tuple[Descriptor, list[Descriptor], list[Descriptor]]:
    """(the signed index, its images, the signature manifests added) for one index.json entry."""
    if entry.media_type in model.MANIFEST_TYPES:
        image = reader.platform_image(entry, None)  # refuses an artifact: only images are signed
        images = [Descriptor(entry.media_type, entry.digest, entry.size,
                             model.config_platform(image.config))]
        listed: list[Descriptor] = []
    elif entry.media_type in model.INDEX_TYPES:
        children = reader.children(entry)
        images = [c for c in children if not referrers.is_listed_referrer(c)]
        listed = [c for c in children if referrers.is_listed_referrer(c)]
        for child in images:
            if child.media_type not in model.MANIFEST_TYPES:
                raise LayoutError(f"{entry.ref_name}: {child.digest} is a nested "
                                  f"{child.media_type}; sign a layout of one index of images")
            reader.platform_image(child, None)
    else:
        raise LayoutError(f"{entry.ref_name} names a {entry.media_type}, not an image")
    # Each referrer that is not a signature (an SBOM) is signed too, so that what the image
    # says about itself is as trustworthy as the image.
    others = [d for d in listed if d.media_type in model.MANIFEST_TYPES
              and not signature.is_signature(reader.document(d, "manifest"))]
    added = attach(staging, images + others, key, identity, frozenset(d.digest for d in listed))
    if not added and entry.media_type in model.INDEX_TYPES:
        return entry, images, []
    document = model.canonical_json(referrers.image_index(images, listed + added))
    index = staging.add_blob(model.MEDIA_INDEX, document)
    return index, images, [Descriptor(d.media_type, d.digest, d.size) for d in added]


def export_to_dir(proven: Proven, folder: Path) -> list[Path]:
    """Write the verified signatures into `folder`, a `dir:` copy of the same image made by
    `skopeo copy`, where containers/image reads them: then a `sigstoreSigned` policy checks
    them when the copy is used (`skopeo copy dir:…`, `podman pull dir:…`).

    `signature-1` belongs to the image manifest.json holds; when manifest.json is the index (a
    `--all` copy), each platform image's and SBOM's is `<hex>.signature-1`. (containers/image
    checks a policy on every instance of an index, the signature artifacts too, which are not
    signed themselves: a `sigstoreSigned` policy accepts single-image copies only.) An earlier
    export's files of the same names are replaced, so exporting twice gives the same folder.
    """
    try:
        data = (folder / "manifest.json").read_bytes()
    except OSError as error:
        raise LayoutError(f"--to-dir {folder}: cannot read manifest.json ({error.strerror}); "
                          "make the copy first: skopeo copy oci:LAYOUT:TAG dir:FOLDER") from None
    top = model.sha256_digest(data)
    images = {d.digest for d, _ in proven.images}
    if top in images:
        wanted = {top: "signature-1"}
    elif top == proven.index:
        # Every instance of the copied index: the platform images and the SBOMs.
        wanted = {digest: f"{digest.split(':', 1)[1]}.signature-1"
                  for digest in sorted(proven.claims)}
    else:
        raise LayoutError(f"--to-dir {folder} holds {top}, not a copy of {proven.ref} (images "
                          f"{', '.join(sorted(images))}); copy that image there first")
    written = []
    for digest, name in wanted.items():
        claim = proven.claims[digest]
        write_file_atomically(folder / name,
                              signature.containers_image_blob(claim.payload, claim.layer.annotations))
        written.append(folder / name)
    return written
