"""podman on a board whose root file system is read-only: the container starts and greets.

podman's defaults keep images in /var/lib/containers with the overlay driver, which fails on a
read-only root ("mkdir /var/lib/containers: read-only file system") and on a tmpfs root. The
boards here (amd64, arm64 and armhf; tests/board.py) have Debian 12's podman, conmon and crun and
the libraries they load, the hellocontainer-hello Buildroot package with autostart by podman (its
own .mk commands: the layout and /etc/init.d/S95hellocontainer-hello), the policy.json every
podman package installs, and a first init script that remounts the root read-only before any
container starts.

Signed layouts (autostart --runtime podman --verify-key, with Debian's openssl on the board) boot
in the same board: the public key on the read-only root, the layouts in a data folder; the good
one greets, and a flipped layer byte, another key's signature and no signature each print one
line and never start.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_board_boot import (
    BUILDROOT_ARCH,
    BUILDROOT_SYMBOLS,
    PLATFORM,
    _autostart,
    _cli,
    _key_pair,
)

import board
from conftest import require_tool
from foreign import build_static_hello, cross_compilers
from test_buildroot_external import buildroot_target_overlay

# The boards (Debian architectures): each as the bundle boards build it (tests/test_board_boot.py)
ARCHES = ("amd64", "arm64", "armhf")
GREETING = "Hello container!"
SCRIPT = "S95hellocontainer-hello"

# What a board's /etc/containers/policy.json says when it does not verify signatures (podman's
# packages install this one): podman refuses to copy any image without a policy.
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'

# Runs before every other init script: from here on nothing may write to the root.
READ_ONLY = """#!/bin/sh
mount -o remount,ro /
if touch /var/probe 2>/dev/null; then
	echo "root is writable"
else
	echo "root is read-only"
fi
"""


# Signed layouts: the key on the root, each layout in a folder of its own under DATA, as an
# update tool would write them; each with the default restart policy, so a refused one shows
# that it is not retried either.
VERIFY_KEY = "/etc/hellocontainer/keys/hello.pub"
DATA = "/data/hellocontainer"
SIGNED_CASES = {  # init script -> what is wrong with its layout
    "S80signed": None,
    "S81flipped": "a byte of the layer flipped",
    "S83otherkey": "signed by another key",
    "S84unsigned": "not signed",
}


def _flip_layer_byte(layout: Path) -> str:
    """Flip a byte in the middle of the largest blob (the layer); its digest, hex."""
    layer = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0x01
    layer.write_bytes(bytes(data))
    return layer.name


def _signed_layouts(hello: Path, work: Path, overlay: Path) -> dict[str, str]:
    """The signed cases in the board's root; the layer digest of the flipped one."""
    keys = work / "keys"
    keys.mkdir()
    private, public = _key_pair(keys, "hello")
    other, _ = _key_pair(keys, "other")
    (overlay / VERIFY_KEY.lstrip("/")).parent.mkdir(parents=True)
    shutil.copyfile(public, overlay / VERIFY_KEY.lstrip("/"))
    found = {}
    for script, wrong in SIGNED_CASES.items():
        name = script[3:]
        layout = overlay / DATA.lstrip("/") / name
        key = [] if wrong == "not signed" else [
            "--sign-key", other if wrong == "signed by another key" else private]
        _cli("build", hello, "--output", layout, "--tag", "latest", *key)
        if wrong == "a byte of the layer flipped":
            found[name] = _flip_layer_byte(layout)
        _autostart(overlay, f"/etc/init.d/{script}", "--runtime", "podman", "--name", name,
                   "--layout", f"{DATA}/{name}:latest", "--verify-key", VERIFY_KEY)
    return found


@pytest.fixture(scope="module", params=ARCHES)
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def booted(arch: str, tmp_path_factory: pytest.TempPathFactory) -> board.BootResult:
    for tool, package in board.host_tools(arch):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp(f"board-podman-{arch}")
    hello = build_static_hello(cross_compilers()[PLATFORM[arch]], work)
    overlay = buildroot_target_overlay(work / "buildroot", hello, BUILDROOT_ARCH[arch],
                                       runtime="podman", init="busybox",
                                       **BUILDROOT_SYMBOLS.get(arch, {}))
    (overlay / "etc" / "containers").mkdir(parents=True, exist_ok=True)
    (overlay / "etc" / "containers" / "policy.json").write_text(POLICY)
    first = overlay / "etc" / "init.d" / "S01readonly"
    first.write_text(READ_ONLY)
    first.chmod(0o755)
    require_tool("openssl", "openssl")  # the keys of the signed layouts
    flipped[arch] = _signed_layouts(hello, work, overlay)
    initramfs = board.build_initramfs(arch, overlay, work / "initramfs.cpio",
                                      ("podman", "crun", "openssl"))
    return board.boot_initramfs(arch, initramfs, timeout=420)


flipped: dict[str, dict[str, str]] = {}  # arch -> container name -> the layer digest flipped


def test_root_is_read_only_before_the_container_starts(booted: board.BootResult) -> None:
    assert "root is read-only" in booted.script("S01readonly").output, booted.console


def test_podman_starts_the_container_on_a_read_only_root(booted: board.BootResult) -> None:
    run = booted.script(SCRIPT)
    assert run.status == 0, booted.console
    assert run.output.count(GREETING) == 1, booted.console
    assert "hellocontainer: hello exited 0" in run.output, booted.console


def test_podman_prints_nothing_but_the_container_and_its_end(booted: board.BootResult) -> None:
    run = booted.script(SCRIPT)
    # No image-copy progress ("Copying blob ...", "Writing manifest ..."), no warnings.
    assert run.output.splitlines() == ["Starting hello: OK", GREETING,
                                       "hellocontainer: hello exited 0"], booted.console


def test_board_with_podman_powers_off(booted: board.BootResult) -> None:
    assert not booted.timed_out and booted.powered_off, booted.console


def test_signed_layout_is_checked_then_podman_runs_the_signed_image(
        booted: board.BootResult) -> None:
    run = booted.script("S80signed")
    assert run.status == 0, booted.console
    assert run.output.splitlines() == ["Starting signed: OK", GREETING,
                                       "hellocontainer: signed exited 0"], booted.console


@pytest.mark.parametrize("script,reason", [
    ("S81flipped", "blobs/sha256/{layer} was changed after signing"),
    ("S83otherkey", re.escape(f"the signature is not from the key {VERIFY_KEY}")),
    ("S84unsigned", re.escape(f"{DATA}/unsigned is not signed (no cosign signature among its "
                              "blobs)")),
])
def test_tampered_or_unsigned_layout_prints_one_line_and_never_starts(
        script: str, reason: str, arch: str, booted: board.BootResult) -> None:
    layer = flipped[arch].get(script[3:], "")
    board.assert_refused_once(booted, script, reason.format(layer=layer), GREETING)
