#
# SPDX-License-Identifier: MIT
#
"""Our SPDX 2 document in scarthgap's SBOM graph (create-spdx-2.2).

An SPDX 2 document refers to another by namespace and the SHA1 of its bytes. The reference
cannot go from our document to the recipe's: oe-core writes that one in do_create_spdx, after
do_package has sealed our document into ${PN}-oci, and stamps it with the wall-clock time, so
its SHA1 is new on every run. It goes the other way, which is the way oe-core's own documents
point (runtime to package to recipe): our document is reproducible, so the package document of
${PN}-oci can name it with a SHA1 that holds. oe-core's image SBOM archive follows every
externalDocumentRef by namespace (combine_spdx), so it carries our document, and one walk leads
from the board's SBOM to our image and its manifest digest.
"""

import hashlib
import json
import os
from pathlib import Path

import bb

from . import image

# The reference's id inside the package document, and the element of ours it names.
REFERENCE_ID = "DocumentRef-hellocontainer-image"
IMAGE_ID = "SPDXRef-Image"


def linking(d):
    """Whether do_create_spdx links our document: an SPDX 2 SBOM is built, and create-spdx-2.2
    (scarthgap's default) writes the distribution's documents."""
    return (bb.utils.to_boolean(d.getVar("HELLOCONTAINER_SBOM"))
            and (d.getVar("SPDX_VERSION") or "").startswith("2")
            and "spdx2" in image.sbom_formats(d))


def link_package_document(d):
    """After create-spdx-2.2's do_create_spdx wrote ${PN}-oci's package document into
    ${SPDXDEPLOY}: put our document beside it, found by namespace as oe-core's are, and make the
    package document refer to it (the package CONTAINS our image)."""
    import oe.sbom
    import oe.spdx

    if not linking(d):
        return
    ours_path = Path(d.getVar("DEPLOY_DIR_IMAGE"),
                     d.getVar("HELLOCONTAINER_IMAGE_NAME") + ".spdx.json")
    data = ours_path.read_bytes()  # do_create_spdx[depends] on do_deploy: it is there
    namespace = json.loads(data)["documentNamespace"]
    spdx_deploy = Path(d.getVar("SPDXDEPLOY"))
    arch = d.getVar("SSTATE_PKGARCH")
    package = d.getVar("PN") + "-oci"
    package_name = d.getVar("PKG:" + package) or package  # oe-core's document name
    package_path = oe.sbom.doc_path(spdx_deploy, package_name, arch, "packages")
    if not package_path.exists():
        bb.fatal(f"{package_path} is missing: create-spdx-2.2 writes it for {package}, which "
                 "installs the layout; is HELLOCONTAINER_INSTALL_DIR empty?")

    ours_copy = oe.sbom.doc_path(spdx_deploy, "hellocontainer-" + package_name, arch,
                                 "hellocontainer")
    ours_copy.parent.mkdir(parents=True, exist_ok=True)
    ours_copy.write_bytes(data)
    # The links oe.sbom.write_doc makes: by namespace (what combine_spdx follows).
    by_namespace = spdx_deploy / "by-namespace" / arch / namespace.replace("/", "_")
    by_namespace.parent.mkdir(parents=True, exist_ok=True)
    by_namespace.symlink_to(os.path.relpath(ours_copy, by_namespace.parent))

    document, _ = oe.sbom.read_doc(package_path)
    reference = oe.spdx.SPDXExternalDocumentRef()
    reference.externalDocumentId = REFERENCE_ID
    reference.spdxDocument = namespace
    reference.checksum.algorithm = "SHA1"
    reference.checksum.checksumValue = hashlib.sha1(data).hexdigest()
    document.externalDocumentRefs.append(reference)
    document.add_relationship(oe.sbom.get_package_spdxid(package_name), "CONTAINS",
                              f"{REFERENCE_ID}:{IMAGE_ID}")
    # Rewritten in place: oe-core's by-namespace and by-hash links name this file, and
    # do_create_runtime_spdx takes the SHA1 of what it reads then.
    indent = 2 if d.getVar("SPDX_PRETTY") == "1" else None  # create-spdx-2.2's get_json_indent
    with package_path.open("wb") as stream:
        document.to_json(stream, sort_keys=True, indent=indent)
