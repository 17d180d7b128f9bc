"""The Buildroot br2-external tree (br2-external/): its Kconfig, its make glue, real Buildroot.

Three layers, from always-on to opt-in:

- kconfiglib (a real Kconfig parser) reads the tree's Kconfig files below a stub that defines
  exactly the Buildroot symbols they reference; the README's option table must match the Kconfig
  defaults.
- Plain GNU make includes the tree's real external.mk. Without Buildroot's package
  infrastructure, `$(eval $(autotools-package))` expands to nothing, so the package .mk files
  reduce to their own variable definitions: the build, images, target-install and
  target-finalize commands and the README's helper example then run as Buildroot would run
  them, against the real packager, with a .config that kconfiglib wrote (so quoting is
  Kconfig's own). examples/hello is copied and built the way Buildroot's steps would (natively
  here).
- With HELLOCONTAINER_BUILDROOT_DIR pointing at a Buildroot checkout, Buildroot itself configures
  its own qemu defconfigs with our fragments merged on (support/kconfig/merge_config.sh, as the
  README says) and utils/check-package judges the tree's form. CI has no checkout: skipped there.
"""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kconfiglib
import pytest
from elftools.elf.elffile import ELFFile

from conftest import REPO, STRICT, Runner, require_buildroot_path, require_tool
from foreign import build_static_hello, cross_compilers
from oci import image_config, image_file, manifest, tagged_manifests

EXTERNAL = REPO / "br2-external"
EXAMPLE = REPO / "examples" / "hello"
README = EXTERNAL / "README.md"
EPOCH = "1700000000"

# The only Buildroot symbols the tree's Kconfig files may reference, defined as Buildroot
# defines them on an x86_64 build machine with an MMU target and a glibc or musl toolchain. The
# runtime packages have prompts, as in Buildroot: podman is the user's own choice.
BUILDROOT_STUBS = {
    "BR2_USE_MMU": "bool\n\tdefault y",
    "BR2_PACKAGE_HOST_RUSTC_ARCH_SUPPORTS": "bool\n\tdefault y",
    "BR2_TOOLCHAIN_GCC_AT_LEAST_4_9": "bool\n\tdefault y",
    "BR2_TOOLCHAIN_HAS_THREADS": "bool\n\tdefault y",
    "BR2_TOOLCHAIN_USES_UCLIBC": "bool",
    "BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS": "bool\n\tdefault y",
    "BR2_PACKAGE_HOST_GO_TARGET_CGO_LINKING_SUPPORTS": "bool\n\tdefault y",
    "BR2_PACKAGE_CRUN": 'bool "crun"',
    "BR2_PACKAGE_RUNC": 'bool "runc"',
    "BR2_PACKAGE_PODMAN": 'bool "podman"',
    # the openssl program, which the signature check at boot runs
    "BR2_PACKAGE_OPENSSL": 'bool "openssl support"',
    "BR2_PACKAGE_OPENSSL_FORCE_LIBOPENSSL": "bool",
    "BR2_PACKAGE_LIBOPENSSL_BIN": 'bool "openssl binary"',
    "BR2_INIT_SYSTEMD": 'bool "systemd"',  # a member of Buildroot's init choice
}

# Settings a user would type into menuconfig: spaces, runs of spaces, both quote kinds; a
# trailing slash on the root filesystem path.
SETTINGS = {
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG": "latest 1.0",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_CMD": "--greeting 'two words'",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_ENV": "A=1 GREETING=\"hello   world\" NAME='Ada Lovelace'",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_USER": "www-data:staff",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_WORKDIR": "/",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_PORTS": "8080/tcp 53/udp",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_LABELS": ".vendor='ACME Inc' tier=demo",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_ARCHIVE": "y",
    "BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH": "/usr/share/hellocontainer/hello-oci/",
}
# The same settings as a user would pass them to the CLI directly.
CLI_SETTINGS = [
    "--tag", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG"],
    "--cmd", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_CMD"],
    "--env", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_ENV"],
    "--user", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_USER"],
    "--workdir", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_WORKDIR"],
    "--port", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_PORTS"],
    "--label", SETTINGS["BR2_PACKAGE_HELLOCONTAINER_HELLO_LABELS"],
    "--compression", "gzip",
]

# The target's user database as the skeleton dependency leaves it in TARGET_DIR before the
# build step (a few entries of its shape, not Buildroot's file).
TARGET_PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
TARGET_GROUP = "root:x:0:\nwww-data:x:33:\nstaff:x:50:\n"


def write_target_user_database(target: Path) -> None:
    (target / "etc").mkdir(parents=True, exist_ok=True)
    (target / "etc" / "passwd").write_text(TARGET_PASSWD)
    (target / "etc" / "group").write_text(TARGET_GROUP)


# Buildroot's own qstrip and sep (support/misc/utils.mk): the Buildroot functions the .mk files
# and Buildroot's step recipes call.
MAKE_PREAMBLE = """\
qstrip = $(strip $(subst ",,$(1)))
INSTALL = install
define sep


endef
include $(CONFIG)
include $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/external.mk
"""


# ---------------------------------------------------------------------------------------------
# kconfiglib

def load_kconfig(directory: Path) -> kconfiglib.Kconfig:
    """The tree's Config.in below a stub top level, parsed as Buildroot's kconfig would."""
    stubs = "".join(f"config {name}\n\t{body}\n\n" for name, body in BUILDROOT_STUBS.items())
    top = directory / "Config.in"
    top.write_text(f'mainmenu "Buildroot stub"\n\n{stubs}'
                   'source "$BR2_EXTERNAL_HELLOCONTAINER_PATH/Config.in"\n')
    # Buildroot's symbols carry their BR2_ prefix in their names, so .config adds none
    # (CONFIG_=""); the tree's `source` lines name it by BR2_EXTERNAL_HELLOCONTAINER_PATH.
    # kconfiglib reads both from the environment while parsing only.
    saved = {name: os.environ.get(name) for name in ("CONFIG_", "BR2_EXTERNAL_HELLOCONTAINER_PATH")}
    os.environ.update({"CONFIG_": "", "BR2_EXTERNAL_HELLOCONTAINER_PATH": str(EXTERNAL)})
    try:
        return kconfiglib.Kconfig(str(top), warn_to_stderr=False)
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


@pytest.fixture
def kconf(tmp_path: Path) -> kconfiglib.Kconfig:
    return load_kconfig(tmp_path)


def our_nodes(kconf: kconfiglib.Kconfig) -> Iterator[kconfiglib.MenuNode]:
    """Menu nodes that come from the br2-external tree, not from the stub."""
    for node in kconf.node_iter():
        if Path(node.filename).resolve().is_relative_to(EXTERNAL):
            yield node


def kconfig_value(sym: kconfiglib.Symbol) -> str:
    """A symbol's value the way the README table and .config spell it: n, y, "text"."""
    if sym.orig_type == kconfiglib.STRING:
        return f'"{sym.str_value}"'
    return sym.str_value


def readme_table() -> dict[str, str]:
    """The README's option table: symbol -> default as written there."""
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `(BR2_[A-Z0-9_]+)`[^|]*\| `([^`]*)` \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_kconfig_needs_stubs_for_exactly_the_buildroot_symbols_it_references(kconf) -> None:
    ours = {node.item.name for node in our_nodes(kconf)
            if isinstance(node.item, kconfiglib.Symbol)}
    referenced = {sym.name for node in our_nodes(kconf) for sym in node.referenced
                  if isinstance(sym, kconfiglib.Symbol) and not sym.is_constant
                  and not sym.name.isdigit()}  # an int option's numbers (default, range)
    assert referenced - ours == set(BUILDROOT_STUBS)


def test_every_kconfig_option_has_help_text(kconf) -> None:
    without_help = [node.item.name or f"choice {node.prompt[0]!r}" for node in our_nodes(kconf)
                    if node.prompt and not isinstance(node.item, int) and not node.help]
    assert without_help == []


def test_readme_documents_every_option(kconf) -> None:
    options = {node.item.name for node in our_nodes(kconf)
               if isinstance(node.item, kconfiglib.Symbol) and node.prompt
               and node.item.choice is None}
    assert options - set(readme_table()) == set()


def test_readme_table_gives_each_options_kconfig_default(kconf) -> None:
    table = readme_table()
    assert table, "no option table found in br2-external/README.md"
    # Sub-options only take their defaults once the option above them is enabled (the
    # package, then autostart); each level is read before the next one is switched on.
    defaults: dict[str, str] = {}
    for switch in ("BR2_PACKAGE_HELLOCONTAINER_HELLO", "BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART",
                   "BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM",
                   "BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY", None):
        defaults.update({name: kconfig_value(kconf.syms[name]) for name in table
                         if name not in defaults
                         and kconfiglib.expr_value(kconf.syms[name].direct_dep) == 2})
        if switch:
            kconf.syms[switch].set_value(2)
    # podman's own options appear once podman is the runtime (Quadlet's under systemd).
    kconf.syms["BR2_PACKAGE_PODMAN"].set_value(2)
    kconf.syms["BR2_INIT_SYSTEMD"].set_value(2)
    kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH"].set_value("/usr/share/hello-oci")
    kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME_PODMAN"].set_value(2)
    defaults.update({name: kconfig_value(kconf.syms[name]) for name in table
                     if name not in defaults})
    assert defaults == table


# ---------------------------------------------------------------------------------------------
# plain make with the tree's real external.mk

def run(argv: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                            text=True, check=False, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def write_config(path: Path, settings: dict[str, str], **symbols: str) -> Path:
    """A .config as menuconfig writes it: our package enabled plus `settings`, and any
    further (Buildroot) symbols given as raw .config values."""
    kconf = load_kconfig(path.parent)
    kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO"].set_value(2)
    for name, value in settings.items():
        assert kconf.syms[name].set_value(value), f"{name} refused {value!r}"
    kconf.write_config(str(path), header="")
    with path.open("a") as config:
        config.writelines(f"{name}={value}\n" for name, value in symbols.items())
    return path


def buildroot_arch() -> str:
    """BR2_ARCH of a Buildroot configuration for the machine the tests run on (x86_64 and
    aarch64 are spelled the same way by `uname -m`)."""
    return platform.machine()


@pytest.fixture(scope="module")
def make_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for make: SOURCE_DATE_EPOCH as Buildroot exports it with BR2_REPRODUCIBLE."""
    require_tool("make", "make")
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = EPOCH
    env.pop("MAKEFLAGS", None)
    return env


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOST_DIR whose bin/hellocontainer is this checkout's packager, as host-hellocontainer
    would install it."""
    packager = Path(sys.executable).with_name("hellocontainer")
    if not packager.exists():
        message = "hellocontainer not installed next to the test interpreter; run scripts/dev-venv"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    host = tmp_path_factory.mktemp("host")
    (host / "bin").mkdir()
    (host / "bin" / "hellocontainer").symlink_to(packager)
    return host


def buildroot_make(makefile_body: str, directory: Path, host: Path, env: dict[str, str],
                   *variables: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run plain make on the tree's external.mk plus `makefile_body`, with the directories and
    commands Buildroot would define."""
    require_buildroot_path(EXTERNAL)
    makefile = directory / "Makefile"
    makefile.write_text(MAKE_PREAMBLE + makefile_body)
    return run(["make", "--no-print-directory", "-f", makefile,
                f"BR2_EXTERNAL_HELLOCONTAINER_PATH={EXTERNAL}",
                f"HOST_DIR={host}",
                f"BINARIES_DIR={directory / 'images'}",
                f"TARGET_DIR={directory / 'target'}",
                f"BUILD_DIR={directory / 'build'}",
                "STRIPCMD=strip --remove-section=.comment --remove-section=.note",
                "TARGET_MAKE_ENV=",
                "PARALLEL_JOBS=1",
                *variables], cwd=directory, env=env, check=check)


def rsync_like_buildroot(source: Path, build: Path, work: Path, host_dir: Path,
                         make_env: dict[str, str]) -> None:
    """Buildroot's rsync line for local sources (package/pkg-generic.mk), with our exclusions."""
    buildroot_make("rsync:\n\trsync -au --chmod=u=rwX,go=rX "
                   "$(HELLOCONTAINER_HELLO_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS) "
                   f"{source}/ {build}\n",
                   work, host_dir, make_env, f"CONFIG={write_config(work / '.config', {})}")


@pytest.fixture(scope="module")
def hello_build(tmp_path_factory: pytest.TempPathFactory, make_env: dict[str, str],
                host_dir: Path) -> Path:
    """examples/hello as Buildroot's rsync, autoreconf, configure and build steps leave it."""
    for tool, package in (("rsync", "rsync"), ("autoreconf", "autoconf"),
                          ("automake", "automake"), ("gcc", "gcc"), ("strip", "binutils")):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp("buildroot-build")
    build = work / "hellocontainer-hello"
    build.mkdir()
    rsync_like_buildroot(EXAMPLE, build, work, host_dir, make_env)
    run(["autoreconf", "-f", "-i"], cwd=build, env=make_env)
    run([build / "configure", "--prefix=/usr", "--disable-container"], cwd=build, env=make_env)
    run(["make"], cwd=build, env=make_env)
    return build


@pytest.fixture(scope="module")
def images_step(tmp_path_factory: pytest.TempPathFactory, hello_build: Path,
                make_env: dict[str, str], host_dir: Path) -> Path:
    """The hello package's build and images steps, run on the configured settings; returns their
    directory (images/ holds the output, .config the configuration)."""
    work = tmp_path_factory.mktemp("images-step")
    write_target_user_database(work / "target")
    config = write_config(work / ".config", SETTINGS, BR2_ARCH=f'"{buildroot_arch()}"')
    buildroot_make(BUILD_AND_IMAGES_STEPS.format(build=hello_build),
                   work, host_dir, make_env, f"CONFIG={config}")
    return work


# The hello package's build-step hooks (where the image is made), then its images step, on the
# build directory that is the target's folder, as $(@D) is in Buildroot.
BUILD_AND_IMAGES_STEPS = """\
{build}/.stamp_images_installed:
\t$(foreach hook,$(HELLOCONTAINER_HELLO_POST_BUILD_HOOKS),$(call $(hook))$(sep))
\t$(HELLOCONTAINER_HELLO_INSTALL_IMAGES_CMDS)
"""


def image_platform(layout: Path, tag: str = "latest") -> dict[str, str]:
    config = image_config(layout, tag)
    return {key: config[key] for key in ("architecture", "variant") if key in config}


def test_rsync_leaves_out_an_in_tree_build_for_the_build_machine(
        tmp_path: Path, make_env: dict[str, str], host_dir: Path) -> None:
    require_tool("rsync", "rsync")
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    for leftover in ("hello", "hello.o", "Makefile", "config.status"):
        (source / leftover).write_text("from ./configure && make on the build machine\n")
    build = tmp_path / "build"
    build.mkdir()
    rsync_like_buildroot(source, build, tmp_path, host_dir, make_env)
    copied = {p.name for p in build.iterdir()}
    assert "hello.c" in copied
    assert copied.isdisjoint({"hello", "hello.o", "Makefile", "config.status"})


def test_images_step_gives_the_same_manifest_digests_as_the_cli(
        images_step: Path, hello_build: Path, hellocontainer: Runner, tmp_path: Path) -> None:
    direct = tmp_path / "hello-oci"
    hellocontainer("build", "--sysroot", hello_build / "oci-root", "/usr/bin/hello",
                   "--output", direct, "--arch", buildroot_arch(), *CLI_SETTINGS,
                   "--passwd-file", images_step / "target/etc/passwd",
                   "--group-file", images_step / "target/etc/group",
                   env={"SOURCE_DATE_EPOCH": EPOCH})
    through_buildroot = tagged_manifests(images_step / "images" / "hello-oci")
    assert set(through_buildroot) == {"latest", "1.0"}
    assert through_buildroot == tagged_manifests(direct)


def test_kconfig_strings_with_spaces_and_quotes_reach_the_image_config(images_step: Path) -> None:
    config = image_config(images_step / "images" / "hello-oci")["config"]
    assert {"A=1", "GREETING=hello   world", "NAME=Ada Lovelace"} <= set(config["Env"])
    assert config["Cmd"] == ["--greeting", "two words"]
    assert config["Labels"] == {"org.opencontainers.image.vendor": "ACME Inc", "tier": "demo"}
    assert config["User"] == "33:50"  # www-data:staff, from the target's passwd and group
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}


def test_user_name_missing_from_the_targets_passwd_stops_the_build_step(
        tmp_path: Path, hello_build: Path, make_env: dict[str, str], host_dir: Path) -> None:
    write_target_user_database(tmp_path / "target")
    config = write_config(tmp_path / ".config", {"BR2_PACKAGE_HELLOCONTAINER_HELLO_USER": "app"},
                          BR2_ARCH=f'"{buildroot_arch()}"')
    result = buildroot_make(BUILD_AND_IMAGES_STEPS.format(build=hello_build),
                            tmp_path, host_dir, make_env, f"CONFIG={config}", check=False)
    assert result.returncode != 0
    assert (f"hellocontainer: error: user 'app': no passwd entry 'app' in "
            f"{tmp_path}/target/etc/passwd") in result.stderr


def test_author_becomes_the_authors_annotation_unchanged(
        tmp_path: Path, hello_build: Path, make_env: dict[str, str], host_dir: Path) -> None:
    author = """Ada "Countess"  O'Lovelace <ada@example.com>"""
    config = write_config(tmp_path / ".config", {"BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTHOR": author},
                          BR2_ARCH=f'"{buildroot_arch()}"')
    buildroot_make(BUILD_AND_IMAGES_STEPS.format(build=hello_build),
                   tmp_path, host_dir, make_env, f"CONFIG={config}")
    annotations = manifest(tmp_path / "images" / "hello-oci").get("annotations", {})
    assert annotations["org.opencontainers.image.authors"] == author


def test_images_step_writes_the_oci_archive_when_chosen(
        images_step: Path, hello_build: Path, hellocontainer: Runner, tmp_path: Path) -> None:
    direct = tmp_path / "hello-oci.tar"
    hellocontainer("build", "--sysroot", hello_build / "oci-root", "/usr/bin/hello",
                   "--output", tmp_path / "hello-oci", "--archive", direct,
                   "--arch", buildroot_arch(), *CLI_SETTINGS,
                   "--passwd-file", images_step / "target/etc/passwd",
                   "--group-file", images_step / "target/etc/group",
                   env={"SOURCE_DATE_EPOCH": EPOCH})
    assert (images_step / "images" / "hello-oci.tar").read_bytes() == direct.read_bytes()


def test_images_step_packages_the_program_stripped(images_step: Path) -> None:
    program = image_file(images_step / "images" / "hello-oci", "/hello")
    elf = ELFFile(io.BytesIO(program))
    assert elf.get_section_by_name(".symtab") is None
    assert elf.get_section_by_name(".interp") is None, "the program is not static"


@pytest.mark.parametrize("path", ["/", "//", "relative/hello-oci", "/usr/../../escape",
                                  "/two words"])
def test_rootfs_path_outside_the_target_is_refused(
        path: str, tmp_path: Path, make_env: dict[str, str], host_dir: Path) -> None:
    config = write_config(tmp_path / ".config",
                          {"BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH": path})
    # Buildroot sets BR_BUILDING=y for every goal that builds (its top-level Makefile).
    result = buildroot_make("all:\n\t@echo configured\n", tmp_path, host_dir, make_env,
                            f"CONFIG={config}", "BR_BUILDING=y", check=False)
    assert result.returncode != 0
    assert "BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH=" in result.stderr
    assert "set an absolute path such as /usr/share/hellocontainer/hello-oci" in result.stderr


@pytest.mark.parametrize("settings,symbols", [
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH": "/usr/../../x"}, {}),
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART": "y"},
     {"BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME": '""'}),
], ids=["rootfs-path", "no-runtime"])
def test_invalid_settings_leave_goals_that_do_not_build_working(
        settings: dict[str, str], symbols: dict[str, str], tmp_path: Path,
        make_env: dict[str, str], host_dir: Path) -> None:
    # savedefconfig, printvars, legal-info, source, graph-*: Buildroot leaves BR_BUILDING unset,
    # and the user must still be able to save or inspect the configuration to repair it.
    config = write_config(tmp_path / ".config", settings, **symbols)
    result = buildroot_make("all:\n\t@echo configured\n", tmp_path, host_dir, make_env,
                            f"CONFIG={config}")
    assert result.stdout == "configured\n"


@pytest.mark.parametrize(("br2_arch", "level", "compiler", "expected"), [
    ("aarch64", "ARMV8A", "arm64", {"architecture": "arm64"}),
    ("arm", "ARMV7A", "arm/v7", {"architecture": "arm", "variant": "v7"}),
    ("arm", "ARMV6", "arm/v6", {"architecture": "arm", "variant": "v6"}),
    ("arm", "ARMV5", "arm/v5", {"architecture": "arm", "variant": "v5"}),
], ids=["aarch64", "armv7a", "armv6", "armv5"])
def test_helper_targets_the_platform_of_the_configured_core(
        br2_arch: str, level: str, compiler: str, expected: dict[str, str], tmp_path: Path,
        make_env: dict[str, str], host_dir: Path) -> None:
    program = build_static_hello(cross_compilers()[compiler], tmp_path)
    # What Buildroot's .config holds for such a core, e.g. BR2_cortex_a9 selects ARMV7A.
    config = write_config(tmp_path / ".config", {}, BR2_ARCH=f'"{br2_arch}"',
                          **{f"BR2_ARM_CPU_{level}": "y"})
    buildroot_make(f"all:\n\t$(call HCTR_PACKAGE,{program},hello,)\n",
                   tmp_path, host_dir, make_env, f"CONFIG={config}")
    assert image_platform(tmp_path / "images" / "hello-oci") == expected


def packager_version() -> str:
    pyproject = (REPO / "python" / "pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)


def test_external_mk_defines_only_hctr_helpers() -> None:
    # HELLOCONTAINER_* is the hellocontainer package's variable space (Buildroot reads
    # HELLOCONTAINER_VERSION, _SITE, _KCONFIG_*... for host-hellocontainer), and
    # HELLOCONTAINER_HELLO_* hellocontainer-hello's: the tree's own helpers stay out of both.
    text = (EXTERNAL / "external.mk").read_text()
    defined = set(re.findall(r"^(?:define\s+)?([A-Za-z0-9_]+)\s*(?:[:+?]?=|$)", text, re.MULTILINE))
    assert "HCTR_PACKAGE" in defined
    assert {name for name in defined if not name.startswith("HCTR_")} == set()


def test_both_packages_have_the_packagers_version(tmp_path: Path, make_env: dict[str, str],
                                                  host_dir: Path) -> None:
    version = packager_version()
    # Each in its own .mk file, where Buildroot users look for a package's version.
    result = buildroot_make("all:\n\t@echo $(HELLOCONTAINER_VERSION) $(HELLOCONTAINER_HELLO_VERSION)\n",
                            tmp_path, host_dir, make_env,
                            f"CONFIG={write_config(tmp_path / '.config', {})}")
    assert result.stdout.split() == [version, version]


@pytest.mark.parametrize("source,package", [(REPO / "python", "hellocontainer"),
                                            (EXAMPLE, "hellocontainer-hello")],
                         ids=["packager", "hello"])
def test_each_package_source_holds_the_repositorys_license(source: Path, package: str) -> None:
    # legal-info saves _LICENSE_FILES from the package's own source folder; a symlink would
    # dangle in Buildroot's copy of it, so it is a copy, kept identical here. legal-info also
    # checks it against the package's .hash file, and stops on a mismatch.
    license_file = (source / "LICENSE").read_bytes()
    assert license_file == (REPO / "LICENSE").read_bytes()
    hashes = (EXTERNAL / "package" / package / f"{package}.hash").read_text()
    assert f"sha256  {hashlib.sha256(license_file).hexdigest()}  LICENSE\n" in hashes


def readme_helper_example() -> str:
    """The make block of the README's helper section."""
    section = README.read_text().split("## The make helper", 1)[1]
    blocks = re.findall(r"```make\n(.*?)```", section, re.DOTALL)
    (example,) = [block for block in blocks if "FOO_PACKAGE_OCI_IMAGE" in block]
    return example


def test_readme_helper_example_writes_foo_oci(
        tmp_path: Path, hello_static: Path, make_env: dict[str, str], host_dir: Path) -> None:
    build = tmp_path / "foo-1.2"
    build.mkdir()
    shutil.copy(hello_static, build / "foo")
    buildroot_make(readme_helper_example()
                   + f"\n{build}/.stamp_target_installed:\n"
                   "\t$(foreach hook,$(FOO_POST_INSTALL_TARGET_HOOKS),$($(hook))$(sep))\n",
                   tmp_path, host_dir, make_env,
                   f"CONFIG={write_config(tmp_path / '.config', {})}",
                   "FOO_VERSION=1.2", "INSTALL=install")
    layout = tmp_path / "images" / "foo-oci"
    assert set(tagged_manifests(layout)) == {"1.2", "latest"}
    config = image_config(layout)["config"]
    assert config["Entrypoint"] == ["/foo"]
    assert "FOO_GREETING=hello world" in config["Env"]


# ---------------------------------------------------------------------------------------------
# start at boot: the target directory the package's steps leave

# Buildroot's steps for one package (package/pkg-generic.mk), in the order a build runs them,
# with the package's own commands and hooks; the build directory is the first prerequisite's
# folder, as $(@D) is in Buildroot. Each step leaves its stamp, so a step whose stamp is there
# is not run again: deleting stamps is what <pkg>-reinstall and <pkg>-rebuild do. {merge} is
# how target-finalize starts: with per-package directories, it copies the package's own target
# into the final one, without deleting anything there.
PACKAGE_STEPS = """\
target-finalize: {build}/.stamp_images_installed {build}/.stamp_target_installed
\t{merge}
\t$(foreach hook,$(HELLOCONTAINER_HELLO_TARGET_FINALIZE_HOOKS),$($(hook))$(sep))

{build}/.stamp_built:
\t$(foreach hook,$(HELLOCONTAINER_HELLO_POST_BUILD_HOOKS),$(call $(hook))$(sep))
\ttouch $@

{build}/.stamp_images_installed: {build}/.stamp_built
\t$(HELLOCONTAINER_HELLO_INSTALL_IMAGES_CMDS)
\t$(foreach hook,$(HELLOCONTAINER_HELLO_POST_INSTALL_IMAGES_HOOKS),$(call $(hook))$(sep))
\ttouch $@

{build}/.stamp_target_installed: {build}/.stamp_built
\t$(if $(filter NO,$(HELLOCONTAINER_HELLO_INSTALL_TARGET)),,$(HELLOCONTAINER_HELLO_INSTALL_TARGET_CMDS))
\t$(if $(BR2_INIT_SYSTEMD),$(HELLOCONTAINER_HELLO_INSTALL_INIT_SYSTEMD))
\t$(if $(BR2_INIT_SYSV)$(BR2_INIT_BUSYBOX),$(HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV))
\ttouch $@
"""

# With BR2_PER_PACKAGE_DIRECTORIES, TARGET_DIR in the package's steps is its own one
# (per-package/<pkg>/target), and the final one only in target-finalize.
PER_PACKAGE_TARGET = """\
{build}/.stamp_built {build}/.stamp_images_installed {build}/.stamp_target_installed: \
override TARGET_DIR = {own}
"""

# A build directory whose `make install` installs a given program as autotools' would.
FAKE_BUILD_MAKEFILE = """\
install:
\tinstall -D -m 0755 {program} $(DESTDIR)/usr/bin/hello
"""

RUNTIME_SYMBOLS = {"crun": "_RUNTIME_CRUN", "runc": "_RUNTIME_RUNC", "podman": "_RUNTIME_PODMAN"}
RESTART_SYMBOLS = {"no": "_RESTART_NO", "on-failure": "_RESTART_ON_FAILURE",
                   "always": "_RESTART_ALWAYS"}
INIT_SYMBOLS = {"busybox": "BR2_INIT_BUSYBOX", "sysv": "BR2_INIT_SYSV",
                "systemd": "BR2_INIT_SYSTEMD"}


def package_host(work: Path) -> Path:
    """A HOST_DIR in `work` whose bin/hellocontainer is this checkout's packager."""
    host = work / "host"
    (host / "bin").mkdir(parents=True, exist_ok=True)
    if not (host / "bin" / "hellocontainer").exists():
        (host / "bin" / "hellocontainer").symlink_to(Path(sys.executable).with_name("hellocontainer"))
    return host


def fake_build(work: Path, program: Path) -> Path:
    """The package's build directory in BUILD_DIR (work/build), holding `program` as built."""
    build = work / "build" / "hellocontainer-hello"
    build.mkdir(parents=True, exist_ok=True)
    (build / "Makefile").write_text(FAKE_BUILD_MAKEFILE.format(program=program.resolve()))
    return build


def own_target(work: Path) -> Path:
    """The package's own TARGET_DIR with per-package directories."""
    return work / "per-package" / "hellocontainer-hello" / "target"


def run_package_steps(work: Path, build: Path, config: Path, *, per_package: bool = False,
                      redo: str = "reinstall", goal: str = "target-finalize",
                      strip: str = "true") -> Path:
    """Buildroot's steps of hellocontainer-hello in `work` (BUILD_DIR work/build, TARGET_DIR
    work/target, BINARIES_DIR work/images) for the .config `config`, up to `goal`, after what
    `make hellocontainer-hello-<redo>` clears (reinstall: the install steps; rebuild: the build
    step too; empty: nothing, as a plain `make`). Returns the final TARGET_DIR."""
    require_tool("make", "make")
    stamps = {"": [], "reinstall": [".stamp_images_installed", ".stamp_target_installed"]}
    stamps["rebuild"] = [*stamps["reinstall"], ".stamp_built"]
    for stamp in stamps[redo]:
        (build / stamp).unlink(missing_ok=True)
    body = PACKAGE_STEPS.format(build=build, merge="@:")
    if per_package:
        require_tool("rsync", "rsync")
        own_target(work).mkdir(parents=True, exist_ok=True)
        body = (PACKAGE_STEPS.format(build=build,
                                     merge=f"rsync -a {own_target(work)}/ $(TARGET_DIR)/")
                + PER_PACKAGE_TARGET.format(build=build, own=own_target(work)))
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    env.pop("MAKEFLAGS", None)
    goal = str(build / goal) if goal.startswith(".stamp") else goal
    buildroot_make(body, work, package_host(work), env, f"CONFIG={config}",
                   f"STRIPCMD={strip}", "MAKE=make", goal)
    return work / "target"


def buildroot_target_overlay(work: Path, program: Path, br2_arch: str, *, runtime: str = "crun",
                             init: str = "busybox", restart: str = "on-failure",
                             network: str = "none",
                             rootfs_path: str = "/usr/share/hellocontainer/hello-oci",
                             **symbols: str) -> Path:
    """The target directory (TARGET_DIR) a Buildroot build of hellocontainer-hello with autostart
    leaves, made by the package's own build, images, target-install and target-finalize
    commands (plain make on the real external.mk, the packager of this checkout), for `program`:
    the static hello for the board, already stripped (the build step's strip is a no-op here).

    `br2_arch` is BR2_ARCH (x86_64, aarch64, arm; for arm add BR2_ARM_CPU_ARMV7A="y" to
    `symbols`, as a Buildroot .config has it); `init` is busybox, sysv or systemd; `rootfs_path`
    is BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH (empty: no layout on the target). Returns
    work/target: lay it over the board's root. work/images is BINARIES_DIR.
    """
    # A first build in `work`, as after "make clean".
    for leftover in ("build", "target", "images"):
        shutil.rmtree(work / leftover, ignore_errors=True)
    prefix = "BR2_PACKAGE_HELLOCONTAINER_HELLO"
    # In menuconfig order: a choice entry appears once what it depends on is set.
    settings = {"BR2_PACKAGE_PODMAN": "y"} if runtime == "podman" else {}
    settings.update({f"{prefix}_ROOTFS_PATH": rootfs_path, f"{prefix}_AUTOSTART": "y",
                     prefix + RUNTIME_SYMBOLS[runtime]: "y", prefix + RESTART_SYMBOLS[restart]: "y",
                     f"{prefix}_NETWORK_{network.upper()}": "y"})
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work / ".config", settings, BR2_ARCH=f'"{br2_arch}"',
                          **{INIT_SYMBOLS[init]: "y"}, **symbols)
    return run_package_steps(work, fake_build(work, program), config)


def target_files(target: Path) -> set[str]:
    return {"/" + str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir()}


def test_autostart_target_gets_bundle_layout_and_init_script(
        tmp_path: Path, hello_static: Path) -> None:
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch())
    files = target_files(target)
    assert {"/etc/init.d/S95hellocontainer-hello",
            "/usr/share/hellocontainer/hello-bundle/config.json",
            "/usr/share/hellocontainer/hello-bundle/rootfs/hello",
            "/usr/share/hellocontainer/hello-oci/index.json"} <= files
    assert not any(path.startswith("/usr/lib/systemd") for path in files)
    assert "/usr/bin/hello" not in files
    bundled = target / "usr/share/hellocontainer/hello-bundle/rootfs/hello"
    assert bundled.read_bytes() == hello_static.read_bytes()
    assert os.access(target / "etc/init.d/S95hellocontainer-hello", os.X_OK)


def test_autostart_script_is_what_the_cli_writes_for_the_same_settings(
        tmp_path: Path, hello_static: Path, hellocontainer: Runner) -> None:
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch(), runtime="runc",
                                      restart="always", network="host")
    hellocontainer("autostart", "--runtime", "runc", "--name", "hello", "--restart", "always",
                   "--network", "host", "--bundle", "/usr/share/hellocontainer/hello-bundle",
                   "--sysv", tmp_path / "direct")
    assert (target / "etc/init.d/S95hellocontainer-hello").read_bytes() == \
        (tmp_path / "direct").read_bytes()
    config = json.loads((tmp_path / "images/hello-bundle/config.json").read_text())
    assert not any(ns["type"] == "network" for ns in config["linux"]["namespaces"])


def test_autostart_restart_backoff_options_reach_the_script(tmp_path: Path,
                                                            hello_static: Path) -> None:
    prefix = "BR2_PACKAGE_HELLOCONTAINER_HELLO"
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch(),
                                      **{f"{prefix}_RESTART_MAX_DELAY": "7",
                                         f"{prefix}_GIVE_UP_AFTER": "3",
                                         f"{prefix}_GIVE_UP_WINDOW": "60"})
    script = (target / "etc/init.d/S95hellocontainer-hello").read_text()
    assert "\nMAX_DELAY=7\nGIVE_UP=3\nGIVE_UP_WINDOW=60\n" in script


def test_autostart_with_systemd_installs_the_unit_instead(tmp_path: Path,
                                                          hello_static: Path) -> None:
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch(), init="systemd")
    unit = target / "usr/lib/systemd/system/hellocontainer-hello.service"
    assert 'exec \\"$$RUNTIME\\" run --bundle /usr/share/hellocontainer/hello-bundle hello\\n"' in \
        unit.read_text()
    assert not (target / "etc").exists()


def test_autostart_with_podman_runs_the_installed_layout(tmp_path: Path,
                                                         hello_static: Path) -> None:
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch(), runtime="podman",
                                      rootfs_path="/usr/share/hellocontainer/hello-oci/")
    script = (target / "etc/init.d/S95hellocontainer-hello").read_text()
    assert "oci:/usr/share/hellocontainer/hello-oci:latest" in script
    assert "--root /run/hellocontainer/podman/storage " in script  # the store's default
    assert not (target / "usr/share/hellocontainer/hello-bundle").exists()
    assert not (tmp_path / "images/hello-bundle").exists()


def test_podman_quadlet_installs_a_container_file_instead_of_the_unit(
        tmp_path: Path, hello_static: Path) -> None:
    prefix = "BR2_PACKAGE_HELLOCONTAINER_HELLO"
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch(), runtime="podman",
                                      init="systemd", **{f"{prefix}_QUADLET": "y",
                                                         f"{prefix}_PODMAN_ROOT": '"/data/podman"'})
    quadlet = (target / "etc/containers/systemd/hellocontainer-hello.container").read_text()
    assert "\nImage=localhost/usr/share/hellocontainer/hello-oci:latest\n" in quadlet
    assert "GlobalArgs=--root /data/podman/storage " in quadlet
    assert not (target / "usr/lib/systemd").exists()


def test_autostart_off_installs_no_init_files(tmp_path: Path, make_env: dict[str, str],
                                             host_dir: Path) -> None:
    body = ("all:\n\t@echo '$(HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV)"
            "|$(HELLOCONTAINER_HELLO_INSTALL_INIT_SYSTEMD)'\n")
    off = buildroot_make(body, tmp_path, host_dir, make_env,
                         f"CONFIG={write_config(tmp_path / '.config', {})}")
    assert off.stdout.strip() == "|"


@pytest.mark.parametrize("runtime,package", [("CRUN", "BR2_PACKAGE_CRUN"),
                                             ("RUNC", "BR2_PACKAGE_RUNC")])
def test_runtime_choice_selects_the_runtime_package(runtime: str, package: str, kconf) -> None:
    for name in ("BR2_PACKAGE_HELLOCONTAINER_HELLO", "BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART",
                 f"BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME_{runtime}"):
        assert kconf.syms[name].set_value(2), name
    assert kconf.syms[package].str_value == "y"


def test_podman_runtime_needs_podman_and_a_rootfs_path(kconf) -> None:
    for name in ("BR2_PACKAGE_HELLOCONTAINER_HELLO", "BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART"):
        kconf.syms[name].set_value(2)
    podman = kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME_PODMAN"]
    kconf.syms["BR2_PACKAGE_PODMAN"].set_value(2)
    assert podman.visibility == 0  # no root filesystem path yet
    kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH"].set_value("/usr/share/hello-oci")
    assert podman.visibility == 2
    # Quadlet is a systemd generator: offered only with systemd as init.
    podman.set_value(2)
    quadlet = kconf.syms["BR2_PACKAGE_HELLOCONTAINER_HELLO_QUADLET"]
    assert quadlet.visibility == 0
    kconf.syms["BR2_INIT_SYSTEMD"].set_value(2)
    assert quadlet.visibility == 2


def test_autostart_without_an_available_runtime_stops_make(
        tmp_path: Path, make_env: dict[str, str], host_dir: Path) -> None:
    # What a .config says when no runtime entry is visible (e.g. an old gcc without runc).
    config = write_config(tmp_path / ".config", {"BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART": "y"},
                          BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME='""')
    result = buildroot_make("all:\n\t@echo configured\n", tmp_path, host_dir, make_env,
                            f"CONFIG={config}", "BR_BUILDING=y", check=False)
    assert result.returncode != 0
    assert "BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART is set, but no container runtime is " \
        "available" in result.stderr


# ---------------------------------------------------------------------------------------------
# the copies in the target: installed by the target-install step; a moved one takes a full
# rebuild

ROOTFS_PATH = "BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH"
LAYOUT_FILES = {"/index.json", "/oci-layout"}


def layout_config(work: Path, rootfs_path: str, **settings: str) -> Path:
    return write_config(work / ".config", {ROOTFS_PATH: rootfs_path, **settings},
                        BR2_ARCH=f'"{buildroot_arch()}"')


def tree_files(root: Path, under: str) -> set[str]:
    """The files below `under` of a target `root`, relative to `under`."""
    return {path[len(under):] for path in target_files(root) if path.startswith(under + "/")}


@pytest.mark.parametrize("per_package", [False, True], ids=["shared", "per-package"])
def test_target_install_step_installs_the_image_where_buildroot_tracks_it(
        per_package: bool, tmp_path: Path, hello_build: Path) -> None:
    """Buildroot lists a package's target files (its .files-list.txt) by comparing TARGET_DIR
    before its configure step with TARGET_DIR after its install steps; target-finalize hooks
    come after that, so what they copy is nobody's. The layout must be in the step's own
    TARGET_DIR when its target-install step ends, before any target-finalize."""
    step_target = own_target(tmp_path) if per_package else tmp_path / "target"
    write_target_user_database(step_target)
    before = target_files(step_target)
    config = write_config(tmp_path / ".config", SETTINGS, BR2_ARCH=f'"{buildroot_arch()}"')
    run_package_steps(tmp_path, hello_build, config, per_package=per_package, redo="rebuild",
                      goal=".stamp_target_installed",
                      strip="strip --remove-section=.comment --remove-section=.note")
    layout = hello_build / "oci-out" / "hello-oci"
    installed = "/usr/share/hellocontainer/hello-oci"  # SETTINGS' path has a trailing slash
    assert target_files(step_target) - before == {
        installed + path for path in target_files(layout)}
    comparison = filecmp.dircmp(layout, step_target / installed.lstrip("/"))
    assert (comparison.left_only, comparison.right_only, comparison.diff_files) == ([], [], [])
    assert tagged_manifests(step_target / installed.lstrip("/")) == tagged_manifests(layout)
    assert not (tmp_path / "images").exists()  # the images step has its own copy to make
    if per_package:
        assert not (tmp_path / "target" / installed.lstrip("/")).exists()


@pytest.mark.parametrize("per_package", [False, True], ids=["shared", "per-package"])
def test_rebuild_with_other_settings_leaves_no_stale_blob_in_the_target(
        per_package: bool, tmp_path: Path, hello_static: Path) -> None:
    # The README's advice for an option that changes the image at the same path:
    # make hellocontainer-hello-rebuild, then make.
    path = "/usr/share/hellocontainer/hello-oci"
    autostart = {"BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART": "y"}
    build = fake_build(tmp_path, hello_static)
    run_package_steps(tmp_path, build, layout_config(tmp_path, path, **autostart),
                      per_package=per_package)
    changed = layout_config(tmp_path, path, BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG="1.0",
                            BR2_PACKAGE_HELLOCONTAINER_HELLO_ENV="A=1", **autostart)
    target = run_package_steps(tmp_path, build, changed, per_package=per_package,
                               redo="rebuild")
    output = build / "oci-out"
    # The package's TARGET_DIR: its own one with per-package directories. Buildroot merges
    # those into the final one without deleting anything, for every package: there, an old
    # blob (which nothing names any more) stays until a full rebuild, as the README says.
    step_target = own_target(tmp_path) if per_package else target
    for copy, made in ((path, output / "hello-oci"),
                       ("/usr/share/hellocontainer/hello-bundle", output / "hello-bundle")):
        assert tree_files(step_target, copy) == target_files(made), copy
        assert tree_files(target, copy) >= target_files(made), copy
    assert set(tagged_manifests(target / path.lstrip("/"))) == {"1.0"}


@pytest.mark.parametrize("new_path,redo", [
    ("/opt/hello/oci-layout", "rebuild"),
    ("/opt/hello/oci-layout", "dirclean"),
    ("", "rebuild"),
], ids=["moved", "moved-after-dirclean", "emptied"])
def test_rootfs_path_change_takes_a_full_rebuild(
        new_path: str, redo: str, tmp_path: Path, hello_static: Path) -> None:
    # As for any Buildroot package (the manual's "Understanding when a full rebuild is
    # necessary"), and as the README says: rebuilding the package installs the new copy but
    # leaves the old one; "make clean all" leaves only the new one.
    old_path = "/usr/share/hellocontainer/hello-oci"
    build = fake_build(tmp_path, hello_static)
    run_package_steps(tmp_path, build, layout_config(tmp_path, old_path))
    config = layout_config(tmp_path, new_path)
    if redo == "dirclean":
        shutil.rmtree(build)
        build = fake_build(tmp_path, hello_static)
    target = run_package_steps(tmp_path, build, config, redo="" if redo == "dirclean" else redo)
    assert tree_files(target, old_path) >= LAYOUT_FILES
    if new_path:
        assert tree_files(target, new_path) >= LAYOUT_FILES
    # make clean all: a fresh output directory.
    for directory in ("build", "target", "images"):
        shutil.rmtree(tmp_path / directory)
    target = run_package_steps(tmp_path, fake_build(tmp_path, hello_static), config)
    assert not (target / old_path.lstrip("/")).exists()
    if new_path:
        assert tree_files(target, new_path) >= LAYOUT_FILES
    assert (tmp_path / "images" / "hello-oci" / "index.json").exists()


def test_without_a_path_or_autostart_nothing_is_installed_in_the_target(
        tmp_path: Path, make_env: dict[str, str], host_dir: Path) -> None:
    result = buildroot_make("all:\n\t@echo $(HELLOCONTAINER_HELLO_INSTALL_TARGET)\n",
                            tmp_path, host_dir, make_env,
                            f"CONFIG={layout_config(tmp_path, '')}")
    assert result.stdout.split() == ["NO"]


# ---------------------------------------------------------------------------------------------
# real Buildroot (opt-in)

BUILDROOT_DIR = os.environ.get("HELLOCONTAINER_BUILDROOT_DIR", "")
needs_buildroot = pytest.mark.skipif(
    not BUILDROOT_DIR,
    reason="set HELLOCONTAINER_BUILDROOT_DIR to a Buildroot checkout to run Buildroot itself")
# BR2_ARCH -> the upstream QEMU board our fragments go on (configs/<board>_defconfig in the
# checkout, fragments/<board>.config here).
BOARDS = {
    "x86_64": "qemu_x86_64",
    "aarch64": "qemu_aarch64_virt",
}
FRAGMENT = EXTERNAL / "fragments" / "hellocontainer-hello.config"


def buildroot(output: Path, *args: str) -> str:
    """`make` in the Buildroot checkout with our tree and its own output directory."""
    require_buildroot_path(EXTERNAL)
    return run(["make", "-s", "--no-print-directory", "-C", BUILDROOT_DIR,
                f"BR2_EXTERNAL={EXTERNAL}", f"O={output}", *args]).stdout


def merge_defconfig(output: Path, base: str, *fragments: Path, extra: str = "") -> str:
    """The README's way to configure: Buildroot's support/kconfig/merge_config.sh, upstream's
    configs/<base>_defconfig plus `fragments` (by default ours for a QEMU board in BOARDS),
    and `extra` settings as one more fragment. Fails when a setting of a fragment did not
    make it into the .config (the script only warns); returns the script's output."""
    require_buildroot_path(EXTERNAL)
    if not fragments:
        fragments = (FRAGMENT, EXTERNAL / "fragments" / f"{base}.config")
    if extra:
        fragments = (*fragments, output.with_name(f"{output.name}-extra.config"))
        fragments[-1].write_text(extra)
    output.mkdir(parents=True, exist_ok=True)
    result = run(["support/kconfig/merge_config.sh", "-e", EXTERNAL, "-O", output,
                  f"configs/{base}_defconfig", *fragments],
                 cwd=BUILDROOT_DIR, env=dict(os.environ, CONFIG_="")).stdout
    ours = {re.sub(r"^# (BR2_\w+) is not set$|=.*", r"\1", line)
            for fragment in fragments for line in config_lines(fragment.read_text())}
    missing = set(re.findall(r"^Value requested for (\S+) not in final .config$", result,
                             re.MULTILINE))
    assert missing & ours == set(), result
    return result


def merged_lines(base: str, *fragments: Path) -> list[str]:
    """The settings merge_config.sh starts from: the base defconfig's, each overridden or
    extended by the fragments', sorted."""
    settings: dict[str, str] = {}
    for text in ((Path(BUILDROOT_DIR) / "configs" / f"{base}_defconfig").read_text(),
                 *(fragment.read_text() for fragment in fragments)):
        for line in config_lines(text):
            settings[re.sub(r"^# (BR2_\w+) is not set$|=.*", r"\1", line)] = line
    return sorted(settings.values())


# Each Buildroot make call parses all of Buildroot (seconds each): ask for every variable the
# tests need in one printvars call per configuration.
PRINTED_VARS = ("HELLOCONTAINER_HELLO_BUILD_IMAGE", "HELLOCONTAINER_HELLO_POST_BUILD_HOOKS",
                "HCTR_PLATFORM_OPTS", "TARGET_FINALIZE_HOOKS")


def printvars(output: Path, names: tuple[str, ...] = PRINTED_VARS) -> dict[str, str]:
    """`names` as Buildroot expands them; multi-line values (defines) kept whole."""
    text = buildroot(output, "printvars", f"VARS={' '.join(names)}")
    pattern = "|".join(map(re.escape, names))
    parts = re.split(rf"^({pattern})=", text, flags=re.MULTILINE)[1:]
    return {name: value.rstrip("\n") for name, value in zip(parts[::2], parts[1::2])}


def config_lines(text: str) -> list[str]:
    """The settings of a defconfig: assignments and `# X is not set`, not free comments."""
    return [line for line in text.splitlines()
            if line.startswith("BR2_") or re.match(r"^# BR2_\w+ is not set$", line)]


@pytest.fixture(scope="module", params=sorted(BOARDS))
def configured(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, str]]:
    """(BR2_ARCH, output directory, printvars) after the README's merge of our fragments onto
    upstream's defconfig for the board, and `make olddefconfig`."""
    if not BUILDROOT_DIR:
        pytest.skip("set HELLOCONTAINER_BUILDROOT_DIR to a Buildroot checkout")
    output = tmp_path_factory.mktemp(f"buildroot-{request.param}") / "output"
    merge_defconfig(output, BOARDS[request.param])
    buildroot(output, "olddefconfig")
    return request.param, output, printvars(output)


@needs_buildroot
def test_buildroot_savedefconfig_is_upstreams_defconfig_plus_our_fragments(
        configured, tmp_path: Path) -> None:
    # Nothing of upstream's board settings or of ours is lost or added on the way.
    arch, output, _ = configured
    saved = tmp_path / "saved_defconfig"
    buildroot(output, "savedefconfig", f"BR2_DEFCONFIG={saved}")
    board = BOARDS[arch]
    assert sorted(config_lines(saved.read_text())) == \
        merged_lines(board, FRAGMENT, EXTERNAL / "fragments" / f"{board}.config")


@needs_buildroot
def test_buildroot_board_fragment_names_the_upstream_defconfig(configured) -> None:
    # board/qemu/post-image.sh writes start-qemu.sh from the readme line tagged with the
    # defconfig's name; the board fragment gives it that name.
    arch, output, _ = configured
    board = BOARDS[arch]
    config = (output / ".config").read_text().splitlines()
    assert f'BR2_ROOTFS_POST_SCRIPT_ARGS="{board}_defconfig"' in config
    readmes = (Path(BUILDROOT_DIR) / "board" / "qemu").glob("*/readme.txt")
    assert any(re.search(rf"# {board}_defconfig$", readme.read_text(), re.MULTILINE)
               for readme in readmes)


@needs_buildroot
def test_buildroot_build_step_calls_the_packager_for_the_target(configured) -> None:
    arch, output, variables = configured
    assert "HELLOCONTAINER_HELLO_BUILD_IMAGE" in \
        variables["HELLOCONTAINER_HELLO_POST_BUILD_HOOKS"].split()
    # printvars expands $(@D), the build directory, outside any step ("." with GNU make 4.3).
    commands = " ".join(variables["HELLOCONTAINER_HELLO_BUILD_IMAGE"].split())
    assert re.search(rf"{re.escape(str(output))}/host/bin/hellocontainer build /usr/bin/hello "
                     rf"--output \S*/oci-out/hello-oci --arch '{arch}'", commands)
    assert "--tag 'latest' --compression 'gzip'" in commands


@needs_buildroot
def test_buildroot_target_holds_only_what_the_install_step_installs(configured,
                                                                    tmp_path: Path) -> None:
    # No target-finalize hook of ours: what a changed setting leaves behind takes a full
    # rebuild, as for any Buildroot package (README). Without a path or autostart the
    # package installs nothing into the target.
    _, _, variables = configured
    assert not [hook for hook in variables["TARGET_FINALIZE_HOOKS"].split()
                if hook.startswith("HELLOCONTAINER")]
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64",
                    extra='BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH=""\n')
    info = json.loads(buildroot(output, "hellocontainer-hello-show-info"))["hellocontainer-hello"]
    assert (info["install_target"], info["install_images"]) == (False, True)


@needs_buildroot
def test_buildroot_show_info_wires_the_packages(configured) -> None:
    _, output, _ = configured
    info = json.loads(buildroot(output, "hellocontainer-hello-show-info",
                                "host-hellocontainer-show-info").replace("}\n{", ","))
    hello, packager = info["hellocontainer-hello"], info["host-hellocontainer"]
    # The defconfig puts the layout into the root filesystem: by the target-install step.
    assert (hello["install_target"], hello["install_images"]) == (True, True)
    assert "host-hellocontainer" in hello["dependencies"]
    assert {"host-python-jsonschema", "host-python-pyelftools", "host-python-pyyaml",
            "host-python-referencing"} <= set(packager["dependencies"])


@needs_buildroot
def test_buildroot_packager_pulls_host_rust_through_jsonschema(configured) -> None:
    _, output, _ = configured
    depends = buildroot(output, "host-hellocontainer-show-recursive-depends").split()
    assert {"host-python-rpds-py", "host-rustc"} <= set(depends)


@needs_buildroot
def test_buildroot_autostart_selects_crun_and_installs_the_init_script(tmp_path: Path) -> None:
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64", extra="BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART=y\n")
    config = (output / ".config").read_text().splitlines()
    assert {"BR2_PACKAGE_CRUN=y", 'BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME="crun"'} <= set(config)
    info = json.loads(buildroot(output, "hellocontainer-hello-show-info"))["hellocontainer-hello"]
    assert info["install_target"] is True
    script = buildroot(output, "printvars", "VARS=HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV")
    assert (f"{output}/host/bin/hellocontainer autostart --runtime crun --name hello "
            "--restart on-failure --network none --restart-max-delay 300 --give-up-after 0 "
            "--give-up-window 0 "
            "--bundle /usr/share/hellocontainer/hello-bundle "
            f"--sysv {output}/target/etc/init.d/S95hellocontainer-hello") in " ".join(script.split())


@needs_buildroot
def test_buildroot_arm_core_gives_the_packager_its_architecture_level(tmp_path: Path) -> None:
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_arm_vexpress", FRAGMENT)
    assert printvars(output)["HCTR_PLATFORM_OPTS"].split() == [
        "--arch", "'arm'", "--tune", "'armv7A'"]
    # And the package's build step (its post-build hook), as Buildroot expands it, hands
    # them to the packager.
    script = " ".join(printvars(output, ("HELLOCONTAINER_HELLO_BUILD_IMAGE",))[
        "HELLOCONTAINER_HELLO_BUILD_IMAGE"].split())
    assert re.search(r"/host/bin/hellocontainer build /usr/bin/hello .*"
                     r"--arch 'arm' --tune 'armv7A' ", script), script


# Toolchains whose C library reaches the SBOM: (defconfig lines, libc package prefix, SPDX name).
# Buildroot's own toolchains give the library's version, license and CPE; an external one
# only its name. Buildroot configures each offline; nothing is downloaded or built.
SBOM_TOOLCHAINS = {
    "buildroot-glibc": ("BR2_TOOLCHAIN_BUILDROOT_GLIBC=y\n", "GLIBC", "glibc"),
    "buildroot-musl": ("BR2_TOOLCHAIN_BUILDROOT_MUSL=y\n", "MUSL", "musl"),
    "buildroot-uclibc": ("BR2_TOOLCHAIN_BUILDROOT_UCLIBC=y\n", "UCLIBC", "uclibc-ng"),
    "external-musl": ("BR2_TOOLCHAIN_EXTERNAL=y\nBR2_TOOLCHAIN_EXTERNAL_BOOTLIN=y\n"
                      "BR2_TOOLCHAIN_EXTERNAL_BOOTLIN_X86_64_MUSL_STABLE=y\n", None, "musl"),
}


def libc_mk_version(prefix: str) -> str:
    """<PREFIX>_VERSION as the libc package's .mk file in the checkout writes it."""
    name = {"GLIBC": "glibc", "MUSL": "musl", "UCLIBC": "uclibc"}[prefix]
    text = (Path(BUILDROOT_DIR) / "package" / name / f"{name}.mk").read_text()
    return re.search(rf"^{prefix}_VERSION = (\S+)$", text, re.MULTILINE).group(1)


@pytest.fixture(scope="module", params=sorted(SBOM_TOOLCHAINS))
def sbom_configured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    hello_static: Path) -> tuple[str, dict[str, str], dict]:
    """(toolchain, Buildroot's variables, the SPDX document) for our x86_64 defconfig with the
    SBOM on: the SBOM options exactly as Buildroot expands them for the build step, given to
    the real packager on a prebuilt static hello."""
    if not BUILDROOT_DIR:
        pytest.skip("set HELLOCONTAINER_BUILDROOT_DIR to a Buildroot checkout")
    lines, prefix, _ = SBOM_TOOLCHAINS[request.param]
    work = tmp_path_factory.mktemp(f"sbom-{request.param}")
    output = work / "output"
    merge_defconfig(output, "qemu_x86_64", extra="BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM=y\n"
                    'BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_SUPPLIER="ACME Inc."\n' + lines)
    libc_vars = tuple(f"{prefix}_{v}" for v in ("VERSION", "LICENSE", "CPE_ID")) if prefix else ()
    variables = printvars(output, ("HELLOCONTAINER_HELLO_PACKAGER_OPTS", *libc_vars))
    words = shlex.split(variables["HELLOCONTAINER_HELLO_PACKAGER_OPTS"])
    flags = ("--sbom-package", "--sbom-library", "--sbom-supplier")
    sbom_options = [word for i, word in enumerate(words)
                    if word in (*flags, "--sbom-incomplete") or (i and words[i - 1] in flags)]
    copy = work / "hello.spdx.json"
    run([Path(sys.executable).with_name("hellocontainer"), "build", hello_static,
         "--output", work / "hello-oci", *sbom_options, "--sbom-copy", copy],
        env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH))
    return request.param, variables, json.loads(copy.read_text())


def spdx_package(sbom: dict, spdx_id: str) -> dict:
    return next(p for p in sbom["packages"] if p["SPDXID"] == spdx_id)


@needs_buildroot
def test_buildroot_sbom_names_the_program_with_its_version_and_license(sbom_configured) -> None:
    _, _, sbom = sbom_configured
    program = spdx_package(sbom, "SPDXRef-Package-hellocontainer-hello")
    assert (program["name"], program["versionInfo"], program["licenseDeclared"]) == \
        ("hellocontainer-hello", packager_version(), "MIT")
    # A local site is nowhere to download from; the package sets no _CPE_ID_*.
    assert program["downloadLocation"] == "NOASSERTION"
    assert "externalRefs" not in program


@needs_buildroot
def test_buildroot_sbom_names_the_toolchains_libc(sbom_configured) -> None:
    toolchain, variables, sbom = sbom_configured
    _, prefix, name = SBOM_TOOLCHAINS[toolchain]
    libc = spdx_package(sbom, f"SPDXRef-Library1-{name}")
    assert libc["name"] == name
    if prefix is None:
        # An external toolchain's libc version is in no Buildroot variable: none is claimed.
        assert "versionInfo" not in libc and libc["licenseDeclared"] == "NOASSERTION"
        assert "externalRefs" not in libc
        return
    version = libc_mk_version(prefix)
    assert libc["versionInfo"] == version == variables[f"{prefix}_VERSION"]
    # The CPE Buildroot computes for the package (for glibc: its base version, 2.42).
    (ref,) = libc["externalRefs"]
    assert ref["referenceLocator"] == variables[f"{prefix}_CPE_ID"]
    assert re.fullmatch(rf"cpe:2\.3:a:[^:]+:{re.escape(name)}:{re.escape(version.split('-')[0])}"
                        r":(\*|-)(:\*){6}", ref["referenceLocator"])
    # Every license Buildroot lists is declared: notes in parentheses dropped, free text
    # ("public domain") as a LicenseRef-.
    listed = re.sub(r"\s*\([^)]*\)", "", variables[f"{prefix}_LICENSE"]).split(",")
    expected = [item.strip() if " WITH " in item or " " not in item.strip()
                else "LicenseRef-" + "-".join(item.split()) for item in listed]
    assert libc["licenseDeclared"] == " AND ".join(expected)


def host_tar_overrides() -> list[str]:
    """Buildroot builds its own tar when the build machine's is older than it needs (1.35 in
    2026.02), which takes a download; legal-info only archives our local sources with it, so
    an older GNU tar of the build machine does here (offline)."""
    suitable = run([Path(BUILDROOT_DIR) / "support" / "dependencies" / "check-host-tar.sh",
                    "tar"], check=False).stdout.strip()
    return [] if suitable else ["TAR=tar", "BR2_TAR_HOST_DEPENDENCY="]


@needs_buildroot
def test_buildroot_legal_info_lists_both_packages_with_their_license(tmp_path: Path) -> None:
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64")
    buildroot(output, *host_tar_overrides(),
              "hellocontainer-hello-legal-info", "host-hellocontainer-legal-info")
    legal = output / "legal-info"
    version = packager_version()
    for listing, name, licenses in (("manifest.csv", "hellocontainer-hello", "licenses"),
                                     ("host-manifest.csv", "hellocontainer", "host-licenses")):
        rows = {row[0]: row for row in csv.reader((legal / listing).read_text().splitlines())}
        assert rows[name][1:4] == [version, "MIT", "LICENSE"]
        assert (legal / licenses / f"{name}-{version}" / "LICENSE").read_bytes() == \
            (REPO / "LICENSE").read_bytes()


@needs_buildroot
@pytest.mark.parametrize("per_package", [False, True], ids=["shared", "per-package"])
def test_buildroot_skeleton_gives_the_build_step_the_user_database(
        per_package: bool, tmp_path: Path, hello_static: Path, hellocontainer: Runner) -> None:
    """The skeleton, a dependency of every target package, installs /etc/passwd and /etc/group
    before the build step; with per-package directories they reach the package's own
    TARGET_DIR from the skeleton's at its configure step. Building it needs no download (the
    machine's tar stands in for host-tar, as for legal-info)."""
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64",
                    extra='BR2_PACKAGE_HELLOCONTAINER_HELLO_USER="nobody"\n'
                    + ("BR2_PER_PACKAGE_DIRECTORIES=y\n" if per_package else ""))
    info = json.loads(buildroot(output, "hellocontainer-hello-show-info"))["hellocontainer-hello"]
    assert "skeleton" in info["dependencies"]
    commands = " ".join(printvars(output, ("HELLOCONTAINER_HELLO_BUILD_IMAGE",))
                        ["HELLOCONTAINER_HELLO_BUILD_IMAGE"].split())
    assert f"--passwd-file {output}/target/etc/passwd --group-file {output}/target/etc/group" \
        in commands
    buildroot(output, *host_tar_overrides(), "skeleton")
    target = output / "per-package" / "skeleton" / "target" if per_package else output / "target"
    hellocontainer("build", hello_static, "--output", tmp_path / "hello-oci", "--user", "nobody",
                   "--passwd-file", target / "etc/passwd", "--group-file", target / "etc/group")
    assert image_config(tmp_path / "hello-oci")["config"]["User"] == "65534:65534"


@needs_buildroot
def test_buildroot_goals_that_do_not_build_accept_an_invalid_rootfs_path(tmp_path: Path) -> None:
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64",
                    extra='BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH="usr/../../x"\n')
    saved = tmp_path / "saved_defconfig"
    buildroot(output, "savedefconfig", f"BR2_DEFCONFIG={saved}")
    assert 'BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH="usr/../../x"' in saved.read_text()
    assert "usr/../../x" in buildroot(output, "printvars",
                                      "VARS=HELLOCONTAINER_HELLO_ROOTFS_PATH")
    # A goal that builds still stops, before any work.
    result = subprocess.run(["make", "-s", "--no-print-directory", "-C", BUILDROOT_DIR,
                             f"BR2_EXTERNAL={EXTERNAL}", f"O={output}",
                             "hellocontainer-hello-show-info"],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "is not a directory inside the root filesystem" in result.stderr


@needs_buildroot
def test_check_package_reports_no_warnings() -> None:
    # check-package runs on the python3 of PATH (its shebang), as Buildroot's manual has it.
    python = require_tool("python3", "python3")
    if run([python, "-c", "import magic, flake8"], check=False).returncode != 0:
        pytest.skip(f"utils/check-package needs python-magic and flake8 in {python}: "
                    "pip install python-magic flake8")
    files = sorted(str(p.relative_to(EXTERNAL)) for p in EXTERNAL.rglob("*") if p.is_file())
    result = run([Path(BUILDROOT_DIR) / "utils" / "check-package", "-b", *files], cwd=EXTERNAL)
    # Warnings go to stdout, the totals to stderr.
    assert (result.stdout, result.stderr.splitlines()[-1]) == ("", "0 warnings generated")


def test_host_package_installs_completion_and_manual_page(tmp_path: Path, make_env: dict[str, str]
                                                          ) -> None:
    """The host package's post-install hook, run by make as Buildroot runs it, leaves the bash
    and zsh completions and hellocontainer.1 where host packages keep them."""
    host = package_host(tmp_path)
    buildroot_make("all:\n\t$(HOST_HELLOCONTAINER_INSTALL_SHELL_FILES)\n", tmp_path, host, make_env,
                   "INSTALL=install", f"CONFIG={write_config(tmp_path / '.config', {})}")
    share = host / "share"
    assert "complete " in (share / "bash-completion" / "completions" / "hellocontainer").read_text()
    assert (share / "zsh" / "site-functions" / "_hellocontainer").read_text().startswith("#compdef")
    assert (share / "man" / "man1" / "hellocontainer.1").read_text().startswith(".\\\"")


# --- CycloneDX: our SBOM joined into Buildroot's utils/generate-cyclonedx -------------------

JOIN = EXTERNAL / "support" / "join-cyclonedx.jq"


def cyclonedx_problems(document: dict) -> list[str]:
    """cyclonedx-python-lib's strict JSON Schema validator (CycloneDX 1.6): its errors."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document),
                                                                  all_errors=True)
    return [str(e) for e in errors or []]


def dangling_refs(document: dict) -> set[str]:
    """Every bom-ref a dependency names that no component (nor the BOM's subject) defines."""
    defined = {c["bom-ref"] for c in document["components"]}
    defined.add(document["metadata"]["component"]["bom-ref"])
    named = {d["ref"] for d in document["dependencies"]}
    named.update(ref for d in document["dependencies"] for ref in d.get("dependsOn", []))
    return named - defined


@pytest.fixture(scope="module", params=["buildroot-glibc", "external-musl"])
def joined_cyclonedx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                     hello_static: Path) -> tuple[str, dict, dict, str]:
    """(toolchain, Buildroot's own CycloneDX SBOM, the joined one, our image's manifest digest)
    for our x86_64 defconfig with the CycloneDX option: `make show-info |
    utils/generate-cyclonedx` (offline after the defconfig), our SBOM from the options
    Buildroot expands for the build step, and the README's jq join."""
    if not BUILDROOT_DIR:
        pytest.skip("set HELLOCONTAINER_BUILDROOT_DIR to a Buildroot checkout")
    jq = require_tool("jq", "jq")
    lines = SBOM_TOOLCHAINS[request.param][0]
    work = tmp_path_factory.mktemp(f"cyclonedx-{request.param}")
    output = work / "output"
    merge_defconfig(output, "qemu_x86_64", extra="BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM=y\n"
                    'BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_SUPPLIER="ACME Inc."\n'
                    "BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_CYCLONEDX=y\n" + lines)
    # generate-cyclonedx reads CycloneDX's list of SPDX license ids from BR2_DL_DIR, and
    # downloads it when missing: the copy cyclonedx-python-lib ships is that file.
    import cyclonedx.schema

    downloads = work / "dl" / "cyclonedx"
    downloads.mkdir(parents=True)
    shutil.copy(Path(cyclonedx.schema.__file__).parent / "_res" / "spdx.SNAPSHOT.schema.json",
                downloads / "spdx-1.6.schema.json")
    info = buildroot(output, "show-info")
    theirs = run([sys.executable, Path(BUILDROOT_DIR) / "utils" / "generate-cyclonedx"],
                 input=info, env=dict(os.environ, BR2_DL_DIR=str(work / "dl"))).stdout
    (work / "buildroot.cdx.json").write_text(theirs)
    words = shlex.split(printvars(output, ("HELLOCONTAINER_HELLO_PACKAGER_OPTS",))
                        ["HELLOCONTAINER_HELLO_PACKAGER_OPTS"])
    flags = ("--sbom-package", "--sbom-library", "--sbom-supplier", "--sbom-format")
    options = [word for i, word in enumerate(words)
               if word in (*flags, "--sbom-incomplete") or (i and words[i - 1] in flags)]
    assert options.count("--sbom-format") == 2, words
    run([Path(sys.executable).with_name("hellocontainer"), "build", hello_static,
         "--output", work / "hello-oci", *options, "--sbom-copy", work / "hello.spdx.json",
         "--sbom-copy", work / "hello.cdx.json"], env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH))
    joined = run([jq, "-s", "-f", JOIN, work / "buildroot.cdx.json", work / "hello.cdx.json"]).stdout
    (work / "joined.cdx.json").write_text(joined)
    digest = manifest_digest(work / "hello-oci")
    return request.param, json.loads(theirs), json.loads(joined), digest


def manifest_digest(layout: Path) -> str:
    """The image manifest's digest in a one-tag layout whose tag names an index (the SBOM's)."""
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    index = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    return next(m["digest"] for m in index["manifests"]
                if m.get("platform", {}).get("os") != "unknown")


@needs_buildroot
def test_cyclonedx_joins_buildroots_sbom_without_dangling_references(joined_cyclonedx) -> None:
    toolchain, theirs, joined, _ = joined_cyclonedx
    assert dangling_refs(joined) == set()
    assert cyclonedx_problems(theirs) == [] and cyclonedx_problems(joined) == [], toolchain
    refs = [c["bom-ref"] for c in joined["components"]]
    assert len(refs) == len(set(refs))
    # Buildroot's own entry of the package is the one kept: the join adds no second one.
    assert refs.count("hellocontainer-hello") == 1


@needs_buildroot
def test_cyclonedx_walk_from_the_firmware_reaches_the_image_digest_and_back(
        joined_cyclonedx) -> None:
    toolchain, theirs, joined, digest = joined_cyclonedx
    depends = {d["ref"]: d.get("dependsOn", []) for d in joined["dependencies"]}
    components = {c["bom-ref"]: c for c in joined["components"]}
    root = joined["metadata"]["component"]["bom-ref"]
    (image_ref,) = [ref for ref in depends[root] if ref.startswith("pkg:oci/")]
    image = components[image_ref]
    assert image["type"] == "container" and image["version"] == digest
    assert image["hashes"] == [{"alg": "SHA-256", "content": digest.split(":", 1)[1]}]
    # …and back: the image's program is Buildroot's package, which links the C library.
    assert depends[image_ref] == ["hellocontainer-hello"]
    libc = "glibc" if toolchain == "buildroot-glibc" else "musl"
    assert libc in depends["hellocontainer-hello"]
    assert components[libc]["name"] == libc
    if toolchain == "buildroot-glibc":  # Buildroot's own entry, the one ours names
        assert components[libc] == next(c for c in theirs["components"] if c["bom-ref"] == libc)
    else:  # an external toolchain's libc is in no Buildroot entry: ours is added
        assert libc not in {c["bom-ref"] for c in theirs["components"]}


@needs_buildroot
def test_cyclonedx_option_without_a_supplier_stops_the_build_naming_the_option(
        tmp_path: Path) -> None:
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64", extra="BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM=y\n")
    result = subprocess.run(["make", "-s", "--no-print-directory", "-C", BUILDROOT_DIR,
                             f"BR2_EXTERNAL={EXTERNAL}", f"O={output}", "show-info"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_SUPPLIER is empty" in result.stderr
