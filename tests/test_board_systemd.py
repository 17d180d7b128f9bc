"""On a board that boots systemd 252 (Debian 12's, unpacked): the units `autostart --systemd`
writes start the container, and a missing runtime or bundle fails once, with one line and no
restart; a failing container backs off and gives up (tests/board_systemd.py builds the board;
amd64 only: one systemd boot is one to two minutes of emulation).

The board also has Debian 12's podman 4.3, which has no Quadlet: the `autostart --quadlet` file
goes through the Quadlet generator of Debian trixie's podman 5.4 on this machine (as podman's
systemd generator would turn it into a unit at boot), and the unit it makes starts the
container with podman 4.3 on the board. So the generated unit is booted; the generator itself
does not run on the board.

Signed layouts (autostart --runtime podman --verify-key, with Debian's openssl on the board), as
a plain unit and as a Quadlet file: the good layout greets; one with a flipped layer byte prints
one line and is neither started nor restarted (the unit exits 78; Quadlet's ExecCondition= skips).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from board_systemd import enable, systemd_overlay
from test_board_boot import FAILING, _cli, _key_pair
from test_board_podman import POLICY
from test_podman_autostart import quadlet_generator

import board
from conftest import require_tool
from foreign import build_static_hello, cross_compilers

ARCH = "amd64"
GREETING = "Hello container!"
BUNDLE = "/var/lib/hellocontainer/hello"
MISSING_RUNTIME = "/opt/runtime/crun"
MISSING_BUNDLE = "/var/lib/hellocontainer/absent"
LAYOUT = "/usr/share/hellocontainer/hello-oci"
MISSING_LAYOUT = "/usr/share/hellocontainer/absent-oci"
# The failing container's own line, after journald's prefix.
STARTED = re.compile(r"failing started at (\d+(?:\.\d+)?)$", re.MULTILINE)
UNIT_LINE = re.compile(rf"^{re.escape(board.MARK)} unit (?P<unit>\S+) result (?P<result>\S+) "
                       r"restarts (?P<restarts>\d+) exited-us (?P<exited>\d+)$", re.MULTILINE)


def _unit(overlay: Path, name: str, *args: str) -> None:
    unit = f"hellocontainer-{name}.service"
    _cli("autostart", "--name", name, *args,
         "--systemd", overlay / "etc" / "systemd" / "system" / unit)
    enable(overlay, unit)


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> board.BootResult:
    for tool, package in board.host_tools(ARCH):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp("board-systemd")
    hello = build_static_hello(cross_compilers()[ARCH], work)
    overlay = work / "overlay"
    systemd_overlay(ARCH, overlay)
    _cli("build", hello, "--output", work / "layout", "--tag", "latest")
    _cli("bundle", f"{work / 'layout'}:latest", "--output", overlay / BUNDLE.lstrip("/"))
    _unit(overlay, "hello", "--bundle", BUNDLE)
    # The default policy, on-failure: a part that is missing must still not restart.
    _unit(overlay, "noruntime", "--bundle", BUNDLE, "--runtime-path", MISSING_RUNTIME)
    _unit(overlay, "nobundle", "--bundle", MISSING_BUNDLE)
    _failing_unit(overlay, work)
    _quadlet_units(overlay, work)
    require_tool("openssl", "openssl")  # the keys of the signed layouts
    _signed_podman_units(hello, overlay, work)
    initramfs = board.build_initramfs(ARCH, overlay, work / "initramfs.cpio",
                                      ("crun", "podman", "openssl"))
    return board.boot_initramfs(ARCH, initramfs, timeout=600, memory_mib=768)


def _failing_unit(overlay: Path, work: Path) -> None:
    """hellocontainer-failing.service: BusyBox in the bundle says when it starts, then exits 1."""
    failing = overlay / "var/lib/hellocontainer/failing"
    _cli("bundle", f"{work / 'layout'}:latest", "--output", failing)
    shutil.copy(board.busybox(ARCH), failing / "rootfs" / "busybox")
    config = json.loads((failing / "config.json").read_text())
    config["process"]["args"] = ["/busybox", "sh", "-c", FAILING]
    (failing / "config.json").write_text(json.dumps(config))
    _unit(overlay, "failing", "--bundle", "/var/lib/hellocontainer/failing",
          "--restart-max-delay", "16", "--give-up-after", "5")


def _quadlet_units(overlay: Path, work: Path) -> None:
    """What trixie's Quadlet generator makes of our files: hellocontainer-podman.service, and
    hellocontainer-podmanmissing.service, whose layout is not on the board."""
    shutil.copytree(work / "layout", overlay / LAYOUT.lstrip("/"))
    (overlay / "etc" / "containers").mkdir(parents=True, exist_ok=True)
    (overlay / "etc" / "containers" / "policy.json").write_text(POLICY)
    sources = work / "quadlet"
    for name, layout in (("podman", LAYOUT), ("podmanmissing", MISSING_LAYOUT)):
        _cli("autostart", "--runtime", "podman", "--name", name, "--layout", f"{layout}:latest",
             "--quadlet", sources / f"hellocontainer-{name}.container")
    units = work / "quadlet-units"
    units.mkdir()
    generated = subprocess.run([str(quadlet_generator()), str(units)], capture_output=True,
                               text=True, env={**os.environ, "QUADLET_UNIT_DIRS": str(sources)})
    assert generated.returncode == 0, generated.stderr
    for name in ("podman", "podmanmissing"):
        unit = f"hellocontainer-{name}.service"
        shutil.copy(units / unit, overlay / "etc" / "systemd" / "system" / unit)
        enable(overlay, unit)


VERIFY_KEY = "/etc/hellocontainer/keys/hello.pub"
SIGNED = "/data/hellocontainer"  # the signed layouts, one folder each
SIGNED_UNITS = ("podsigned", "podflipped", "quadsigned", "quadflipped")  # quad*: Quadlet files


def _signed_podman_units(hello: Path, overlay: Path, work: Path) -> None:
    """A signed layout for each of SIGNED_UNITS, the *flipped ones with a layer byte flipped,
    started by a unit (pod*) or by the unit Quadlet makes of our file (quad*)."""
    private, public = _key_pair(work, "signing")
    (overlay / VERIFY_KEY.lstrip("/")).parent.mkdir(parents=True)
    shutil.copyfile(public, overlay / VERIFY_KEY.lstrip("/"))
    sources = work / "quadlet-signed"
    for name in SIGNED_UNITS:
        layout = overlay / SIGNED.lstrip("/") / name
        _cli("build", hello, "--output", layout, "--tag", "latest",
             "--sign-key", private)
        if name.endswith("flipped"):
            layer = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
            data = bytearray(layer.read_bytes())
            data[len(data) // 2] ^= 0x01
            layer.write_bytes(bytes(data))
            FLIPPED[name] = layer.name
        args = ("--runtime", "podman", "--layout", f"{SIGNED}/{name}:latest",
                "--verify-key", VERIFY_KEY)
        if name.startswith("pod"):
            _unit(overlay, name, *args)
        else:
            _cli("autostart", "--name", name, *args,
                 "--quadlet", sources / f"hellocontainer-{name}.container")
    units = work / "quadlet-signed-units"
    units.mkdir()
    generated = subprocess.run([str(quadlet_generator()), str(units)], capture_output=True,
                               text=True, env={**os.environ, "QUADLET_UNIT_DIRS": str(sources)})
    assert generated.returncode == 0, generated.stderr
    for name in SIGNED_UNITS:
        if name.startswith("quad"):
            unit = f"hellocontainer-{name}.service"
            shutil.copy(units / unit, overlay / "etc" / "systemd" / "system" / unit)
            enable(overlay, unit)


FLIPPED: dict[str, str] = {}  # unit name -> the layer digest flipped in its layout


def _units(booted: board.BootResult) -> dict[str, dict[str, str]]:
    return {m["unit"]: m.groupdict() for m in UNIT_LINE.finditer(booted.console)}


def test_systemd_board_powers_off_after_the_units_settle(booted: board.BootResult) -> None:
    assert not booted.timed_out and booted.powered_off, booted.console
    assert set(_units(booted)) == {"hellocontainer-hello.service", "hellocontainer-failing.service",
                                   "hellocontainer-podman.service",
                                   "hellocontainer-podmanmissing.service",
                                   "hellocontainer-noruntime.service",
                                   "hellocontainer-nobundle.service",
                                   *(f"hellocontainer-{name}.service" for name in SIGNED_UNITS)
                                   }, booted.console


def test_unit_starts_the_container_under_systemd(booted: board.BootResult) -> None:
    # journald's prefix names the process: the unit's shell exec'd crun (and podsigned's,
    # podman: two greetings, each unit's once).
    assert len(re.findall(rf"\bsh\[\d+\]: {GREETING}$", booted.console, re.MULTILINE)) == 2, \
        booted.console
    assert "hellocontainer: hello exited 0" in booted.console, booted.console
    hello = _units(booted)["hellocontainer-hello.service"]
    assert (hello["result"], hello["restarts"]) == ("success", "0"), booted.console


@pytest.mark.parametrize("unit,line", [
    ("noruntime", f"hellocontainer: {MISSING_RUNTIME} not found; install crun"),
    ("nobundle", f"hellocontainer: {MISSING_BUNDLE}/config.json not found; the runtime bundle "
                 "is not installed"),
])
def test_missing_part_fails_once_under_systemd(unit: str, line: str,
                                               booted: board.BootResult) -> None:
    ours = [text for text in booted.console.splitlines() if line in text]
    assert len(ours) == 1, booted.console
    state = _units(booted)[f"hellocontainer-{unit}.service"]
    assert (state["result"], state["restarts"]) == ("exit-code", "0"), booted.console


def test_failing_unit_backs_off_then_gives_up_under_systemd(booted: board.BootResult) -> None:
    # journald puts "[uptime] sh[pid]: " before each line on the console.
    ours = re.findall(r"(hellocontainer: failing .*)$", booted.console, re.MULTILINE)
    assert ours == ["hellocontainer: failing exited 1, restarting in 1 s",
                    "hellocontainer: failing exited 1, restarting in 2 s",
                    "hellocontainer: failing exited 1, restarting in 4 s",
                    "hellocontainer: failing exited 1, restarting in 8 s",
                    "hellocontainer: failing exited 1, 5 times in a row; not restarting it"
                    ], booted.console
    starts = [float(up) for up in STARTED.findall(booted.console)]
    assert len(starts) == 5, booted.console
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # Each restart cycle under systemd costs several seconds of emulation by itself (the unit's
    # shells, crun, while the rest of the boot runs), and that share varies by seconds (seen:
    # 7.4, 4.7, 7.2 and 10.9 s for waits of 1, 2, 4 and 8 s): the waits show as each gap at
    # least its wait, and the last gap (8 s wait) above the first (1 s).
    assert [gap >= wait for gap, wait in zip(gaps, (1, 2, 4, 8))] == [True] * 4, gaps
    assert gaps[-1] > gaps[0], gaps
    # systemd restarted the unit 5 times: the 5th start is the one that gives up (exit 78).
    state = _units(booted)["hellocontainer-failing.service"]
    assert state["restarts"] == "5", booted.console


def test_quadlet_unit_starts_the_container_with_podman(booted: board.BootResult) -> None:
    # SyslogIdentifier=%N: the container's own output, passed through, under the unit's name.
    assert len(re.findall(rf"hellocontainer-podman\[\d+\]: {GREETING}$", booted.console,
                          re.MULTILINE)) == 1, booted.console
    state = _units(booted)["hellocontainer-podman.service"]
    assert (state["result"], state["restarts"]) == ("success", "0"), booted.console
    # Nothing of podman's own on the console: no copy progress, no warnings.
    assert not re.search(r"Copying|Writing manifest|Storing signatures|level=", booted.console), \
        booted.console


def test_quadlet_unit_with_a_missing_layout_is_skipped_once(booted: board.BootResult) -> None:
    line = (f"hellocontainer: {MISSING_LAYOUT}/index.json not found; the image layout is not "
            "installed")
    assert len([text for text in booted.console.splitlines() if line in text]) == 1, \
        booted.console
    state = _units(booted)["hellocontainer-podmanmissing.service"]
    assert (state["result"], state["restarts"]) == ("exec-condition", "0"), booted.console


@pytest.mark.parametrize("name", ["podsigned", "quadsigned"])
def test_signed_layout_is_checked_then_podman_runs_it_under_systemd(
        name: str, booted: board.BootResult) -> None:
    # The unit's shell exec's podman: its greeting is sh[pid]'s, counted with hello's by
    # test_unit_starts_the_container_under_systemd. Quadlet's unit is named after itself.
    if name.startswith("quad"):
        assert len(re.findall(rf"hellocontainer-{name}\[\d+\]: {GREETING}$", booted.console,
                              re.MULTILINE)) == 1, booted.console
    assert "signature check failed" not in "".join(
        line for line in booted.console.splitlines() if f" {name}:" in line), booted.console
    state = _units(booted)[f"hellocontainer-{name}.service"]
    assert (state["result"], state["restarts"]) == ("success", "0"), booted.console


@pytest.mark.parametrize("name,result", [("podflipped", "exit-code"),
                                         ("quadflipped", "exec-condition")])
def test_tampered_layout_prints_one_line_and_never_starts_under_systemd(
        name: str, result: str, booted: board.BootResult) -> None:
    line = (f"hellocontainer: {name}: signature check failed: blobs/sha256/{FLIPPED[name]} was "
            "changed after signing")
    assert len([text for text in booted.console.splitlines() if text.endswith(line)]) == 1, \
        booted.console
    state = _units(booted)[f"hellocontainer-{name}.service"]
    assert (state["result"], state["restarts"]) == (result, "0"), booted.console
