"""SPDX 3.0.1 JSON-LD of the model (sbom.Bom): the format of Yocto's create-spdx since 2024, and
the only one oe-core writes from wrynose on.

One `@graph` holds the SpdxDocument, a software_Sbom whose root is the image package, the
program and library packages, their suppliers and declared licenses, and the relationships:
the image `contains` the program, the program `hasStaticLink` each library. An element of
another SPDX 3 document (the Yocto recipe's package, `links`) is named by its spdxId, declared
in the document's `import` as the SPDX 3 model asks for elements defined elsewhere, and
`generates` the image: one walk from the distribution's SBOM reaches our image and its digest.

Ids are IRIs under a namespace made from the document's own content; the graph is sorted and
the JSON canonical, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..oci import model
from ..sourcedate import rfc3339
from .sbom import NAMESPACE_BASE, SPDX3_LINK, Bom, Component, image_purl, slug

# IANA, registered 2026 by the SPDX project for SPDX 3 JSON-LD: not application/spdx+json,
# which names the SPDX 2 format and says so.
MEDIA_TYPE = "application/spdx3+json"
CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
SPEC_VERSION = "3.0.1"
CREATION = "_:creationinfo"  # the one CreationInfo every element shares, a blank node


def _agent(supplier: str, ns: str) -> dict[str, Any]:
    kind, _, name = supplier.partition(": ")
    return {"type": "Person" if kind == "Person" else "Organization",
            "spdxId": f"{ns}agent/{slug(name)}-{hashlib.sha256(supplier.encode()).hexdigest()[:12]}",
            "creationInfo": CREATION, "name": name}


def _graph(bom: Bom, ns: str) -> list[dict[str, Any]]:
    facts, program = bom.facts, bom.program
    graph: dict[str, dict[str, Any]] = {}

    def add(element: dict[str, Any]) -> str:
        graph[element["spdxId"]] = element
        return element["spdxId"]

    def agent(supplier: str | None) -> str | None:
        return add(_agent(supplier, ns)) if supplier and supplier != "NOASSERTION" else None

    tool = add({"type": "Tool", "spdxId": f"{ns}tool/{slug(bom.tool)}",
                "creationInfo": CREATION, "name": bom.tool})
    # CreationInfo needs an agent that created the document: the organization that runs the
    # build, else the image's supplier, else the tool acting as a software agent.
    author = (agent(bom.creator_organization) or agent(bom.image.supplier)
              or add({"type": "SoftwareAgent", "spdxId": f"{ns}agent/{slug(bom.tool)}",
                      "creationInfo": CREATION, "name": bom.tool}))
    relationships: list[tuple[str, str, tuple[str, ...]]] = []

    def package(local: str, part: Component, purpose: str) -> str:
        element: dict[str, Any] = {"type": "software_Package", "spdxId": f"{ns}{local}",
                                   "creationInfo": CREATION, "name": part.name,
                                   "software_primaryPurpose": purpose}
        if part.version:
            element["software_packageVersion"] = part.version
        supplier = agent(part.supplier)
        if supplier:
            element["suppliedBy"] = supplier
        if part.download_location and part.download_location not in ("NOASSERTION", "NONE"):
            element["software_downloadLocation"] = part.download_location
        if part.homepage:
            element["software_homePage"] = part.homepage
        if part.purl:
            element["software_packageUrl"] = part.purl
        if part.cpe:
            element["externalIdentifier"] = [
                {"type": "ExternalIdentifier", "externalIdentifierType": "cpe23", "identifier": c}
                for c in part.cpe]
        spdx_id = add(element)
        if part.license and part.license not in ("NOASSERTION", "NONE"):
            digest = hashlib.sha256(part.license.encode()).hexdigest()[:16]
            license_id = add({"type": "simplelicensing_LicenseExpression",
                              "spdxId": f"{ns}license/{digest}", "creationInfo": CREATION,
                              "simplelicensing_licenseExpression": part.license})
            relationships.append((spdx_id, "hasDeclaredLicense", (license_id,)))
        return spdx_id

    image = package("image", bom.image, "container")
    graph[image]["software_packageUrl"] = image_purl(program.name, facts.manifest, facts.platform)
    graph[image]["verifiedUsing"] = [{"type": "Hash", "algorithm": "sha256",
                                      "hashValue": facts.manifest.digest.split(":", 1)[1]}]
    graph[image]["description"] = f"OCI image for {model.platform_name(facts.platform)}"
    binary = package(f"package/{slug(program.name)}", program, "application")
    graph[binary]["verifiedUsing"] = [{"type": "Hash", "algorithm": "sha256",
                                       "hashValue": facts.binary_sha256}]
    graph[binary]["software_additionalPurpose"] = ["executable"]
    graph[binary]["comment"] = f"the program {facts.binary_path} of the image"
    relationships.append((image, "contains", (binary,)))
    libraries = tuple(package(f"library/{i}-{slug(library.name)}", library, "library")
                      for i, library in enumerate(bom.libraries, 1))
    if libraries:
        relationships.append((binary, "hasStaticLink", libraries))
    links = tuple(link for link in bom.links if SPDX3_LINK.fullmatch(link))
    relationships += [(link, "generates", (image,)) for link in links]
    for i, (source, kind, targets) in enumerate(sorted(relationships), 1):
        add({"type": "Relationship", "spdxId": f"{ns}relationship/{i}", "creationInfo": CREATION,
             "from": source, "relationshipType": kind, "to": list(targets)})
    members = sorted(graph)
    sbom = add({"type": "software_Sbom", "spdxId": f"{ns}sbom", "creationInfo": CREATION,
                "rootElement": [image], "element": members, "software_sbomType": ["build"]})
    document: dict[str, Any] = {
        "type": "SpdxDocument", "spdxId": f"{ns}document", "creationInfo": CREATION,
        "name": f"{program.name} OCI image", "rootElement": [sbom], "element": [*members, sbom],
        # No dataLicense: SPDX 3 defines CC0-1.0 as the data license of every document, and
        # the property names a license element none of our documents defines.
        "profileConformance": ["core", "software", "simpleLicensing"],
    }
    if links:
        document["import"] = [{"type": "ExternalMap", "externalSpdxId": link} for link in links]
    add(document)
    creation = {"type": "CreationInfo", "@id": CREATION, "specVersion": SPEC_VERSION,
                "created": rfc3339(bom.epoch), "createdBy": [author], "createdUsing": [tool]}
    return [creation, *(graph[key] for key in sorted(graph))]


def document(bom: Bom) -> bytes:
    """The SPDX 3.0.1 JSON-LD bytes of `bom`."""
    # Unique per content and repeatable: the namespace is the hash of the graph made with an
    # empty one.
    content = hashlib.sha256(model.canonical_json(_graph(bom, ""))).hexdigest()
    ns = f"{NAMESPACE_BASE}{slug(bom.program.name)}-{content}/"
    return model.canonical_json({"@context": CONTEXT, "@graph": _graph(bom, ns)})
