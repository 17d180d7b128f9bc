"""Our SBOM inside the distribution's own, under a real BitBake with create-spdx inherited.

On releases whose create-spdx writes SPDX 3 (master, wrynose), the class writes SPDX 3 and our
image package is `generated` by the recipe's own package element, named by the spdxId that
do_create_recipe_spdx wrote under DEPLOY_DIR_SPDX. The walk goes both ways: from the recipe's
SPDX output to our document and its image digest, and from our document back to the recipe's
element. On scarthgap (create-spdx-2.2) oe-core's package document refers to ours
(meta-hellocontainer/lib/hellocontainer_layer/spdx2.py says why that way round). oe-core's
documents are read as JSON and as the SPDX 3 model (spdx-python-model);
ntia-conformance-checker judges ours.

Env-gated like the other BitBake tests (tests/yocto_build.py); a build directory of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from yocto_build import (
    LAYER,
    OECORE_DIR,
    VENV_BIN,
    Build,
    build_directory,
    needs_bitbake,
    prebuilt_recipe,
    start_build,
    write_if_changed,
    write_test_layer,
)

LOCAL_CONF = """\
MACHINE = "qemux86-64"
INHERIT += "create-spdx"
# do_create_spdx follows do_populate_sysroot, which stages with the target's binutils;
# the prebuilt test program needs none, and building them takes a download.
ASSUME_PROVIDED += "binutils-cross-${TARGET_ARCH}"
"""

RECIPE_SETTINGS = """\
PV = "2.1"
HELLOCONTAINER_SBOM_SUPPLIER = "Organization: Example Inc."
HELLOCONTAINER_SBOM_CREATOR_ORGANIZATION = "Example Inc."
"""


def spdx3_release() -> bool:
    """Whether this oe-core's create-spdx writes SPDX 3 (its create-spdx.bbclass says which)."""
    text = (Path(OECORE_DIR) / "meta" / "classes" / "create-spdx.bbclass").read_text()
    return "create-spdx-3.0" in text


@pytest.fixture(scope="module")
def build(hello_static: Path) -> Build:
    if not OECORE_DIR:
        pytest.skip("no BitBake / openembedded-core checkout given")
    top = build_directory("sbom")
    test_layer = top / "meta-hcsbom"
    write_test_layer(test_layer, "hcsbom", "core hellocontainer")
    recipes = test_layer / "recipes-test"
    write_if_changed(recipes / "hello-spdx" / "hello-spdx.bb",
                     prebuilt_recipe("Prebuilt static hello, in the distribution's SBOM",
                                     RECIPE_SETTINGS))
    write_if_changed(recipes / "hello-spdx" / "files" / "hello", hello_static.read_bytes())
    return start_build(top, [Path(OECORE_DIR) / "meta", LAYER, test_layer], LOCAL_CONF)


@pytest.fixture(scope="module")
def built(build: Build) -> Build:
    """do_deploy and create-spdx's do_create_package_spdx of the recipe, with every task they
    follow (do_create_recipe_spdx, do_hellocontainer, do_package, do_create_spdx, …). Not
    do_build: it adds tasks of native tools this offline build cannot fetch, none of which
    writes the recipe's SPDX."""
    spdx = "do_create_package_spdx" if spdx3_release() else "do_create_spdx"  # 2.2's name
    build.bitbake("hello-spdx:do_deploy", f"hello-spdx:{spdx}")
    return build


def graph(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["@graph"]


def spdx_deploy(build: Build) -> Path:
    return build.top / "tmp" / "deploy" / "spdx" / "3.0.1"


@needs_bitbake
def test_spdx3_sbom_is_generated_by_the_recipes_own_element_and_back(built: Build) -> None:
    if not spdx3_release():
        pytest.skip("this oe-core's create-spdx writes SPDX 2.2")
    deploy = built.deploy_dir("tmp", "qemux86-64")
    ours_path = deploy / "hello-spdx-qemux86-64.spdx3.json"
    ours = graph(ours_path)
    by_id = {e.get("spdxId"): e for e in ours}
    image = next(e for e in ours if e.get("software_primaryPurpose") == "container")
    layout = deploy / "hello-spdx-qemux86-64.oci"
    (tagged,) = json.loads((layout / "index.json").read_text())["manifests"]
    index = json.loads((layout / "blobs" / "sha256" / tagged["digest"][7:]).read_text())
    (manifest,) = [m for m in index["manifests"] if m["platform"]["os"] == "linux"]
    assert image["software_packageVersion"] == manifest["digest"]
    assert image["verifiedUsing"] == [{"type": "Hash", "algorithm": "sha256",
                                       "hashValue": manifest["digest"][7:]}]
    # From our document to the recipe's: the one element it imports generates the image.
    (document,) = [e for e in ours if e["type"] == "SpdxDocument"]
    (imported,) = [i["externalSpdxId"] for i in document["import"]]
    (generates,) = [e for e in ours if e["type"] == "Relationship"
                    and e["relationshipType"] == "generates"]
    assert (generates["from"], generates["to"]) == (imported, [image["spdxId"]])
    assert imported not in by_id
    # …which is the recipe element oe-core wrote under DEPLOY_DIR_SPDX: the walk back.
    (recipe_doc,) = spdx_deploy(built).glob("*/static/static-hello-spdx.spdx.json")
    recipe = next(e for e in graph(recipe_doc) if e.get("spdxId") == imported)
    assert recipe["type"] == "software_Package" and recipe["name"] == "hello-spdx"
    # From the recipe's SPDX output to ours: the package document of ${PN}-oci lists the
    # layout's files, the image manifest among them with the digest as its hash, and the
    # package's build is the recipe's (the same namespace as the recipe element).
    (package_doc,) = spdx_deploy(built).glob("*/packages/package-hello-spdx-oci.spdx.json")
    files = [e for e in graph(package_doc) if e["type"] == "software_File"]
    blob = next(f for f in files if f["name"].endswith("/blobs/sha256/" + manifest["digest"][7:]))
    assert {"type": "Hash", "algorithm": "sha256", "hashValue": manifest["digest"][7:]} in \
        blob["verifiedUsing"]
    namespace = imported.split("/recipe/")[0].rsplit("/", 1)[0]
    assert any(e["spdxId"].startswith(namespace) for e in graph(package_doc)
               if e["type"] == "software_Package")


@needs_bitbake
def test_spdx3_sbom_loads_in_the_spdx_model_and_passes_the_ntia_checker(built: Build) -> None:
    if not spdx3_release():
        pytest.skip("this oe-core's create-spdx writes SPDX 2.2")
    import spdx_python_model

    path = built.deploy_dir("tmp", "qemux86-64") / "hello-spdx-qemux86-64.spdx3.json"
    _, objects = spdx_python_model.load(path)
    # The one id not defined in the document is the recipe's element it imports.
    missing = objects.link()
    assert len(missing) == 1 and re.search(r"/recipe/hello-spdx$", next(iter(missing)))
    result = subprocess.run([VENV_BIN / "ntia-checker", "-s", "spdx3", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Conformant: True" in result.stdout, result.stdout
    print(result.stdout, file=sys.stderr)


@needs_bitbake
def test_spdx2_sbom_describes_the_image_that_oe_cores_package_document_lists(
        built: Build) -> None:
    """scarthgap (create-spdx-2.2): oe-core's document of ${PN}-oci refers to ours, by namespace
    and the SHA1 of its bytes, as oe-core's documents refer to each other, and says the package
    CONTAINS our image; our document sits in DEPLOY_DIR_SPDX where combine_spdx finds it by
    namespace. The same package document lists the layout's blobs/sha256/<digest> file with the
    manifest digest as its SHA256, and is generated from the recipe's document."""
    if spdx3_release():
        pytest.skip("this oe-core's create-spdx writes SPDX 3 (the test above)")
    deploy = built.deploy_dir("tmp", "qemux86-64")
    ours = json.loads((deploy / "hello-spdx-qemux86-64.spdx.json").read_text())
    image = next(p for p in ours["packages"] if p["SPDXID"] == "SPDXRef-Image")
    digest = image["versionInfo"]
    (package_doc,) = (built.top / "tmp" / "deploy" / "spdx").glob(
        "*/*/packages/hello-spdx-oci.spdx.json")  # spdx/2.2/<arch>/packages
    theirs = json.loads(package_doc.read_text())
    blob = next(f for f in theirs["files"]
                if f["fileName"].endswith("/blobs/sha256/" + digest.split(":", 1)[1]))
    assert {"algorithm": "SHA256", "checksumValue": digest.split(":", 1)[1]} in blob["checksums"]
    # The package is generated from the recipe, in the recipe's own document.
    (recipe_ref,) = [r for r in theirs["externalDocumentRefs"]
                     if "recipe-hello-spdx" in r["spdxDocument"]]
    assert any(r["relationshipType"] == "GENERATED_FROM"
               and r["relatedSpdxElement"].startswith(recipe_ref["externalDocumentId"] + ":")
               for r in theirs["relationships"])
    # The walk combine_spdx takes: the reference, by namespace, to our document, whose bytes
    # have the SHA1 the reference names, and in it the image the package contains.
    ours_bytes = (deploy / "hello-spdx-qemux86-64.spdx.json").read_bytes()
    (ours_ref,) = [r for r in theirs["externalDocumentRefs"]
                   if r["spdxDocument"] == ours["documentNamespace"]]
    assert ours_ref["checksum"] == {"algorithm": "SHA1",
                                    "checksumValue": hashlib.sha1(ours_bytes).hexdigest()}
    assert {"spdxElementId": "SPDXRef-Package-hello-spdx-oci", "relationshipType": "CONTAINS",
            "relatedSpdxElement": ours_ref["externalDocumentId"] + ":SPDXRef-Image"} in [
        {k: r[k] for k in ("spdxElementId", "relationshipType", "relatedSpdxElement")}
        for r in theirs["relationships"]]
    (found,) = package_doc.parents[2].glob(
        "by-namespace/*/" + ours["documentNamespace"].replace("/", "_"))
    assert found.read_bytes() == ours_bytes
    # oe-core's document with the reference added is still valid SPDX.
    checked = subprocess.run([VENV_BIN / "pyspdxtools", "-i", str(package_doc)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    result = subprocess.run([VENV_BIN / "ntia-checker", str(deploy / "hello-spdx-qemux86-64.spdx.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Conformant: True" in result.stdout, result.stdout
