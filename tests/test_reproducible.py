"""The same binary and settings give byte-identical layouts, whatever the build machine's state."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require_tool

SPEC = """\
entrypoint: [/usr/bin/hello]
env: {GREETING: hello world}
labels: {org.opencontainers.image.title: hello}
tags: [latest, "1.0"]
files: [{src: motd, dest: /etc/motd}]
"""


def layout_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def build_in(workdir: Path, binary: Path, *, umask: int, extra_env: dict[str, str],
             wrapper: list[str] = ()) -> Path:
    """Build from a fresh copy of the inputs in `workdir`, as a different user session would."""
    workdir.mkdir(parents=True)
    shutil.copy(binary, workdir / "hello")
    (workdir / "motd").write_text("welcome\n")
    (workdir / "image.yaml").write_text(SPEC)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **extra_env}
    command = [*wrapper, sys.executable, "-m", "hellocontainer", "build", "hello",
               "--path", "/usr/bin/hello", "--spec", "image.yaml", "--output", "deploy/hello-oci",
               "--archive", "deploy/hello-oci.tar"]
    subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True,
                   preexec_fn=lambda: os.umask(umask))
    return workdir / "deploy"


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
