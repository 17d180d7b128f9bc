"""CycloneDX 1.6 JSON of the model (sbom.Bom): the format of Buildroot's
`utils/generate-cyclonedx`.

The BOM's subject (metadata.component) is the image, a `container` component named by its
purl and the sha256 of its manifest; it depends on the program, which depends on each library.
A component's `bom-ref` is its name, the scheme generate-cyclonedx uses (Buildroot's package
name, which the br2-external tree passes as the name), so that both documents name the same
package the same way and join without dangling references (br2-external/README.md). Its `cpe`
is the first CPE given; others follow as properties, since CycloneDX has room for one.

serialNumber is a UUID made from the document's own content, so the same inputs give the same
bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from ..oci import model
from ..sourcedate import rfc3339
from .sbom import Bom, Component, image_purl

MEDIA_TYPE = "application/vnd.cyclonedx+json"  # IANA, registered 2021
SPEC_VERSION = "1.6"
SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"
_VCS = ("git+", "hg+", "svn+", "bzr+")


def _entity(value: str | None) -> dict[str, Any] | None:
    """An organizationalEntity from "Organization: NAME" or "Person: NAME (EMAIL)"."""
    if not value or value == "NOASSERTION":
        return None
    return {"name": value.partition(": ")[2] or value}


def _component(ref: str, part: Component, kind: str) -> dict[str, Any]:
    component: dict[str, Any] = {"type": kind, "bom-ref": ref, "name": part.name}
    if part.version:
        component["version"] = part.version
    supplier = _entity(part.supplier)
    if supplier:
        component["supplier"] = supplier
    if part.license and part.license not in ("NOASSERTION", "NONE"):
        component["licenses"] = [{"expression": part.license}]
    if part.cpe:
        component["cpe"] = part.cpe[0]
    if part.purl:
        component["purl"] = part.purl
    references = []
    location = part.download_location
    if location and location not in ("NOASSERTION", "NONE"):
        references.append({"type": "vcs" if location.startswith(_VCS) else "source-distribution",
                           "url": location})
    if part.homepage:
        references.append({"type": "website", "url": part.homepage})
    if references:
        component["externalReferences"] = references
    if part.cpe[1:]:
        component["properties"] = [{"name": "hellocontainer:cpe", "value": c} for c in part.cpe[1:]]
    return component


def document(bom: Bom) -> bytes:
    """The CycloneDX 1.6 JSON bytes of `bom`."""
    facts, program = bom.facts, bom.program
    purl = image_purl(program.name, facts.manifest, facts.platform)
    image = _component(purl, bom.image, "container")
    image["purl"] = purl
    image["hashes"] = [{"alg": "SHA-256", "content": facts.manifest.digest.split(":", 1)[1]}]
    image["description"] = f"OCI image for {model.platform_name(facts.platform)}"
    binary = _component(program.name, program, "application")
    binary["hashes"] = [{"alg": "SHA-1", "content": facts.binary_sha1},
                        {"alg": "SHA-256", "content": facts.binary_sha256}]
    binary.setdefault("properties", []).insert(0, {"name": "hellocontainer:path",
                                                   "value": facts.binary_path})
    refs = {program.name}
    libraries = []
    for library in bom.libraries:
        ref, n = library.name, 1
        while ref in refs:  # bom-refs are unique within a BOM
            n += 1
            ref = f"{library.name}-{n}"
        refs.add(ref)
        libraries.append(_component(ref, library, "library"))
    metadata: dict[str, Any] = {
        "timestamp": rfc3339(bom.epoch),
        "tools": {"components": [{"type": "application", "name": "hellocontainer",
                                  "version": bom.tool.removeprefix("hellocontainer-")}]},
        "component": image,
    }
    author = _entity(bom.creator_organization)
    if author:
        metadata["authors"] = [author]
    supplier = _entity(bom.image.supplier)
    if supplier:
        metadata["supplier"] = supplier
    dependencies = [{"ref": purl, "dependsOn": [program.name]},
                    {"ref": program.name, "dependsOn": sorted(c["bom-ref"] for c in libraries)},
                    *({"ref": c["bom-ref"], "dependsOn": []} for c in libraries)]
    doc: dict[str, Any] = {
        "$schema": SCHEMA, "bomFormat": "CycloneDX", "specVersion": SPEC_VERSION,
        "serialNumber": "", "version": 1, "metadata": metadata,
        "components": [binary, *libraries],
        "dependencies": sorted(dependencies, key=lambda d: d["ref"]),
    }
    content = hashlib.sha256(model.canonical_json(doc)).digest()
    doc["serialNumber"] = uuid.UUID(bytes=content[:16], version=5).urn
    return model.canonical_json(doc)
