"""podman on a board: the generated files run with the real podman, and Quadlet's real generator.

The boot test (tests/test_board_boot.py) starts podman on a read-only root; here, on this
machine, are what a boot cannot show cheaply: the layout is copied into podman's store once and
again only when it changed (a second start works with the layout's blobs gone), nothing but the
container's own output reaches the console (no copy progress), and the `--quadlet` file is what
podman's own Quadlet generator (podman 5.4 from Debian trixie, unpacked, never installed: the
host's podman 4.3 has none) turns into the expected `podman run`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import board
from conftest import Runner, podman_command, require_tool

GREETING = "Hello container!"
STORE = "/run/hellocontainer"  # the generated files' fixed paths: a private tmpfs here


def _layout(hellocontainer: Runner, hello: Path, layout: Path, tag: str = "latest") -> None:
    hellocontainer("build", hello, "--output", layout, "--tag", tag)


def _start(script: Path, podman_home: Path) -> subprocess.CompletedProcess[str]:
    """The script's supervisor, once (--restart no), in a mount namespace whose /run/hellocontainer
    is a fresh tmpfs kept for the next call by the store under --podman-root (outside it)."""
    _, env = podman_command(podman_home)
    unshare = require_tool("unshare", "util-linux")
    program = (f"mkdir -p {STORE} && mount -t tmpfs tmpfs {STORE} && "
               f"exec sh {shlex.quote(str(script))} supervise")
    return subprocess.run([unshare, "-m", "--propagation", "private", "sh", "-c", program],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def podman_script(hellocontainer: Runner, hello_static: Path, podman_home: Path,
                  tmp_path: Path) -> tuple[Path, Path]:
    """(script, layout): `autostart --runtime podman` for a layout of examples/hello, with the
    store under tmp_path, run by the host's podman."""
    require_tool("podman", "podman")
    layout = tmp_path / "hello-oci"
    _layout(hellocontainer, hello_static, layout)
    script = tmp_path / "S95hello"
    hellocontainer("autostart", "--runtime", "podman", "--name", "hello", "--layout", layout,
                   "--restart", "no", "--runtime-path", shutil.which("podman"),
                   "--podman-root", tmp_path / "store", "--sysv", script)
    return script, layout


def test_podman_prints_the_greeting_and_no_copy_progress(podman_script: tuple[Path, Path],
                                                        podman_home: Path) -> None:
    script, _ = podman_script
    run = _start(script, podman_home)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [GREETING, "hellocontainer: hello exited 0"], run
    assert run.stderr == ""


def test_podman_copies_the_layout_once(podman_script: tuple[Path, Path],
                                       podman_home: Path) -> None:
    script, layout = podman_script
    assert _start(script, podman_home).returncode == 0
    # No blobs to copy from: only the stored image can start now.
    (layout / "blobs").rename(layout.parent / "blobs-away")
    again = _start(script, podman_home)
    assert again.stdout.splitlines() == [GREETING, "hellocontainer: hello exited 0"], again


def test_podman_copies_a_changed_layout_again(podman_script: tuple[Path, Path],
                                              podman_home: Path, hellocontainer: Runner,
                                              tmp_path: Path) -> None:
    script, layout = podman_script
    assert _start(script, podman_home).returncode == 0
    # The same path and tag, now an image whose program says something else.
    shutil.rmtree(layout)
    _layout(hellocontainer, _static_printer(tmp_path), layout)
    changed = _start(script, podman_home)
    assert changed.stdout.splitlines() == ["changed", "hellocontainer: hello exited 0"], changed


def _static_printer(tmp_path: Path) -> Path:
    """A static program that prints `changed`."""
    source = tmp_path / "changed.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("changed"); return 0; }\n')
    out = tmp_path / "changed"
    compiler = shutil.which("musl-gcc") or require_tool("cc", "gcc")
    subprocess.run([compiler, "-static", "-Os", "-s", "-o", str(out), str(source)], check=True)
    return out


# ---------------------------------------------------------------------------------------------
# Quadlet

LAYOUT = "/usr/share/hellocontainer/hello-oci"


def quadlet_generator() -> Path:
    """podman's Quadlet generator, from Debian trixie's podman package (not installed). It
    needs only libc, and runs on Debian 12."""
    require_tool("apt-get", "apt")
    require_tool("dpkg-deb", "dpkg")
    archive = board.Archive("amd64", suite="trixie")
    root = archive.fresh(lambda: archive.unpack(archive.resolve(["podman"],
                                                                libraries=False)[0]))
    return root / "usr" / "libexec" / "podman" / "quadlet"


@pytest.fixture(scope="module")
def quadlet() -> Path:
    return quadlet_generator()


def _generate(quadlet: Path, source: Path) -> dict[str, list[str]]:
    """The service Quadlet makes of `source`'s folder, as {key: values} (continuations joined)."""
    result = subprocess.run([str(quadlet), "-dryrun"], capture_output=True, text=True,
                            env={**os.environ, "QUADLET_UNIT_DIRS": str(source.parent)})
    assert result.returncode == 0, result.stderr
    assert "---hello.service---" in result.stdout, result
    keys: dict[str, list[str]] = {}
    for line in result.stdout.replace("\\\n", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", "[")):
            keys.setdefault(key, []).append(value)
    return keys


def test_quadlet_generator_runs_the_stored_image_from_our_store(
        quadlet: Path, hellocontainer: Runner, tmp_path: Path) -> None:
    source = tmp_path / "units" / "hello.container"
    hellocontainer("autostart", "--runtime", "podman", "--name", "hello",
                   "--layout", f"{LAYOUT}:1.0", "--quadlet", source)
    service = _generate(quadlet, source)
    store = ("--root /run/hellocontainer/podman/storage --runroot /run/hellocontainer/podman-run "
             "--tmpdir /run/hellocontainer/podman-run/libpod --storage-driver vfs")
    (start,) = service["ExecStart"]
    assert start.startswith(f"/usr/bin/podman {store} run --name hello ")
    words = shlex.split(start)
    assert words[-2:] == ["--quiet", f"localhost{LAYOUT}:1.0"]
    assert "--network" in words and words[words.index("--network") + 1] == "none"
    # Stopping names the same store: else podman looks in /var/lib/containers.
    assert all(f"/usr/bin/podman {store} rm " in stop for stop in service["ExecStop"])
    # Our checks, copy-in step and backoff reach the service untouched. A missing part skips
    # the unit (ExecCondition=) once: systemd restarts no skipped unit.
    (condition,) = service["ExecCondition"]
    assert "not found; the image layout is not installed" in condition
    (pre,) = service["ExecStartPre"]
    assert 'pull --quiet \\"oci:/usr/share/hellocontainer/hello-oci:1.0\\"' in pre
    # podman's temporaries: /var/tmp is read-only on such a board.
    assert "TMPDIR=/run/hellocontainer/podman/tmp" in service["Environment"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartMaxDelaySec"] == ["300"]


def test_quadlet_is_for_podman_only(hellocontainer: Runner, tmp_path: Path) -> None:
    result = hellocontainer("autostart", "--name", "hello", "--bundle", "/usr/share/b",
                            "--quadlet", tmp_path / "hello.container", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("hellocontainer: error: --quadlet is for podman; crun has "
                                    "no Quadlet")
    assert list(tmp_path.iterdir()) == []


def test_quadlet_file_has_the_same_bytes_for_the_same_settings(
        hellocontainer: Runner, tmp_path: Path) -> None:
    texts = []
    for where in ("a", "b"):
        out = tmp_path / where / "hello.container"
        hellocontainer("autostart", "--runtime", "podman", "--name", "hello", "--layout", LAYOUT,
                       "--quadlet", out)
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]
