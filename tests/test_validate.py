"""`hellocontainer validate` finds every kind of damage, in our layouts and in other tools'."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool


@pytest.fixture
def layout(hellocontainer, hello_static, tmp_path) -> Path:
    out = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", out, "--tag", "latest")
    return out


def blobs(layout: Path) -> dict[str, dict]:
    """The manifest, config and layer of the only image, as (path, descriptor) by role."""
    index = json.loads((layout / "index.json").read_text())
    manifest_desc = index["manifests"][0]
    path = layout / "blobs" / "sha256" / manifest_desc["digest"][7:]
    manifest = json.loads(path.read_text())
    return {"manifest": manifest_desc, "config": manifest["config"], "layer": manifest["layers"][0],
            "manifest_doc": manifest, "index": index}


def blob_path(layout: Path, descriptor: dict) -> Path:
    return layout / "blobs" / "sha256" / descriptor["digest"][7:]


def invalid(hellocontainer, layout: Path, *fragments: str) -> str:
    result = hellocontainer("validate", layout, check=False)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hellocontainer: error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_valid_layout_says_valid(hellocontainer, layout):
    result = hellocontainer("validate", f"{layout}:latest")
    assert result.stdout.strip() == f"{layout}:latest: valid OCI image layout"


def test_flipped_byte_in_layer_is_caught(hellocontainer, layout):
    path = blob_path(layout, blobs(layout)["layer"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    invalid(hellocontainer, layout, "does not match its digest")


def test_wrong_size_is_caught(hellocontainer, layout):
    path = blob_path(layout, blobs(layout)["config"])
    path.write_bytes(path.read_bytes() + b" ")
    invalid(hellocontainer, layout, "bytes, but the descriptor says")


def test_wrong_diff_id_is_caught(hellocontainer, layout):
    """A config whose diff_id is not the uncompressed layer, with every digest made consistent."""
    found = blobs(layout)
    config_path = blob_path(layout, found["config"])
    config = json.loads(config_path.read_text())
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    _rewrite_config(layout, found, json.dumps(config).encode())
    invalid(hellocontainer, layout, "diff_id")


def _rewrite_config(layout: Path, found: dict, config_bytes: bytes) -> None:
    import hashlib

    digest = hashlib.sha256(config_bytes).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(config_bytes)
    manifest = found["manifest_doc"]
    manifest["config"] = {**manifest["config"], "digest": f"sha256:{digest}", "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (layout / "blobs" / "sha256" / manifest_digest).write_bytes(manifest_bytes)
    index = found["index"]
    index["manifests"][0].update(digest=f"sha256:{manifest_digest}", size=len(manifest_bytes))
    (layout / "index.json").write_text(json.dumps(index))


def test_dot_dot_digest_is_refused_without_reading_outside(hellocontainer, layout):
    found = blobs(layout)
    index = found["index"]
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (layout / "index.json").write_text(json.dumps(index))
    invalid(hellocontainer, layout, "../../../../etc/passwd")


def test_missing_blob_is_caught(hellocontainer, layout):
    blob_path(layout, blobs(layout)["layer"]).unlink()
    invalid(hellocontainer, layout, "is missing")


def test_layer_whose_media_type_lies_about_compression_is_caught(hellocontainer, layout):
    """A gzip media type on an uncompressed tar: every digest consistent, only the type wrong."""
    import hashlib

    found = blobs(layout)
    tar = gzip.decompress(blob_path(layout, found["layer"]).read_bytes())
    digest = hashlib.sha256(tar).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(tar)
    found["manifest_doc"]["layers"][0].update(digest=f"sha256:{digest}", size=len(tar))
    _rewrite_config(layout, found, blob_path(layout, found["config"]).read_bytes())
    invalid(hellocontainer, layout, "says gzip, but the bytes are none")


def test_bad_tag_in_index_is_caught(hellocontainer, layout):
    index = blobs(layout)["index"]
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "bad tag!"
    (layout / "index.json").write_text(json.dumps(index))
    invalid(hellocontainer, layout, "ref-name grammar")


def test_schema_violation_is_named_with_its_path(hellocontainer, layout):
    index = blobs(layout)["index"]
    index["manifests"][0]["size"] = "big"
    (layout / "index.json").write_text(json.dumps(index))
    invalid(hellocontainer, layout, "manifests[0].size")


def test_every_problem_is_listed_not_just_the_first(hellocontainer, layout):
    found = blobs(layout)
    blob_path(layout, found["layer"]).unlink()
    config = blob_path(layout, found["config"])
    config.write_bytes(config.read_bytes() + b" ")
    stderr = invalid(hellocontainer, layout, "is missing", "bytes, but the descriptor says")
    # The missing layer and the config's size. A blob longer than its descriptor is not read
    # to the end (it could be endless), so its digest is not compared: the size says enough.
    assert "2 problems" in stderr


def test_unknown_tag_is_reported(hellocontainer, layout):
    result = hellocontainer("validate", f"{layout}:nope", check=False)
    assert result.returncode == 1
    assert "no tag 'nope'" in result.stderr and "latest" in result.stderr


def test_layout_written_by_umoci_validates(hellocontainer, hello_static, tmp_path):
    """Other tools' layouts are judged by the same rules, and a good one passes."""
    umoci = require_tool("umoci", "umoci")
    layout = tmp_path / "umoci-layout"
    subprocess.run([umoci, "init", "--layout", str(layout)], check=True)
    subprocess.run([umoci, "new", "--image", f"{layout}:latest"], check=True)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "hello").write_bytes(hello_static.read_bytes())
    subprocess.run([umoci, "insert", "--rootless", "--image", f"{layout}:latest",
                    str(rootfs / "hello"), "/hello"], check=True, capture_output=True)
    # umoci leaves the replaced empty image's blobs behind until `umoci gc`: valid, with a
    # warning that says how to remove them; our gc does, and the layout stays valid.
    first = hellocontainer("validate", layout)
    assert first.stdout == f"{layout}: valid OCI image layout (1 warning)\n"
    assert f"remove them with: hellocontainer gc {layout}" in first.stderr
    assert "removed 2 files" in hellocontainer("gc", layout).stdout
    assert hellocontainer("validate", layout).stdout == f"{layout}: valid OCI image layout\n"
    assert hellocontainer("validate", "--strict", layout).returncode == 0


def _add_blob(layout: Path, data: bytes) -> dict:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def test_oci_artifact_manifest_beside_an_image_is_valid_and_kept(hellocontainer, hello_static,
                                                                  layout):
    """An OCI 1.1 artifact (empty config) another tool attached: valid, and a later build into
    the layout keeps its entry whole, artifactType included."""
    empty = {"mediaType": "application/vnd.oci.empty.v1+json", **_add_blob(layout, b"{}")}
    sbom = {"mediaType": "text/spdx+json", **_add_blob(layout, b'{"spdxVersion":"SPDX-2.3"}')}
    artifact = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "artifactType": "application/spdx+json", "config": empty,
                           "layers": [sbom]}).encode()
    index = blobs(layout)["index"]
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "artifactType": "application/spdx+json", **_add_blob(layout, artifact)}
    index["manifests"].append(entry)
    (layout / "index.json").write_text(json.dumps(index))
    hellocontainer("validate", layout)
    hellocontainer("build", hello_static, "--output", layout, "--tag", "second")
    kept = json.loads((layout / "index.json").read_text())["manifests"]
    assert entry in kept
    hellocontainer("validate", layout)


def test_deeply_nested_json_is_a_problem_not_a_crash(hellocontainer, layout):
    (layout / "index.json").write_text("[" * 100000)
    invalid(hellocontainer, layout, "index.json")
