"""`build --sbom`: an SPDX 2.3 SBOM attached to the image as an OCI 1.1 referrer.

The layout keeps one index.json entry per tag, naming an image index that lists the image and,
after it, the SBOM's artifact manifest (platform unknown/unknown, Docker's attestation
annotations): the shape podman and skopeo handle without a tag. The SBOM itself is judged by
the reference validator, spdx-tools.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_buildroot_path, require_tool
from oci import blob

EPOCH = "1700000000"
SPDX = "application/spdx+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
MUSL_CPE = "cpe:2.3:a:musl-libc:musl:1.2.3:*:*:*:*:*:*:*"
PACKAGE = ("name=hello version=1.0 license='MIT OR Apache-2.0' supplier='ACME Inc.' "
           "download_location=https://example.com/hello-1.0.tar.gz "
           "homepage=https://example.com/hello cpe=cpe:2.3:a:acme:hello:1.0:*:*:*:*:*:*:* "
           "purl=pkg:generic/acme/hello@1.0")
LIBC = f"name=musl version=1.2.3 license=MIT cpe={MUSL_CPE}"


def packager(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI, for module-scoped fixtures (the `hellocontainer` fixture is per test)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    result = subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)],
                            capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"hellocontainer {args} exited {result.returncode}: {result.stderr}")
    return result


def build_with_sbom(binary: Path, layout: Path, *extra: object) -> None:
    packager("build", binary, "--output", layout, "--sbom-package", PACKAGE,
             "--sbom-library", LIBC, "--sbom-supplier", "ACME Inc.", *extra)


def pyspdxtools(path: Path) -> subprocess.CompletedProcess[str]:
    """spdx-tools' validator, the reference implementation of the SPDX spec (a test dependency)."""
    return subprocess.run([sys.executable, "-m", "spdx_tools.spdx.clitools.pyspdxtools",
                           "-i", str(path)], capture_output=True, text=True)


def index_json(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_text())


def document(layout: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob(layout, digest))


def shape(layout: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bytes]:
    """(image entry, referrer entry, artifact manifest, SBOM bytes) of a one-tag SBOM layout."""
    (entry,) = index_json(layout)["manifests"]
    image, referrer = document(layout, entry["digest"])["manifests"]
    artifact = document(layout, referrer["digest"])
    return image, referrer, artifact, blob(layout, artifact["layers"][0]["digest"])


@pytest.fixture(scope="module")
def sbom_layout(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sbom")
    build_with_sbom(hello_static, out / "hello", "--sbom-copy", out / "deploy" / "hello.spdx.json")
    return out / "hello"


def sbom_of(layout: Path) -> dict[str, Any]:
    return json.loads(shape(layout)[3])


def package(sbom: dict[str, Any], spdx_id: str) -> dict[str, Any]:
    return next(p for p in sbom["packages"] if p["SPDXID"] == spdx_id)


# --- the document ---------------------------------------------------------------------------

def test_spdx_tools_accepts_the_sbom(sbom_layout, tmp_path):
    path = tmp_path / "hello.spdx.json"
    path.write_bytes(shape(sbom_layout)[3])
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bare_sbom_names_the_missing_ntia_elements_in_one_line(hello_static, tmp_path):
    """`--sbom` alone knows no supplier and no version: NTIA's minimum elements need both, so
    the build says which options give them, and writes nothing."""
    result = packager("build", hello_static, "--output", tmp_path / "bare", "--sbom", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("hellocontainer: error: the SBOM lacks NTIA minimum elements: "
                                    "a supplier (--sbom-supplier")
    assert "--sbom-package version=1.0" in result.stderr and "--sbom-incomplete" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_spdx_tools_accepts_an_sbom_of_defaults_only(hello_static, tmp_path):
    packager("build", hello_static, "--output", tmp_path / "bare", "--sbom", "--sbom-incomplete")
    path = tmp_path / "bare.spdx.json"
    path.write_bytes(shape(tmp_path / "bare")[3])
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert package(json.loads(path.read_bytes()), "SPDXRef-Package-hello")["licenseDeclared"] \
        == "NOASSERTION"


def test_spdx_tools_accepts_build_system_license_lists_and_license_refs(hello_static, tmp_path):
    packager("build", hello_static, "--output", tmp_path / "l", "--sbom-package",
             "license='GPL-2.0-only & (MIT | LicenseRef-ACME-EULA)'", "--sbom-library",
             "name=glibc version=2.36 license='GPL-2.0+ (programs), LGPL-2.1+, MIT (library)'",
             "--sbom-incomplete")
    sbom = sbom_of(tmp_path / "l")
    assert package(sbom, "SPDXRef-Package-hello")["licenseDeclared"] == \
        "GPL-2.0-only AND (MIT OR LicenseRef-ACME-EULA)"
    assert package(sbom, "SPDXRef-Library1-glibc")["licenseDeclared"] == \
        "GPL-2.0+ AND LGPL-2.1+ AND MIT"
    assert [e["licenseId"] for e in sbom["hasExtractedLicensingInfos"]] == ["LicenseRef-ACME-EULA"]
    path = tmp_path / "l.spdx.json"
    path.write_bytes(shape(tmp_path / "l")[3])
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_license_words_outside_the_spdx_list_become_license_refs(hello_static, tmp_path):
    """Buildroot's glibc (2026.08) lists free-text items; each becomes one LicenseRef-, and a
    note holding a comma stays one note."""
    packager("build", hello_static, "--output", tmp_path / "l", "--sbom-library",
             "name=glibc license='GPL-2.0+ (programs), LGPL-2.1+, other permissive licenses, "
             "public domain (library), LGPL-3.0+ (sysdeps/htl/raise.c, for Hurd only), "
             "GPL-3.0+ WITH Texinfo-exception (manual/texinfo.tex)'", "--sbom-incomplete")
    sbom = sbom_of(tmp_path / "l")
    assert package(sbom, "SPDXRef-Library1-glibc")["licenseDeclared"] == (
        "GPL-2.0+ AND LGPL-2.1+ AND LicenseRef-other-permissive-licenses AND "
        "LicenseRef-public-domain AND LGPL-3.0+ AND GPL-3.0+ WITH Texinfo-exception")
    assert [e["licenseId"] for e in sbom["hasExtractedLicensingInfos"]] == [
        "LicenseRef-other-permissive-licenses", "LicenseRef-public-domain"]
    path = tmp_path / "l.spdx.json"
    path.write_bytes(shape(tmp_path / "l")[3])
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sbom_describes_the_image_by_its_manifest_digest(sbom_layout):
    image, _, _, data = shape(sbom_layout)
    sbom = json.loads(data)
    described = [r["relatedSpdxElement"] for r in sbom["relationships"]
                 if r["spdxElementId"] == "SPDXRef-DOCUMENT" and r["relationshipType"] == "DESCRIBES"]
    assert described == ["SPDXRef-Image"]
    container = package(sbom, "SPDXRef-Image")
    assert container["primaryPackagePurpose"] == "CONTAINER"
    assert container["checksums"] == [{"algorithm": "SHA256",
                                       "checksumValue": image["digest"].split(":")[1]}]


def test_sbom_names_the_exact_program_bytes_and_its_metadata(sbom_layout, hello_static):
    program = package(sbom_of(sbom_layout), "SPDXRef-Package-hello")
    assert {"algorithm": "SHA256", "checksumValue":
            hashlib.sha256(hello_static.read_bytes()).hexdigest()} in program["checksums"]
    assert program["packageFileName"] == "/hello"
    assert (program["versionInfo"], program["licenseDeclared"], program["supplier"]) == \
        ("1.0", "MIT OR Apache-2.0", "Organization: ACME Inc.")
    assert program["downloadLocation"] == "https://example.com/hello-1.0.tar.gz"
    assert program["homepage"] == "https://example.com/hello"
    assert {(r["referenceType"], r["referenceLocator"]) for r in program["externalRefs"]} == {
        ("cpe23Type", "cpe:2.3:a:acme:hello:1.0:*:*:*:*:*:*:*"),
        ("purl", "pkg:generic/acme/hello@1.0")}


def test_sbom_says_the_program_statically_links_the_c_library(sbom_layout):
    sbom = sbom_of(sbom_layout)
    libc = package(sbom, "SPDXRef-Library1-musl")
    assert (libc["versionInfo"], libc["licenseDeclared"]) == ("1.2.3", "MIT")
    assert libc["externalRefs"] == [{"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                                     "referenceLocator": MUSL_CPE}]
    assert {"spdxElementId": "SPDXRef-Package-hello", "relationshipType": "STATIC_LINK",
            "relatedSpdxElement": "SPDXRef-Library1-musl"} in sbom["relationships"]


def test_sbom_time_is_source_date_epoch_and_namespace_follows_content(sbom_layout, hello_static,
                                                                      tmp_path):
    sbom = sbom_of(sbom_layout)
    assert sbom["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    packager("build", hello_static, "--output", tmp_path / "other", "--sbom-package",
             PACKAGE.replace("version=1.0", "version=1.1"), "--sbom-library", LIBC,
             "--sbom-supplier", "ACME Inc.")
    other = sbom_of(tmp_path / "other")
    assert other["documentNamespace"] != sbom["documentNamespace"]
    assert other["documentNamespace"].startswith("https://spdx.org/spdxdocs/hello-")


def test_two_builds_give_identical_sbom_and_artifact_manifest(sbom_layout, hello_static, tmp_path):
    again = tmp_path / "elsewhere" / "again"
    build_with_sbom(hello_static, again)
    _, referrer, _, data = shape(sbom_layout)
    _, referrer2, _, data2 = shape(again)
    assert data2 == data
    assert blob(again, referrer2["digest"]) == blob(sbom_layout, referrer["digest"])
    assert (again / "index.json").read_bytes() == (sbom_layout / "index.json").read_bytes()


def test_sbom_copy_beside_the_layout_is_the_attached_sbom(sbom_layout):
    copy = sbom_layout.parent / "deploy" / "hello.spdx.json"
    assert copy.read_bytes() == shape(sbom_layout)[3]
    assert oct(copy.stat().st_mode & 0o777) == "0o644"


# --- the layout shape -----------------------------------------------------------------------

def test_index_json_keeps_one_entry_per_tag(sbom_layout):
    (entry,) = index_json(sbom_layout)["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}


def test_sbom_is_an_oci_1_1_referrer_of_the_image(sbom_layout):
    image, referrer, artifact, data = shape(sbom_layout)
    assert artifact["artifactType"] == SPDX
    assert artifact["config"] == {"mediaType": EMPTY, "digest": EMPTY_DIGEST, "size": 2,
                                  "data": "e30="}
    assert blob(sbom_layout, EMPTY_DIGEST) == b"{}"
    assert artifact["subject"] == {k: image[k] for k in ("mediaType", "digest", "size")}
    (layer,) = artifact["layers"]
    assert layer == {"mediaType": SPDX, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                     "size": len(data)}
    # Listed beside the image the way buildx lists attestations: never chosen as the image.
    assert referrer["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert referrer["annotations"] == {"vnd.docker.reference.digest": image["digest"],
                                       "vnd.docker.reference.type": "attestation-manifest"}
    # No artifactType on the index entry: skopeo 1.9 would drop it and rewrite the index.
    assert "artifactType" not in referrer


def test_our_validate_and_inspect_show_the_referrer(hellocontainer, sbom_layout):
    assert hellocontainer("validate", "--strict", sbom_layout).returncode == 0
    _, referrer, _, _ = shape(sbom_layout)
    text = hellocontainer("inspect", sbom_layout).stdout
    assert f"referrer  {referrer['digest']} (" in text and text.rstrip().endswith(SPDX)
    report = json.loads(hellocontainer("inspect", "--json", sbom_layout).stdout)
    (index,) = report["images"]
    (image,) = index["manifests"]
    assert [(r["digest"], r["artifactType"]) for r in image["referrers"]] == \
        [(referrer["digest"], SPDX)]


def test_podman_runs_the_sbom_layout_without_a_tag(podman, sbom_layout):
    assert podman("run", "--rm", "--net=none", f"oci:{sbom_layout}").stdout == "Hello container!\n"


def test_podman_runs_the_sbom_layout_by_tag(podman, sbom_layout):
    result = podman("run", "--rm", "--net=none", f"oci:{sbom_layout}:latest")
    assert result.stdout == "Hello container!\n"


@pytest.mark.parametrize("ref", ["", ":latest"])
def test_skopeo_inspects_the_sbom_layout(sbom_layout, ref):
    skopeo = require_tool("skopeo", "skopeo")
    result = subprocess.run([skopeo, "inspect", f"oci:{sbom_layout}{ref}"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    # Digest is what the reference names (the index); the rest is the chosen platform image's.
    assert (info["Digest"], info["Architecture"]) == \
        (index_json(sbom_layout)["manifests"][0]["digest"], "amd64")


def test_skopeo_copy_all_keeps_the_index_and_the_sbom(sbom_layout, tmp_path):
    skopeo = require_tool("skopeo", "skopeo")
    subprocess.run([skopeo, "copy", "--all", f"oci:{sbom_layout}:latest",
                    f"oci:{tmp_path}/copy:latest"], check=True, capture_output=True)
    assert index_json(tmp_path / "copy")["manifests"][0]["digest"] == \
        index_json(sbom_layout)["manifests"][0]["digest"]
    assert shape(tmp_path / "copy")[3] == shape(sbom_layout)[3]


def test_oci_image_tool_accepts_every_document_of_the_sbom_layout(sbom_layout):
    """oci-image-tool (1.0.0-rc1, 2017) checks each document against the image-spec schemas.
    Its whole-layout walk (`--type image`) predates artifacts: it takes every manifest of an
    index for a runnable image and refuses the empty config, so it is not asked here."""
    tool = require_tool("oci-image-tool", "oci-image-tool")
    (entry,) = index_json(sbom_layout)["manifests"]
    image, referrer, _, _ = shape(sbom_layout)
    config = document(sbom_layout, image["digest"])["config"]["digest"]
    for kind, digest in (("imageIndex", entry["digest"]), ("manifest", image["digest"]),
                         ("manifest", referrer["digest"]), ("config", config)):
        path = sbom_layout / "blobs" / "sha256" / digest.split(":")[1]
        result = subprocess.run([tool, "validate", "--type", kind, str(path)],
                                capture_output=True, text=True)
        assert result.returncode == 0 and "Validation succeeded" in result.stdout, \
            f"{kind}: {result.stdout}{result.stderr}"


def test_bundle_takes_the_image_not_the_sbom(hellocontainer, sbom_layout, tmp_path):
    result = hellocontainer("bundle", sbom_layout, "--output", tmp_path / "bundle")
    assert shape(sbom_layout)[0]["digest"] in result.stdout
    assert (tmp_path / "bundle" / "rootfs" / "hello").read_bytes()


# --- validate refuses broken referrers ------------------------------------------------------

def _rewrite(layout: Path, change: Any) -> None:
    """Change the artifact manifest with `change(artifact)`, re-hash it and its index entries."""
    (entry,) = index_json(layout)["manifests"]
    index = document(layout, entry["digest"])
    referrer = index["manifests"][1]
    artifact = document(layout, referrer["digest"])
    change(artifact, index)
    blobs = layout / "blobs" / "sha256"

    def put(doc: dict[str, Any]) -> tuple[str, int]:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest, len(data)

    referrer["digest"], referrer["size"] = put(artifact)
    entry["digest"], entry["size"] = put(index)
    top = index_json(layout)
    top["manifests"] = [entry]
    (layout / "index.json").write_text(json.dumps(top))


def _broken(hellocontainer, sbom_layout: Path, tmp_path: Path, change: Any) -> str:
    layout = tmp_path / "broken"
    shutil.copytree(sbom_layout, layout)
    _rewrite(layout, change)
    result = hellocontainer("validate", layout, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


def test_a_referrer_whose_subject_is_missing_is_a_warning_that_strict_fails(hellocontainer,
                                                                           sbom_layout, tmp_path):
    """image-layout.md: a layout MAY lack referenced blobs; manifest.md: the subject is a weak
    association. A layout holding only the SBOM's referrer (listed untagged, as other tools list
    referrers) makes validate warn (exit 0); --strict fails on the warning."""
    layout = tmp_path / "loose"
    shutil.copytree(sbom_layout, layout)
    (entry,) = index_json(layout)["manifests"]
    image, referrer = document(layout, entry["digest"])["manifests"]
    for digest in (entry["digest"], image["digest"]):
        (layout / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{k: referrer[k] for k in ("mediaType", "digest", "size")}]}))
    result = hellocontainer("validate", layout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"subject: {image['digest']} is not in the layout" in result.stderr
    strict = hellocontainer("validate", "--strict", layout, check=False)
    assert strict.returncode == 1 and "is not in the layout" in strict.stderr


def test_validate_refuses_an_empty_config_without_artifact_type(hellocontainer, sbom_layout,
                                                                tmp_path):
    stderr = _broken(hellocontainer, sbom_layout, tmp_path,
                     lambda artifact, index: artifact.pop("artifactType"))
    assert "artifactType must be set" in stderr


def test_validate_refuses_an_empty_descriptor_that_is_not_empty(hellocontainer, sbom_layout,
                                                               tmp_path):
    def change(artifact, index):
        artifact["config"]["size"] = 3

    stderr = _broken(hellocontainer, sbom_layout, tmp_path, change)
    assert "empty descriptor" in stderr and "size 2" in stderr


def test_validate_refuses_a_listed_referrer_of_another_image(hellocontainer, sbom_layout, tmp_path):
    def change(artifact, index):
        index["manifests"][1]["annotations"]["vnd.docker.reference.digest"] = "sha256:" + "1" * 64

    stderr = _broken(hellocontainer, sbom_layout, tmp_path, change)
    assert "is not a manifest of this index" in stderr


# --- gc -------------------------------------------------------------------------------------

def test_gc_removes_the_sbom_with_its_replaced_image(hellocontainer, sbom_layout, hello_static,
                                                     tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    _, referrer, artifact, _ = shape(layout)
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1", "--sbom",
                   "--sbom-incomplete")
    removed = hellocontainer("gc", layout).stdout
    assert referrer["digest"].split(":")[1] in removed
    assert artifact["layers"][0]["digest"].split(":")[1] in removed
    hellocontainer("validate", "--strict", layout)
    assert shape(layout)[1]["digest"] != referrer["digest"]


def test_gc_keeps_another_tools_referrer_while_its_subject_is_tagged(hellocontainer, sbom_layout,
                                                                     hello_static, tmp_path):
    """oras and others list a referrer untagged in index.json; it lives as long as its subject."""
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    image, referrer, _, _ = shape(layout)
    top = index_json(layout)
    loose = {"mediaType": referrer["mediaType"], "digest": referrer["digest"],
             "size": referrer["size"]}
    top["manifests"].append(loose)
    (layout / "index.json").write_text(json.dumps(top))
    assert "removed 0 files" in hellocontainer("gc", layout).stdout
    assert loose in index_json(layout)["manifests"]
    # The subject's tag moves on: the build leaves the loose referrer out of index.json, and
    # gc then removes its blobs with the old image's.
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1")
    assert loose not in index_json(layout)["manifests"]
    removed = hellocontainer("gc", layout).stdout
    assert image["digest"].split(":")[1] in removed
    hellocontainer("validate", "--strict", layout)


def test_gc_drops_a_loose_referrer_whose_subject_is_gone(hellocontainer, sbom_layout,
                                                       hello_static, tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    image, referrer, _, _ = shape(layout)
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1")
    top = index_json(layout)
    top["manifests"].append({k: referrer[k] for k in ("mediaType", "digest", "size")})
    (layout / "index.json").write_text(json.dumps(top))
    removed = hellocontainer("gc", layout).stdout
    assert f"index.json entry {referrer['digest']} (a referrer whose subject is gone)" in removed
    assert image["digest"].split(":")[1] in removed and referrer["digest"].split(":")[1] in removed
    assert len(index_json(layout)["manifests"]) == 1
    hellocontainer("validate", "--strict", layout)


def _loose_artifact(layout: Path, subject: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
    """Store an artifact manifest about `subject` (a signature, say) and list it in index.json
    the way other tools do: untagged, or with `tag`."""
    blobs = layout / "blobs" / "sha256"
    payload = b"signature"
    (blobs / hashlib.sha256(payload).hexdigest()).write_bytes(payload)
    artifact = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "size": len(payload),
                    "digest": "sha256:" + hashlib.sha256(payload).hexdigest()}],
        "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
    }
    data = json.dumps(artifact, sort_keys=True, separators=(",", ":")).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    entry: dict[str, Any] = {"mediaType": artifact["mediaType"], "size": len(data),
                             "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
    if tag is not None:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    top = index_json(layout)
    top["manifests"].append(entry)
    (layout / "index.json").write_text(json.dumps(top))
    return entry


def test_gc_keeps_a_referrer_of_a_referrer_while_the_image_is_tagged(hellocontainer, sbom_layout,
                                                                    hello_static, tmp_path):
    """A signature of the SBOM lives through the SBOM, which lives through the image."""
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    _, referrer, _, _ = shape(layout)
    signature = _loose_artifact(layout, referrer)
    assert "removed 0 files" in hellocontainer("gc", layout).stdout
    assert signature in index_json(layout)["manifests"]
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1")
    hellocontainer("gc", layout)
    assert signature not in index_json(layout)["manifests"]
    hellocontainer("validate", "--strict", layout)


def test_gc_keeps_a_tagged_referrer_whatever_its_subject(hellocontainer, sbom_layout, hello_static,
                                                        tmp_path):
    """A tag is the user's word: only untagged referrers go with their subject."""
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    image, _, _, _ = shape(layout)
    tagged = _loose_artifact(layout, image, tag="sig")
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1")
    hellocontainer("gc", layout)
    assert tagged in index_json(layout)["manifests"]
    assert blob(layout, tagged["digest"])


def test_gc_pruning_index_json_keeps_its_annotations(hellocontainer, sbom_layout, hello_static,
                                                     tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(sbom_layout, layout)
    image, _, _, _ = shape(layout)
    hellocontainer("build", hello_static, "--output", layout, "--env", "NEW=1")
    top = index_json(layout)
    top["annotations"] = {"org.example.owner": "ACME"}
    (layout / "index.json").write_text(json.dumps(top))
    loose = _loose_artifact(layout, image)
    assert "a referrer whose subject is gone" in hellocontainer("gc", layout).stdout
    assert loose not in index_json(layout)["manifests"]
    assert index_json(layout)["annotations"] == {"org.example.owner": "ACME"}


# --- inputs and errors ----------------------------------------------------------------------

def test_spec_file_sbom_and_flags_merge(hello_static, tmp_path):
    spec = tmp_path / "image.yaml"
    spec.write_text("sbom:\n  package:\n    name: hello\n    version: '0.9'\n    license: MIT\n"
                    "  libraries:\n    - name: musl\n      version: '1.2.3'\n      license: MIT\n")
    packager("build", hello_static, "--output", tmp_path / "o", "--spec", spec,
             "--sbom-package", "version=1.0", "--sbom-supplier", "ACME Inc.")
    sbom = sbom_of(tmp_path / "o")
    program = package(sbom, "SPDXRef-Package-hello")
    assert (program["versionInfo"], program["licenseDeclared"]) == ("1.0", "MIT")
    assert package(sbom, "SPDXRef-Library1-musl")["versionInfo"] == "1.2.3"


@pytest.mark.parametrize(("args", "message"), [
    (["--sbom-package", "license='MIT AND'"], "is not an SPDX license expression"),
    (["--sbom-package", "cpe=cpe:2.3:a:acme"], "cpe 'cpe:2.3:a:acme' is not valid"),
    (["--sbom-package", "purl=hello"], "purl 'hello' is not valid"),
    (["--sbom-package", "nme=hello"], "unknown key 'nme'"),
    (["--sbom-library", "version=1.0"], "has no name="),
    (["--sbom-copy", "x.spdx.json"], "--sbom-copy needs an SBOM"),
])
def test_bad_sbom_inputs_are_one_line_errors(hellocontainer, hello_static, tmp_path, args, message):
    result = hellocontainer("build", hello_static, "--output", tmp_path / "o", *args, check=False)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_sbom_copy_inside_the_layout_is_refused(hellocontainer, hello_static, tmp_path):
    result = hellocontainer("build", hello_static, "--output", tmp_path / "o", "--sbom",
                            "--sbom-incomplete", "--sbom-copy", tmp_path / "o" / "x.spdx.json",
                            check=False)
    assert result.returncode == 1 and "inside the layout" in result.stderr
    assert not (tmp_path / "o").exists()


# --- the build systems ----------------------------------------------------------------------

def test_yocto_class_fills_the_sbom_from_recipe_metadata(hello_static, tmp_path):
    """The class's argv builder on a dict datastore (tests/yocto_class.py), then the real
    packager: LICENSE, PV, HOMEPAGE, SRC_URI and CVE_PRODUCT reach the document, and so does
    the C library's version from its recipe's pkgdata."""
    from yocto_class import call, datastore, recipe_values

    pkgdata = tmp_path / "pkgdata"
    (pkgdata / "runtime").mkdir(parents=True)
    # What oe-core's emit_pkgdata writes for the libc recipe's main package.
    (pkgdata / "runtime" / "musl").write_text("PN: musl\nPV: 1.2.6+git\nLICENSE: MIT\n")
    d = datastore(recipe_values(
        tmp_path, hello_static, "x86_64", PN="hello", LICENSE="GPL-2.0-only & MIT",
        HOMEPAGE="https://example.com/hello", CVE_PRODUCT="acme:hello", PV="1.0",
        SRC_URI="git://example.com/hello.git;protocol=https;branch=main file://fix.patch",
        SRCREV="a" * 40, TCLIBC="musl", PKGDATA_DIR=str(pkgdata),
        HELLOCONTAINER_SBOM_SUPPLIER="Organization: ACME Inc.", FILE_LAYERNAME="meta-acme"))
    layout = tmp_path / "out" / "layout"
    argv = call("build_argv", d, str(hello_static), str(layout))
    assert argv[argv.index("--sbom-copy") + 1] == str(tmp_path / "out" / "sbom.spdx.json")
    packager(*argv[1:])
    sbom = json.loads((tmp_path / "out" / "sbom.spdx.json").read_bytes())
    program = package(sbom, "SPDXRef-Package-hello")
    assert (program["versionInfo"], program["licenseDeclared"], program["homepage"]) == \
        ("1.0", "GPL-2.0-only AND MIT", "https://example.com/hello")
    assert program["downloadLocation"] == "git+https://example.com/hello.git@" + "a" * 40
    assert program["supplier"] == "Organization: ACME Inc."
    assert {r["referenceLocator"] for r in program["externalRefs"]} == {
        "cpe:2.3:a:acme:hello:1.0:*:*:*:*:*:*:*", "pkg:yocto/meta-acme/hello@1.0"}
    libc = package(sbom, "SPDXRef-Library1-musl")
    assert (libc["versionInfo"], libc["licenseDeclared"]) == ("1.2.6+git", "MIT")
    assert libc["externalRefs"][0]["referenceLocator"] == \
        "cpe:2.3:a:musl-libc:musl:1.2.6:*:*:*:*:*:*:*"
    result = pyspdxtools(tmp_path / "out" / "sbom.spdx.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_yocto_class_variable_turns_the_sbom_off(hello_static, tmp_path):
    from yocto_class import call, datastore, recipe_values

    d = datastore(recipe_values(tmp_path, hello_static, "x86_64", HELLOCONTAINER_SBOM="0"))
    argv = call("build_argv", d, str(hello_static), str(tmp_path / "layout"))
    assert not any(arg.startswith("--sbom") for arg in argv)


# What Buildroot's package infrastructure defines for the C library packages (package/glibc,
# package/musl as of 2026.02, and pkg-generic.mk's _CPE_ID), for the plain-make runs below.
BUILDROOT_LIBC_VARIABLES = {
    "glibc": {
        "BR2_TOOLCHAIN_USES_GLIBC": "y",
        "GLIBC_VERSION": "2.42-67-g4ebd33dd77eabe8d4c45232bed4b42a31d2f9edc",
        "GLIBC_LICENSE": "GPL-2.0+ (programs), LGPL-2.1+, BSD-3-Clause, MIT (library)",
        "GLIBC_SITE": "https://sourceware.org/git/glibc.git", "GLIBC_SITE_METHOD": "git",
        "GLIBC_CPE_ID_VALID": "YES", "GLIBC_CPE_ID": "cpe:2.3:a:gnu:glibc:2.42:-:*:*:*:*:*:*",
    },
    "musl": {
        "BR2_TOOLCHAIN_USES_MUSL": "y", "MUSL_VERSION": "1.2.6", "MUSL_LICENSE": "MIT",
        "MUSL_SITE": "http://musl.libc.org/releases", "MUSL_SOURCE": "musl-1.2.6.tar.gz",
        "MUSL_CPE_ID_VALID": "YES", "MUSL_CPE_ID": "cpe:2.3:a:musl-libc:musl:1.2.6:-:*:*:*:*:*:*",
    },
}


def buildroot_sbom(binary: Path, out: Path, variables: dict[str, str]) -> dict[str, Any]:
    """Run external.mk's HCTR_SBOM_OPTS under plain GNU make, as the package's images
    step does, with the real packager; the SBOM copy it wrote."""
    make = require_tool("make", "make")
    external = Path(__file__).resolve().parent.parent / "br2-external"
    require_buildroot_path(external)
    makefile = out / "Makefile"
    makefile.write_text(
        "qstrip = $(strip $(subst \",,$(1)))\n"
        f"include {external}/external.mk\n"
        "sbom:\n"
        "\t$(HCTR_CLI) build $(BINARY) --output $(OUT)/hello-oci "
        "$(call HCTR_SBOM_OPTS,HELLOCONTAINER_HELLO,ACME Inc.) --sbom-copy $(OUT)/hello.spdx.json\n")
    cli = f"{sys.executable} -m hellocontainer"
    subprocess.run([make, "-s", "-f", str(makefile), "sbom", f"HCTR_CLI={cli}",
                    f"BINARY={binary}", f"OUT={out}", f"BR2_EXTERNAL_HELLOCONTAINER_PATH={external}",
                    "HELLOCONTAINER_HELLO_RAWNAME=hellocontainer-hello",
                    "HELLOCONTAINER_HELLO_VERSION=custom",
                    *(f"{k}={v}" for k, v in variables.items())],
                   check=True, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    return json.loads((out / "hello.spdx.json").read_bytes())


def test_buildroot_toolchain_glibc_reaches_the_sbom(hello_static, tmp_path):
    sbom = buildroot_sbom(hello_static, tmp_path, {"BR2_TOOLCHAIN_BUILDROOT": "y",
                                                   **BUILDROOT_LIBC_VARIABLES["glibc"]})
    program = package(sbom, "SPDXRef-Package-hellocontainer-hello")
    # _LICENSE of the package (MIT) is set by its .mk file, read by plain make here too.
    assert (program["versionInfo"], program["licenseDeclared"]) == ("custom", "MIT")
    libc = package(sbom, "SPDXRef-Library1-glibc")
    assert libc["versionInfo"] == "2.42-67-g4ebd33dd77eabe8d4c45232bed4b42a31d2f9edc"
    assert libc["licenseDeclared"] == "GPL-2.0+ AND LGPL-2.1+ AND BSD-3-Clause AND MIT"
    assert libc["downloadLocation"] == ("git+https://sourceware.org/git/glibc.git@"
                                        "2.42-67-g4ebd33dd77eabe8d4c45232bed4b42a31d2f9edc")
    assert libc["externalRefs"][0]["referenceLocator"] == "cpe:2.3:a:gnu:glibc:2.42:-:*:*:*:*:*:*"
    path = tmp_path / "hello.spdx.json"
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buildroot_toolchain_musl_reaches_the_sbom(hello_static, tmp_path):
    sbom = buildroot_sbom(hello_static, tmp_path, {"BR2_TOOLCHAIN_BUILDROOT": "y",
                                                   **BUILDROOT_LIBC_VARIABLES["musl"]})
    libc = package(sbom, "SPDXRef-Library1-musl")
    assert (libc["versionInfo"], libc["licenseDeclared"]) == ("1.2.6", "MIT")
    assert libc["downloadLocation"] == "http://musl.libc.org/releases/musl-1.2.6.tar.gz"


def test_buildroot_external_toolchain_names_only_its_libc(hello_static, tmp_path):
    """An external toolchain's libc version is nowhere in Buildroot's variables: the SBOM names
    the library and claims no version (the musl package's variables exist but do not apply),
    written as incomplete on purpose, still with the supplier."""
    sbom = buildroot_sbom(hello_static, tmp_path, BUILDROOT_LIBC_VARIABLES["musl"])
    libc = package(sbom, "SPDXRef-Library1-musl")
    assert "versionInfo" not in libc and libc["licenseDeclared"] == "NOASSERTION"
    assert libc["supplier"] == "Organization: ACME Inc."


# --- fields spdx-tools would refuse are refused at build, naming the option --------------------

@pytest.mark.parametrize("location", ["javascript://example.com/x", "file:///srv/hello.tar.gz",
                                      "https://localhost/hello.tar.gz", "http://127.0.0.1/x",
                                      "/srv/hello.tar.gz"])
def test_build_refuses_a_download_location_spdx_tools_rejects(hello_static, tmp_path, location):
    result = packager("build", hello_static, "--output", tmp_path / "layout", "--sbom-package",
                      f"name=hello download_location={location}", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("hellocontainer: error: --sbom-package (spec: sbom.package) "
                                    "download_location")
    assert list(tmp_path.iterdir()) == []


def test_a_license_nested_too_deeply_names_the_sbom_option(hello_static, tmp_path):
    deep = "(" * 1000 + "MIT" + ")" * 1000
    result = packager("build", hello_static, "--output", tmp_path / "layout", "--sbom-package",
                      f"name=hello license='{deep}'", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "--sbom-package (spec: sbom.package) license nests parentheses 1000 deep" in result.stderr
    assert list(tmp_path.iterdir()) == []


_LOCATIONS = st.one_of(
    st.text(max_size=40),
    st.builds("".join, st.lists(st.sampled_from(
        ["https://", "http://", "git+", "git://", "ftp://", "file://", "javascript:", "ssh://",
         "hg+", "bzr+lp:", "git+git@", "example", ".", "com", "-", "localhost", "127.0.0.1", ":",
         "8080", "/", "path", "@", "user", "x", "1", "%", " ", "\n", "é", "co.uk", "?q=1#f"]),
        max_size=10)))


@settings(max_examples=400, deadline=None)
@given(location=_LOCATIONS)
def test_every_location_and_homepage_the_build_accepts_spdx_tools_accepts(location):
    from spdx_tools.spdx.validation.uri_validators import validate_download_location, validate_url

    from hellocontainer.errors import SpecError
    from hellocontainer.provenance.sbom import component

    try:
        part = component({"name": "x", "download_location": location}, "--sbom-package")
    except SpecError:
        pass
    else:
        if part.download_location not in (None, "NONE", "NOASSERTION"):
            assert validate_download_location(part.download_location) == []
    try:
        part = component({"name": "x", "homepage": location}, "--sbom-package")
    except SpecError:
        return
    if part.homepage is not None:
        assert validate_url(part.homepage) == []


def test_spdx_ids_made_from_names_with_underscores_plus_and_spaces_are_valid(hello_static, tmp_path):
    layout = tmp_path / "layout"
    packager("build", hello_static, "--output", layout, "--sbom-package", "name='my_tool+ extra'",
             "--sbom-library", "name='lib c++' version=1", "--sbom-incomplete")
    sbom = sbom_of(layout)
    ids = [p["SPDXID"] for p in sbom["packages"]]
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    path = tmp_path / "sbom.spdx.json"
    path.write_text(json.dumps(sbom))
    result = pyspdxtools(path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- formats, NTIA completeness and the validators we did not write ---------------------------

SPDX3 = "application/spdx3+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
FORMATS = {"spdx2": SPDX, "spdx3": SPDX3, "cyclonedx": CYCLONEDX}
SUFFIX = {"spdx2": "spdx.json", "spdx3": "spdx3.json", "cyclonedx": "cdx.json"}


def ntia_checker(path: Path, spec: str = "spdx2") -> subprocess.CompletedProcess[str]:
    """ntia-conformance-checker 6.0: NTIA's minimum elements, for SPDX 2 or SPDX 3."""
    return subprocess.run([Path(sys.executable).with_name("ntia-checker"), "-s", spec, str(path)],
                          capture_output=True, text=True)


def build_formats(binary: Path, layout: Path, *extra: object) -> dict[str, Path]:
    """A build with every format, each copied beside the layout: their copies by format."""
    copies = {name: layout.parent / f"{layout.name}.{SUFFIX[name]}" for name in FORMATS}
    build_with_sbom(binary, layout, "--sbom-creator-organization", "ACME Inc.", *extra,
                    *(word for name, path in copies.items()
                      for word in ("--sbom-format", name, "--sbom-copy", path)))
    return copies


@pytest.fixture(scope="module")
def formats_layout(hello_static: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("formats")
    return out / "hello", build_formats(hello_static, out / "hello")


def referrers_by_type(layout: Path) -> dict[str, bytes]:
    """artifactType → payload of every referrer listed in the one tag's index."""
    (entry,) = index_json(layout)["manifests"]
    found = {}
    for child in document(layout, entry["digest"])["manifests"][1:]:
        artifact = document(layout, child["digest"])
        (payload,) = artifact["layers"]
        assert payload["mediaType"] == artifact["artifactType"]
        found[artifact["artifactType"]] = blob(layout, payload["digest"])
    return found


def test_each_format_is_its_own_referrer_with_its_media_type(formats_layout, hellocontainer):
    layout, copies = formats_layout
    found = referrers_by_type(layout)
    assert sorted(found) == sorted(FORMATS.values())
    for name, media_type in FORMATS.items():
        assert found[media_type] == copies[name].read_bytes()
    hellocontainer("validate", "--strict", layout)
    listed = hellocontainer("inspect", layout).stdout
    assert all(f"{media_type}" in listed for media_type in FORMATS.values())


def test_every_format_is_reproducible(formats_layout, hello_static, tmp_path):
    layout, _ = formats_layout
    again = tmp_path / "again" / "hello"
    build_formats(hello_static, again)
    assert referrers_by_type(again) == referrers_by_type(layout)
    assert (again / "index.json").read_bytes() == (layout / "index.json").read_bytes()


def test_spdx2_passes_spdx_tools_and_the_ntia_checker(formats_layout):
    _, copies = formats_layout
    result = pyspdxtools(copies["spdx2"])
    assert result.returncode == 0, result.stdout + result.stderr
    result = ntia_checker(copies["spdx2"])
    assert result.returncode == 0 and "Conformant: True" in result.stdout, result.stdout
    sbom = json.loads(copies["spdx2"].read_bytes())
    assert sbom["creationInfo"]["creators"] == ["Organization: ACME Inc.",
                                                f"Tool: hellocontainer-{packager_version()}"]
    # Every package has a supplier: the image's and the library's from --sbom-supplier.
    assert {p["SPDXID"]: p["supplier"] for p in sbom["packages"]} == {
        "SPDXRef-Image": "Organization: ACME Inc.", "SPDXRef-Library1-musl": "Organization: ACME Inc.",
        "SPDXRef-Package-hello": "Organization: ACME Inc."}


def test_spdx3_loads_in_the_spdx_model_and_passes_the_ntia_checker(formats_layout):
    import spdx_python_model

    _, copies = formats_layout
    model, objects = spdx_python_model.load(copies["spdx3"])
    assert model.__name__.endswith("v3_0_1")
    assert objects.link() == set()  # every reference resolves inside the document
    # Serialising again checks every property's cardinality and type against the model.
    serializer = model.JSONLDSerializer()
    serializer.write(objects, io.BytesIO())
    packages = {p.software_primaryPurpose.rsplit("/", 1)[-1]: p
                for p in objects.foreach_type(model.software_Package)}
    assert packages["container"].software_packageVersion.startswith("sha256:")
    assert {p.suppliedBy.name for p in packages.values()} == {"ACME Inc."}
    (creation,) = {o.creationInfo for o in objects.foreach_type(model.Element)}
    assert [t.name for t in creation.createdUsing] == [f"hellocontainer-{packager_version()}"]
    result = ntia_checker(copies["spdx3"], "spdx3")
    assert result.returncode == 0 and "Conformant: True" in result.stdout, result.stdout


def test_cyclonedx_passes_its_schema_validator(formats_layout):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    layout, copies = formats_layout
    text = copies["cyclonedx"].read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    image = bom["metadata"]["component"]
    manifest = document(layout, index_json(layout)["manifests"][0]["digest"])["manifests"][0]
    assert (image["type"], image["version"]) == ("container", manifest["digest"])
    assert [c["bom-ref"] for c in bom["components"]] == ["hello", "musl"]
    assert {d["ref"]: d["dependsOn"] for d in bom["dependencies"]} == {
        image["bom-ref"]: ["hello"], "hello": ["musl"], "musl": []}
    # The validator is a judge that can fail: a component without its required type.
    del bom["components"][0]["type"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None


def packager_version() -> str:
    from hellocontainer import __version__

    return __version__


@pytest.mark.parametrize(("args", "message"), [
    (["--sbom-package", "name=hello version=1", "--sbom-library", "name=musl",
      "--sbom-supplier", "ACME"], "the version of library musl (version= in its --sbom-library"),
    (["--sbom-package", "name=hello version=1 supplier=ACME", "--sbom-library",
      "name=musl version=1"], "a supplier (--sbom-supplier"),
    (["--sbom", "--sbom-incomplete", "--sbom-format", "spdx3", "--sbom-link",
      "https://example.com/doc#SPDXRef-x sha1:" + "0" * 40], "is not an element of an SPDX 3"),
    (["--sbom", "--sbom-incomplete", "--sbom-link", "https://example.com/x"],
     "is not an element of an SPDX 2"),
    (["--sbom", "--sbom-incomplete", "--sbom-format", "cyclonedx", "--sbom-link",
      "https://example.com/x"], "no SPDX format is written"),
    (["--sbom", "--sbom-incomplete", "--sbom-format", "spdx3", "--sbom-copy", "a.json",
      "--sbom-copy", "b.json"], "2 --sbom-copy for 1 SBOM format(s)"),
    (["--sbom", "--sbom-supplier", "Person:"], "--sbom-supplier (spec: sbom.supplier)"),
    (["--sbom", "--sbom-format", "spdx4"], "--sbom-format"),
])
def test_incomplete_or_inconsistent_sbom_options_are_one_line_errors(
        hellocontainer, hello_static, tmp_path, args, message):
    result = hellocontainer("build", hello_static, "--output", tmp_path / "o", *args, check=False)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "a.json").exists()


def test_links_name_the_distributions_elements_in_both_spdx_versions(hello_static, tmp_path):
    """An SPDX 3 link is imported and generates the image; an SPDX 2 one is a DocumentRef
    with the other document's SHA1, as create-spdx-2.2's documents name each other."""
    spdx3_id = "http://spdx.org/spdxdocs/hello-1234/abcd/recipe/hello"
    spdx2_link = "http://spdx.org/spdxdocs/recipe-hello-1234#SPDXRef-Recipe-hello sha1:" + "a" * 40
    packager("build", hello_static, "--output", tmp_path / "three", "--sbom-incomplete",
             "--sbom-format", "spdx3", "--sbom-copy", tmp_path / "three.json",
             "--sbom-link", spdx3_id)
    graph = json.loads((tmp_path / "three.json").read_text())["@graph"]
    (doc,) = [e for e in graph if e["type"] == "SpdxDocument"]
    assert doc["import"] == [{"type": "ExternalMap", "externalSpdxId": spdx3_id}]
    (image,) = [e for e in graph if e.get("software_primaryPurpose") == "container"]
    assert {"from": spdx3_id, "to": [image["spdxId"]]}.items() <= next(
        e for e in graph if e.get("relationshipType") == "generates").items()
    packager("build", hello_static, "--output", tmp_path / "two", "--sbom-incomplete",
             "--sbom-copy", tmp_path / "two.json", "--sbom-link", spdx2_link)
    sbom = json.loads((tmp_path / "two.json").read_text())
    assert sbom["externalDocumentRefs"] == [{
        "externalDocumentId": "DocumentRef-link1",
        "spdxDocument": "http://spdx.org/spdxdocs/recipe-hello-1234",
        "checksum": {"algorithm": "SHA1", "checksumValue": "a" * 40}}]
    assert {"spdxElementId": "DocumentRef-link1:SPDXRef-Recipe-hello",
            "relationshipType": "GENERATES", "relatedSpdxElement": "SPDXRef-Image"} \
        in sbom["relationships"]
    result = pyspdxtools(tmp_path / "two.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_diff_compares_each_sbom_format_with_its_counterpart(formats_layout, hellocontainer,
                                                             hello_static, tmp_path):
    layout, _ = formats_layout
    other = tmp_path / "other" / "hello"
    build_formats(hello_static, other, "--sbom-library", "name=zlib version=1.3")
    result = hellocontainer("diff", layout, other, check=False)
    assert result.returncode == 1
    compared = sorted(set(re.findall(r"\[linux/amd64 (application/[^\]]+)\]", result.stdout)))
    assert compared == sorted(FORMATS.values()), result.stdout


def test_a_referrer_whose_subject_a_build_tags_again_after_gc_took_its_blobs_leaves_the_index(
        hellocontainer, hello_static, tmp_path):
    """Another tool's untagged referrer of an image no tag names is garbage: gc (the index has
    stood five minutes) removes its blobs in the very build that tags that image again. The new
    index.json must not list the referrer whose blobs are gone."""
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "t", "--env", "NEW=1")
    (image,) = index_json(layout)["manifests"]
    hellocontainer("build", hello_static, "--output", layout, "--tag", "t", "--env", "OLD=1")
    loose = _loose_artifact(layout, image)  # about the image "t" no longer names
    settled = os.stat(layout / "index.json").st_mtime - 3600
    os.utime(layout / "index.json", (settled, settled))
    hellocontainer("build", hello_static, "--output", layout, "--tag", "t", "--env", "NEW=1")
    entries = index_json(layout)["manifests"]
    assert [d["digest"] for d in entries if d.get("annotations")] == [image["digest"]]
    assert loose["digest"] not in {d["digest"] for d in entries}, entries
    hellocontainer("validate", layout)  # every entry's blobs are there (the old image's wait)
