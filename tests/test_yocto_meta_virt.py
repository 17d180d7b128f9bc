"""meta-virtualization's container-bundle class takes our image as one of its own.

A user of meta-virtualization lists container image recipes in CONTAINER_BUNDLES; the class
depends on <recipe>:do_image_complete and copies ${DEPLOY_DIR_IMAGE}/<recipe>-latest-oci. A recipe
inheriting hellocontainer gives both, so it can be listed there as it is.

Needs, besides the BitBake and oe-core checkouts of tests/yocto_build.py, a meta-virtualization
checkout (HELLOCONTAINER_META_VIRT_DIR) and a meta-openembedded one (HELLOCONTAINER_META_OE_DIR,
for the layers meta-virtualization depends on), of the same release. The class under test is the
real one; to keep the parse short, BBMASK hides every recipe of those five layers (the bundle
recipe needs none of them: its native tools are ASSUME_PROVIDED, as its do_compile only copies
layouts and writes lists).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yocto_build import (
    LAYER,
    OECORE_DIR,
    Build,
    build_directory,
    common_license,
    md5,
    needs_bitbake,
    prebuilt_recipe,
    start_build,
    write_if_changed,
    write_test_layer,
)

META_VIRT_DIR = os.environ.get("HELLOCONTAINER_META_VIRT_DIR")
META_OE_DIR = os.environ.get("HELLOCONTAINER_META_OE_DIR")
needs_meta_virt = pytest.mark.skipif(
    not (META_VIRT_DIR and META_OE_DIR),
    reason="set HELLOCONTAINER_META_VIRT_DIR and HELLOCONTAINER_META_OE_DIR to a "
           "meta-virtualization and a meta-openembedded checkout to run it with our layer")
META_OE_LAYERS = ("meta-oe", "meta-python", "meta-networking", "meta-filesystems")

# What a meta-virtualization user writes to ship the image with the host's podman.
BUNDLE_RECIPE = """\
SUMMARY = "hello-prebuilt, bundled for podman on the target"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit}"
INHIBIT_DEFAULT_DEPS = "1"

inherit container-bundle

CONTAINER_BUNDLES = "hello-prebuilt"
CONTAINER_BUNDLE_RUNTIME = "podman"
"""

LOCAL_CONF = """\
MACHINE = "qemux86-64"
DISTRO_FEATURES:append = " virtualization"
SKIP_META_VIRT_SANITY_CHECK = "1"
BBMASK += "{masks}"
ASSUME_PROVIDED += "qemuwrapper-cross qemu-system-native skopeo-native vcontainer-native"
"""


@pytest.fixture(scope="module")
def build(hello_static: Path) -> Build:
    if not (META_VIRT_DIR and META_OE_DIR):
        pytest.skip("no meta-virtualization / meta-openembedded checkout given")
    top = build_directory("meta-virt")
    test_layer = top / "meta-hcvirt"
    recipes = test_layer / "recipes-test"
    mit = md5(common_license("MIT"))
    write_test_layer(test_layer, "hcvirt", "core hellocontainer virtualization-layer")
    write_if_changed(recipes / "hello-prebuilt" / "hello-prebuilt.bb",
                     prebuilt_recipe("Prebuilt static hello"))
    write_if_changed(recipes / "hello-prebuilt" / "files" / "hello", hello_static.read_bytes())
    write_if_changed(recipes / "hello-bundle" / "hello-bundle.bb", BUNDLE_RECIPE.format(mit=mit))
    meta_oe = [Path(META_OE_DIR) / name for name in META_OE_LAYERS]
    # Whole layers: their dynamic-layers/ hold bbappends too.
    masks = " ".join(f"{layer}/" for layer in [*meta_oe, Path(META_VIRT_DIR)])
    return start_build(top, [Path(OECORE_DIR) / "meta", *meta_oe, Path(META_VIRT_DIR), LAYER,
                             test_layer], LOCAL_CONF.format(masks=masks))


@needs_bitbake
@needs_meta_virt
def test_container_bundle_depends_on_the_image_complete_task_we_add(build: Build) -> None:
    build.bitbake("-g", "hello-bundle")
    graph = (build.top / "task-depends.dot").read_text()
    assert '"hello-bundle.do_compile" -> "hello-prebuilt.do_image_complete"' in graph
    assert '"hello-prebuilt.do_image_complete" -> "hello-prebuilt.do_deploy"' in graph


@needs_bitbake
@needs_meta_virt
def test_container_bundle_packages_our_layout_and_podman_runs_it(build: Build, podman) -> None:
    build.bitbake("hello-bundle", "-c", "install")
    deploy = build.deploy_dir("tmp", "qemux86-64")
    assert os.readlink(deploy / "hello-prebuilt-latest-oci") == \
        "hello-prebuilt-1.0-r0-qemux86-64.oci"
    bundles = build.recipe_workdir("tmp", "hello-bundle") / "image" / "usr" / "share" / \
        "container-bundles"
    assert (bundles / "podman" / "hello-bundle.refs").read_text() == \
        "hello-prebuilt_latest:hello-prebuilt:latest\n"
    assert (bundles / "hello-bundle.meta").read_text() == "hello-prebuilt:podman\n"
    layout = bundles / "podman" / "oci" / "hello-prebuilt_latest"
    result = podman("run", "--rm", f"oci:{layout}:latest")
    assert result.stdout == "Hello container!\n"
