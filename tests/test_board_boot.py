"""On the board: Debian's kernel boots, BusyBox init runs our init scripts, the container greets.

Each architecture boots once (a module-scoped fixture; tests/board.py builds the board). Its root
file system holds what a Buildroot or Yocto build would put there, made by the packager's own
commands: the image built for the board (`hellocontainer build`), its runtime bundle
(`hellocontainer bundle`), one of the other architecture, and init scripts written by
`hellocontainer autostart`: crun from a Buildroot-style /etc/init.d/S50hello, runc from a
Yocto-style /etc/rc5.d link, and two that must fail where a person reading the console sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import board
from conftest import require_tool
from foreign import build_static_hello, cross_compilers

ARCHES = ("amd64", "arm64")
OTHER = {"amd64": "arm64", "arm64": "amd64"}
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


def _overlay(arch: str, hellos: dict[str, Path], work: Path) -> Path:
    overlay = work / "overlay"
    _bundle(hellos[arch], work, f"{BUNDLES}/hello", overlay)
    _bundle(hellos[OTHER[arch]], work, f"{BUNDLES}/foreign", overlay)
    # Buildroot's convention: /etc/init.d/S??name, run by rcS in name order.
    _autostart(overlay, "/etc/init.d/S50hello", "--runtime", "crun", "--name", "hello",
               "--bundle", f"{BUNDLES}/hello")
    # Yocto's (update-rc.d): the script in /etc/init.d, started through a runlevel 5 link.
    _autostart(overlay, "/etc/init.d/hello-runc", "--runtime", "runc", "--name", "hello-runc",
               "--bundle", f"{BUNDLES}/hello")
    (overlay / "etc/rc5.d").mkdir(parents=True)
    (overlay / "etc/rc5.d/S55hello-runc").symlink_to("../init.d/hello-runc")
    # --restart no: a container that cannot start must not be restarted while the board waits.
    _autostart(overlay, "/etc/init.d/S60foreign", "--runtime", "crun", "--name", "foreign",
               "--bundle", f"{BUNDLES}/foreign", "--restart", "no")
    _autostart(overlay, "/etc/init.d/S70noruntime", "--runtime", "crun", "--name", "noruntime",
               "--runtime-path", MISSING_RUNTIME, "--bundle", f"{BUNDLES}/hello",
               "--restart", "no")
    return overlay


@pytest.fixture(scope="module")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/hello, static, for each board architecture."""
    out = tmp_path_factory.mktemp("hellos")
    return {arch: build_static_hello(cross_compilers()[arch], out) for arch in ARCHES}


@pytest.fixture(scope="module", params=ARCHES)
def booted(request: pytest.FixtureRequest, hellos: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> board.BootResult:
    """One boot of the board for `arch`, with crun and runc installed, all scripts in place."""
    arch = request.param
    for tool, package in board.host_tools(arch):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp(f"board-{arch}")
    overlay = _overlay(arch, hellos, work)
    initramfs = board.build_initramfs(arch, overlay, work / "initramfs.cpio", ("crun", "runc"))
    return board.boot_initramfs(arch, initramfs)


def test_board_boots_and_powers_off_after_its_init_scripts(booted: board.BootResult) -> None:
    assert not booted.timed_out, f"the board did not power off in time; console:\n{booted.console}"
    assert booted.powered_off and booted.returncode == 0, booted.console


def test_init_script_starts_container_with_crun_at_boot(booted: board.BootResult) -> None:
    run = booted.script("S50hello")
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: hello exited 0" in run.output, booted.console


def test_yocto_runlevel_link_starts_container_with_runc_at_boot(booted: board.BootResult) -> None:
    run = booted.script("S55hello-runc")
    assert run.path == "/etc/rc5.d/S55hello-runc"
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: hello-runc exited 0" in run.output, booted.console


def test_bundle_of_other_architecture_fails_on_the_console(booted: board.BootResult) -> None:
    run = booted.script("S60foreign")
    assert GREETING not in run.output, booted.console
    assert "exec format error" in run.output.lower(), booted.console
    exits = [line for line in run.output.splitlines() if line.startswith("hellocontainer: foreign exited ")]
    assert len(exits) == 1 and not exits[0].endswith(" exited 0"), booted.console


def test_missing_runtime_is_named_on_the_console(booted: board.BootResult) -> None:
    run = booted.script("S70noruntime")
    assert run.status not in (0, None), booted.console
    assert f"{MISSING_RUNTIME} not found" in run.output, booted.console
    assert GREETING not in run.output, booted.console
