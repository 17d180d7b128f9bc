"""`hellocontainer index`: separately built single-platform images become one multi-platform tag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool
from foreign import build_static_hello, cross_compilers, podman_run_foreign
from layouts import (
    MEDIA_CONFIG,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    assert_one_error,
    assert_valid,
    blob_path,
    cli,
    descriptor_of,
    digest_of,
    gzip_bytes,
    new_layout,
    read_blob_json,
    set_tag,
    summary,
    tar_bytes,
    write_blob,
    write_json_blob,
)

PLATFORM_IDS = ("amd64", "arm64", "arm-v7")


def packager(*args: object) -> None:
    """The CLI, for module-scoped fixtures (the `hellocontainer` fixture is per test)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)], check=True,
                   capture_output=True, env=env)


@pytest.fixture(scope="module")
def single_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One layout per platform, as three separate Buildroot or Yocto builds would deploy them."""
    out = tmp_path_factory.mktemp("single")
    layouts = {}
    for platform in cross_compilers().values():
        if platform.id not in PLATFORM_IDS:
            continue
        binary = build_static_hello(platform, out)
        layout = out / "layouts" / f"hello-{platform.id}"
        packager("build", binary, "--path", "/hello", "--output", layout, "--tag", "1.0")
        layouts[platform.id] = layout
    assert sorted(layouts) == sorted(PLATFORM_IDS)
    return layouts


@pytest.fixture(scope="module")
def multi(single_images, tmp_path_factory) -> Path:
    layout = tmp_path_factory.mktemp("multi") / "hello-multi"
    sources = [f"{single_images[p]}:1.0" for p in PLATFORM_IDS]
    packager("index", "--output", layout, "--tag", "1.0 latest", *sources)
    return layout


def test_index_lists_each_platform_once_under_each_tag(hellocontainer, multi):
    index = json.loads((multi / "index.json").read_text())
    assert [(d["mediaType"], d["annotations"]["org.opencontainers.image.ref.name"])
            for d in index["manifests"]] == [
        ("application/vnd.oci.image.index.v1+json", "1.0"),
        ("application/vnd.oci.image.index.v1+json", "latest"),
    ]
    report = json.loads(hellocontainer("inspect", "--json", f"{multi}:1.0").stdout)
    platforms = [m["platform"] for m in report["images"][0]["manifests"]]
    assert platforms == [{"architecture": "amd64", "os": "linux"},
                         {"architecture": "arm", "os": "linux", "variant": "v7"},
                         {"architecture": "arm64", "os": "linux"}]
    hellocontainer("validate", multi)


def test_source_order_does_not_change_the_digest(hellocontainer, single_images, multi, tmp_path):
    reversed_sources = [f"{single_images[p]}:1.0" for p in reversed(PLATFORM_IDS)]
    hellocontainer("index", "--output", tmp_path / "again", "--tag", "1.0 latest", *reversed_sources)
    assert (tmp_path / "again" / "index.json").read_bytes() == (multi / "index.json").read_bytes()


def test_two_images_for_one_platform_are_refused(hellocontainer, single_images, hello_static,
                                                 tmp_path):
    other = tmp_path / "other-amd64"
    hellocontainer("build", hello_static, "--output", other, "--env", "DIFFERENT=1")
    result = hellocontainer("index", "--output", tmp_path / "out", single_images["amd64"], other,
                            check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "linux/amd64" in result.stderr
    assert "one image per platform" in result.stderr
    assert not (tmp_path / "out").exists()


def test_podman_platform_arm64_runs_the_arm64_image(podman_home, multi):
    result = podman_run_foreign(podman_home, f"oci:{multi}:1.0", cross_compilers()["arm64"])
    assert result.stdout == "Hello container!\n"


def test_skopeo_copy_all_keeps_every_platform(multi, tmp_path):
    skopeo = require_tool("skopeo", "skopeo")
    subprocess.run([skopeo, "copy", "--all", f"oci:{multi}:1.0", f"oci:{tmp_path}/copy:1.0"],
                   check=True, capture_output=True)
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path}/copy:1.0"], check=True,
                         capture_output=True, text=True).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm",
                                                                                  "arm64"]
    original = subprocess.run([skopeo, "inspect", "--raw", f"oci:{multi}:1.0"], check=True,
                              capture_output=True, text=True).stdout
    assert raw == original  # the index blob itself is copied byte for byte


# --- every way a source can be wrong, on hand-made layouts (no cross compiler needed) --------

def platform_layout(layout: Path, architecture: str, *, tag: str = "1.0",
                    entrypoint: tuple[str, ...] = ("/hello",), variant: str | None = None) -> dict:
    """A layout holding one hand-made image for linux/`architecture`, tagged `tag`."""
    if not (layout / "oci-layout").exists():
        new_layout(layout)
    tar = tar_bytes([("hello", f"hello for {architecture}\n".encode())])
    layer = write_blob(layout, gzip_bytes(tar), MEDIA_LAYER_GZIP)
    platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant
                                                                  else {})}
    config = write_json_blob(layout, {**platform, "config": {"Entrypoint": list(entrypoint)},
                                      "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]}},
                             MEDIA_CONFIG)
    manifest = write_json_blob(layout, {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                        "config": config, "layers": [layer]}, MEDIA_MANIFEST)
    set_tag(layout, manifest, tag)
    return manifest


def assert_refused(result: subprocess.CompletedProcess[str], out: Path, *fragments: str) -> None:
    assert_one_error(result, *fragments, status=1)
    assert result.stdout == ""
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def test_hand_made_sources_join_into_one_index(tmp_path):
    """The control for the refusals below: the same kind of sources, right, are joined."""
    arm = tmp_path / "arm"
    platform_layout(arm, "arm", variant="v7")
    platform_layout(tmp_path / "amd64", "amd64")
    result = cli("index", "--output", tmp_path / "out", "--tag", "1.0", tmp_path / "amd64",
                 f"{arm}:1.0")
    assert result.returncode == 0, summary(result)
    index = read_blob_json(tmp_path / "out", descriptor_of(tmp_path / "out", "1.0")["digest"])
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"}]
    assert_valid(cli("validate", tmp_path / "out"), warnings=False)


def test_the_same_image_given_twice_is_listed_once(tmp_path):
    platform_layout(tmp_path / "a", "amd64")
    result = cli("index", "--output", tmp_path / "out", tmp_path / "a", f"{tmp_path / 'a'}:1.0")
    assert result.returncode == 0, summary(result)
    index = read_blob_json(tmp_path / "out", descriptor_of(tmp_path / "out", "latest")["digest"])
    assert len(index["manifests"]) == 1


def test_source_that_does_not_exist_is_named(tmp_path):
    platform_layout(tmp_path / "a", "amd64")
    result = cli("index", "--output", tmp_path / "out", tmp_path / "a", tmp_path / "nope")
    assert_refused(result, tmp_path / "out", str(tmp_path / "nope"), "no such file")


def test_source_that_is_not_a_layout_is_named(tmp_path):
    (tmp_path / "photos").mkdir()
    result = cli("index", "--output", tmp_path / "out", tmp_path / "photos")
    assert_refused(result, tmp_path / "out", "photos", "oci-layout")


def test_source_without_images_is_refused(tmp_path):
    new_layout(tmp_path / "empty")
    result = cli("index", "--output", tmp_path / "out", tmp_path / "empty")
    assert_refused(result, tmp_path / "out", "empty holds no image", "check the source")


def test_source_with_several_images_needs_a_tag(tmp_path):
    source = tmp_path / "two"
    platform_layout(source, "amd64", tag="1.0")
    platform_layout(source, "amd64", tag="2.0", entrypoint=("/other",))
    result = cli("index", "--output", tmp_path / "out", source)
    assert_refused(result, tmp_path / "out", "holds several images (1.0, 2.0)", "LAYOUT:TAG")


def test_source_tag_that_does_not_exist_lists_the_tags(tmp_path):
    platform_layout(tmp_path / "a", "amd64", tag="1.0")
    result = cli("index", "--output", tmp_path / "out", f"{tmp_path / 'a'}:2.0")
    assert_refused(result, tmp_path / "out", "no tag '2.0'", "tags: 1.0")


def test_two_images_for_one_platform_are_refused_whatever_their_layouts(tmp_path):
    platform_layout(tmp_path / "a", "arm64")
    platform_layout(tmp_path / "b", "arm64", entrypoint=("/hello", "--loud"))
    result = cli("index", "--allow-different-programs", "--output", tmp_path / "out",
                 tmp_path / "a", tmp_path / "b")
    assert_refused(result, tmp_path / "out", f"{tmp_path / 'b'} and {tmp_path / 'a'} both "
                   "provide linux/arm64", "one image per platform")


def test_one_arm_image_per_variant_is_allowed(tmp_path):
    platform_layout(tmp_path / "v6", "arm", variant="v6")
    platform_layout(tmp_path / "v7", "arm", variant="v7")
    result = cli("index", "--output", tmp_path / "out", tmp_path / "v6", tmp_path / "v7")
    assert result.returncode == 0, summary(result)


def test_platforms_that_start_different_programs_are_refused(tmp_path):
    platform_layout(tmp_path / "amd64", "amd64", entrypoint=("/hello",))
    platform_layout(tmp_path / "arm64", "arm64", entrypoint=("/bin/hello", "--greet"))
    args = ("--output", tmp_path / "out", tmp_path / "amd64", tmp_path / "arm64")
    assert_refused(cli("index", *args), tmp_path / "out", "different programs",
                   "linux/amd64: /hello", "linux/arm64: /bin/hello --greet",
                   "--allow-different-programs")
    allowed = cli("index", "--allow-different-programs", *args)
    assert allowed.returncode == 0, summary(allowed)


def test_damaged_source_is_refused_before_anything_is_published(tmp_path):
    source = tmp_path / "a"
    manifest = platform_layout(source, "amd64")
    layer = read_blob_json(source, manifest["digest"])["layers"][0]
    path = blob_path(source, layer["digest"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = cli("index", "--output", tmp_path / "out", source)
    assert_refused(result, tmp_path / "out", "a source image is invalid",
                   "does not match its digest", "hellocontainer validate")


def test_artifact_is_not_a_platform_image(tmp_path):
    source = new_layout(tmp_path / "a")
    empty = write_blob(source, b"{}", "application/vnd.oci.empty.v1+json")
    sbom = write_blob(source, b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json")
    artifact = write_json_blob(source, {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                        "artifactType": "application/spdx+json",
                                        "config": empty, "layers": [sbom]}, MEDIA_MANIFEST)
    set_tag(source, artifact, "sbom")
    result = cli("index", "--output", tmp_path / "out", source)
    assert_refused(result, tmp_path / "out", "is an artifact", "not a runnable image")


def test_bad_tag_for_the_index_is_refused(tmp_path):
    platform_layout(tmp_path / "a", "amd64")
    result = cli("index", "--output", tmp_path / "out", "--tag", "no good!", tmp_path / "a")
    assert_refused(result, tmp_path / "out", "'good!'", "not a valid OCI reference name")


def test_multi_platform_source_is_flattened_into_the_new_index(tmp_path):
    platform_layout(tmp_path / "amd64", "amd64")
    platform_layout(tmp_path / "arm64", "arm64")
    first = cli("index", "--output", tmp_path / "both", tmp_path / "amd64", tmp_path / "arm64")
    assert first.returncode == 0, summary(first)
    platform_layout(tmp_path / "riscv64", "riscv64")
    result = cli("index", "--output", tmp_path / "out", tmp_path / "both", tmp_path / "riscv64")
    assert result.returncode == 0, summary(result)
    index = read_blob_json(tmp_path / "out", descriptor_of(tmp_path / "out", "latest")["digest"])
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64",
                                                                           "riscv64"]
