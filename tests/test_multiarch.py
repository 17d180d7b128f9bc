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
