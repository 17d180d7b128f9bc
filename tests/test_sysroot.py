"""With --sysroot, everything comes from the target's tree: nothing of the build machine leaks in."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from oci import image_file


@pytest.fixture
def sysroot(hello_static: Path, tmp_path: Path) -> Path:
    """A target tree where usr/bin/hello is an absolute link to /bin/busybox, as in many rootfs."""
    root = tmp_path / "sysroot"
    for folder in ("bin", "usr/bin", "etc"):
        (root / folder).mkdir(parents=True)
    shutil.copy(hello_static, root / "bin" / "busybox")
    os.symlink("/bin/busybox", root / "usr" / "bin" / "hello")
    (root / "etc" / "motd").write_text("the target's motd\n")
    return root


def files_of(hellocontainer, layout: Path) -> list[str]:
    report = json.loads(hellocontainer("inspect", "--json", layout).stdout)
    return [f["path"] for f in report["images"][0]["layers"][0]["files"]]


def test_absolute_link_in_the_sysroot_resolves_inside_it(hellocontainer, sysroot, hello_static,
                                                         tmp_path):
    hellocontainer("build", "--sysroot", sysroot, "/usr/bin/hello", "--output", tmp_path / "o")
    assert files_of(hellocontainer, tmp_path / "o") == ["/hello"]  # named as the user named it
    assert image_file(tmp_path / "o", "/hello") == hello_static.read_bytes()


def test_absolute_extra_file_comes_from_the_sysroot(hellocontainer, sysroot, tmp_path):
    hellocontainer("build", "--sysroot", sysroot, "/usr/bin/hello", "--output", tmp_path / "o",
                   "--file", "/etc/motd:/etc/motd")
    assert image_file(tmp_path / "o", "/etc/motd") == b"the target's motd\n"


def test_link_out_of_the_sysroot_does_not_reach_the_host(hellocontainer, sysroot, tmp_path):
    os.symlink("/etc/passwd", sysroot / "etc" / "passwd-link")  # the host has /etc/passwd
    result = hellocontainer("build", "--sysroot", sysroot, "/usr/bin/hello", "--output",
                            tmp_path / "o", "--file", "/etc/passwd-link:/etc/passwd", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("hellocontainer: error: ") and "passwd" in result.stderr
    assert not (tmp_path / "o").exists()


def test_dot_dot_cannot_climb_out_of_the_sysroot(hellocontainer, sysroot, tmp_path):
    hellocontainer("build", "--sysroot", sysroot, "../../../../usr/bin/hello",
                   "--output", tmp_path / "o")
    assert files_of(hellocontainer, tmp_path / "o") == ["/hello"]


@pytest.mark.parametrize(("links", "binary"), [
    ({"usr/bin/a": "b", "usr/bin/b": "a"}, "/usr/bin/a"),
    ({"usr/bin/self": "/usr/bin/self"}, "/usr/bin/self"),
    ({"usr/bin/up": "../../usr/bin/up/x"}, "/usr/bin/up"),
], ids=["two-links", "itself-absolute", "through-its-own-folder"])
def test_symlink_loop_in_the_sysroot_is_refused(hellocontainer, sysroot, tmp_path, links, binary):
    for name, target in links.items():
        os.symlink(target, sysroot / name)
    result = hellocontainer("build", "--sysroot", sysroot, binary, "--output", tmp_path / "o",
                            check=False)
    assert result.returncode == 1
    assert result.stderr == (f"hellocontainer: error: {binary} in sysroot {sysroot}: too many "
                             "levels of symbolic links (a loop?); fix the links in the sysroot\n")
    assert not (tmp_path / "o").exists()


def test_symlink_loop_in_an_extra_files_path_is_refused(hellocontainer, sysroot, tmp_path):
    os.symlink("loop", sysroot / "etc" / "loop")
    result = hellocontainer("build", "--sysroot", sysroot, "/usr/bin/hello", "--output",
                            tmp_path / "o", "--file", "/etc/loop/motd:/etc/motd", check=False)
    assert result.returncode == 1
    assert "/etc/loop/motd" in result.stderr and "too many levels of symbolic links" in \
        result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_forty_links_in_a_row_are_followed(hellocontainer, sysroot, tmp_path):
    """The kernel's limit is 40 hops (MAXSYMLINKS); a chain that long is still no loop."""
    previous = "/bin/busybox"
    for n in range(40):
        os.symlink(previous, sysroot / "usr" / "bin" / f"l{n}")
        previous = f"l{n}"
    hellocontainer("build", "--sysroot", sysroot, "/usr/bin/l39", "--output", tmp_path / "o",
                   "--path", "/hello")
    assert files_of(hellocontainer, tmp_path / "o") == ["/hello"]
