"""The same binary and settings give byte-identical layouts, whatever the build machine's state."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import require_tool
from hellocontainer.errors import BinaryError
from hellocontainer.store.tarwriter import TarEntry, write_tar
from oci import blob as blob_bytes
from oci import manifest

SPEC = """\
entrypoint: [/usr/bin/hello]
env: {GREETING: hello world}
labels: {org.opencontainers.image.title: hello}
tags: [latest, "1.0"]
files: [{src: motd, dest: /etc/motd}]
"""


def layout_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Writes the inputs and then runs the build, all under one umask: files a user creates get
# their mode bits from that umask, so this is how a different umask reaches the inputs.
UNDER_UMASK = 'umask "$1" && cp "$2" hello && printf "welcome\\n" > motd && ' \
    'printf "%s" "$3" > image.yaml && shift 3 && exec "$@"'


def build_in(workdir: Path, binary: Path, *, umask: int, extra_env: dict[str, str],
             wrapper: Sequence[str] = (), extra: Sequence[str] = ()) -> Path:
    """Build from a fresh copy of the inputs in `workdir`, as a different user session would:
    the inputs are written by that session, under its umask."""
    workdir.mkdir(parents=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **extra_env}
    command = ["sh", "-c", UNDER_UMASK, "sh", f"{umask:03o}", str(binary), SPEC,
               *wrapper, sys.executable, "-m", "hellocontainer", "build", "hello",
               "--path", "/usr/bin/hello", "--spec", "image.yaml", "--output", "deploy/hello-oci",
               "--archive", "deploy/hello-oci.tar", *extra]
    subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True)
    return workdir / "deploy"


def layer_modes(layout: Path) -> dict[str, str]:
    """Path -> octal mode of every member of the image's one layer, read with tarfile."""
    (layer,) = manifest(layout)["layers"]
    data = gzip.decompress(blob_bytes(layout, layer["digest"]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): f"{m.mode:04o}" for m in tar.getmembers()}


def test_extra_file_modes_do_not_depend_on_the_umask(hello_static, tmp_path):
    """motd is created 0600 under umask 077 and 0644 under 022, the tool 0700 or 0755: the
    image says 0644 and 0755 either way (only the owner's execute bit is taken)."""
    layouts = {}
    for umask in (0o077, 0o022):
        work = tmp_path / f"{umask:03o}"
        work.mkdir()
        subprocess.run(["sh", "-c", f"umask {umask:03o} && printf '#!/bin/sh\\n' > tool "
                        "&& chmod u+x tool"], cwd=work, check=True)
        layouts[umask] = build_in(work / "w", hello_static, umask=umask, extra_env={}, extra=[
            "--file", f"motd:/etc/motd {work}/tool:/usr/bin/tool"])
    for umask, deploy in layouts.items():
        modes = layer_modes(deploy / "hello-oci")
        assert (modes["etc/motd"], modes["usr/bin/tool"], modes["usr/bin/hello"]) == \
            ("0644", "0755", "0755"), f"umask {umask:03o}: {modes}"
    assert layout_files(layouts[0o077]) == layout_files(layouts[0o022])


def test_two_builds_in_different_environments_are_byte_identical(hello_static, tmp_path):
    faketime = require_tool("faketime", "faketime")
    first = build_in(tmp_path / "a", hello_static, umask=0o022,
                     extra_env={"TZ": "UTC", "LC_ALL": "C", "HOME": str(tmp_path / "a")})
    second = build_in(tmp_path / "some" / "deeper" / "b", hello_static, umask=0o077,
                      extra_env={"TZ": "Pacific/Kiritimati", "LC_ALL": "C.UTF-8",
                                 "HOME": str(tmp_path)},
                      wrapper=[faketime, "2031-05-04 03:02:01"])
    a, b = layout_files(first), layout_files(second)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f"{name} differs"
    assert (first / "hello-oci.tar").read_bytes() == (second / "hello-oci.tar").read_bytes()


def test_layout_carries_no_trace_of_the_build_machine(hello_static, tmp_path):
    out = build_in(tmp_path / "tracer-folder", hello_static, umask=0o022, extra_env={})
    for name, data in layout_files(out / "hello-oci").items():
        assert b"tracer-folder" not in data, name
    # Inside the compressed layer, too: no host user or group name in any tar header.
    for blob in (out / "hello-oci" / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            tar = gzip.decompress(data)
            assert b"root" not in tar and b"tracer-folder" not in tar


def test_tags_built_in_either_order_give_the_same_layout(hellocontainer, hello_static, tmp_path):
    for name, order in (("ab", ("a", "b")), ("ba", ("b", "a"))):
        for tag in order:
            hellocontainer("build", hello_static, "--output", tmp_path / name, "--tag", tag,
                           "--env", f"WHICH={tag}")
    assert layout_files(tmp_path / "ab") == layout_files(tmp_path / "ba")


def test_layer_headers_are_pinned(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--path", "/usr/bin/hello",
                   env={"SOURCE_DATE_EPOCH": "1234567890"})
    report = hellocontainer("inspect", "--json", tmp_path / "o").stdout
    files = json.loads(report)["images"][0]["layers"][0]["files"]
    assert [(f["path"], f["type"], f["mode"], f["uid"], f["gid"], f["mtime"]) for f in files] == [
        ("/usr", "dir", "0755", 0, 0, 1234567890),
        ("/usr/bin", "dir", "0755", 0, 0, 1234567890),
        ("/usr/bin/hello", "file", "0755", 0, 0, 1234567890),
    ]


def test_gzip_header_has_no_time_and_no_name(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o")
    blobs = (tmp_path / "o" / "blobs" / "sha256").iterdir()
    layer = next(b for b in blobs if b.read_bytes()[:2] == b"\x1f\x8b").read_bytes()
    assert layer[3] == 0  # FLG: no file name, comment or extra field
    assert layer[4:8] == b"\0\0\0\0"  # MTIME: none
    assert layer[9] == 255  # OS: unknown, not the build machine's


# --- the tar writer itself: every byte of a layer's tar is decided here --------------------

def tar_of(entries: list[TarEntry]) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out)
    return out.getvalue()


def test_tar_entries_are_ordered_by_path_components_whatever_the_input_order(tmp_path):
    """By components, a folder precedes its content and `a/b` precedes `a-b` (a plain string
    sort would put `-` before `/`): the order depends on the names alone."""
    (tmp_path / "f").write_bytes(b"12345")
    entries = [TarEntry("a-b", 0o644, 7, source=tmp_path / "f", size=5),
               TarEntry("a/b", 0o600, 7, uid=1, gid=2, source=tmp_path / "f", size=5),
               TarEntry("a", 0o755, 7)]
    data = tar_of(entries)
    assert data == tar_of(list(reversed(entries)))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [(m.name, m.type, m.mode, m.uid, m.gid, m.mtime, m.size) for m in members] == [
            ("a", tarfile.DIRTYPE, 0o755, 0, 0, 7, 0),
            ("a/b", tarfile.REGTYPE, 0o600, 1, 2, 7, 5),
            ("a-b", tarfile.REGTYPE, 0o644, 0, 0, 7, 5)]
        assert all((m.uname, m.gname, m.devmajor, m.devminor, m.pax_headers) == ("", "", 0, 0, {})
                   for m in members)
        assert tar.extractfile("a/b").read() == b"12345"  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 3 * 512])
def test_tar_is_headers_padded_content_and_two_zero_blocks(tmp_path, size):
    (tmp_path / "f").write_bytes(b"x" * size)
    data = tar_of([TarEntry("f", 0o644, 0, source=tmp_path / "f", size=size)])
    padded = -(-size // 512) * 512
    assert len(data) == 512 + padded + 1024  # no padding to tar's 10 KiB records
    assert data[512:512 + size] == b"x" * size
    assert data[512 + size:] == b"\0" * (padded - size + 1024)
    assert data[156:157] == b"0" and data[257:263] == b"ustar\0"  # regular file, POSIX format


@pytest.mark.parametrize("change", [b"", b"12345678"], ids=["shrank", "grew"])
def test_file_whose_size_changed_since_its_header_is_refused(tmp_path, change):
    (tmp_path / "f").write_bytes(change)
    with pytest.raises(BinaryError, match="changed size while it was being packaged"):
        tar_of([TarEntry("f", 0o644, 0, source=tmp_path / "f", size=5)])


def test_large_file_is_copied_whole(tmp_path):
    """More than one read (1 MiB each) and not a multiple of the block size."""
    data = bytes(range(256)) * 5000 + b"tail"
    (tmp_path / "big").write_bytes(data)
    with tarfile.open(fileobj=io.BytesIO(tar_of([TarEntry("big", 0o644, 0, source=tmp_path / "big",
                                                          size=len(data))]))) as tar:
        assert tar.extractfile("big").read() == data  # type: ignore[union-attr]


@pytest.mark.parametrize(("extra_blocks", "xfl"), [(0, 2), (1, 0)], ids=["16-MiB", "one-block-more"])
def test_default_gzip_level_changes_after_a_16_mib_layer(hellocontainer, hello_static, tmp_path,
                                                         extra_blocks, xfl):
    """The default level depends on the tar's size alone: level 9 up to exactly 16 MiB, 3 above
    (the header's XFL names the level: 2 for 9, 0 for 3). Two folders (/usr, /usr/bin) count a
    header each and no content; the file is padded to fill the rest exactly."""
    headers = 3 * 512 + 1024  # /usr, /usr/bin, /usr/bin/hello, then the two end blocks
    size = (16 << 20) - headers + extra_blocks * 512
    binary = tmp_path / "hello"
    binary.write_bytes(hello_static.read_bytes().ljust(size, b"\0"))
    binary.chmod(0o755)
    hellocontainer("build", binary, "--path", "/usr/bin/hello", "--output", tmp_path / "o",
                   "--jobs", "2")
    (layer,) = manifest(tmp_path / "o")["layers"]
    assert blob_bytes(tmp_path / "o", layer["digest"])[8] == xfl
