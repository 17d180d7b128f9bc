"""podman on a board whose root file system is read-only: the container starts and greets.

podman's defaults keep images in /var/lib/containers with the overlay driver, which fails on a
read-only root ("mkdir /var/lib/containers: read-only file system") and on a tmpfs root. The
board here is an amd64 board (tests/board.py) with Debian 12's podman, conmon and crun and the
libraries they load, the hellocontainer-hello Buildroot package with autostart by podman (its
own .mk commands: the layout and /etc/init.d/S95hellocontainer-hello), the policy.json every
podman package installs, and a first init script that remounts the root read-only before any
container starts.
"""

from __future__ import annotations

import pytest

import board
from conftest import require_tool
from foreign import build_static_hello, cross_compilers
from test_buildroot_external import buildroot_target_overlay

ARCH = "amd64"
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


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> board.BootResult:
    for tool, package in board.host_tools(ARCH):
        require_tool(tool, package)
    work = tmp_path_factory.mktemp("board-podman")
    hello = build_static_hello(cross_compilers()[ARCH], work)
    overlay = buildroot_target_overlay(work / "buildroot", hello, "x86_64", runtime="podman",
                                       init="busybox")
    (overlay / "etc" / "containers").mkdir(parents=True, exist_ok=True)
    (overlay / "etc" / "containers" / "policy.json").write_text(POLICY)
    first = overlay / "etc" / "init.d" / "S01readonly"
    first.write_text(READ_ONLY)
    first.chmod(0o755)
    initramfs = board.build_initramfs(ARCH, overlay, work / "initramfs.cpio", ("podman", "crun"))
    return board.boot_initramfs(ARCH, initramfs, timeout=300)


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
