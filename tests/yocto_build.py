"""A real BitBake build directory for the env-gated Yocto tests, kept between runs.

HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR name a BitBake and an openembedded-core
checkout of one release (BitBake 2.8 with scarthgap, 2.18 with wrynose, master with master).

Parsing oe-core takes minutes per configuration, so the build directory is not a pytest temporary
one: it lives in /var/tmp/hellocontainer-tests/yocto/<key>, one per checkout pair and per suite,
and every file of its configuration is rewritten only when its bytes change. A second run then
finds BitBake's parse cache valid and only reparses what changed
(HELLOCONTAINER_YOCTO_BUILD_DIR names another parent folder; podman cannot run an oci: layout
below a folder whose name starts with a dot, such as ~/.cache, so avoid those).

The build is cut where a real one would hand over to us (no network here):
- test recipes install a prebuilt static hello and set INHIBIT_DEFAULT_DEPS, so no toolchain is
  needed;
- hellocontainer-native is ASSUME_PROVIDED and `hellocontainer` is a HOSTTOOLS entry: BitBake
  links the packager of the Python environment running these tests into its host-tools directory,
  the same program the native recipe would build from python/;
- an empty recipe of the test layer provides virtual/fakeroot-native (pseudo), and the fakeroot
  tasks run under Debian's pseudo through FAKEROOTCMD / FAKEROOTBASEENV / FAKEROOTENV;
- do_package runs without rpm-native, dwarfsrcfiles-native and file-native (ASSUME_PROVIDED):
  SKIP_FILEDEPS, no debug split, no strip;
- sanity.bbclass is removed (it refuses to run as root) and so is uninative (a download).
Everything from do_fetch to do_deploy, including the classes' own tasks, then runs unmodified.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, STRICT, require_tool

LAYER = REPO / "meta-hellocontainer"
VENV_BIN = Path(sys.executable).parent
BITBAKE_DIR = os.environ.get("HELLOCONTAINER_BITBAKE_DIR")
OECORE_DIR = os.environ.get("HELLOCONTAINER_OECORE_DIR")
needs_bitbake = pytest.mark.skipif(
    not (BITBAKE_DIR and OECORE_DIR),
    reason="set HELLOCONTAINER_BITBAKE_DIR and HELLOCONTAINER_OECORE_DIR to a BitBake and an "
           "openembedded-core checkout to run the layer under BitBake")

# SOURCE_DATE_EPOCH of every test recipe.
EPOCH = 1700000000

# The releases whose LAYERSERIES_CORENAMES the test layers declare themselves compatible with.
SERIES = "scarthgap wrynose blacksail"

# What every build directory of these tests shares; {pseudo...} are Debian's pseudo paths.
BASE_LOCAL_CONF = """\
DISTRO = "nodistro"
{tclibcappend}BB_NO_NETWORK = "1"
# sanity refuses to run as root; uninative is a download.
INHERIT:remove = "sanity uninative"
ASSUME_PROVIDED += "hellocontainer-native quilt-native patch-replacement-native \\
                    systemd-systemctl-native rpm-native dwarfsrcfiles-native file-native"
HOSTTOOLS += "hellocontainer"
# do_package without those natives: no per-file dependencies (rpmdeps), no debug split
# (dwarfsrcfiles), no strip (a cross binutils).
SKIP_FILEDEPS = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INHIBIT_PACKAGE_STRIP = "1"
# An empty recipe provides virtual/fakeroot-native (ASSUME_PROVIDED would do for every task but
# do_package_setscene, where BitBake then fails with an IndexError); the fakeroot tasks run
# under the host's pseudo:
PREFERRED_PROVIDER_virtual/fakeroot-native = "pseudo-stand-in-native"
FAKEROOTCMD = "{pseudo}"
FAKEROOTBASEENV = "PSEUDO_BINDIR={pseudo_bindir} PSEUDO_LIBDIR={pseudo_libdir} \\
    PSEUDO_PREFIX={pseudo_prefix} PSEUDO_DISABLED=1 PYTHONDONTWRITEBYTECODE=1 \\
    PSEUDO_IGNORE_PATHS=${{@oe.path.canonicalize(d.getVar('PSEUDO_IGNORE_PATHS'))}}"
# The packager runs from this checkout and its Python environment, whose .pyc files the tests
# rewrite outside pseudo: pseudo, which remembers every path a fakeroot task opened, would
# abort the task on the new inode ("path mismatch"). A native recipe's sysroot has no such files.
PSEUDO_IGNORE_PATHS .= ",{packager_paths}"
# The task's side needs the ignored paths too, as oe-core's bitbake.conf gives them: without,
# pseudo records the stamps and buildstats BitBake writes around the task, and aborts a later
# fakeroot task whose buildstats folder reuses a removed stamp's inode ("path mismatch").
FAKEROOTENV = "PSEUDO_PREFIX={pseudo_prefix} PSEUDO_LOCALSTATEDIR=${{PSEUDO_LOCALSTATEDIR}} \\
    PSEUDO_PASSWD=${{PSEUDO_PASSWD}} PSEUDO_NOSYMLINKEXP=1 \\
    PSEUDO_IGNORE_PATHS=${{@oe.path.canonicalize(d.getVar('PSEUDO_IGNORE_PATHS'))}} PSEUDO_DISABLED=0"
"""

# Debian packages of the oe-core HOSTTOOLS that a Debian machine may lack; any other tool is
# named after itself.
HOSTTOOL_PACKAGES = {
    "bunzip2": "bzip2", "cpp": "cpp", "g++": "g++", "pzstd": "zstd", "rpcgen": "rpcsvc-proto",
    "unzstd": "zstd", "xz": "xz-utils", "ar": "binutils", "as": "binutils", "ld": "binutils",
    "nm": "binutils", "objcopy": "binutils", "objdump": "binutils", "ranlib": "binutils",
    "readelf": "binutils", "strings": "binutils", "strip": "binutils",
}


@dataclass
class Build:
    """A BitBake build directory with this layer and a test layer in it."""

    top: Path
    env: dict[str, str]
    parse_output: str = ""
    parse_seconds: float = 0.0

    def bitbake(self, *args: str, tool: str = "bitbake") -> str:
        result = subprocess.run([tool, *args], cwd=self.top, env=self.env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def variables(self, recipe: str) -> dict[str, str]:
        """`bitbake -e RECIPE` as a name → value map."""
        env = self.bitbake("-e", recipe)
        return dict(re.findall(r'^(?:export )?([A-Za-z0-9_:-]+)="(.*)"$', env, re.MULTILINE))

    def deploy_dir(self, tmpdir: str, machine: str) -> Path:
        return self.top / tmpdir / "deploy" / "images" / machine

    def recipe_workdir(self, tmpdir: str, recipe: str, machine: str = "qemux86-64") -> Path:
        """WORKDIR of a recipe that inherits hellocontainer: PACKAGE_ARCH is MACHINE_ARCH."""
        arch = machine.replace("-", "_")
        (workdir,) = (self.top / tmpdir / "work").glob(f"{arch}-*/{recipe}/*")
        return workdir


def write_if_changed(path: Path, data: str | bytes) -> None:
    """Write `path` only when its bytes change, so BitBake's caches stay valid."""
    content = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def common_license(name: str) -> Path:
    return Path(OECORE_DIR) / "meta" / "files" / "common-licenses" / name


def spdx_license_syntax() -> bool:
    """oe-core after wrynose writes LICENSE as SPDX ("AND") and warns about "&"; wrynose and
    scarthgap only know "&"."""
    return "old syntax" in (Path(OECORE_DIR) / "meta/lib/oe/license.py").read_text()


def pseudo_paths() -> dict[str, str]:
    """Debian's pseudo, in the form oe-core's FAKEROOT* variables want it."""
    pseudo = Path(require_tool("pseudo", "pseudo")).resolve()
    prefix = pseudo.parent.parent
    libs = sorted(prefix.glob("lib/*/pseudo/libpseudo.so")) + sorted(
        prefix.glob("lib/pseudo/libpseudo.so"))
    if not libs:
        pytest.fail(f"libpseudo.so not found below {prefix}/lib; reinstall the pseudo package")
    packager = [str(REPO / "python")]
    if sys.prefix != sys.base_prefix:  # a virtual environment of its own, not the system's /usr
        packager.append(sys.prefix)
    return {"pseudo": str(pseudo), "pseudo_bindir": str(pseudo.parent),
            "pseudo_libdir": str(libs[0].parent), "pseudo_prefix": str(prefix),
            "packager_paths": ",".join(packager)}


def require_host_tools() -> None:
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


def build_directory(suite: str) -> Path:
    """The kept build directory of `suite` for this checkout and these BitBake/oe-core trees."""
    parent = os.environ.get("HELLOCONTAINER_YOCTO_BUILD_DIR") or \
        "/var/tmp/hellocontainer-tests/yocto"
    key = "\0".join(os.path.realpath(p) for p in (BITBAKE_DIR, OECORE_DIR, REPO))
    return Path(parent) / f"{suite}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


PSEUDO_STAND_IN = """\
SUMMARY = "Stand-in for pseudo-native: fakeroot tasks run under the host's pseudo"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${{COMMON_LICENSE_DIR}}/MIT;md5={mit}"
INHIBIT_DEFAULT_DEPS = "1"
PROVIDES = "virtual/fakeroot-native"

inherit native

do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install[noexec] = "1"
"""


def write_test_layer(layer: Path, collection: str, depends: str) -> None:
    """conf/layer.conf of a test layer, and the stand-in recipes every build needs."""
    write_if_changed(layer / "conf" / "layer.conf", layer_conf_text(collection, depends))
    write_if_changed(layer / "recipes-test" / "pseudo-stand-in" / "pseudo-stand-in-native.bb",
                     PSEUDO_STAND_IN.format(mit=md5(common_license("MIT"))))


def license_and(*names: str) -> str:
    """LICENSE for several licenses: SPDX AND after wrynose, BitBake's & before."""
    return (" AND " if spdx_license_syntax() else " & ").join(names)


def prebuilt_recipe(summary: str, settings: str = "", *, head: str = "",
                    licenses: tuple[str, ...] = ("MIT",)) -> str:
    """A recipe that installs the prebuilt static hello of its files/ folder and packages it
    with hellocontainer.bbclass; `head` adds metadata, `settings` more variables."""
    checksums = " \\\n                    ".join(
        f"file://${{COMMON_LICENSE_DIR}}/{name};md5={md5(common_license(name))}"
        for name in licenses)
    return f"""\
SUMMARY = "{summary}"
{head}LICENSE = "{license_and(*licenses)}"
LIC_FILES_CHKSUM = "{checksums}"
SRC_URI = "file://hello"
# scarthgap has no UNPACKDIR: it unpacks into WORKDIR.
SOURCES = "${{@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}}"
S = "${{SOURCES}}"
# The program is prebuilt: no compiler, no C library to build first.
INHIBIT_DEFAULT_DEPS = "1"

inherit hellocontainer

do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install() {{
    install -D -m 0755 ${{SOURCES}}/hello ${{D}}${{bindir}}/hello
}}

HELLOCONTAINER_BINARY = "${{bindir}}/hello"
# Already stripped; the target's strip would need a cross binutils.
HELLOCONTAINER_STRIP = "0"
SOURCE_DATE_EPOCH = "{EPOCH}"
{settings}"""


def layer_conf_text(collection: str, depends: str) -> str:
    return (f'BBPATH .= ":${{LAYERDIR}}"\nBBFILES += "${{LAYERDIR}}/recipes-*/*/*.bb"\n'
            f'BBFILE_COLLECTIONS += "{collection}"\n'
            f'BBFILE_PATTERN_{collection} = "^${{LAYERDIR}}/"\n'
            f'BBFILE_PRIORITY_{collection} = "7"\nLAYERDEPENDS_{collection} = "{depends}"\n'
            f'LAYERSERIES_COMPAT_{collection} = "{SERIES}"\n')


def _tclibcappend() -> str:
    """scarthgap's nodistro appends -glibc to TMPDIR, which later releases (and poky) do not;
    those refuse TCLIBCAPPEND as a variable that is no longer used."""
    defaults = Path(OECORE_DIR) / "meta" / "conf" / "distro" / "defaultsetup.conf"
    if "TCLIBCAPPEND ?=" in defaults.read_text():
        return ("# scarthgap's nodistro appends -glibc to TMPDIR; later releases and poky do "
                "not.\nTCLIBCAPPEND = \"\"\n")
    return ""


def start_build(top: Path, layers: list[Path], local_conf: str,
                multiconfigs: dict[str, str] | None = None, *, cut: bool = True) -> Build:
    """Write conf/ of the build directory `top` (unchanged bytes stay untouched), and parse
    once, timed: later BitBake calls use the cache.

    `cut` adds the settings that cut a build where it would hand over to us (BASE_LOCAL_CONF);
    without it only what any offline build here needs (no network, no sanity, no uninative),
    as a user's own build directory would have."""
    if not (BITBAKE_DIR and OECORE_DIR):
        pytest.skip("no BitBake / openembedded-core checkout given")
    localedef = require_tool("localedef", "libc-bin")
    require_host_tools()
    # BitBake insists on a UTF-8 locale; build one rather than depend on the host's.
    locales = top / "locale"
    if not (locales / "en_US.UTF-8").is_dir():
        locales.mkdir(parents=True, exist_ok=True)
        subprocess.run([localedef, "-i", "en_US", "-f", "UTF-8", str(locales / "en_US.UTF-8")],
                       check=True)
    conf = top / "conf"
    write_if_changed(conf / "bblayers.conf",
                     'BBPATH = "${TOPDIR}"\nBBFILES ?= ""\n'
                     f'BBLAYERS = "{" ".join(str(layer) for layer in layers)}"\n')
    if cut:
        base = BASE_LOCAL_CONF.format(tclibcappend=_tclibcappend(), **pseudo_paths())
    else:
        base = ('DISTRO = "nodistro"\n' + _tclibcappend() + 'BB_NO_NETWORK = "1"\n'
                'INHERIT:remove = "sanity uninative"\n')
    write_if_changed(conf / "local.conf", local_conf + base)
    for name, text in (multiconfigs or {}).items():
        write_if_changed(conf / "multiconfig" / f"{name}.conf", text)

    env = dict(os.environ)
    env.update(LANG="en_US.UTF-8", LC_ALL="en_US.UTF-8", LOCPATH=str(locales),
               BB_ENV_PASSTHROUGH_ADDITIONS="LOCPATH",
               # HOSTTOOLS are looked up on this PATH: the packager comes from VENV_BIN.
               PATH=os.pathsep.join([str(VENV_BIN), str(Path(BITBAKE_DIR) / "bin"),
                                     env.get("PATH", "")]))
    env.pop("SOURCE_DATE_EPOCH", None)
    built = Build(top, env)
    started = time.monotonic()
    built.parse_output = built.bitbake("-p")
    built.parse_seconds = time.monotonic() - started
    # Where a reader of the test log finds it (pytest -s, or the captured output of a failure).
    print(f"bitbake -p in {top}: {built.parse_seconds:.0f} s")
    return built
