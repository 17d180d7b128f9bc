"""meta-hellocontainer: oelint-adv on the layer, and the layer under a real BitBake.

The lint test always runs. The BitBake tests need a BitBake and an openembedded-core checkout,
named by HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR (same release: BitBake 2.18
goes with wrynose); without them they skip, as in CI, which has no such checkout.

The hard part is running the class for real with no network: everything oe-core would build
first (a cross toolchain, python3-native for the packager, pseudo) is fetched from the internet.
So the build is cut where a real one would hand over to us:
- a test recipe installs a prebuilt static hello (built here by gcc/musl-gcc) instead of
  compiling one, and sets INHIBIT_DEFAULT_DEPS, so no toolchain is needed;
- hellocontainer-native is ASSUME_PROVIDED and `hellocontainer` is a HOSTTOOLS entry: BitBake
  links the packager of the Python environment running these tests into its host-tools directory,
  the same program the native recipe would build from python/;
- pseudo (virtual/fakeroot-native) is ASSUME_PROVIDED too, and the fakeroot tasks run under
  Debian's pseudo through FAKEROOTCMD / FAKEROOTBASEENV / FAKEROOTENV;
- sanity.bbclass is removed (it refuses to run as root) and so is uninative (a download).
Everything from do_fetch to do_deploy, including the class's own tasks, then runs unmodified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, STRICT, require_tool
from foreign import build_static_hello, cross_compilers, podman_run_foreign

LAYER = REPO / "meta-hellocontainer"
VENV_BIN = Path(sys.executable).parent
BITBAKE_DIR = os.environ.get("HELLOCONTAINER_BITBAKE_DIR")
OECORE_DIR = os.environ.get("HELLOCONTAINER_OECORE_DIR")
needs_bitbake = pytest.mark.skipif(
    not (BITBAKE_DIR and OECORE_DIR),
    reason="set HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR to a BitBake and an "
           "openembedded-core checkout to run the layer under BitBake")

EPOCH = 1700000000
SRCREV = "0123456789abcdef0123456789abcdef01234567"
ENV_WORDS = "A=1 GREETING='hello world'"

TEST_RECIPE = """\
SUMMARY = "Prebuilt static hello"
HOMEPAGE = "https://example.org/hello"
LICENSE = "{license}"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit} \\
                    file://${{COMMON_LICENSE_DIR}}/BSD-3-Clause;md5={bsd}"
SRC_URI = "file://hello"
SRCREV = "{srcrev}"
S = "${{UNPACKDIR}}"
# The program is prebuilt: no compiler, no C library to build first.
INHIBIT_DEFAULT_DEPS = "1"

inherit hellocontainer

do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install() {{
    install -D -m 0755 ${{UNPACKDIR}}/hello ${{D}}${{bindir}}/hello
}}

HELLOCONTAINER_BINARY = "${{bindir}}/hello"
# Already stripped; the target's strip would need a cross binutils.
HELLOCONTAINER_STRIP = "0"
HELLOCONTAINER_ENV = "{env}"
HELLOCONTAINER_ARCHIVE = "1"
# The digest comparisons below are of the bare image; the SBOM has tests of its own.
HELLOCONTAINER_SBOM = "0"
SOURCE_DATE_EPOCH = "{epoch}"
"""

# A recipe whose container starts at boot. No meta-virtualization here: crun is only named (in
# RDEPENDS) and provided by an empty stand-in, never built, so the layer check is turned off.
AUTOSTART_RECIPE = """\
SUMMARY = "Prebuilt static hello"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit}"
SRC_URI = "file://hello"
S = "${{UNPACKDIR}}"
INHIBIT_DEFAULT_DEPS = "1"

inherit hellocontainer

do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install() {{
    install -D -m 0755 ${{UNPACKDIR}}/hello ${{D}}${{bindir}}/hello
}}

HELLOCONTAINER_BINARY = "${{bindir}}/hello"
HELLOCONTAINER_STRIP = "0"
HELLOCONTAINER_AUTOSTART = "crun"
HELLOCONTAINER_RUNTIME_LAYERS = ""
SOURCE_DATE_EPOCH = "{epoch}"
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
DISTRO = "nodistro"
BBMULTICONFIG = "arm"
BB_NO_NETWORK = "1"
# sanity refuses to run as root; uninative is a download.
INHERIT:remove = "sanity uninative"
ASSUME_PROVIDED += "hellocontainer-native virtual/fakeroot-native quilt-native \\
                    patch-replacement-native systemd-systemctl-native"
HOSTTOOLS += "hellocontainer"
FAKEROOTCMD = "{pseudo}"
FAKEROOTBASEENV = "PSEUDO_BINDIR={pseudo_bindir} PSEUDO_LIBDIR={pseudo_libdir} \\
    PSEUDO_PREFIX={pseudo_prefix} PSEUDO_DISABLED=1 PYTHONDONTWRITEBYTECODE=1 \\
    PSEUDO_IGNORE_PATHS=${{@oe.path.canonicalize(d.getVar('PSEUDO_IGNORE_PATHS'))}}"
FAKEROOTENV = "PSEUDO_PREFIX={pseudo_prefix} PSEUDO_LOCALSTATEDIR=${{PSEUDO_LOCALSTATEDIR}} \\
    PSEUDO_PASSWD=${{PSEUDO_PASSWD}} PSEUDO_NOSYMLINKEXP=1 PSEUDO_DISABLED=0"
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


@dataclass
class Build:
    """A BitBake build directory with this layer and the test layer in it."""

    top: Path
    env: dict[str, str]
    parse_output: str = ""

    def bitbake(self, *args: str, tool: str = "bitbake") -> str:
        result = subprocess.run([tool, *args], cwd=self.top, env=self.env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def deploy_dir(self, tmpdir: str, machine: str) -> Path:
        return self.top / tmpdir / "deploy" / "images" / machine

    def recipe_workdir(self, tmpdir: str, recipe: str) -> Path:
        (workdir,) = (self.top / tmpdir / "work").glob(f"*/{recipe}/*")
        return workdir


def _pseudo() -> dict[str, str]:
    """Debian's pseudo, in the form oe-core's FAKEROOT* variables want it."""
    pseudo = Path(require_tool("pseudo", "pseudo")).resolve()
    prefix = pseudo.parent.parent
    libs = sorted(prefix.glob("lib/*/pseudo/libpseudo.so")) + sorted(
        prefix.glob("lib/pseudo/libpseudo.so"))
    if not libs:
        pytest.fail(f"libpseudo.so not found below {prefix}/lib; reinstall the pseudo package")
    return {"pseudo": str(pseudo), "pseudo_bindir": str(pseudo.parent),
            "pseudo_libdir": str(libs[0].parent), "pseudo_prefix": str(prefix)}


# Debian packages of the oe-core HOSTTOOLS that a Debian machine may lack; any other tool is
# named after itself.
HOSTTOOL_PACKAGES = {
    "bunzip2": "bzip2", "cpp": "cpp", "g++": "g++", "pzstd": "zstd", "rpcgen": "rpcsvc-proto",
    "unzstd": "zstd", "xz": "xz-utils", "ar": "binutils", "as": "binutils", "ld": "binutils",
    "nm": "binutils", "objcopy": "binutils", "objdump": "binutils", "ranlib": "binutils",
    "readelf": "binutils", "strings": "binutils", "strip": "binutils",
}


def _require_host_tools() -> None:
    """Skip (fail under CI) with the apt-get line when a tool of oe-core's HOSTTOOLS is
    missing (chrpath, diffstat, gawk, ...), as BitBake would otherwise stop every test with
    the same error."""
    bitbake_conf = (Path(OECORE_DIR) / "meta" / "conf" / "bitbake.conf").read_text()
    block = re.search(r'^HOSTTOOLS \+= " \\\n(.*?)^"', bitbake_conf, re.MULTILINE | re.DOTALL)
    tools = block.group(1).replace("\\", " ").split() if block else []
    missing = sorted({HOSTTOOL_PACKAGES.get(tool, tool) for tool in tools
                      if shutil.which(tool) is None})
    if missing:
        message = (f"oe-core's HOSTTOOLS need {', '.join(missing)}; install them with: "
                   f"apt-get install {' '.join(missing)}")
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory, hello_static: Path) -> Build:
    """Write the build and test layer, and parse once (later BitBake calls use the cache)."""
    if not (BITBAKE_DIR and OECORE_DIR):
        pytest.skip("no BitBake / openembedded-core checkout given")
    localedef = require_tool("localedef", "libc-bin")
    _require_host_tools()
    top = tmp_path_factory.mktemp("yocto")
    # BitBake insists on a UTF-8 locale; build one rather than depend on the host's.
    locales = top / "locale"
    locales.mkdir()
    subprocess.run([localedef, "-i", "en_US", "-f", "UTF-8", str(locales / "en_US.UTF-8")],
                   check=True)

    test_layer = top / "meta-hctest"
    recipe_dir = test_layer / "recipes-test" / "hello-prebuilt"
    (recipe_dir / "files" / "arm").mkdir(parents=True)
    (test_layer / "conf").mkdir()
    (test_layer / "conf" / "layer.conf").write_text(
        'BBPATH .= ":${LAYERDIR}"\nBBFILES += "${LAYERDIR}/recipes-*/*/*.bb"\n'
        'BBFILE_COLLECTIONS += "hctest"\nBBFILE_PATTERN_hctest = "^${LAYERDIR}/"\n'
        'BBFILE_PRIORITY_hctest = "7"\nLAYERDEPENDS_hctest = "core hellocontainer"\n'
        'LAYERSERIES_COMPAT_hctest = "wrynose blacksail"\n')
    licenses = Path(OECORE_DIR) / "meta" / "files" / "common-licenses"
    # oe-core after wrynose writes LICENSE as SPDX ("AND") and warns about "&"; wrynose only
    # knows "&". The class must turn either into the same SPDX annotation.
    spdx_license = "old syntax" in (Path(OECORE_DIR) / "meta/lib/oe/license.py").read_text()
    (recipe_dir / "hello-prebuilt.bb").write_text(TEST_RECIPE.format(
        license="BSD-3-Clause AND MIT" if spdx_license else "BSD-3-Clause & MIT",
        mit=_md5(licenses / "MIT"), bsd=_md5(licenses / "BSD-3-Clause"), srcrev=SRCREV,
        env=ENV_WORDS, epoch=EPOCH))
    # FILESOVERRIDES holds TARGET_ARCH: the qemuarm build finds files/arm/hello first.
    shutil.copy(hello_static, recipe_dir / "files" / "hello")
    autostart_dir = test_layer / "recipes-test" / "hello-autostart"
    (autostart_dir / "files").mkdir(parents=True)
    (autostart_dir / "hello-autostart.bb").write_text(AUTOSTART_RECIPE.format(
        mit=_md5(licenses / "MIT"), epoch=EPOCH))
    shutil.copy(hello_static, autostart_dir / "files" / "hello")
    (test_layer / "recipes-test" / "crun").mkdir()
    (test_layer / "recipes-test" / "crun" / "crun_1.0.bb").write_text(
        CRUN_STAND_IN.format(mit=_md5(licenses / "MIT")))
    shutil.copy(build_static_hello(cross_compilers()["arm/v7"], top),
                recipe_dir / "files" / "arm" / "hello")

    conf = top / "conf"
    (conf / "multiconfig").mkdir(parents=True)
    (conf / "bblayers.conf").write_text(
        'BBPATH = "${TOPDIR}"\nBBFILES ?= ""\n'
        f'BBLAYERS = "{OECORE_DIR}/meta {LAYER} {test_layer}"\n')
    (conf / "local.conf").write_text(LOCAL_CONF.format(**_pseudo()))
    (conf / "multiconfig" / "arm.conf").write_text(
        'MACHINE = "qemuarm"\nTMPDIR = "${TOPDIR}/tmp-arm"\n')

    env = dict(os.environ)
    env.update(LANG="en_US.UTF-8", LC_ALL="en_US.UTF-8", LOCPATH=str(locales),
               BB_ENV_PASSTHROUGH_ADDITIONS="LOCPATH",
               # HOSTTOOLS are looked up on this PATH: the packager comes from VENV_BIN.
               PATH=os.pathsep.join([str(VENV_BIN), str(Path(BITBAKE_DIR) / "bin"),
                                     env.get("PATH", "")]))
    env.pop("SOURCE_DATE_EPOCH", None)
    built = Build(top, env)
    built.parse_output = built.bitbake("-p")
    return built


@pytest.fixture(scope="module")
def deployed(build: Build) -> Path:
    """`bitbake hello-prebuilt -c deploy` for qemux86-64; its DEPLOY_DIR_IMAGE."""
    build.bitbake("hello-prebuilt", "-c", "deploy")
    return build.deploy_dir("tmp", "qemux86-64")


@needs_bitbake
def test_layer_parses_without_warnings(build: Build) -> None:
    problems = [line for line in build.parse_output.splitlines()
                if line.startswith(("WARNING:", "ERROR:"))]
    assert problems == []
    assert " 0 errors." in build.parse_output


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
    example = build.recipe_workdir("tmp", "hello-container") / "sources" / "hello"
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


def _bitbake_env(build: Build, recipe: str) -> dict[str, str]:
    env = build.bitbake("-e", recipe)
    return dict(re.findall(r'^(?:export )?([A-Za-z0-9_:-]+)="(.*)"$', env, re.MULTILINE))


@needs_bitbake
def test_autostart_recipe_registers_its_service_with_one_init_class(build: Build) -> None:
    values = _bitbake_env(build, "hello-autostart")
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

    features = _bitbake_env(build, "hello-autostart")["DISTRO_FEATURES"]
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
