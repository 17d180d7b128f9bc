"""On the board: Debian's kernel boots, BusyBox init runs our init scripts, the container greets.

Each architecture boots once (a module-scoped fixture; tests/board.py builds the board). Its root
file system holds exactly what our build systems install, made by their own code paths:

- Buildroot: the hellocontainer-hello package with autostart (crun), through the real
  external.mk run by plain make (`buildroot_target_overlay`): the bundle and
  /etc/init.d/S95hellocontainer-hello;
- Yocto: the class's own install step run on a datastore (`yocto_oci_files`) with
  HELLOCONTAINER_AUTOSTART = "runc": the ${PN}-oci package's bundle and SysV script, started
  through the rc5.d link update-rc.d makes at rootfs time;

plus two negative controls that must fail where a person reading the console sees it: the
bundle of the other architecture, and a runtime that is not on the board; and a container that
keeps failing, whose restarts back off and give up. And signed bundles (autostart --verify-key,
with Debian's openssl on the board): the public key on the root, the bundles in a data folder;
the good one greets, and a flipped program byte, a changed config.json, another key's signature
and no signature each print one line and never start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import board
from conftest import require_tool
from foreign import build_static_hello, cross_compilers
from test_buildroot_external import buildroot_target_overlay
from yocto_class import update_rc_links, yocto_oci_files

ARCHES = ("amd64", "arm64", "armhf")
OTHER = {"amd64": "arm64", "arm64": "amd64", "armhf": "amd64"}
# The cross compiler's platform (tests/foreign.py) for each board: armhf is ARMv7-A.
PLATFORM = {"amd64": "amd64", "arm64": "arm64", "armhf": "arm/v7"}
BUNDLES = "/var/lib/hellocontainer"  # where the bundles are on the board
GREETING = "Hello container!"
MISSING_RUNTIME = "/opt/runtime/crun"  # a --runtime-path the board does not have


def _cli(*args: str | os.PathLike[str]) -> None:
    """Run the packager's CLI as a build system would; any failure fails the fixture loudly."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    result = subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise AssertionError(f"hellocontainer {' '.join(map(str, args))} exited "
                             f"{result.returncode}:\n{result.stdout}{result.stderr}")


def _bundle(hello: Path, work: Path, board_path: str, overlay: Path) -> None:
    """The image of `hello` as a runtime bundle at `board_path` in the board's root."""
    layout = work / f"layout-{hello.name}"
    _cli("build", hello, "--output", layout, "--tag", "latest")
    _cli("bundle", f"{layout}:latest", "--output", overlay / board_path.lstrip("/"))


def _autostart(overlay: Path, script: str, *args: str) -> None:
    """An init script from `hellocontainer autostart`, at `script` in the board's root."""
    _cli("autostart", *args, "--sysv", overlay / script.lstrip("/"))


BUILDROOT_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "arm"}  # BR2_ARCH, TARGET_ARCH
# What else a Buildroot .config says for the architecture.
BUILDROOT_SYMBOLS = {"armhf": {"BR2_ARM_CPU_ARMV7A": "y"}}
BUILDROOT_SCRIPT = "S95hellocontainer-hello"
YOCTO_SCRIPT = "S95hellocontainer-hello-container"


def _merge_into(overlay: Path, tree: Path) -> None:
    """Lay `tree` over `overlay`, keeping symbolic links as links (rc.d links, rootfs links)."""
    shutil.copytree(tree, overlay, symlinks=True, dirs_exist_ok=True)


def _overlay(arch: str, hellos: dict[str, Path], work: Path) -> Path:
    overlay = work / "overlay"
    overlay.mkdir()
    # What Buildroot's package installs, by its own .mk commands.
    _merge_into(overlay, buildroot_target_overlay(work / "buildroot", hellos[arch],
                                                  BUILDROOT_ARCH[arch], runtime="crun",
                                                  init="busybox",
                                                  **BUILDROOT_SYMBOLS.get(arch, {})))
    # What the Yocto class's ${PN}-oci holds, by the class's own functions, plus the links
    # update-rc.d makes from its INITSCRIPT_PARAMS when the image's root is assembled.
    image = yocto_oci_files(work / "yocto", hellos[arch], BUILDROOT_ARCH[arch],
                            PN="hello-container", HELLOCONTAINER_AUTOSTART="runc")
    update_rc_links(image, "hellocontainer-hello-container")
    (image / "usr" / "bin" / "hello").unlink()  # ${PN}'s, not ${PN}-oci's
    _merge_into(overlay, image)
    # The negative controls, by the packager's commands directly.
    _bundle(hellos[OTHER[arch]], work, f"{BUNDLES}/foreign", overlay)
    # --restart no: a container that cannot start must not be restarted while the board waits.
    _autostart(overlay, "/etc/init.d/S60foreign", "--runtime", "crun", "--name", "foreign",
               "--bundle", f"{BUNDLES}/foreign", "--restart", "no")
    _autostart(overlay, "/etc/init.d/S70noruntime", "--runtime", "crun", "--name", "noruntime",
               "--runtime-path", MISSING_RUNTIME, "--bundle", f"{BUNDLES}/foreign",
               "--restart", "no")
    _failing(arch, hellos, work, overlay)
    _signed_overlay(hellos[arch], work, overlay)
    return overlay


# The failing container says when it starts (guest uptime) and exits 1: the console shows the
# gaps between starts growing, 1 s, 2 s, 4 s, before the script gives up after 4 exits. The cap,
# 8 s, is well above how long a start takes under TCG (up to 3 s): a run as long as the cap
# would start the backoff again.
FAILING = 'read -r up _ < /proc/uptime; echo "failing started at $up"; exit 1'
FAILING_START = re.compile(r"^failing started at (\d+(?:\.\d+)?)$", re.MULTILINE)


def _failing(arch: str, hellos: dict[str, Path], work: Path, overlay: Path) -> None:
    """/etc/init.d/S65failing: the bundle's program is the board's BusyBox running FAILING."""
    failing = overlay / BUNDLES.lstrip("/") / "failing"
    _bundle(hellos[arch], work, f"{BUNDLES}/failing", overlay)
    shutil.copy(board.busybox(arch), failing / "rootfs" / "busybox")
    config = json.loads((failing / "config.json").read_text())
    config["process"]["args"] = ["/busybox", "sh", "-c", FAILING]
    (failing / "config.json").write_text(json.dumps(config))
    _autostart(overlay, "/etc/init.d/S65failing", "--runtime", "crun", "--name", "failing",
               "--bundle", f"{BUNDLES}/failing", "--restart-max-delay", "8",
               "--give-up-after", "4")


# Signed bundles (autostart --verify-key): the public key on the root, the bundles in a data
# folder of their own, as an update tool would write them. Each starts with the default restart
# policy, so a refused one shows that it is not retried either.
VERIFY_KEY = "/etc/hellocontainer/keys/hello.pub"
DATA = "/data/hellocontainer"
SIGNED_CASES = {  # init script -> what is wrong with its bundle
    "S80signed": None,
    "S81flipped": "a byte of the program flipped",
    "S82config": "config.json changed",
    "S83otherkey": "signed by another key",
    "S84unsigned": "not signed",
}


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", private], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True,
                   capture_output=True)
    return private, public


def _signed_overlay(hello: Path, work: Path, overlay: Path) -> None:
    keys = work / "keys"
    keys.mkdir()
    private, public = _key_pair(keys, "hello")
    other, _ = _key_pair(keys, "other")
    (overlay / VERIFY_KEY.lstrip("/")).parent.mkdir(parents=True)
    shutil.copyfile(public, overlay / VERIFY_KEY.lstrip("/"))
    layout = work / "layout-signed"
    _cli("build", hello, "--output", layout, "--tag", "latest")
    for script, wrong in SIGNED_CASES.items():
        name = script[3:]
        bundle = overlay / DATA.lstrip("/") / name
        key = [] if wrong == "not signed" else [
            "--sign-key", other if wrong == "signed by another key" else private]
        _cli("bundle", f"{layout}:latest", "--output", bundle, *key)
        if wrong == "a byte of the program flipped":
            program = bundle / "rootfs" / hello.name
            data = bytearray(program.read_bytes())
            data[len(data) // 2] ^= 0x01
            program.write_bytes(bytes(data))
        elif wrong == "config.json changed":
            config = json.loads((bundle / "config.json").read_text())
            config["process"]["env"].append("EVIL=1")
            (bundle / "config.json").write_text(json.dumps(config))
        _autostart(overlay, f"/etc/init.d/{script}", "--runtime", "crun", "--name", name,
                   "--bundle", f"{DATA}/{name}", "--verify-key", VERIFY_KEY)


@pytest.fixture(scope="module")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/hello, static, for each board architecture."""
    out = tmp_path_factory.mktemp("hellos")
    return {arch: build_static_hello(cross_compilers()[PLATFORM[arch]], out) for arch in ARCHES}


@pytest.fixture(scope="module", params=ARCHES)
def booted(request: pytest.FixtureRequest, hellos: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> board.BootResult:
    """One boot of the board for `arch`, with crun and runc installed, all scripts in place."""
    arch = request.param
    for tool, package in board.host_tools(arch):
        require_tool(tool, package)
    require_tool("openssl", "openssl")  # the keys of the signed bundles
    work = tmp_path_factory.mktemp(f"board-{arch}")
    overlay = _overlay(arch, hellos, work)
    initramfs = board.build_initramfs(arch, overlay, work / "initramfs.cpio",
                                      ("crun", "runc", "openssl"))
    return board.boot_initramfs(arch, initramfs)


def test_board_boots_and_powers_off_after_its_init_scripts(booted: board.BootResult) -> None:
    assert not booted.timed_out, f"the board did not power off in time; console:\n{booted.console}"
    assert booted.powered_off and booted.returncode == 0, booted.console


def test_buildroot_package_starts_container_with_crun_at_boot(booted: board.BootResult) -> None:
    run = booted.script(BUILDROOT_SCRIPT)
    assert run.path == f"/etc/init.d/{BUILDROOT_SCRIPT}"
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: hello exited 0" in run.output, booted.console


def test_yocto_class_starts_container_with_runc_at_boot(booted: board.BootResult) -> None:
    run = booted.script(YOCTO_SCRIPT)
    assert run.path == f"/etc/rc5.d/{YOCTO_SCRIPT}"
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: hello-container exited 0" in run.output, booted.console


def test_bundle_of_other_architecture_fails_once_before_it_starts(booted: board.BootResult,
                                                                  request: pytest.FixtureRequest
                                                                  ) -> None:
    run = booted.script("S60foreign")
    assert run.status not in (0, None), booted.console
    assert GREETING not in run.output, booted.console
    names = {"amd64": "x86-64", "arm64": "aarch64", "armhf": "arm"}
    arch = request.node.callspec.params["booted"]
    assert re.search(rf"^hellocontainer: {BUNDLES}/foreign/rootfs/\S+ is a program for "
                     rf"{names[OTHER[arch]]}, and this board runs {names[arch]}: ",
                     run.output, re.MULTILINE), booted.console
    assert "Starting foreign: FAIL" in run.output, booted.console
    assert " exited " not in run.output, booted.console


def test_failing_container_backs_off_then_gives_up(booted: board.BootResult) -> None:
    run = booted.script("S65failing")
    assert run.status == 0 and run.ended is not None, booted.console
    ours = [line for line in run.output.splitlines() if line.startswith("hellocontainer: ")]
    assert ours == ["hellocontainer: failing exited 1, restarting in 1 s",
                    "hellocontainer: failing exited 1, restarting in 2 s",
                    "hellocontainer: failing exited 1, restarting in 4 s",
                    "hellocontainer: failing exited 1, 4 times in a row; not restarting it"
                    ], booted.console
    # Four starts on the guest's clock, each wait longer than the one before: 1, 2, 4 s plus
    # the start's own time.
    starts = [float(up) for up in FAILING_START.findall(run.output)]
    assert len(starts) == 4, booted.console
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert [round(gap) >= wait for gap, wait in zip(gaps, (1, 2, 4))] == [True] * 3, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_missing_runtime_is_named_on_the_console(booted: board.BootResult) -> None:
    run = booted.script("S70noruntime")
    assert run.status not in (0, None), booted.console
    assert f"{MISSING_RUNTIME} not found" in run.output, booted.console
    assert GREETING not in run.output, booted.console


def test_signed_bundle_is_checked_then_starts_from_its_copy(booted: board.BootResult) -> None:
    run = booted.script("S80signed")
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: signed exited 0" in run.output, booted.console
    assert "signature check failed" not in run.output, booted.console


@pytest.mark.parametrize("script,reason", [
    ("S81flipped", r"rootfs/hello-\S+ was changed after signing"),
    ("S82config", r"config\.json was changed after signing"),
    ("S83otherkey", re.escape(f"the signature is not from the key {VERIFY_KEY}")),
    ("S84unsigned", re.escape(f"{DATA}/unsigned is not signed (hellocontainer.payload not "
                              "found)")),
])
def test_tampered_or_unsigned_bundle_prints_one_line_and_never_starts(
        script: str, reason: str, booted: board.BootResult) -> None:
    board.assert_refused_once(booted, script, reason, GREETING)
