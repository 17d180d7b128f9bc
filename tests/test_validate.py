"""`hellocontainer validate` finds every kind of damage, in our layouts and in other tools'."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import require_tool
from hellocontainer.oci.safefile import CHUNK
from hellocontainer.oci.walk import MAX_INDEX_DEPTH
from layouts import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    REF_NAME,
    assert_invalid,
    assert_valid,
    canonical,
    cli,
    digest_of,
    gzip_bytes,
    made_layout,
    nested_index,
    new_layout,
    read_blob_json,
    read_index,
    set_tag,
    tagged,
    tar_bytes,
    write_blob,
    write_index,
    write_json_blob,
)


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
    # The index schema's digest pattern is what refuses it here (the reader's own grammar
    # check is reached by test_digest_the_schema_lets_through_is_stopped_by_the_reader).
    stderr = invalid(hellocontainer, layout,
                     "index.json: manifests[0].digest is 'sha256:../../../../etc/passwd'; "
                     "expected algorithm:encoded")
    assert "root:" not in stderr  # nothing of /etc/passwd was read


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


# --- damaged layouts whose digests all match: only the check under test can fail ------------

AMD64 = {"architecture": "amd64", "os": "linux"}
LAYER_TAR = tar_bytes([("hello", b"hello\n"), ("etc/motd", b"welcome\n" * 200)])
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def honest_image(layout: Path, *, layer: bytes | None = None, config: dict | None = None,
                 manifest: dict | None = None, entry: dict | None = None,
                 tag: str | None = "latest") -> dict:
    """One linux/amd64 image written by hand with every digest and size true, the config,
    manifest and index entry changed by the given keys (a None value removes a key)."""
    if not (layout / "oci-layout").exists():
        new_layout(layout)

    def changed(document: dict, changes: dict | None) -> dict:
        out = {**document, **(changes or {})}
        return {k: v for k, v in out.items() if v is not None}

    layer_descriptor = write_blob(layout, gzip_bytes(LAYER_TAR) if layer is None else layer,
                                  MEDIA_LAYER_GZIP)
    config_document = changed({**AMD64, "rootfs": {"type": "layers",
                                                   "diff_ids": [digest_of(LAYER_TAR)]}}, config)
    config_descriptor = write_json_blob(layout, config_document, MEDIA_CONFIG)
    manifest_document = changed({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                 "config": config_descriptor, "layers": [layer_descriptor]},
                                manifest)
    descriptor = changed({**write_json_blob(layout, manifest_document, MEDIA_MANIFEST),
                          "platform": AMD64}, entry)
    if tag is not None:
        set_tag(layout, descriptor, tag)
    return descriptor


def one_problem(layout: Path, *fragments: str) -> str:
    """`validate` finds exactly one problem, and it says all of `fragments`."""
    stderr = assert_invalid(cli("validate", layout))
    problems = [line for line in stderr.splitlines() if line.startswith("hellocontainer: invalid: ")]
    assert len(problems) == 1, stderr
    for fragment in fragments:
        assert fragment in problems[0], problems[0]
    return problems[0]


def test_hand_made_image_is_valid_without_warnings(tmp_path):
    """The control for every test below: the untouched hand-made image passes silently."""
    honest_image(tmp_path / "L")
    result = cli("validate", tmp_path / "L")
    assert_valid(result, warnings=False)
    assert result.stdout == f"{tmp_path / 'L'}: valid OCI image layout\n"


def test_index_platform_that_differs_from_the_config_is_caught(tmp_path):
    honest_image(tmp_path / "L", entry={"platform": {"architecture": "arm64", "os": "linux"}})
    one_problem(tmp_path / "L", "(latest)", "the index says platform "
                "{'architecture': 'arm64', 'os': 'linux'} but the config says "
                "{'os': 'linux', 'architecture': 'amd64'}")


def test_index_variant_that_the_config_lacks_is_caught(tmp_path):
    honest_image(tmp_path / "L", config={"architecture": "arm"},
                 entry={"platform": {"architecture": "arm", "os": "linux", "variant": "v7"}})
    one_problem(tmp_path / "L", "'variant': 'v7'", "but the config says")


def test_platform_fields_the_config_cannot_state_are_not_compared(tmp_path):
    """os.version and os.features are index-only details: no false alarm over them."""
    honest_image(tmp_path / "L", entry={"platform": {**AMD64, "os.features": ["x"]}})
    assert_valid(cli("validate", tmp_path / "L"), warnings=False)


def test_each_platform_claim_about_one_manifest_is_checked(tmp_path):
    """Two tags name one manifest, one with the right platform and one with a wrong one: the
    manifest is read once, but each claim made of it is judged."""
    layout = tmp_path / "L"
    right = honest_image(layout, tag="right")
    set_tag(layout, {**right, "platform": {"architecture": "arm64", "os": "linux"}}, "wrong")
    one_problem(layout, "(wrong)", "the index says platform")


def test_manifest_whose_media_type_differs_from_its_descriptor_is_caught(tmp_path):
    honest_image(tmp_path / "L", entry={"mediaType": MEDIA_DOCKER_MANIFEST})
    one_problem(tmp_path / "L", f"mediaType {MEDIA_MANIFEST} differs from the descriptor's "
                f"{MEDIA_DOCKER_MANIFEST}")


def test_index_blob_whose_media_type_differs_from_its_descriptor_is_caught(tmp_path):
    layout = tmp_path / "L"
    manifest = honest_image(layout, tag=None)
    index = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_DOCKER_LIST,
                                     "manifests": [manifest]}, MEDIA_INDEX)
    set_tag(layout, index, "multi")
    one_problem(layout, "(multi)", f"mediaType {MEDIA_DOCKER_LIST} differs from the "
                f"descriptor's {MEDIA_INDEX}")


def test_platform_mismatch_inside_an_image_index_is_caught(tmp_path):
    layout = tmp_path / "L"
    manifest = honest_image(layout, tag=None,
                            entry={"platform": {"architecture": "arm64", "os": "linux"}})
    index = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                     "manifests": [manifest]}, MEDIA_INDEX)
    set_tag(layout, index, "multi")
    one_problem(layout, "(multi) > manifests[0]", "the index says platform")


def test_history_that_does_not_match_the_layers_is_caught(tmp_path):
    history = [{"created_by": "one"}, {"created_by": "two"}]
    honest_image(tmp_path / "L", config={"history": history})
    one_problem(tmp_path / "L", "the config has 2 non-empty history entries for 1 layers")


def test_empty_layer_history_entries_do_not_count(tmp_path):
    history = [{"created_by": "ENV A=1", "empty_layer": True}, {"created_by": "COPY hello /"}]
    honest_image(tmp_path / "L", config={"history": history})
    assert_valid(cli("validate", tmp_path / "L"), warnings=False)


def test_diff_ids_that_do_not_match_the_layer_count_are_caught(tmp_path):
    diff_ids = [digest_of(LAYER_TAR), digest_of(b"another layer")]
    honest_image(tmp_path / "L", config={"rootfs": {"type": "layers", "diff_ids": diff_ids}})
    one_problem(tmp_path / "L", "the config lists 2 diff_ids but the manifest has 1 layers")


def test_truncated_gzip_layer_is_caught(tmp_path):
    """The gzip trailer cut off: the bytes are what the descriptor says, but not a whole gzip."""
    honest_image(tmp_path / "L", layer=gzip_bytes(LAYER_TAR)[:-8])
    one_problem(tmp_path / "L", "layers[0]", "the gzip stream is truncated")


@pytest.mark.parametrize("garbage", [b"\x1f", b"garbage after the end"], ids=["one-byte", "text"])
def test_bytes_after_the_gzip_data_are_caught(tmp_path, garbage):
    honest_image(tmp_path / "L", layer=gzip_bytes(LAYER_TAR) + garbage)
    one_problem(tmp_path / "L", "layers[0]", "trailing garbage after the gzip data")


def test_multi_member_gzip_layer_is_valid(tmp_path):
    """`cat a.gz b.gz` (and pigz -i) is one valid gzip file: RFC 1952 allows members in a row."""
    half = len(LAYER_TAR) // 2
    honest_image(tmp_path / "L", layer=gzip_bytes(LAYER_TAR[:half]) + gzip_bytes(LAYER_TAR[half:]))
    assert_valid(cli("validate", tmp_path / "L"), warnings=False)


def test_second_gzip_member_starting_at_the_readers_chunk_edge_is_valid(tmp_path):
    """The first member ends one byte before the reader's read boundary, so the next member's
    two-byte magic arrives split over two reads."""
    half = len(LAYER_TAR) // 2
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = body.compress(LAYER_TAR[:half]) + body.flush()
    trailer = struct.pack("<II", zlib.crc32(LAYER_TAR[:half]), half)
    # FLG.FNAME: a file name, the one header field whose length we may choose freely.
    name = b"n" * (CHUNK - 1 - 10 - 1 - len(deflated) - len(trailer))
    first = bytes([0x1F, 0x8B, 8, 0x08, 0, 0, 0, 0, 0, 255]) + name + b"\0" + deflated + trailer
    assert len(first) == CHUNK - 1
    honest_image(tmp_path / "L", layer=first + gzip_bytes(LAYER_TAR[half:]))
    assert_valid(cli("validate", tmp_path / "L"), warnings=False)


def test_schema_invalid_manifest_is_caught(tmp_path):
    manifest = honest_image(tmp_path / "L", manifest={"layers": "all of them"})
    # The document named by its schema and the first 12 hex digits of its digest.
    one_problem(tmp_path / "L", f"(latest) (manifest {manifest['digest'][:19]}): layers")


def test_schema_invalid_config_is_caught(tmp_path):
    honest_image(tmp_path / "L", config={"rootfs": {"type": "layers"}})
    one_problem(tmp_path / "L", "> config (config sha256:", "rootfs", "diff_ids")


def test_a_tag_is_validated_alone(tmp_path):
    """LAYOUT:TAG judges that image only: another tag's damage is not its problem."""
    layout = tmp_path / "L"
    honest_image(layout, tag="good")
    honest_image(layout, tag="bad", layer=gzip_bytes(LAYER_TAR)[:-8])
    assert_valid(cli("validate", f"{layout}:good"), warnings=False)
    one_problem(layout, "(bad)", "truncated")


def test_digest_with_a_trailing_newline_is_refused(tmp_path):
    """Python's `$` also matches before a final newline; the shipped schemas end their patterns
    with `(?![\\s\\S])` instead, so a digest followed by a newline is refused (and the reader's
    own grammar check, below, would refuse it before it became a path)."""
    layout = tmp_path / "L"
    descriptor = honest_image(layout)
    set_tag(layout, {**descriptor, "digest": descriptor["digest"] + "\n"}, "latest")
    stderr = assert_invalid(cli("validate", layout))
    assert "index.json: manifests[0].digest" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("digest", [
    "sha256:../../../../etc/passwd", "../sha256:" + "a" * 64, "sha256:" + "a" * 64 + "/..",
    "sha256:" + "a" * 63, "SHA256:" + "a" * 64, "sha256", ":" + "a" * 64,
])
def test_reader_refuses_a_digest_outside_the_grammar_before_it_becomes_a_path(tmp_path, digest):
    from hellocontainer.errors import LayoutError
    from hellocontainer.oci.reader import LayoutReader

    reader = LayoutReader(made_layout(tmp_path / "L"))
    with pytest.raises(LayoutError, match=r"does not match the OCI digest grammar|is not sha256 "
                                          r"followed by its hex digits in lowercase"):
        reader.blob_path(digest)


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "sha512:" + "a" * 64])
def test_reader_holds_registered_algorithms_to_their_encoding(tmp_path, digest):
    from hellocontainer.errors import LayoutError
    from hellocontainer.oci.reader import LayoutReader

    reader = LayoutReader(made_layout(tmp_path / "L"))
    algorithm = digest.split(":")[0]
    with pytest.raises(LayoutError, match=f"is not {algorithm} followed by its hex digits"):
        reader.blob_path(digest)


def test_reader_maps_a_valid_digest_of_any_algorithm_into_blobs(tmp_path):
    from hellocontainer.oci.reader import LayoutReader

    reader = LayoutReader(made_layout(tmp_path / "L"))
    assert reader.blob_path("sha256:" + "a" * 64) == tmp_path / "L" / "blobs" / "sha256" / ("a" * 64)
    assert reader.blob_path("multihash+base58:QmRZ") == tmp_path / "L" / "blobs" / \
        "multihash+base58" / "QmRZ"


@pytest.mark.parametrize(("strays", "words"), [(1, "1 file in the layout is"),
                                               (2, "2 files in the layout are")])
def test_leftover_blobs_are_counted_in_one_warning(tmp_path, strays, words):
    layout = made_layout(tmp_path / "L")
    for n in range(strays):
        write_blob(layout, f"stray {n}".encode(), "application/octet-stream")
    result = cli("validate", layout)
    assert_valid(result, warnings=True)
    assert result.stdout == f"{layout}: valid OCI image layout (1 warning)\n"
    (warning,) = result.stderr.splitlines()
    first = min(digest_of(f"stray {n}".encode())[7:] for n in range(strays))  # in sorted order
    assert warning.startswith(f"hellocontainer: warning: {words} not part of any image (e.g. "
                              f"blobs/sha256/{first})")
    assert warning.endswith(f"; remove them with: hellocontainer gc {layout}")


def test_malformed_oci_layout_file_is_a_problem(tmp_path):
    layout = made_layout(tmp_path / "L")
    (layout / "oci-layout").write_text('{"imageLayoutVersion": 1}')
    stderr = assert_invalid(cli("validate", layout))
    assert "hellocontainer: invalid: oci-layout: imageLayoutVersion: 1 is not of type 'string'" \
        in stderr.splitlines()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_validate_of_something_that_is_no_folder_says_so(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("not a layout\n")
    stderr = assert_invalid(cli("validate", target))
    expected = (f"layout ({target}): No such file or directory" if kind == "missing"
                else f"layout {target} is a regular file, not a directory")
    assert stderr.splitlines()[0] == f"hellocontainer: invalid: {expected}" + (
        "; check the path" if kind == "missing" else "")


def test_layout_without_oci_layout_file_is_one_problem_among_others(tmp_path):
    layout = made_layout(tmp_path / "L")
    (layout / "oci-layout").unlink()
    stderr = assert_invalid(cli("validate", layout))
    assert stderr.splitlines()[0] == (f"hellocontainer: invalid: {layout} has no oci-layout; is it "
                                      "an OCI image layout?")


def test_validating_one_tag_does_not_judge_the_layouts_leftovers(tmp_path):
    """Leftover blobs are the layout's business (`validate LAYOUT` warns of them); a tag is
    valid or not on its own."""
    layout = made_layout(tmp_path / "L")
    write_blob(layout, b"stray", "application/octet-stream")
    assert_valid(cli("validate", f"{layout}:latest"), warnings=False)


def test_embedded_data_of_the_right_bytes_but_the_wrong_size_is_caught(tmp_path):
    """descriptor.md: `data` must be exactly the blob; here the digest matches and the
    descriptor's size alone is wrong, and the check of the embedded data is what says so."""
    import base64

    layout = tmp_path / "L"
    new_layout(layout)
    config = canonical({**AMD64, "rootfs": {"type": "layers", "diff_ids": [digest_of(LAYER_TAR)]}})
    config_descriptor = {**write_blob(layout, config, MEDIA_CONFIG),
                         "data": base64.b64encode(config).decode()}
    honest_image(layout, manifest={"config": {**config_descriptor, "size": len(config) + 1}})
    one_problem(layout, "> config", "the embedded data does not match the descriptor's digest "
                "and size")


def test_embedded_data_of_the_right_length_but_other_bytes_is_caught(tmp_path):
    """`data` the length of the blob but not its bytes: only decoding and hashing it finds that."""
    import base64

    layout = tmp_path / "L"
    new_layout(layout)
    config = canonical({**AMD64, "rootfs": {"type": "layers", "diff_ids": [digest_of(LAYER_TAR)]}})
    forged = config.replace(b"amd64", b"arm64")
    assert len(forged) == len(config)
    config_descriptor = {**write_blob(layout, config, MEDIA_CONFIG),
                         "data": base64.b64encode(forged).decode()}
    honest_image(layout, manifest={"config": config_descriptor})
    one_problem(layout, "> config", "the embedded data does not match the descriptor's digest")


@pytest.mark.parametrize(("depth", "too_deep"), [(MAX_INDEX_DEPTH, False),
                                                 (MAX_INDEX_DEPTH + 1, True)])
def test_image_indexes_may_nest_32_levels(tmp_path, depth, too_deep):
    layout = tmp_path / "L"
    manifest = honest_image(layout, tag=None)
    set_tag(layout, nested_index(layout, manifest, depth), "deep")
    result = cli("validate", layout)
    if too_deep:
        one_problem(layout, f"image indexes nest deeper than {MAX_INDEX_DEPTH} levels")
    else:
        assert_valid(result, warnings=False)


def test_document_that_is_not_json_is_a_problem_not_a_crash(tmp_path):
    layout = tmp_path / "L"
    new_layout(layout)
    set_tag(layout, write_blob(layout, b"{not json", MEDIA_MANIFEST), "latest")
    one_problem(layout, "(latest)", "is not valid JSON")


def test_descriptor_with_broken_embedded_data_is_not_followed(tmp_path):
    """A descriptor whose `data` is not base64 is reported once, for that: its blob (missing
    here) is not then looked for, which would only bury the cause under its consequences."""
    layout = tmp_path / "L"
    new_layout(layout)
    config = canonical({**AMD64, "author": "not stored",
                        "rootfs": {"type": "layers", "diff_ids": [digest_of(LAYER_TAR)]}})
    descriptor = {"mediaType": MEDIA_CONFIG, "digest": digest_of(config), "size": len(config),
                  "data": "e30=\n"}  # RFC 4648 allows no line feed, nor does the schema
    honest_image(layout, manifest={"config": descriptor})
    one_problem(layout, "config.data", "does not match")


def test_subject_digest_with_a_trailing_newline_is_a_problem(tmp_path):
    layout = tmp_path / "L"
    subject = honest_image(layout, tag=None)
    honest_image(layout, tag="referrer", manifest={"subject": {
        "mediaType": MEDIA_MANIFEST, "digest": subject["digest"] + "\n", "size": subject["size"]}})
    stderr = assert_invalid(cli("validate", layout))
    assert "(referrer)" in stderr and "subject.digest" in stderr


MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"


def artifact(layout: Path, layers: list[dict], tag: str = "sbom") -> dict:
    """An OCI 1.1 artifact manifest (empty config) with `layers`, tagged `tag`."""
    empty = write_blob(layout, b"{}", MEDIA_EMPTY)
    descriptor = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                          "artifactType": "application/spdx+json",
                                          "config": empty, "layers": layers}, MEDIA_MANIFEST)
    set_tag(layout, descriptor, tag)
    return descriptor


def test_empty_descriptor_used_as_a_layer_must_be_the_empty_blob(tmp_path):
    """manifest.md: the empty descriptor is `{}`; as a layer as much as as a config."""
    layout = new_layout(tmp_path / "L")
    artifact(layout, [write_blob(layout, b"{ }", MEDIA_EMPTY)])
    one_problem(layout, "(sbom) > layers[0]: an empty descriptor", "must have digest "
                "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a and size 2")


def test_artifact_layer_blob_is_checked(tmp_path):
    """An artifact's layers have no diff_ids to check, but their blobs must be there and true."""
    layout = new_layout(tmp_path / "L")
    sbom = b'{"spdxVersion":"SPDX-2.3"}'
    artifact(layout, [{"mediaType": "application/spdx+json", "digest": digest_of(sbom),
                       "size": len(sbom)}])
    one_problem(layout, "(sbom) > layers[0]: blob", "is missing")


def test_checks_go_on_past_correct_embedded_data(tmp_path):
    """A config descriptor carrying its bytes as `data` is still followed: its config's
    wrong diff_id is found."""
    import base64

    layout = tmp_path / "L"
    new_layout(layout)
    config = canonical({**AMD64, "rootfs": {"type": "layers", "diff_ids": [digest_of(b"other")]}})
    config_descriptor = {**write_blob(layout, config, MEDIA_CONFIG),
                         "data": base64.b64encode(config).decode()}
    honest_image(layout, manifest={"config": config_descriptor})
    one_problem(layout, "> layers[0]: uncompressed layer hashes to", "but the config's diff_id")


def _good_and_truncated(layout: Path) -> tuple[dict, dict]:
    """Two untagged images: a valid one, and one (variant x) whose gzip layer is truncated."""
    good = honest_image(layout, tag=None)
    broken = honest_image(layout, tag=None, layer=gzip_bytes(LAYER_TAR)[:-8],
                          entry={"platform": {"architecture": "amd64", "os": "linux",
                                              "variant": "x"}},
                          config={"variant": "x"})
    return good, broken


def test_a_manifest_listed_twice_does_not_end_the_walk(tmp_path):
    """Each blob is checked once; a repeat is skipped, and what follows it still checked."""
    layout = tmp_path / "L"
    good, broken = _good_and_truncated(layout)
    index = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                     "manifests": [good, good, broken]}, MEDIA_INDEX)
    set_tag(layout, index, "multi")
    one_problem(layout, "(multi) > manifests[2]", "truncated")


def test_an_index_too_deep_does_not_end_the_walk(tmp_path):
    layout = tmp_path / "L"
    good, broken = _good_and_truncated(layout)
    deep = nested_index(layout, good, MAX_INDEX_DEPTH + 1)
    index = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                     "manifests": [deep, broken]}, MEDIA_INDEX)
    set_tag(layout, index, "multi")
    stderr = assert_invalid(cli("validate", layout))
    assert "nest deeper than" in stderr and "(multi) > manifests[1]" in stderr \
        and "truncated" in stderr, stderr


def test_config_digest_with_a_trailing_newline_is_a_problem(tmp_path):
    layout = tmp_path / "L"
    honest_image(layout)
    manifest = read_blob_json(layout, read_index(layout)["manifests"][0]["digest"])
    manifest["config"]["digest"] += "\n"
    set_tag(layout, write_json_blob(layout, manifest, MEDIA_MANIFEST), "latest")
    stderr = assert_invalid(cli("validate", layout))
    assert "(latest)" in stderr and "config.digest" in stderr


@pytest.mark.parametrize("names_it", [None, "right", "wrong"])
def test_referrer_entry_may_name_its_subject_but_must_name_it_right(tmp_path, names_it):
    """An index entry of a referrer (an OCI 1.1 manifest with a subject) may carry buildx's
    vnd.docker.reference.digest; when it does, it must be the subject's digest."""
    layout = new_layout(tmp_path / "L")
    subject = honest_image(layout, tag=None)
    empty = write_blob(layout, b"{}", MEDIA_EMPTY)
    sbom = write_blob(layout, b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json")
    referrer = write_json_blob(layout, {
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "artifactType": "application/spdx+json",
        "config": empty, "layers": [sbom],
        "subject": {k: subject[k] for k in ("mediaType", "digest", "size")}}, MEDIA_MANIFEST)
    annotations = {REF_NAME: "sbom"}
    if names_it is not None:
        annotations["vnd.docker.reference.digest"] = (
            subject["digest"] if names_it == "right" else digest_of(b"another image"))
    write_index(layout, [{**subject, "annotations": {REF_NAME: "latest"}},
                         {**referrer, "annotations": annotations}])
    if names_it == "wrong":
        one_problem(layout, "(sbom): vnd.docker.reference.digest", "differs from the subject")
    else:
        assert_valid(cli("validate", layout), warnings=False)


@pytest.mark.parametrize("order", ["config-first", "manifest-first"])
def test_one_blob_listed_as_two_kinds_of_document_is_judged_by_each_schema(tmp_path, order):
    """A config's digest listed in index.json as a manifest: read once as a config (valid) and
    once as a manifest (it is none), whichever comes first; a cache of documents by digest alone
    would judge the second reading by the first one's schema."""
    layout = tmp_path / "L"
    manifest = honest_image(layout, tag=None)
    config = read_blob_json(layout, manifest["digest"])["config"]
    forged = {"mediaType": MEDIA_MANIFEST, "digest": config["digest"], "size": config["size"]}
    entries = [tagged(manifest, "image"), tagged(forged, "forged")]
    write_index(layout, entries if order == "config-first" else entries[::-1])
    stderr = assert_invalid(cli("validate", layout))
    problems = [line for line in stderr.splitlines() if line.startswith("hellocontainer: invalid: ")]
    assert problems and all("(forged) (manifest" in p for p in problems), stderr
    assert "'config' is a required property" in stderr
