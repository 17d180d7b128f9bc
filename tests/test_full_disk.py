"""A full, read-only or forbidding file system gives one error line and leaves no trace.

Small tmpfs mounts run out of space or inodes on demand. Where it matters, a test gives the
file system back one page (or one inode) at a time and builds again, until the build fits: every
step of a build that can run out of room is hit, in whatever order an implementation takes them,
and each failing attempt must leave the file system exactly as it found it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import require_tool
from layouts import (
    assert_invalid,
    assert_one_error,
    assert_valid,
    build,
    canonical,
    changes,
    cli,
    cli_argv,
    cli_env,
    fill,
    fill_inodes,
    finish,
    free_pages,
    padded_binary,
    read_index,
    snapshot,
    start,
    summary,
    tags,
    tmpfs,
    tree,
    write_blob,
)

MAX_STEPS = 64  # pages or inodes given back before the small build must fit

Mount = Callable[[str], Path]


@pytest.fixture
def mount() -> Iterator[Mount]:
    """Mount small tmpfs file systems on demand; every one is unmounted afterwards.

    They live in a folder any user can traverse (pytest's own temp folder is private to root),
    so that a build run as another user meets the layout's permissions, not the path's."""
    top = Path(tempfile.mkdtemp(prefix="hellocontainer-fs-"))
    top.chmod(0o755)
    try:
        with contextlib.ExitStack() as stack:
            count = iter(range(100))

            def make(options: str) -> Path:
                return stack.enter_context(tmpfs(top / f"fs{next(count)}", options))

            yield make
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def big_binary(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static ELF with 2 MiB of incompressible bytes: its layer cannot fit in 1 MiB."""
    return padded_binary(hello_static, tmp_path_factory.mktemp("big") / "big", 2 << 20)


def _attempts(give_back: Callable[[], None], attempt: Callable[[], subprocess.CompletedProcess[str]],
              watched: Path, after_failure: Callable[[], None] = lambda: None) -> int:
    """Build, and while it fails give one unit of room back and build again; every failure must be
    one error line that changed nothing under `watched`. Returns how many attempts failed."""
    for step in range(MAX_STEPS):
        before = snapshot(watched)
        result = attempt()
        if result.returncode == 0:
            return step
        assert_one_error(result)
        diff = changes(before, snapshot(watched))
        assert not diff, f"attempt {step + 1} ({summary(result)}) left: {diff}"
        after_failure()
        give_back()
    pytest.fail(f"the build still failed with {MAX_STEPS} units given back")


def test_fresh_build_on_a_full_disk_writes_nothing(mount, hello_static):
    fs = mount("size=1m")
    filler = fill(fs)
    layout = fs / "L"
    failures = _attempts(lambda: free_pages(filler, 1),
                         lambda: cli("build", hello_static, "--output", layout), fs)
    assert failures > 0
    assert_valid(cli("validate", layout))


def test_build_into_an_empty_folder_on_a_full_disk_writes_nothing(mount, hello_static):
    """An empty --output folder is merged into like a layout: a full disk at any step, down to
    the last file, leaves it empty (and says so in one line)."""
    fs = mount("size=1m")
    filler = fill(fs)
    layout = fs / "L"
    layout.mkdir()
    failures = _attempts(lambda: free_pages(filler, 1),
                         lambda: cli("build", hello_static, "--output", layout), fs)
    assert failures > 0
    assert_valid(cli("validate", layout))


def test_full_disk_error_names_the_path_and_what_to_do(mount, hello_static):
    fs = mount("size=1m")
    fill(fs)
    line = assert_one_error(cli("build", hello_static, "--output", fs / "L"), status=1)
    assert str(fs) in line  # where: the user must know which file system is full
    assert "No space left on device; free space on that file system, or write somewhere else" in line
    assert line.endswith("; nothing was published")  # and the user knows no half layout is left


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_build_into_a_layout_on_a_full_disk_keeps_it_intact(mount, hello_static, compression):
    fs = mount("size=1m")
    layout = fs / "L"
    build(hello_static, layout, "old")
    filler = fill(fs)

    def old_still_valid() -> None:
        assert_valid(cli("validate", f"{layout}:old"))

    failures = _attempts(
        lambda: free_pages(filler, 1),
        lambda: cli("build", hello_static, "--output", layout, "--tag", "new", "--env", "V=2",
                    "--compression", compression), fs, old_still_valid)
    assert failures > 0
    assert tags(layout) == ["new", "old"]
    assert_valid(cli("validate", layout))


def test_layer_larger_than_the_disk_writes_nothing(mount, big_binary):
    fs = mount("size=1m")
    result = cli("build", big_binary, "--output", fs / "L")
    assert_one_error(result)
    assert tree(fs) == set()


def test_archive_that_does_not_fit_publishes_nothing(mount, hello_static, big_binary, tmp_path):
    layout = tmp_path / "L"
    build(hello_static, layout, "old")
    fs = mount("size=1m")
    before = snapshot(tmp_path / "L")
    beside = sorted(os.listdir(tmp_path))
    result = cli("build", big_binary, "--output", layout, "--tag", "new", "--archive", fs / "a.tar")
    assert_one_error(result)
    assert tags(layout) == ["old"], "the new tag was published although its archive failed"
    assert not changes(before, snapshot(layout)), changes(before, snapshot(layout))
    assert sorted(os.listdir(tmp_path)) == beside
    assert tree(fs) == set()


def test_a_build_failing_after_it_collected_garbage_leaves_a_valid_layout(mount, hello_static,
                                                                          tmp_path):
    """Once index.json has settled, a build removes garbage before it publishes. If it then fails
    (here: its archive does not fit), the layout must still be valid: an untagged referrer whose
    subject is gone (other tools leave such entries) must not stay listed without its blobs."""
    layout = tmp_path / "L"
    build(hello_static, layout, "latest")
    (image,) = read_index(layout)["manifests"]
    build(hello_static, layout, "latest", "--env", "V=2")  # the first image is garbage now
    manifest = "application/vnd.oci.image.manifest.v1+json"
    artifact = write_blob(layout, canonical({
        "schemaVersion": 2, "mediaType": manifest, "artifactType": "application/vnd.example.sig",
        "config": write_blob(layout, b"{}", "application/vnd.oci.empty.v1+json"),
        "layers": [write_blob(layout, b"signature", "application/octet-stream")],
        "subject": {key: image[key] for key in ("mediaType", "digest", "size")}}), manifest)
    index = read_index(layout)
    index["manifests"].append(artifact)
    (layout / "index.json").write_bytes(canonical(index))
    settled = time.time() - 600
    os.utime(layout / "index.json", (settled, settled))
    assert_valid(cli("validate", layout))
    fs = mount("size=4k")
    assert_one_error(cli("build", hello_static, "--output", layout, "--tag", "new", "--env", "V=3",
                         "--archive", fs / "a.tar"))
    assert "new" not in tags(layout)
    assert_valid(cli("validate", layout))


def test_build_when_inodes_run_out_keeps_the_layout_intact(mount, hello_static):
    fs = mount("size=8m,nr_inodes=64")
    layout = fs / "L"
    build(hello_static, layout, "old")
    spare = fill_inodes(fs)

    def give_back() -> None:
        spare.pop().unlink()

    failures = _attempts(give_back, lambda: cli("build", hello_static, "--output", layout,
                                                "--tag", "new", "--env", "V=2"), fs)
    assert failures > 0
    assert tags(layout) == ["new", "old"]
    assert_valid(cli("validate", layout))


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing"])
def test_read_only_file_system_is_one_error_line(mount, hello_static, existing):
    fs = mount("size=4m")
    layout = fs / "L"
    if existing:
        build(hello_static, layout, "old")
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    before = snapshot(fs)
    assert_one_error(cli("build", hello_static, "--output", layout, "--tag", "new"), "read-only")
    assert snapshot(fs) == before
    if existing:
        assert_valid(cli("validate", f"{layout}:old"))


def test_gc_on_a_read_only_file_system_is_one_error_line(mount, hello_static):
    fs = mount("size=4m")
    layout = fs / "L"
    build(hello_static, layout, "moving", "--env", "V=1")
    build(hello_static, layout, "moving", "--env", "V=2")  # V=1's blobs are garbage now
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    before = snapshot(fs)
    assert_one_error(cli("gc", layout), "cannot remove", "read-only")
    assert snapshot(fs) == before


@pytest.mark.parametrize("where", ["output", "output-parent", "archive", "spec", "binary", "file"])
def test_path_component_too_long_is_one_error_line(hello_static, tmp_path, where):
    long = "n" * 300  # NAME_MAX is 255
    work = tmp_path / "work"
    work.mkdir()
    # output-parent: the folder `new` is made before the long name fails, and must go again.
    paths = {"output": work / long, "output-parent": work / "new" / long / "L",
             "archive": work / f"{long}.tar", "spec": work / f"{long}.yaml", "binary": work / long,
             "file": work / long}
    args: list[object] = ["build", hello_static, "--output", work / "L"]
    if where.startswith("output"):
        args[3] = paths[where]
    elif where == "binary":
        args[1] = paths[where]
    else:
        args += {"archive": ["--archive", paths[where]], "spec": ["--spec", paths[where]],
                 "file": ["--file", f"{paths[where]}:/x"]}[where]
    assert_one_error(cli(*args))
    assert tree(tmp_path) == {"work"}


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_binary_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    binary = tmp_path / "hello"
    if kind == "directory":
        binary.mkdir()
    else:
        os.mkfifo(binary)
    assert_one_error(cli("build", binary, "--output", tmp_path / "L"))
    assert not (tmp_path / "L").exists()
    assert sorted(os.listdir(tmp_path)) == ["hello"]


def test_immutable_layout_directory_is_one_error_line(mount, hello_static):
    chattr = require_tool("chattr", "e2fsprogs")
    fs = mount("size=4m")
    layout = fs / "L"
    build(hello_static, layout, "old")
    subprocess.run([chattr, "+i", str(layout)], check=True)  # the mount fixture clears it
    before = snapshot(fs)
    assert_one_error(cli("build", hello_static, "--output", layout, "--tag", "new", "--env", "V=2"))
    assert not changes(before, snapshot(fs)), changes(before, snapshot(fs))
    assert_valid(cli("validate", f"{layout}:old"))


def test_layout_owned_by_another_user_is_one_error_line(mount, hello_static):
    setpriv = require_tool("setpriv", "util-linux")
    fs = mount("size=4m")
    layout = fs / "L"
    build(hello_static, layout, "old")
    binary = fs / "hello"
    shutil.copy(hello_static, binary)
    before = snapshot(fs)
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = finish(start([*nobody, *cli_argv("build", binary, "--output", layout, "--tag", "new")],
                          cli_env(), cwd=fs))
    assert_one_error(result)  # EACCES: a root-owned 0755 layout
    assert not changes(before, snapshot(fs)), changes(before, snapshot(fs))
    assert_valid(cli("validate", f"{layout}:old"))


def test_validate_on_a_damaged_layout_on_a_read_only_disk_still_answers(mount, hello_static):
    fs = mount("size=4m")
    layout = fs / "L"
    build(hello_static, layout, "old")
    (layout / "index.json").write_bytes(b"{")
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    assert_invalid(cli("validate", layout))
