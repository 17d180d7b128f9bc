"""SPDX 2.3 JSON of the model (sbom.Bom): the format spdx-tools, ntia-conformance-checker and
Yocto scarthgap's create-spdx-2.2 read.

- the image (its manifest digest) is the package the document DESCRIBES; it CONTAINS the
  program, described with the sha1 and sha256 of the exact bytes packaged;
- the program STATIC_LINKs each library;
- an element of another SPDX 2 document (a Yocto recipe's package, `links`) is named as
  DocumentRef-…:SPDXRef-…, with the document in externalDocumentRefs as create-spdx-2.2 names
  its own dependencies, and that package GENERATES the image.

The document namespace is derived from the document's own content, every list is sorted, and
the JSON is canonical.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..oci import model
from ..sourcedate import rfc3339
from .sbom import NAMESPACE_BASE, SPDX2_LINK, Bom, Component, image_purl, license_refs, slug

MEDIA_TYPE = "application/spdx+json"  # IANA, registered 2021 for SPDX 2 JSON


def _spdx_id(kind: str, name: str) -> str:
    """An SPDX element id: SPDXRef- then letters, digits, '.' and '-' only."""
    return f"SPDXRef-{kind}-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "unnamed")


def _package(spdx_id: str, part: Component, purpose: str) -> dict[str, Any]:
    package: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": part.name,
        "downloadLocation": part.download_location or "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",  # concluding is a reviewer's job, not a packager's
        "licenseDeclared": part.license or "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": purpose,
        "supplier": part.supplier or "NOASSERTION",
    }
    if part.version:
        package["versionInfo"] = part.version
    if part.homepage:
        package["homepage"] = part.homepage
    refs = [{"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": c}
            for c in part.cpe]
    if part.purl:
        refs.append({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": part.purl})
    if refs:
        package["externalRefs"] = refs
    return package


def _external_refs(links: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """The SPDX 2 `links` (sbom.SPDX2_LINK) as create-spdx-2.2 names another document's
    element: a DocumentRef- in externalDocumentRefs with the document's SHA1, and the element
    as DocumentRef-…:SPDXRef-…."""
    refs, elements = [], []
    for i, link in enumerate(links, 1):
        found = SPDX2_LINK.fullmatch(link)
        if found is None:
            continue
        namespace, element, sha1 = found.groups()
        name = f"DocumentRef-link{i}"
        refs.append({"externalDocumentId": name, "spdxDocument": namespace,
                     "checksum": {"algorithm": "SHA1", "checksumValue": sha1}})
        elements.append(f"{name}:{element}")
    return refs, elements


def document(bom: Bom) -> bytes:
    """The SPDX 2.3 JSON bytes of `bom`."""
    facts, program = bom.facts, bom.program
    image_id, program_id = "SPDXRef-Image", _spdx_id("Package", program.name)
    image = _package(image_id, bom.image, "CONTAINER")
    image["checksums"] = [{"algorithm": "SHA256",
                           "checksumValue": facts.manifest.digest.split(":", 1)[1]}]
    image["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": image_purl(program.name, facts.manifest,
                                                             facts.platform)}]
    image["description"] = f"OCI image for {model.platform_name(facts.platform)}"
    binary = _package(program_id, program, "APPLICATION")
    # The exact bytes in the image: what a scanner that finds the file can match.
    binary["packageFileName"] = facts.binary_path
    binary["checksums"] = [{"algorithm": "SHA1", "checksumValue": facts.binary_sha1},
                           {"algorithm": "SHA256", "checksumValue": facts.binary_sha256}]
    packages = [image, binary]
    relationships = [("SPDXRef-DOCUMENT", "DESCRIBES", image_id),
                     (image_id, "CONTAINS", program_id)]
    for i, library in enumerate(bom.libraries, 1):
        library_id = _spdx_id(f"Library{i}", library.name)
        packages.append(_package(library_id, library, "LIBRARY"))
        relationships.append((program_id, "STATIC_LINK", library_id))
    external, linked = _external_refs(bom.links)
    relationships += [(element, "GENERATES", image_id) for element in linked]
    creators = [f"Tool: {bom.tool}"]
    if bom.creator_organization:
        creators.append(bom.creator_organization)
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{program.name} OCI image",
        "documentNamespace": "",
        "creationInfo": {"created": rfc3339(bom.epoch), "creators": sorted(creators)},
        "packages": sorted(packages, key=lambda p: p["SPDXID"]),
        "relationships": [{"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}
                          for a, kind, b in sorted(relationships)],
    }
    if external:
        doc["externalDocumentRefs"] = external
    extracted = [{"licenseId": ref, "name": ref.removeprefix("LicenseRef-"),
                  "extractedText": "The license text is not part of this document; see the "
                                   "package's sources."}
                 for ref in license_refs([program, *bom.libraries])]
    if extracted:
        doc["hasExtractedLicensingInfos"] = extracted
    # Unique per content and repeatable: the hash of the document with the namespace left empty.
    content = hashlib.sha256(model.canonical_json(doc)).hexdigest()
    doc["documentNamespace"] = f"{NAMESPACE_BASE}{slug(program.name)}-{content}"
    return model.canonical_json(doc)
