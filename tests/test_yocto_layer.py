"""meta-hellocontainer: oelint-adv on the layer, and the layer under a real BitBake.

The lint test always runs. The BitBake tests need a BitBake and an openembedded-core checkout of
one release, named by HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR; without them they
skip, as in CI, which has no such checkout. tests/yocto_build.py says how the build is cut where
a real one would hand over to us, and where its build directory is kept between runs.

The build has three configurations: qemux86-64, and the multiconfigs arm (qemuarm, arm/v7) and
arm64 (qemuarm64), whose layouts one hellocontainer-index recipe joins into one image index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, STRICT, require_tool
from foreign import build_static_hello, cross_compilers, podman_run_foreign
from yocto_build import (
    BITBAKE_DIR,
    EPOCH,
    LAYER,
    OECORE_DIR,
    VENV_BIN,
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

SRCREV = "0123456789abcdef0123456789abcdef01234567"
ENV_WORDS = "A=1 GREETING='hello world'"
HOMEPAGE = 'HOMEPAGE = "https://example.org/hello"\n'

TEST_RECIPE_SETTINGS = f"""\
SRCREV = "{SRCREV}"
HELLOCONTAINER_ENV = "{ENV_WORDS}"
HELLOCONTAINER_ARCHIVE = "1"
# The digest comparisons below are of the bare image; the SBOM has tests of its own.
HELLOCONTAINER_SBOM = "0"
"""

# A recipe whose container starts at boot. No meta-virtualization here: crun is only named (in
# RDEPENDS) and provided by an empty stand-in, never built, so the layer check is turned off.
AUTOSTART_SETTINGS = """\
HELLOCONTAINER_AUTOSTART = "crun"
HELLOCONTAINER_RUNTIME_LAYERS = ""
"""

# The SBOM from recipe metadata, the way a recipe of a real project sets it.
SBOM_SETTINGS = """\
PV = "2.1"
HELLOCONTAINER_SBOM_SUPPLIER = "Organization: Example Inc."
CVE_PRODUCT = "example:hello"
"""

CRUN_STAND_IN = """\
SUMMARY = "Stand-in for meta-virtualization's crun: a package to RDEPEND on"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit}"
INHIBIT_DEFAULT_DEPS = "1"
ALLOW_EMPTY:${{PN}} = "1"
"""

LOCAL_CONF = """\
MACHINE = "qemux86-64"
BBMULTICONFIG = "arm arm64"
"""

MULTICONFIGS = {
    "arm": 'MACHINE = "qemuarm"\nTMPDIR = "${TOPDIR}/tmp-arm"\n',
    "arm64": 'MACHINE = "qemuarm64"\nTMPDIR = "${TOPDIR}/tmp-arm64"\n',
}

# One image index of hello-prebuilt for all three configurations.
INDEX_RECIPE = """\
SUMMARY = "hello-prebuilt for every configuration of this build, in one image index"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit}"

inherit hellocontainer_index

HELLOCONTAINER_INDEX_RECIPE = "hello-prebuilt"
HELLOCONTAINER_INDEX_MULTICONFIGS = "arm:qemuarm arm64:qemuarm64"
HELLOCONTAINER_INDEX_TAGS = "latest 1.0"
"""


def test_oelint_adv_reports_nothing_above_info_on_the_layer() -> None:
    files = sorted(str(p) for pattern in ("recipes-*/*/*.bb", "recipes-*/*/*.bbappend",
                                          "classes*/*.bbclass", "conf/layer.conf")
                   for p in LAYER.glob(pattern))
    oelint = shutil.which("oelint-adv", path=str(VENV_BIN)) or shutil.which("oelint-adv")
    if oelint is None:
        message = ("oelint-adv not found; install the pinned test tools: "
                   "pip install -e './python[test]' (scripts/dev-venv does)")
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([oelint, "--release", "wrynose", "--mode", "all", "--quiet",
                             "--hide", "info", "--relpaths", *files],
                            capture_output=True, text=True, cwd=LAYER)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_native_recipe_version_is_the_packagers() -> None:
    pyproject = (REPO / "python" / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert (LAYER / "recipes-devtools" / "hellocontainer"
            / f"hellocontainer-native_{version}.bb").is_file()


def test_example_recipe_version_is_the_examples() -> None:
    configure_ac = (REPO / "examples" / "hello" / "configure.ac").read_text()
    version = re.search(r"AC_INIT\(\[[^]]*\], \[([^]]+)\]", configure_ac).group(1)
    assert (LAYER / "recipes-example" / "hello-container"
            / f"hello-container_{version}.bb").is_file()


@pytest.fixture(scope="module")
def build(hello_static: Path) -> Build:
    """Write the build and test layer (kept between runs), and parse once."""
    if not (BITBAKE_DIR and OECORE_DIR):
        pytest.skip("no BitBake / openembedded-core checkout given")
    top = build_directory("layer")
    test_layer = top / "meta-hctest"
    recipes = test_layer / "recipes-test"
    write_test_layer(test_layer, "hctest", "core hellocontainer")
    mit = md5(common_license("MIT"))
    write_if_changed(recipes / "hello-prebuilt" / "hello-prebuilt.bb", prebuilt_recipe(
        "Prebuilt static hello", TEST_RECIPE_SETTINGS, head=HOMEPAGE,
        licenses=("BSD-3-Clause", "MIT")))
    # FILESOVERRIDES holds TARGET_ARCH: the qemuarm build finds files/arm/hello first, the
    # qemuarm64 build files/aarch64/hello.
    files = recipes / "hello-prebuilt" / "files"
    write_if_changed(files / "hello", hello_static.read_bytes())
    for arch, platform in (("arm", "arm/v7"), ("aarch64", "arm64")):
        program = build_static_hello(cross_compilers()[platform], top)
        write_if_changed(files / arch / "hello", program.read_bytes())
    write_if_changed(recipes / "hello-autostart" / "hello-autostart.bb",
                     prebuilt_recipe("Prebuilt static hello", AUTOSTART_SETTINGS))
    write_if_changed(recipes / "hello-autostart" / "files" / "hello", hello_static.read_bytes())
    write_if_changed(recipes / "crun" / "crun_1.0.bb", CRUN_STAND_IN.format(mit=mit))
    write_if_changed(recipes / "hello-sbom" / "hello-sbom.bb", prebuilt_recipe(
        "Prebuilt static hello, with an SBOM", SBOM_SETTINGS, head=HOMEPAGE,
        licenses=("BSD-3-Clause", "MIT")))
    write_if_changed(recipes / "hello-sbom" / "files" / "hello", hello_static.read_bytes())
    write_if_changed(recipes / "hello-multiarch" / "hello-multiarch.bb",
                     INDEX_RECIPE.format(mit=mit))
    return start_build(top, [Path(OECORE_DIR) / "meta", LAYER, test_layer], LOCAL_CONF,
                       MULTICONFIGS)


@pytest.fixture(scope="module")
def deployed(build: Build) -> Path:
    """`bitbake hello-prebuilt -c deploy` for qemux86-64; its DEPLOY_DIR_IMAGE."""
    build.bitbake("hello-prebuilt", "-c", "deploy")
    return build.deploy_dir("tmp", "qemux86-64")


@needs_bitbake
def test_layer_parses_without_warnings(build: Build) -> None:
    # A recipe read from BitBake's cache prints nothing, not even its warnings: a newer mtime
    # makes BitBake parse every recipe of both layers again, in all three configurations.
    recipes = [*LAYER.glob("recipes-*/*/*.bb"), *build.top.glob("meta-hctest/recipes-*/*/*.bb")]
    for recipe in recipes:
        os.utime(recipe)
    output = build.bitbake("-p")
    problems = [line for line in (build.parse_output + output).splitlines()
                if line.startswith(("WARNING:", "ERROR:"))]
    assert problems == []
    parsed = re.search(r"Parsing of \d+ \.bb files complete \(\d+ cached, (\d+) parsed\)", output)
    assert parsed and int(parsed.group(1)) >= (1 + len(MULTICONFIGS)) * len(recipes), output
    assert " 0 errors." in output


@needs_bitbake
def test_bitbake_env_shows_the_class_variables_of_the_example(build: Build) -> None:
    env = build.bitbake("-e", "hello-container")
    values = dict(re.findall(r'^(?:export )?([A-Za-z0-9_:-]+)="(.*)"$', env, re.MULTILINE))
    assert values["HELLOCONTAINER_BINARY"] == "/usr/bin/hello"
    assert values["HELLOCONTAINER_ARCH"] == "x86_64"
    assert values["HELLOCONTAINER_TAGS"] == "latest"
    assert values["HELLOCONTAINER_IMAGE_LINK_NAME"] == "hello-container-qemux86-64"
    assert "org.opencontainers.image.licenses=MIT" in values["HELLOCONTAINER_ANNOTATIONS"]
    assert "org.opencontainers.image.version=0.1.0" in values["HELLOCONTAINER_ANNOTATIONS"]
    assert values["PACKAGES"].split()[0] == "hello-container-oci"
    assert values["SOURCE_DATE_EPOCH"] == values["SOURCE_DATE_EPOCH_FALLBACK"]
    assert "python do_hellocontainer ()" in env


@needs_bitbake
def test_oci_task_runs_after_install_and_before_package_sysroot_and_deploy(
        build: Build) -> None:
    def deps(task: str) -> str:
        out = build.bitbake("-r", "hello-container", "-f", "deps", "--value", task,
                            tool="bitbake-getvar")
        return out.strip().splitlines()[-1]

    assert "do_install" in deps("do_hellocontainer")
    for later in ("do_package", "do_populate_sysroot", "do_deploy"):
        assert "do_hellocontainer" in deps(later), later


@needs_bitbake
def test_example_recipe_unpacks_this_repositorys_hello(build: Build) -> None:
    # (hellocontainer-native is ASSUME_PROVIDED here, so BitBake runs none of its tasks; a
    # SRC_URI entry it could not find would already have made parsing fail.)
    build.bitbake("hello-container", "-c", "unpack")
    # S: ${UNPACKDIR}/hello, or on scarthgap ${WORKDIR}/hello.
    example = Path(build.variables("hello-container")["S"])
    assert (example / "hello.c").read_bytes() == (REPO / "examples/hello/hello.c").read_bytes()


@needs_bitbake
def test_deployed_layout_validates(deployed: Path, hellocontainer) -> None:
    result = hellocontainer("validate", deployed / "hello-prebuilt-qemux86-64.oci")
    assert result.stdout.strip().endswith("valid OCI image layout")


@needs_bitbake
def test_stable_link_points_at_versioned_layout(deployed: Path) -> None:
    assert os.readlink(deployed / "hello-prebuilt-qemux86-64.oci") == \
        "hello-prebuilt-1.0-r0-qemux86-64.oci"
    assert os.readlink(deployed / "hello-prebuilt-qemux86-64.oci-archive.tar") == \
        "hello-prebuilt-1.0-r0-qemux86-64.oci-archive.tar"


@needs_bitbake
def test_podman_runs_layout_deployed_by_the_class(deployed: Path, podman) -> None:
    result = podman("run", "--rm", f"oci:{deployed / 'hello-prebuilt-qemux86-64.oci'}")
    assert result.stdout == "Hello container!\n"


@needs_bitbake
def test_podman_runs_oci_archive_deployed_by_the_class(deployed: Path, podman) -> None:
    archive = deployed / "hello-prebuilt-qemux86-64.oci-archive.tar"
    result = podman("run", "--rm", f"oci-archive:{archive}")
    assert result.stdout == "Hello container!\n"


def _manifest_digest(layout: Path) -> str:
    (manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    return manifest["digest"]


@needs_bitbake
def test_class_and_cli_give_the_same_manifest_digest(deployed: Path, hello_static: Path,
                                                    hellocontainer, tmp_path: Path) -> None:
    # What a user would type to package the same binary with the recipe's settings.
    annotations = ("org.opencontainers.image.title=hello-prebuilt "
                   "'org.opencontainers.image.description=Prebuilt static hello' "
                   "org.opencontainers.image.version=1.0 "
                   "'org.opencontainers.image.licenses=BSD-3-Clause AND MIT' "
                   "org.opencontainers.image.url=https://example.org/hello "
                   "org.opencontainers.image.source=https://example.org/hello "
                   f"org.opencontainers.image.revision={SRCREV}")
    hellocontainer("build", hello_static, "--output", tmp_path / "cli", "--arch", "x86_64",
                   "--env", ENV_WORDS, "--annotation", annotations,
                   env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    assert _manifest_digest(deployed / "hello-prebuilt-qemux86-64.oci") == \
        _manifest_digest(tmp_path / "cli")


@needs_bitbake
def test_oci_package_holds_the_deployed_layout(build: Build, deployed: Path) -> None:
    image = build.recipe_workdir("tmp", "hello-prebuilt") / "image"
    installed = image / "usr" / "share" / "hellocontainer" / "hello-prebuilt"
    assert _manifest_digest(installed) == \
        _manifest_digest(deployed / "hello-prebuilt-qemux86-64.oci")


@needs_bitbake
def test_qemuarm_build_gives_arm_v7_image_that_runs(build: Build, podman_home: Path) -> None:
    build.bitbake("mc:arm:hello-prebuilt", "-c", "deploy")
    layout = build.deploy_dir("tmp-arm", "qemuarm") / "hello-prebuilt-qemuarm.oci"
    (manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert manifest["platform"] == {"architecture": "arm", "os": "linux", "variant": "v7"}
    result = podman_run_foreign(podman_home, f"oci:{layout}", cross_compilers()["arm/v7"])
    assert result.stdout == "Hello container!\n"


@needs_bitbake
def test_autostart_recipe_registers_its_service_with_one_init_class(build: Build) -> None:
    values = build.variables("hello-autostart")
    features = values["DISTRO_FEATURES"].split()
    assert "crun" in values["RDEPENDS:hello-autostart-oci"].split()
    splitfuncs = values["PACKAGESPLITFUNCS"].split()
    if "systemd" in features:
        assert "hello-autostart-oci" in values["SYSTEMD_PACKAGES"].split()
        assert values["SYSTEMD_SERVICE:hello-autostart-oci"] == "hellocontainer-hello-autostart.service"
        assert "systemd_populate_packages" in splitfuncs
        assert "populate_packages_updatercd" not in splitfuncs
    else:
        assert "hello-autostart-oci" in values["INITSCRIPT_PACKAGES"].split()
        assert values["INITSCRIPT_NAME:hello-autostart-oci"] == "hellocontainer-hello-autostart"
        assert "systemd_populate_packages" not in splitfuncs


@needs_bitbake
def test_autostart_files_are_those_the_class_functions_give_without_bitbake(
        build: Build, hello_static: Path, tmp_path: Path) -> None:
    from yocto_class import yocto_oci_files

    features = build.variables("hello-autostart")["DISTRO_FEATURES"]
    build.bitbake("hello-autostart", "-c", "deploy")
    image = build.recipe_workdir("tmp", "hello-autostart") / "image"
    bundle = image / "usr/share/hellocontainer/hello-autostart-bundle"
    assert (bundle / "config.json").is_file()
    assert (bundle / "rootfs" / "hello").read_bytes() == hello_static.read_bytes()
    # FILE_LAYERNAME: BitBake's name of the recipe's layer, which the SBOM's purl holds.
    without = yocto_oci_files(tmp_path, hello_static, "x86_64", PN="hello-autostart",
                              DISTRO_FEATURES=features, SOURCE_DATE_EPOCH=str(EPOCH),
                              FILE_LAYERNAME="hctest", INHIBIT_DEFAULT_DEPS="1")

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}

    assert files(image) == files(without)


@needs_bitbake
def test_multiconfig_layouts_join_into_one_index_that_runs_on_each_platform(
        build: Build, podman_home: Path, hellocontainer, tmp_path: Path) -> None:
    # One bitbake call: mcdepends build hello-prebuilt in all three configurations first.
    build.bitbake("hello-multiarch")
    layout = build.deploy_dir("tmp", "qemux86-64") / "hello-multiarch.oci"
    assert hellocontainer("validate", layout).stdout.strip().endswith("valid OCI image layout")

    skopeo = require_tool("skopeo", "skopeo")

    def raw(reference: str) -> str:
        return subprocess.run([skopeo, "inspect", "--raw", reference], check=True,
                              capture_output=True, text=True).stdout

    index = json.loads(raw(f"oci:{layout}:1.0"))
    platforms = sorted((m["platform"]["architecture"], m["platform"].get("variant", ""))
                       for m in index["manifests"])
    assert platforms == [("amd64", ""), ("arm", "v7"), ("arm64", "")]
    # Each entry is the very manifest its configuration deployed.
    for tmpdir, machine in (("tmp", "qemux86-64"), ("tmp-arm", "qemuarm"),
                            ("tmp-arm64", "qemuarm64")):
        single = build.deploy_dir(tmpdir, machine) / f"hello-prebuilt-{machine}.oci"
        assert _manifest_digest(single) in {m["digest"] for m in index["manifests"]}

    subprocess.run([skopeo, "copy", "--all", f"oci:{layout}:1.0", f"oci:{tmp_path}/copy:1.0"],
                   check=True, capture_output=True)
    assert raw(f"oci:{tmp_path}/copy:1.0") == raw(f"oci:{layout}:1.0")
    for platform in ("amd64", "arm/v7", "arm64"):
        result = podman_run_foreign(podman_home, f"oci:{layout}:latest",
                                    cross_compilers()[platform])
        assert result.stdout == "Hello container!\n", platform


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@needs_bitbake
def test_oci_package_splits_out_the_layout_bundle_and_service_unchanged(
        build: Build, hello_static: Path) -> None:
    build.bitbake("hello-autostart", "-c", "packagedata")
    workdir = build.recipe_workdir("tmp", "hello-autostart")
    split = workdir / "packages-split"
    image = workdir / "image"
    features = build.variables("hello-autostart")["DISTRO_FEATURES"].split()
    service = ("usr/lib/systemd/system/hellocontainer-hello-autostart.service"
               if "systemd" in features else "etc/init.d/hellocontainer-hello-autostart")
    oci = _files(split / "hello-autostart-oci")
    # systemd.bbclass adds a preset to the package that enables the unit.
    preset = "usr/lib/systemd/system-preset/98-hello-autostart-oci.preset"
    added = [preset] if "systemd" in features else []
    # Everything the class put into ${D} beside the program, and nothing else.
    assert oci == sorted([name for name in _files(image) if name != "usr/bin/hello"] + added)
    if added:
        assert (split / "hello-autostart-oci" / preset).read_text() == \
            "enable hellocontainer-hello-autostart.service\n"
    assert service in oci
    assert "usr/share/hellocontainer/hello-autostart/index.json" in oci
    assert "usr/share/hellocontainer/hello-autostart-bundle/config.json" in oci
    assert _files(split / "hello-autostart") == ["usr/bin/hello"]
    # The bundle's copy of the program is the image's, byte for byte.
    bundled = split / "hello-autostart-oci/usr/share/hellocontainer/hello-autostart-bundle"
    assert (bundled / "rootfs" / "hello").read_bytes() == hello_static.read_bytes()
    assert not any("hellocontainer" in name for name in _files(split / "hello-autostart-dbg"))
    # pkgdata, which images and SDKs read, lists the same files for the package.
    pkgdata = build.top / "tmp" / "pkgdata" / "qemux86-64" / "runtime" / "hello-autostart-oci"
    info = re.search(r"^FILES_INFO(?::hello-autostart-oci)?: (.*)$", pkgdata.read_text(),
                     re.MULTILINE).group(1)
    assert sorted(name.lstrip("/") for name in json.loads(info)) == oci


@needs_bitbake
def test_sbom_holds_what_the_recipe_says(build: Build, hellocontainer, hello_static: Path,
                                        podman) -> None:
    build.bitbake("hello-sbom", "-c", "deploy")
    deploy = build.deploy_dir("tmp", "qemux86-64")
    layout = deploy / "hello-sbom-qemux86-64.oci"
    assert hellocontainer("validate", layout).stdout.strip().endswith("valid OCI image layout")
    assert podman("run", "--rm", f"oci:{layout}:latest").stdout == "Hello container!\n"
    assert os.readlink(deploy / "hello-sbom-qemux86-64.spdx.json") == \
        "hello-sbom-2.1-r0-qemux86-64.spdx.json"
    # spdx-tools, the reference validator of SPDX 2.3, accepts it.
    validator = subprocess.run([sys.executable, "-m", "spdx_tools.spdx.clitools.pyspdxtools",
                                "-i", str(deploy / "hello-sbom-qemux86-64.spdx.json")],
                               capture_output=True, text=True)
    assert validator.returncode == 0, validator.stdout + validator.stderr
    sbom = json.loads((deploy / "hello-sbom-qemux86-64.spdx.json").read_text())
    packages = {p["SPDXID"]: p for p in sbom["packages"]}
    program = packages["SPDXRef-Package-hello-sbom"]
    assert program["versionInfo"] == "2.1"
    assert program["licenseDeclared"] == "BSD-3-Clause AND MIT"
    assert program["supplier"] == "Organization: Example Inc."
    assert program["homepage"] == "https://example.org/hello"
    refs = {(r["referenceType"], r["referenceLocator"]) for r in program["externalRefs"]}
    # CVE_PRODUCT vendor:product, as oe-core's cve-check names it; the purl names the layer.
    assert refs == {("cpe23Type", "cpe:2.3:a:example:hello:2.1:*:*:*:*:*:*:*"),
                    ("purl", "pkg:yocto/hctest/hello-sbom@2.1")}
    checksums = {c["algorithm"]: c["checksumValue"] for c in program.get("checksums", [])}
    assert checksums["SHA256"] == hashlib.sha256(hello_static.read_bytes()).hexdigest()
    # INHIBIT_DEFAULT_DEPS: the program links no C library of this build, and none is claimed.
    assert not any(p["name"] in ("glibc", "musl", "newlib") for p in packages.values())
    # The deployed copy is the one attached to the image, under the image's tag.
    index = json.loads((layout / "index.json").read_text())
    (tagged,) = index["manifests"]
    inner = json.loads((layout / "blobs" / "sha256" / tagged["digest"][7:]).read_text())
    (attestation,) = [m for m in inner["manifests"] if m.get("annotations", {}).get(
        "vnd.docker.reference.type") == "attestation-manifest"]
    artifact = json.loads((layout / "blobs" / "sha256" / attestation["digest"][7:]).read_text())
    assert artifact["artifactType"] == "application/spdx+json"
    (layer,) = artifact["layers"]
    assert (layout / "blobs" / "sha256" / layer["digest"][7:]).read_bytes() == \
        (deploy / "hello-sbom-qemux86-64.spdx.json").read_bytes()
