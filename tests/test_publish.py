"""Publishing never leaves a half-written layout, and never loses another build's tags."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import require_tool
from layouts import canonical, changes, made_layout, reachable_files, snapshot, write_blob


def tags(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return sorted(d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"])


def build_command(binary: Path, layout: Path, tag: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hellocontainer", "build", str(binary), "--output", str(layout),
            "--tag", tag, *extra]


def test_second_tag_keeps_the_first(hellocontainer, hello_static, tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "2.0", "--env", "V=2")
    assert tags(layout) == ["1.0", "2.0"]
    hellocontainer("validate", f"{layout}:1.0")
    hellocontainer("validate", f"{layout}:2.0")


def test_a_second_build_leaves_the_blobs_it_shares_untouched(hellocontainer, hello_static,
                                                             tmp_path):
    """A blob already in the layout, verified, is kept as it is (same file, same time): copies
    and sync tools see nothing new, and a reader holding it open reads on undisturbed."""
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
    blobs = layout / "blobs" / "sha256"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in blobs.iterdir()}
    hellocontainer("build", hello_static, "--output", layout, "--tag", "2.0", "--env", "V=2")
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in blobs.iterdir()}
    shared = set(before) & set(after)
    assert shared, "the second build shares its layer with the first"
    assert {name: after[name] for name in shared} == {name: before[name] for name in shared}


def test_gc_of_a_layout_the_user_cannot_lock_is_one_error_line(hellocontainer, hello_static):
    """gc locks the layout folder itself; a user who may enter it but not read it cannot, and
    is told so in one line naming the layout, before anything is removed."""
    import shutil
    import tempfile

    from layouts import assert_one_error, cli_argv, cli_env, finish, start

    setpriv = require_tool("setpriv", "util-linux")
    if os.geteuid() != 0:
        pytest.skip("switching to nobody needs root")
    shared = Path(tempfile.mkdtemp(prefix="hellocontainer-gc-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        layout = shared / "layout"
        hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
        layout.chmod(0o711)
        argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                *cli_argv("gc", layout)]
        error = assert_one_error(finish(start(argv, cli_env({"HOME": "/nonexistent"})), 60))
        assert f"layout ({layout}): Permission denied" in error
        assert tags(layout) == ["1.0"]
    finally:
        shutil.rmtree(shared)


def _blob_names(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_rebuilding_a_tag_keeps_old_blobs_for_readers_until_gc(hellocontainer, hello_static,
                                                               tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "keep", "--env", "K=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    before = _blob_names(layout)
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    assert tags(layout) == ["keep", "moving"]
    # A reader that resolved "moving" a moment ago may still read its old config and manifest:
    # the build leaves them, and validate says how to remove them.
    assert before <= _blob_names(layout) and len(_blob_names(layout)) == 7
    assert "hellocontainer gc" in hellocontainer("validate", layout).stderr
    removed = hellocontainer("gc", layout).stdout
    assert "removed 2 files" in removed
    # The shared layer stays, the old config and manifest of "moving" went.
    assert len(_blob_names(layout)) == 5 and len(before - _blob_names(layout)) == 2
    assert hellocontainer("validate", layout).stderr == ""


def test_a_later_build_collects_garbage_once_the_index_has_settled(hellocontainer, hello_static,
                                                                   tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    assert len(_blob_names(layout)) == 5
    # Ten minutes later no reader of the replaced image is left: the next build removes it.
    settled = time.time() - 600
    os.utime(layout / "index.json", (settled, settled))
    hellocontainer("build", hello_static, "--output", layout, "--tag", "other", "--env", "V=2")
    assert len(_blob_names(layout)) == 3  # one layer, V=2's config and manifest
    assert hellocontainer("validate", layout).stderr == ""


@pytest.mark.parametrize(("age", "collected"), [(299, False), (300, True)])
def test_a_build_collects_garbage_only_once_the_index_has_stood_five_minutes(
        hellocontainer, hello_static, tmp_path, age, collected):
    """The README's rule to the second: the last build's clock stands still (faketime, 0 s per
    reading), so index.json's age is exact."""
    faketime = require_tool("faketime", "faketime")
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    now = 1949985600  # 2031-10-17 06:40:00 UTC
    os.utime(layout / "index.json", (now - age, now - age))
    subprocess.run([faketime, "-f", "@2031-10-17 06:40:00 i0",
                    *build_command(hello_static, layout, "other", "--env", "V=2")],
                   env={**os.environ, "TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"}, check=True,
                   capture_output=True)
    assert len(_blob_names(layout)) == (3 if collected else 5)


def test_concurrent_builds_into_one_layout_keep_both_tags(hello_static, tmp_path):
    layout = tmp_path / "layout"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
    builds = 8  # enough to race on creating the layout and on each other's staging folders
    for round_ in range(3):  # a new layout, then an existing one, twice
        processes = [subprocess.Popen(build_command(hello_static, layout, f"r{round_}-{n}",
                                                    "--env", f"N={n}"), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for n in range(builds)]
        for process in processes:
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr
    assert tags(layout) == sorted(f"r{r}-{n}" for r in range(3) for n in range(builds))
    validated = subprocess.run([sys.executable, "-m", "hellocontainer", "validate", str(layout)],
                               capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr


@pytest.fixture(scope="module")
def big_binary(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid static ELF (the hello binary) padded to 256 MiB, so a build takes long enough
    to be killed in the middle of writing its layer."""
    path = tmp_path_factory.mktemp("big") / "big"
    chunk = bytes(range(256)) * 4096 + os.urandom(1 << 20)  # part compressible, part not
    with path.open("wb") as stream:
        stream.write(hello_static.read_bytes())
        for _ in range(128):
            stream.write(chunk)
    path.chmod(0o755)
    return path


def _kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILL `process` as soon as `ready()` is true (busy-polling: no sleeps, no timing)."""
    while process.poll() is None and not ready():
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("moment", ["staging", "half-written-layer"])
def test_killed_build_leaves_the_old_layout_valid(hellocontainer, hello_static, big_binary,
                                                  tmp_path, moment):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "old")
    old_index = (layout / "index.json").read_bytes()

    def staged_sizes() -> list[int]:
        """Sizes of the blob files being written; a file renamed (finished) or a folder
        removed between listing and stat is simply not counted."""
        sizes = []
        for folder in tmp_path.glob(".layout.hellocontainer-*"):
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("blob."):
                        with contextlib.suppress(FileNotFoundError):
                            sizes.append(entry.stat().st_size)
        return sizes

    def ready() -> bool:
        if moment == "staging":
            return bool(list(tmp_path.glob(".layout.hellocontainer-*")))
        return any(size > (8 << 20) for size in staged_sizes())

    process = subprocess.Popen(build_command(big_binary, layout, "new"),
                               env={**os.environ, "SOURCE_DATE_EPOCH": "1"})
    _kill_when(process, ready)
    assert process.returncode == -signal.SIGKILL
    assert (layout / "index.json").read_bytes() == old_index
    assert tags(layout) == ["old"]
    hellocontainer("validate", f"{layout}:old")
    # The next build publishes normally despite the debris of the killed one.
    hellocontainer("build", hello_static, "--output", layout, "--tag", "next")
    assert tags(layout) == ["next", "old"]
    hellocontainer("validate", layout)
    assert [p.name for p in tmp_path.iterdir()] == ["layout"]  # the killed build's debris is gone


def test_merging_keeps_the_index_annotations_another_tool_wrote(hellocontainer, hello_static,
                                                                tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
    index = json.loads((layout / "index.json").read_bytes())
    index["annotations"] = {"org.opencontainers.image.vendor": "ACME",
                            "com.example.note": "set by another tool"}
    (layout / "index.json").write_bytes(canonical(index))
    hellocontainer("build", hello_static, "--output", layout, "--tag", "2.0", "--env", "V=2")
    merged = json.loads((layout / "index.json").read_bytes())
    assert merged["annotations"] == index["annotations"]
    assert tags(layout) == ["1.0", "2.0"]
    hellocontainer("validate", layout)


def archive_members(archive: Path) -> dict[str, bytes | None]:
    """name -> content (None for a folder) of every member of an oci-archive."""
    with tarfile.open(archive) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_archive_of_a_merged_layout_holds_exactly_what_its_index_reaches(
        hellocontainer, hello_static, tmp_path):
    """--archive with a build into an existing, untidy layout: the archive is the published
    layout, both tags, and nothing else: no temporary index, no unreachable or hidden blob."""
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
    (layout / ".index.json.k1ll3d").write_bytes(b'{"schemaVersion":2,"manif')
    stray = write_blob(layout, b"a blob no tag reaches", "application/octet-stream")
    (layout / "blobs" / "sha256" / ".blob.half-written").write_bytes(b"half")
    archive = tmp_path / "archives" / "hello.tar"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "2.0", "--env", "V=2",
                   "--archive", archive)
    members = archive_members(archive)
    assert set(members) == reachable_files(layout)
    assert stray["digest"].split(":")[1] not in str(sorted(members))
    for name, content in members.items():
        if content is not None:
            assert content == (layout / name).read_bytes(), name
    assert json.loads(members["index.json"])["manifests"] == \
        json.loads((layout / "index.json").read_bytes())["manifests"]
    assert tags(layout) == ["1.0", "2.0"]


def test_archive_of_a_new_layout_is_the_layout(hellocontainer, hello_static, tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--archive", tmp_path / "a.tar")
    members = archive_members(tmp_path / "a.tar")
    assert set(members) == reachable_files(layout)
    assert all(content == (layout / name).read_bytes()
               for name, content in members.items() if content is not None)


def _strace_stopping_at(strace: str, syscalls: str, *extra: str) -> list[str]:
    """strace arguments that stop the traced build (SIGSTOP) right after each of `syscalls`,
    and report every such call on stderr, so a test can act while the build waits."""
    return [strace, "-f", "-qq", "-o", "/dev/stderr", *extra, "-e", f"trace={syscalls}",
            "-e", f"inject={syscalls}:signal=STOP"]


def _run_stopping(argv: list[str], at_stop) -> subprocess.CompletedProcess[str]:
    """Run `argv` (a traced build); at each stop call `at_stop(last_syscall_line)`, then let the
    build go on. No timing: the build is frozen for as long as `at_stop` takes."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert process.stderr is not None
    lines, last_call = [], ""
    try:
        for line in process.stderr:
            lines.append(line)
            if "--- stopped by SIGSTOP ---" in line:
                at_stop(last_call)
                os.killpg(process.pid, signal.SIGCONT)
            elif "(" in line and not line.startswith("hellocontainer:"):
                last_call = line
        stdout = process.stdout.read() if process.stdout else ""
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    ours = "".join(line for line in lines if line.startswith("hellocontainer:"))
    return subprocess.CompletedProcess(argv, process.returncode, stdout, ours)


def test_build_that_loses_the_race_to_create_the_layout_merges_into_it(hello_static, tmp_path):
    """B has staged a whole new layout and is about to rename it into place when A creates the
    layout first: B's rename fails, and B merges its tag into A's layout instead."""
    strace = require_tool("strace", "strace")
    layout = tmp_path / "layout"
    first: list[subprocess.CompletedProcess[str]] = []

    def at_stop(call: str) -> None:
        # B's index.json is in its staging folder: B has checked that the layout does not
        # exist, and renaming the folder into place is what comes next. Now A builds.
        if not first and '/index.json"' in call and ".layout.hellocontainer-" in call:
            assert not layout.exists()
            first.append(subprocess.run(build_command(hello_static, layout, "a"),
                                        capture_output=True, text=True,
                                        env={**os.environ, "SOURCE_DATE_EPOCH": "1"}))
            assert first[0].returncode == 0, first[0].stderr
            assert tags(layout) == ["a"]

    second = _run_stopping([*_strace_stopping_at(strace, "rename,renameat,renameat2"),
                            *build_command(hello_static, layout, "b", "--env", "B=1")], at_stop)
    assert first, "the build never wrote index.json into its staging folder"
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert tags(layout) == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["layout"]  # B's staging folder is gone
    validated = subprocess.run([sys.executable, "-m", "hellocontainer", "validate", str(layout)],
                               capture_output=True, text=True)
    assert validated.returncode == 0 and validated.stderr == "", validated.stderr


def test_binary_that_grows_while_it_is_packaged_is_noticed(hello_static, tmp_path):
    """The binary grows after its size went into the tar header: the build must fail rather
    than publish a layer whose file is cut short (or whose tar is corrupt)."""
    strace = require_tool("strace", "strace")
    binary = tmp_path / "hello"
    binary.write_bytes(hello_static.read_bytes())
    binary.chmod(0o755)
    layout = tmp_path / "new" / "folders" / "layout"  # created for the build, removed with it

    def at_stop(call: str) -> None:
        with binary.open("ab") as stream:  # after every open of the binary, however many
            stream.write(b"\0" * 4096)

    result = _run_stopping([*_strace_stopping_at(strace, "open,openat", "-P", str(binary)),
                            *build_command(binary, layout, "latest")], at_stop)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"hellocontainer: error: {binary} changed size while it was being "
                             "packaged; do not modify inputs during the build\n")
    # Nothing published, no staging folder, and the folders made for the output gone again.
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]


def test_layout_modes_do_not_depend_on_the_umask(hello_static, tmp_path):
    """Folders 0755 and files 0644, for a new layout and for one a later build merges into,
    whatever the umask of the build (mkdtemp and mkstemp would give 0700 and 0600)."""
    layout = tmp_path / "layout"
    for tag in ("1.0", "2.0"):  # the first creates the layout, the second merges into it
        subprocess.run(build_command(hello_static, layout, tag, "--env", f"V={tag}",
                                     "--archive", str(tmp_path / f"{tag}.tar")),
                       check=True, capture_output=True, preexec_fn=lambda: os.umask(0o077),
                       env={**os.environ, "SOURCE_DATE_EPOCH": "1"})
        modes = {str(p.relative_to(layout)): oct(p.stat().st_mode & 0o7777)
                 for p in layout.rglob("*")}
        assert oct(layout.stat().st_mode & 0o7777) == "0o755"
        assert all(modes[d] == "0o755" for d in ("blobs", "blobs/sha256")), modes
        assert all(mode == "0o644" for name, mode in modes.items() if name.startswith(
            "blobs/sha256/") or name in ("index.json", "oci-layout")), modes
        assert oct((tmp_path / f"{tag}.tar").stat().st_mode & 0o7777) == "0o644"


def test_merging_into_another_tools_layout_gives_its_folders_the_usual_modes(hellocontainer,
                                                                            hello_static,
                                                                            tmp_path):
    """A layout another tool made with private folders (0700) is readable by all after a build
    adds to it, like every layout this packager writes."""
    layout = made_layout(tmp_path / "layout")
    for folder in (layout / "blobs", layout / "blobs" / "sha256"):
        folder.chmod(0o700)
    hellocontainer("build", hello_static, "--output", layout, "--tag", "ours")
    assert [oct(p.stat().st_mode & 0o777) for p in (layout / "blobs", layout / "blobs" / "sha256")] \
        == ["0o755", "0o755"]
    assert tags(layout) == ["latest", "ours"]


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_output_that_is_a_file_or_a_link_is_refused(hellocontainer, hello_static, tmp_path, kind):
    """A link is refused too, even to a layout: publishing renames inside the output, and a
    link would make that happen somewhere else."""
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("keep me\n")
    else:
        hellocontainer("build", hello_static, "--output", tmp_path / "real")
        target.symlink_to(tmp_path / "real")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = hellocontainer("build", hello_static, "--output", target, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"hellocontainer: error: output {target} exists and is not a "
                             "directory; choose another --output\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_merge_that_fails_at_the_last_step_leaves_the_layout_as_it_was(hello_static, tmp_path):
    """Replacing index.json is the merge's last step; when it fails (here an I/O error on its
    rename), the blobs the build added are taken back and no temporary index is left."""
    strace = require_tool("strace", "strace")
    renames = "rename,renameat,renameat2"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
    layouts = [tmp_path / "probe" / "layout", tmp_path / "work" / "layout"]
    for layout in layouts:
        subprocess.run(build_command(hello_static, layout, "1.0"), check=True, capture_output=True,
                       env=env)
    # The same build, traced, says which rename replaces index.json: the build is deterministic,
    # so the same build into an identical copy makes the same calls in the same order.
    log = tmp_path / "renames"
    subprocess.run([strace, "-f", "-qq", "-o", str(log), "-e", f"trace={renames}",
                    *build_command(hello_static, layouts[0], "2.0", "--env", "V=2")],
                   check=True, capture_output=True, env=env)
    calls = [line for line in log.read_text().splitlines() if "rename" in line]
    (n,) = [i for i, line in enumerate(calls, 1) if f'"{layouts[0]}/index.json"' in line]
    layout = layouts[1]
    before = snapshot(layout)
    result = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={renames}",
                             "-e", f"inject={renames}:error=EIO:when={n}",
                             *build_command(hello_static, layout, "2.0", "--env", "V=2")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("hellocontainer: error: ") and result.stderr.count("\n") == 1
    assert "Input/output error" in result.stderr and "nothing was published" in result.stderr
    assert changes(before, snapshot(layout)) == []
    assert sorted(p.name for p in layout.parent.iterdir()) == ["layout"]


def test_every_file_renamed_into_a_layout_was_fsynced_first(hello_static, tmp_path):
    """A rename is atomic, but after a power cut the new name may point at a file whose data
    never reached the disk unless the data was synced first. Checked on the system calls
    themselves: every rename(2) of a temporary file follows an fsync(2) of that very file."""
    strace = require_tool("strace", "strace")
    layout = tmp_path / "layout"
    subprocess.run(build_command(hello_static, layout, "1.0"), check=True, capture_output=True)
    log = tmp_path / "trace"
    renames = "rename,renameat,renameat2"
    subprocess.run([strace, "-f", "-qq", "-y", "-o", str(log), "-e", f"trace=fsync,fdatasync,{renames}",
                    *build_command(hello_static, layout, "2.0", "--env", "V=2")],
                   check=True, capture_output=True)
    synced: set[str] = set()
    renamed = []
    for line in log.read_text().splitlines():
        if "fsync(" in line or "fdatasync(" in line:
            synced.update(re.findall(r"\d+<([^>]*)>", line))
        elif "rename" in line and "= 0" in line:
            source, target = re.findall(r'"([^"]*)"', line)[:2]
            renamed.append(target)
            assert source in synced, f"{source} was renamed to {target} before it was fsynced"
            synced.add(target)  # the same file, already on disk, under its next name
    assert any("index.json" in name for name in renamed)  # the one that matters most
