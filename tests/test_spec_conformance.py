"""`validate` agrees with the image-spec's text: MUSTs are problems, SHOULDs are warnings, and what
the spec allows passes, whoever wrote the layout."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from layouts import (
    MEDIA_CONFIG,
    MEDIA_MANIFEST,
    add_image,
    assert_invalid,
    assert_valid,
    canonical,
    cli,
    gzip_bytes,
    new_layout,
    read_blob_json,
    read_index,
    tar_bytes,
    write_index,
    write_json_blob,
)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A valid hand-made layout with one tagged single-layer image."""
    root = new_layout(tmp_path / "layout")
    add_image(root, gzip_bytes(tar_bytes([("hello", b"hello\n")])))
    return root


def _retag(layout: Path, **changes: Any) -> None:
    """Change fields of the one index.json entry."""
    [entry] = read_index(layout)["manifests"]
    write_index(layout, [{**entry, **changes}])


def _rewrite_config(layout: Path, change: Any) -> None:
    """Replace the image's config with `change(config)`, keeping every digest honest."""
    [entry] = read_index(layout)["manifests"]
    manifest = read_blob_json(layout, entry["digest"])
    config = read_blob_json(layout, manifest["config"]["digest"])
    manifest["config"] = write_json_blob(layout, change(config), MEDIA_CONFIG)
    _retag(layout, **write_json_blob(layout, manifest, MEDIA_MANIFEST))


def _validate(layout: Path, *flags: str):
    return cli("validate", *flags, layout)


def test_urls_must_be_absolute_uris(layout):
    _retag(layout, urls=["value"])
    assert "is not a 'uri'" in assert_invalid(_validate(layout))


def test_absolute_urls_pass(layout):
    _retag(layout, urls=["https://registry.example/v2/hello/blobs/x"])
    assert_valid(_validate(layout), warnings=False)


def test_unpadded_base64_data_is_invalid(layout):
    [entry] = read_index(layout)["manifests"]
    manifest = (layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    _retag(layout, data=base64.b64encode(manifest).decode().rstrip("="))
    if len(manifest) % 3 == 0:
        pytest.skip("this manifest's base64 has no padding to drop")
    assert "data" in assert_invalid(_validate(layout))


def test_embedded_data_must_be_the_blobs_bytes(layout):
    _retag(layout, data=base64.b64encode(b"something else").decode())
    assert "embedded data does not match" in assert_invalid(_validate(layout))


def test_embedded_data_equal_to_the_blob_passes(layout):
    [entry] = read_index(layout)["manifests"]
    manifest = (layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    _retag(layout, data=base64.b64encode(manifest).decode())
    assert_valid(_validate(layout), warnings=False)


def test_upper_case_sha256_hex_breaks_the_shipped_schema():
    from hellocontainer.oci import schema

    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": MEDIA_MANIFEST, "digest": "sha256:" + "AB" * 32, "size": 1}]}
    assert any("sha256:[a-f0-9]{64}" in p for p in schema.problems(index, "index"))
    index["manifests"][0]["digest"] = "sha256:" + "ab" * 32
    assert schema.problems(index, "index") == []


def test_manifest_without_layers_is_valid_with_a_warning_and_fails_strict(layout):
    [entry] = read_index(layout)["manifests"]
    manifest = read_blob_json(layout, entry["digest"])
    manifest["layers"] = []
    config = read_blob_json(layout, manifest["config"]["digest"])
    config["rootfs"]["diff_ids"] = []
    manifest["config"] = write_json_blob(layout, config, MEDIA_CONFIG)
    _retag(layout, **write_json_blob(layout, manifest, MEDIA_MANIFEST))
    cli("gc", layout)  # the old image's blobs are not the point here
    result = _validate(layout)
    assert_valid(result)
    assert "the manifest has no layers" in result.stderr
    assert _validate(layout, "--strict").returncode == 1


@pytest.mark.parametrize("key", ["Volumes", "Labels", "Env", "ExposedPorts"])
def test_null_config_maps_written_by_docker_are_valid(layout, key):
    def null(config: dict[str, Any]) -> dict[str, Any]:
        config["config"][key] = None
        return config

    _rewrite_config(layout, null)
    cli("gc", layout)
    assert_valid(_validate(layout), warnings=False)


def _store_config_as(layout: Path, algorithm: str, encoded: str | None = None) -> None:
    """Move the config blob under another digest algorithm (honest unless `encoded` is given)."""
    [entry] = read_index(layout)["manifests"]
    manifest = read_blob_json(layout, entry["digest"])
    data = canonical(read_blob_json(layout, manifest["config"]["digest"]))
    if encoded is None:
        encoded = hashlib.new(algorithm, data).hexdigest()
    path = layout / "blobs" / algorithm / encoded
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest["config"]["digest"] = f"{algorithm}:{encoded}"
    _retag(layout, **write_json_blob(layout, manifest, MEDIA_MANIFEST))
    cli("gc", layout)


def test_sha512_digests_are_verified(layout):
    _store_config_as(layout, "sha512")
    assert_valid(_validate(layout), warnings=False)


def test_wrong_sha512_digest_is_invalid(layout):
    _store_config_as(layout, "sha512", "ab" * 64)
    assert "does not match its digest" in assert_invalid(_validate(layout))


def test_unknown_algorithm_that_fits_the_grammar_is_a_warning(layout):
    _store_config_as(layout, "sha256", None)  # honest first, then claim another algorithm
    [entry] = read_index(layout)["manifests"]
    manifest = read_blob_json(layout, entry["digest"])
    encoded = manifest["config"]["digest"].split(":")[1]
    target = layout / "blobs" / "multihash+b3" / encoded
    target.parent.mkdir(parents=True)
    target.write_bytes((layout / "blobs" / "sha256" / encoded).read_bytes())
    manifest["config"]["digest"] = f"multihash+b3:{encoded}"
    _retag(layout, **write_json_blob(layout, manifest, MEDIA_MANIFEST))
    result = _validate(layout)
    assert_valid(result)
    assert "not one this tool can compute" in result.stderr


def test_digest_outside_the_grammar_is_refused_before_it_becomes_a_path(layout):
    _retag(layout, digest="sha256:../../../../etc/passwd")
    stderr = assert_invalid(_validate(layout))
    assert "digest" in stderr and "root:" not in stderr


def test_a_trailing_newline_does_not_satisfy_a_pattern(layout):
    """JSON Schema patterns are ECMA-262: `$` is the end of the string. Python's `$` also
    matches before a final newline, so the shipped schemas must not rely on it."""
    from hellocontainer.oci import schema

    index = read_index(layout)
    index["manifests"][0]["mediaType"] += "\n"
    assert any("mediaType" in p for p in schema.problems(index, "index"))
    write_index(layout, index["manifests"])
    assert_invalid(_validate(layout))
