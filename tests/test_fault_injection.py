"""A build killed at any rename, fsync or unlink leaves a layout that works, and gc tidies it.

strace kills the build on entering the N-th call of one system call (`inject=…:signal=KILL`),
for N = 1, 2, … until a build runs to the end, so every publishing step of any implementation
is hit without the test knowing the steps. The layout already holds other tags and the build
replaces one of them: the case where a half-done publish could lose or break an image.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool
from layouts import (
    assert_no_crash,
    assert_valid,
    build,
    cli,
    cli_argv,
    cli_env,
    finish,
    reachable_files,
    start,
    summary,
    tags,
    tree,
)

# renameat/unlinkat are what os.replace/os.unlink use with dir_fd; renameat2 with RENAME_NOREPLACE
# or RENAME_EXCHANGE is how an implementation might swap index.json.
SYSCALLS = ("rename", "renameat", "renameat2", "fsync", "fdatasync", "unlink", "unlinkat", "rmdir")
MAX_KILLS = 60  # a publish has a handful of each; more means the loop would never end


@pytest.fixture(scope="module")
def template(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout holding `old` and `new` (first version), copied fresh for every kill."""
    root = tmp_path_factory.mktemp("template")
    layout = root / "L"
    build(hello_static, layout, "old", "--env", "WHO=old")
    (root / "note").write_text("version 1\n")
    build(hello_static, layout, "new", "--env", "WHO=new1", "--file", f"{root / 'note'}:/note")
    return layout


def _killed_build(binary: Path, layout: Path, note: Path, syscall: str, n: int,
                  ) -> subprocess.CompletedProcess[str]:
    strace = require_tool("strace", "strace")
    # Only the injected call is traced: strace injects into traced calls alone.
    argv = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
            "-e", f"inject={syscall}:signal=KILL:when={n}",
            *cli_argv("build", binary, "--output", layout, "--tag", "new", "--env", "WHO=new2",
                      "--file", f"{note}:/note")]
    return finish(start(argv, cli_env(), memory=None), timeout=120)


def _assert_tidy(layout: Path) -> None:
    """After gc: exactly the reachable files, nothing beside the layout, a silent validate."""
    collected = cli("gc", layout)
    assert_no_crash(collected)
    assert collected.returncode == 0, summary(collected)
    stray = sorted(tree(layout) - reachable_files(layout))
    assert not stray, f"after `hellocontainer gc` these remain in {layout}: {stray}"
    assert sorted(p.name for p in layout.parent.iterdir()) == ["L", "note"]
    assert_valid(cli("validate", layout), warnings=False)


def test_strace_kills_at_the_chosen_call(tmp_path):
    """The loops below end when a build is not killed; this makes sure that means something
    (strace's --seccomp-bpf, for one, silently disables injection)."""
    strace = require_tool("strace", "strace")
    doomed = tmp_path / "doomed"
    doomed.touch()
    argv = [strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=unlink,unlinkat",
            "-e", "inject=unlink,unlinkat:signal=KILL:when=1",
            sys.executable, "-c", f"import os; os.unlink({str(doomed)!r})"]
    killed = finish(start(argv, cli_env(), memory=None))
    assert killed.returncode == -9, summary(killed)
    assert doomed.exists()


@pytest.mark.parametrize("syscall", SYSCALLS)
def test_build_killed_at_each_call_leaves_old_tags_working(hello_static, template, tmp_path, syscall):
    skopeo = require_tool("skopeo", "skopeo")
    debris: list[Path] = []
    for n in range(1, MAX_KILLS + 1):
        work = tmp_path / str(n)
        layout = work / "L"
        shutil.copytree(template, layout)
        note = work / "note"
        note.write_text("version 2\n")
        killed = _killed_build(hello_static, layout, note, syscall, n)
        if killed.returncode == 0:
            break  # the build made fewer than n such calls: every one of them has been hit
        assert killed.returncode == -9, f"{syscall} #{n}: " + summary(killed)
        where = f"after a kill at {syscall} #{n}"
        inspecting = start([skopeo, "inspect", f"oci:{layout}:old"], env=dict(os.environ), memory=None)
        old = cli("validate", f"{layout}:old")
        inspected = finish(inspecting)
        assert_no_crash(old)
        assert old.returncode == 0, f"{where}: " + summary(old)
        assert inspected.returncode == 0, f"{where}: skopeo inspect: {inspected.stderr}"
        build(hello_static, layout, "new", "--env", "WHO=new2", "--file", f"{note}:/note")
        assert tags(layout) == ["new", "old"], where
        debris.append(layout)
    else:
        pytest.fail(f"the build was still killed at {syscall} #{MAX_KILLS}")
    # Tidiness last, so that a missing `gc` does not hide a crash-safety failure above.
    for layout in debris:
        _assert_tidy(layout)


def test_index_json_is_replaced_by_rename_never_rewritten_in_place(hello_static, template, tmp_path):
    strace = require_tool("strace", "strace")
    layout = tmp_path / "L"
    shutil.copytree(template, layout)
    inode = (layout / "index.json").stat().st_ino
    trace = tmp_path / "trace"
    argv = [strace, "-f", "-qq", "-o", str(trace),
            "-e", "trace=open,openat,openat2,creat,truncate",
            *cli_argv("build", hello_static, "--output", layout, "--tag", "third")]
    finished = finish(start(argv, cli_env(), memory=None), timeout=120)
    assert finished.returncode == 0, summary(finished)
    assert (layout / "index.json").stat().st_ino != inode
    # Opening index.json itself for writing is what would let a reader see half a file.
    writes = [line for line in trace.read_text().splitlines()
              if '/index.json"' in line and ("O_WRONLY" in line or "O_RDWR" in line
                                            or "O_TRUNC" in line or "truncate(" in line)]
    assert not writes, writes
    assert tags(layout) == ["new", "old", "third"]


@pytest.fixture
def untidy(hello_static: Path, template: Path, tmp_path: Path) -> Path:
    """A layout with one of each kind of litter a killed build or a replaced tag leaves."""
    layout = tmp_path / "L"
    shutil.copytree(template, layout)
    build(hello_static, layout, "new", "--env", "WHO=replaced")  # the first `new` is unreferenced now
    (layout / ".index.json.k1ll3d").write_bytes(b'{"schemaVersion":2,"manif')
    dead = tmp_path / ".L.hellocontainer-deadbeef"
    (dead / "blobs" / "sha256").mkdir(parents=True)
    (dead / "blob.x1").write_bytes(b"half a layer")
    return layout


def test_validate_warns_about_litter_and_names_gc(untidy):
    result = cli("validate", untidy)
    assert_valid(result, warnings=True)
    warnings = result.stderr.strip().splitlines()
    assert warnings, "validate printed no warning about an unreferenced blob, an .index.json.* " \
        "file and a dead staging folder"
    assert any(f"hellocontainer gc {untidy}" in line for line in warnings), result.stderr


def test_gc_removes_litter_and_says_what(untidy):
    unreachable = sorted(tree(untidy) - reachable_files(untidy))
    assert unreachable  # the fixture's litter, and the replaced tag's blobs a build must keep
    size = sum((untidy / name).lstat().st_size for name in unreachable)
    result = cli("gc", untidy)
    assert_no_crash(result)
    assert result.returncode == 0, summary(result)
    assert result.stdout.endswith(f"removed {len(unreachable) + 1} files ({size} bytes)\n"), \
        result.stdout  # the staging folder counts as one, its bytes not
    for name in unreachable:
        if name.startswith("blobs/sha256/"):
            assert name.rsplit("/", 1)[1] in result.stdout, f"gc did not report {name}"
    assert ".index.json.k1ll3d" in result.stdout
    assert ".L.hellocontainer-deadbeef" in result.stdout
    assert tree(untidy) == reachable_files(untidy)
    assert sorted(p.name for p in untidy.parent.iterdir()) == ["L"]
    assert_valid(cli("validate", untidy), warnings=False)


def test_gc_keeps_the_staging_folder_of_a_live_build(untidy):
    live = untidy.parent / ".L.hellocontainer-l1ve"
    (live / "blobs" / "sha256").mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running build holds on its staging folder
        result = cli("gc", untidy)
        assert_no_crash(result)
        assert result.returncode == 0, summary(result)
        assert live.is_dir()
        assert not (untidy.parent / ".L.hellocontainer-deadbeef").exists()
    finally:
        os.close(fd)


def test_gc_killed_at_each_unlink_leaves_a_valid_layout(untidy, tmp_path):
    strace = require_tool("strace", "strace")
    for syscall in ("unlink", "unlinkat", "rmdir"):
        for n in range(1, MAX_KILLS + 1):
            layout = tmp_path / f"{syscall}{n}" / "L"
            shutil.copytree(untidy, layout)
            argv = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
                    "-e", f"inject={syscall}:signal=KILL:when={n}", *cli_argv("gc", layout)]
            killed = finish(start(argv, cli_env(), memory=None), timeout=60)
            if killed.returncode != -9:
                assert killed.returncode == 0, summary(killed)
                break
            old = cli("validate", layout)
            assert_no_crash(old)
            assert old.returncode == 0, f"after a kill at {syscall} #{n} of gc: " + summary(old)
        else:
            pytest.fail(f"gc was still killed at {syscall} #{MAX_KILLS}")


def test_gc_passes_over_a_file_that_vanishes_under_it(untidy):
    """Another process (a user's rm, a gc of the same folder from another host) may remove a
    file between gc's listing and its unlink: gc goes on with the rest. strace makes the
    moment exact: every stat of that one file says ENOENT."""
    strace = require_tool("strace", "strace")
    vanishing = untidy / ".index.json.a"  # gc's first victim: sorted before .index.json.k1ll3d
    vanishing.write_bytes(b"{}")
    argv = [strace, "-f", "-qq", "-o", "/dev/null", "-P", str(vanishing), "-e", "trace=%%stat",
            "-e", "inject=%%stat:error=ENOENT", *cli_argv("gc", untidy)]
    result = finish(start(argv, cli_env(), memory=None), timeout=60)
    assert_no_crash(result)
    assert result.returncode == 0, summary(result)
    assert ".index.json.a" not in result.stdout and ".index.json.k1ll3d" in result.stdout
    assert tree(untidy) == reachable_files(untidy) | {".index.json.a"}
