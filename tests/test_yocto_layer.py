"""meta-hellocontainer: oelint-adv on the layer, and the layer under a real BitBake.

The lint test always runs. The BitBake tests need a BitBake and an openembedded-core checkout of
one release, named by HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR; without them they
skip, as in CI, which has no such checkout. tests/yocto_build.py says how the build is cut where
a real one would hand over to us, and where its build directory is kept between runs.

The build has three configurations: qemux86-64, and the multiconfigs arm (qemuarm, arm/v7) and
arm64 (qemuarm64), whose layouts one hellocontainer-index recipe joins into one image index.
"""

from __future__ import annotations

import ast
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

# The SBOM from recipe metadata, the way a recipe of a real project sets it. SPDX 2 on every
# release, the format spdx-tools validates: the default follows create-spdx, which the default
# distro inherits, and so is SPDX 3 on master (test_yocto_sbom.py checks that one).
SBOM_SETTINGS = """\
PV = "2.1"
HELLOCONTAINER_SBOM_FORMATS = "spdx2"
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
BBMULTICONFIG = "arm arm64 x86b"
"""

# A second MACHINE of qemux86-64's tune, in the same TMPDIR: oe-core alone has no two machines
# of one tune, so the test layer adds one.
SECOND_MACHINE = "hctestx86-64"
SECOND_MACHINE_CONF = """\
#@NAME: qemux86-64 under another name, for a second MACHINE of one tune in one TMPDIR
require conf/machine/qemux86-64.conf
"""

MULTICONFIGS = {
    "arm": 'MACHINE = "qemuarm"\nTMPDIR = "${TOPDIR}/tmp-arm"\n',
    "arm64": 'MACHINE = "qemuarm64"\nTMPDIR = "${TOPDIR}/tmp-arm64"\n',
    "x86b": f'MACHINE = "{SECOND_MACHINE}"\nTMPDIR = "${{TOPDIR}}/tmp"\n',
}

# A recipe whose path variables a test changes between two builds (hello-paths.inc).
PATHS_SETTINGS = """\
HELLOCONTAINER_AUTOSTART = "crun"
HELLOCONTAINER_RUNTIME_LAYERS = ""
require hello-paths.inc
"""
PATHS_DEFAULT = "# hellocontainer.bbclass's default paths\n"

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


def test_oelint_adv_reports_nothing_above_info_on_the_layer(tmp_path: Path) -> None:
    # From a copy in a neutral folder: oelint-adv takes any */distro/*.conf for a distro
    # configuration, so a checkout below a folder named "distro" would lint layer.conf as one.
    layer = tmp_path / "meta-hellocontainer"
    shutil.copytree(LAYER, layer)
    files = sorted(str(p.relative_to(layer)) for pattern in ("recipes-*/*/*.bb",
                                                             "recipes-*/*/*.bbappend",
                                                             "classes*/*.bbclass",
                                                             "conf/layer.conf")
                   for p in layer.glob(pattern))
    oelint = shutil.which("oelint-adv", path=str(VENV_BIN)) or shutil.which("oelint-adv")
    if oelint is None:
        message = ("oelint-adv not found; install the pinned test tools: "
                   "pip install -e './python[test]' (scripts/dev-venv does)")
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    # The classes' variables are read by the layer's library (lib/), where oelint-adv does not
    # look, so it calls each one no class or recipe expands "unknown": a finding the rule means
    # as info (severity_override), which this oelint-adv version prints as a warning. A
    # misspelling of a known variable ("maybe you meant") is still reported.
    result = subprocess.run([oelint, "--release", "wrynose", "--mode", "all", "--quiet",
                             "--hide", "info", "--suppress", "oelint.vars.mispell.unknown",
                             "--relpaths", *files],
                            capture_output=True, text=True, cwd=layer)
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
    write_if_changed(recipes / "hello-paths" / "hello-paths.bb",
                     prebuilt_recipe("Prebuilt static hello, installed where told", PATHS_SETTINGS))
    write_if_changed(recipes / "hello-paths" / "hello-paths.inc", PATHS_DEFAULT)
    write_if_changed(recipes / "hello-paths" / "files" / "hello", hello_static.read_bytes())
    write_if_changed(test_layer / "conf" / "machine" / f"{SECOND_MACHINE}.conf",
                     SECOND_MACHINE_CONF)
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

    values = build.variables("hello-autostart")
    # The default distro inherits create-spdx, and the SBOM follows it: its format and supplier
    # (SPDX_VERSION, SPDX_SUPPLIER "Organization: OpenEmbedded ()" on scarthgap, the agent
    # SPDX_PACKAGE_SUPPLIER names on master) and, for SPDX 3, the recipe's element in the
    # document do_create_recipe_spdx wrote (DEPLOY_DIR_SPDX/SSTATE_PKGARCH).
    spdx = {name: value for name, value in values.items()
            if name.startswith("SPDX_") or name in ("DEPLOY_DIR_SPDX", "SSTATE_PKGARCH")}
    build.bitbake("hello-autostart", "-c", "deploy")
    image = build.recipe_workdir("tmp", "hello-autostart") / "image"
    bundle = image / "usr/share/hellocontainer/hello-autostart-bundle"
    assert (bundle / "config.json").is_file()
    assert (bundle / "rootfs" / "hello").read_bytes() == hello_static.read_bytes()
    # FILE_LAYERNAME: BitBake's name of the recipe's layer, which the SBOM's purl holds.
    without = yocto_oci_files(tmp_path, hello_static, "x86_64", PN="hello-autostart",
                              DISTRO_FEATURES=values["DISTRO_FEATURES"],
                              SOURCE_DATE_EPOCH=str(EPOCH), FILE_LAYERNAME="hctest",
                              INHIBIT_DEFAULT_DEPS="1", **spdx)

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


# ---------------------------------------------------------------------------------------------
# Every documented variable is in the signature of the task that reads it.

# The task whose signature holds each `?=` variable of the classes, and so reruns when it changes.
# do_package: FILES and RDEPENDS of ${PN}-oci (package.bbclass hashes every package's values).
SIGNATURE_TASKS = {
    "do_hellocontainer": """BINARY PATH ENTRYPOINT CMD ENV USER WORKDIR PORTS LABELS ANNOTATIONS
        STOP_SIGNAL TAGS COMPRESSION GZIP_LEVEL ARCHIVE ARCH TUNE STRIP ALLOW_DYNAMIC EXTRA_ARGS
        SBOM SBOM_SUPPLIER SBOM_CREATOR_ORGANIZATION SBOM_FORMATS LIBC_CPE INSTALL_DIR AUTOSTART
        BUNDLE BUNDLE_DIR RESTART NETWORK NAME
        SERVICE RESTART_MAX_DELAY GIVE_UP_AFTER GIVE_UP_WINDOW QUADLET PODMAN_ROOT
        AUTOSTART_BUNDLE_DIR VERIFY_KEY_PATH""",
    "do_deploy": "IMAGE_NAME IMAGE_LINK_NAME IMAGE_LATEST_NAME",
    "do_package": "RUNTIME_PACKAGE INSTALL_DIR BUNDLE_DIR SERVICE VERIFY_KEY_PATH",
}
INDEX_SIGNATURE_TASKS = {
    "do_hellocontainer_index": """INDEX_RECIPE INDEX_MULTICONFIGS INDEX_DEPLOY_DIR[arm]
        INDEX_DEPLOY_DIR[arm64] INDEX_LAYOUT_NAME INDEX_TAGS""",
    "do_deploy": "INDEX_IMAGE_NAME INDEX_IMAGE_LINK_NAME",
}
# Read only by the parse-time checks: a change there stops the parse or passes, and changes
# nothing any task makes.
PARSE_TIME_ONLY = {"HELLOCONTAINER_RUNTIME_LAYERS"}
# Key files: their CONTENTS are in do_hellocontainer's signature ([file-checksums]), not their
# paths, so that the same key elsewhere on another machine keeps sstate valid.
KEY_FILES = {"HELLOCONTAINER_SIGN_KEY", "HELLOCONTAINER_VERIFY_KEY"}


def _class_variables(path: Path) -> set[str]:
    """The variables that a class (or recipe) gives a default, `?=`."""
    return set(re.findall(r"^(HELLOCONTAINER_\w+) \?\??=", path.read_text(), re.MULTILINE))


def _expected(tasks: dict[str, str]) -> dict[str, set[str]]:
    return {task: {"HELLOCONTAINER_" + word for word in words.split()}
            for task, words in tasks.items()}


def _signature_variables(build: Build, recipe: str, task: str, machine: str = "qemux86-64"
                         ) -> set[str]:
    """The variables whose values the newest signature of `task` holds (bitbake-dumpsig)."""
    stamps = build.top / "tmp" / "stamps"
    arch = machine.replace("-", "_")
    sigdata = max(stamps.glob(f"{arch}-*/{recipe}/*.{task}.sigdata.*"),
                  key=lambda path: path.stat().st_mtime)
    dump = build.bitbake(str(sigdata), tool="bitbake-dumpsig")
    deps = re.search(r"^Task dependencies: (\[.*\])$", dump, re.MULTILINE).group(1)
    return set(ast.literal_eval(deps))


def test_every_class_variable_is_in_a_task_signature_table_and_the_readme() -> None:
    # The tables below and meta-hellocontainer/README.md must follow each new variable.
    readme = (LAYER / "README.md").read_text()
    image = set().union(*_expected(SIGNATURE_TASKS).values())
    index = {name.split("[")[0] for name in set().union(*_expected(INDEX_SIGNATURE_TASKS).values())}
    classes = LAYER / "classes-recipe"
    assert _class_variables(classes / "hellocontainer.bbclass") == \
        image | PARSE_TIME_ONLY | KEY_FILES
    assert _class_variables(classes / "hellocontainer_index.bbclass") | {
        "HELLOCONTAINER_INDEX_DEPLOY_DIR"} == index
    for name in image | index | PARSE_TIME_ONLY | KEY_FILES:
        assert f"`{name}" in readme, name
    # Each has a one-line comment above it.
    for path in (LAYER / "classes-recipe").glob("*.bbclass"):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.match(r"HELLOCONTAINER_\w+ \?\??=", line):
                assert lines[number - 1].startswith("#"), (path.name, line)


@needs_bitbake
def test_every_documented_variable_is_in_the_signature_of_the_task_reading_it(
        build: Build) -> None:
    # -S none: the signatures of every task of both recipes, written without running any.
    build.bitbake("-S", "none", "hello-prebuilt", "hello-multiarch")
    for recipe, tasks in (("hello-prebuilt", SIGNATURE_TASKS),
                          ("hello-multiarch", INDEX_SIGNATURE_TASKS)):
        for task, names in _expected(tasks).items():
            missing = names - _signature_variables(build, recipe, task)
            assert not missing, f"{recipe}:{task} would not rerun when {sorted(missing)} change"


@needs_bitbake
def test_changed_multiconfig_deploy_dir_reruns_the_index_task(build: Build) -> None:
    # The flag is named at run time (HELLOCONTAINER_INDEX_DEPLOY_DIR[<multiconfig>]); a real
    # change of it gives the task another signature.
    recipe = build.top / "meta-hctest" / "recipes-test" / "hello-multiarch" / "hello-multiarch.bb"
    original = recipe.read_text()

    def index_hash() -> str:
        build.bitbake("-S", "none", "hello-multiarch")
        sigdata = max((build.top / "tmp" / "stamps").glob(
            "qemux86_64-*/hello-multiarch/*.do_hellocontainer_index.sigdata.*"),
            key=lambda path: path.stat().st_mtime)
        return sigdata.name.rsplit(".", 1)[1]

    try:
        before = index_hash()
        recipe.write_text(original + 'HELLOCONTAINER_INDEX_DEPLOY_DIR[arm] = "/elsewhere"\n')
        after = index_hash()
    finally:
        recipe.write_text(original)
    assert before != after


@needs_bitbake
def test_a_changed_key_reruns_the_task_and_a_moved_one_does_not(build: Build,
                                                                tmp_path: Path) -> None:
    settings = build.top / "meta-hctest" / "recipes-test" / "hello-paths" / "hello-paths.inc"
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("a", "b"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", keys / f"{name}.pem"], check=True,
                       capture_output=True)
    (keys / "moved").mkdir()
    shutil.copyfile(keys / "a.pem", keys / "moved" / "a.pem")  # another folder, as on another machine

    def task_hash(key: str) -> str:
        settings.write_text(PATHS_DEFAULT + f'HELLOCONTAINER_SIGN_KEY = "{keys / key}"\n')
        build.bitbake("-S", "none", "hello-paths")
        sigdata = max((build.top / "tmp" / "stamps").glob(
            "qemux86_64-*/hello-paths/*.do_hellocontainer.sigdata.*"),
            key=lambda path: path.stat().st_mtime)
        return sigdata.name.rsplit(".", 1)[1]

    try:
        first = task_hash("a.pem")
        assert task_hash("b.pem") != first  # another key: the task reruns, no cleansstate
        assert task_hash("moved/a.pem") == first  # the same key elsewhere: sstate stays valid
    finally:
        settings.write_text(PATHS_DEFAULT)


# ---------------------------------------------------------------------------------------------
# Two machines of one tune in one TMPDIR.

@needs_bitbake
def test_two_machines_of_one_tune_deploy_side_by_side(build: Build, hellocontainer) -> None:
    first = build.variables("hello-prebuilt")
    second = build.variables("mc:x86b:hello-prebuilt")
    assert first["TUNE_PKGARCH"] == second["TUNE_PKGARCH"]
    for values in (first, second):
        assert values["PACKAGE_ARCH"] == values["MACHINE_ARCH"]
    index = build.variables("hello-multiarch")
    assert index["PACKAGE_ARCH"] == index["MACHINE_ARCH"]
    # One bitbake call: both do_deploy tasks, each with its own work folder and manifest.
    build.bitbake("hello-prebuilt", "mc:x86b:hello-prebuilt", "-c", "deploy")
    for machine in ("qemux86-64", SECOND_MACHINE):
        layout = build.deploy_dir("tmp", machine) / f"hello-prebuilt-{machine}.oci"
        assert hellocontainer("validate", layout).stdout.strip().endswith("valid OCI image layout")
        assert (build.recipe_workdir("tmp", "hello-prebuilt", machine) / "image").is_dir()
    # One do_deploy shared-state manifest per machine, each listing that machine's files.
    for machine in ("qemux86-64", SECOND_MACHINE):
        manifest = build.top / "tmp" / "sstate-control" / \
            f"manifest-{machine.replace('-', '_')}-hello-prebuilt.deploy"
        assert f"/deploy/images/{machine}/hello-prebuilt-{machine}.oci" in manifest.read_text()


# ---------------------------------------------------------------------------------------------
# A changed path variable: the next build installs only the new paths.

PATH_CHANGES = [
    ("HELLOCONTAINER_BUNDLE_DIR", "/opt/hello/bundle"),
    ("HELLOCONTAINER_INSTALL_DIR", "/opt/hello/oci"),
    ("HELLOCONTAINER_SERVICE", "hello-renamed"),
]


@needs_bitbake
def test_changing_each_path_variable_rebuilds_with_nothing_left_behind(build: Build) -> None:
    settings = build.top / "meta-hctest" / "recipes-test" / "hello-paths" / "hello-paths.inc"
    text = PATHS_DEFAULT
    left: list[str] = []  # paths that earlier builds installed and later ones must not have
    # Every build for real: with an earlier run's stamps or shared state, BitBake would skip or
    # restore do_package, and ${D} would be whatever the last (maybe failed) run left there.
    build.bitbake("hello-paths", "-c", "cleansstate")
    try:
        for name, value in [(None, None), *PATH_CHANGES]:
            if name:
                text += f'{name} = "{value}"\n'
            settings.write_text(text)
            # do_package fails (installed-vs-shipped) on any file no package ships.
            build.bitbake("hello-paths", "-c", "package")
            values = build.variables("hello-paths")
            image = build.recipe_workdir("tmp", "hello-paths") / "image"
            layout = values["HELLOCONTAINER_INSTALL_DIR"]
            bundle = values["HELLOCONTAINER_BUNDLE_DIR"]
            (service,) = [path for path in _files(image) if path.startswith(("etc/init.d/",
                                                                            "usr/lib/systemd/"))]
            assert service.endswith((values["HELLOCONTAINER_SERVICE"],
                                     values["HELLOCONTAINER_SERVICE"] + ".service")), name
            assert (image / layout.lstrip("/") / "index.json").is_file(), name
            assert (image / bundle.lstrip("/") / "config.json").is_file(), name
            assert [path for path in _files(image) if path != "usr/bin/hello" and path != service
                    and not path.startswith((layout.lstrip("/") + "/", bundle.lstrip("/") + "/"))
                    ] == [], name
            current = [layout.lstrip("/"), bundle.lstrip("/"), service]
            assert [path for path in left if path not in current and (image / path).exists()
                    ] == [], name
            left += current
            # systemd.bbclass adds its preset file to the package.
            split = build.recipe_workdir("tmp", "hello-paths") / "packages-split"
            assert [path for path in _files(split / "hello-paths-oci") if "preset" not in path
                    ] == [path for path in _files(image) if path != "usr/bin/hello"], name
        # The folders made for the first paths went with them.
        assert not (image / "usr" / "share" / "hellocontainer").exists()
    finally:
        settings.write_text(PATHS_DEFAULT)
