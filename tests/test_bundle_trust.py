"""`hellocontainer bundle` trusts nothing: not the image's setuid files, not what is at --output,
not a layer nesting thousands of directories deep.

- A setuid-root program of the image keeps its mode for the container, but no other user of the
  host can reach it (the bundle folder is 0700, as umoci makes it).
- --output is replaced only when it is a bundle this tool wrote; a user's folder is never
  deleted, and the layout itself is never a place for the bundle.
- Deep trees are built, replaced and cleaned up without recursion, and a killed run's staging
  never blocks the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bundle import entry, layer, listing, make_layout, no_debris, run_crun, run_runc

from conftest import require_tool
from layouts import TIMEOUT, assert_one_error, cli, summary

DEPTH = 4000
EUID_C = r"""
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct stat st;
    if (stat(argv[0], &st) != 0) return 2;
    printf("euid=%d mode=%o\n", (int)geteuid(), (unsigned)(st.st_mode & 07777));
    return 0;
}
"""


def nobody() -> list[str]:
    setpriv = require_tool("setpriv", "util-linux")
    if os.geteuid() != 0:
        pytest.skip("switching to nobody needs root")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


# Thousands of nested directories are I/O bound: seconds of waiting on a busy disk, under a
# second of CPU. The hang guard stays, with room for a loaded CI machine.
DEEP_TIMEOUT = 180.0


def ok(*args: object, as_nobody: bool = False, cwd: Path | None = None,
       timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = run(*args, as_nobody=as_nobody, cwd=cwd, timeout=timeout)
    assert result.returncode == 0 and not result.stderr, summary(result)
    return result


def run(*args: object, as_nobody: bool = False, cwd: Path | None = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    if not as_nobody:
        return cli(*args, cwd=cwd, timeout=timeout)
    from layouts import cli_argv, cli_env, finish, start

    return finish(start([*nobody(), *cli_argv(*args)], cli_env({"HOME": "/nonexistent"}), cwd),
                  timeout)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A 0755 folder under /tmp that every user can traverse (pytest's tmp_path is root's 0700:
    it would hide a bundle from other users whatever the packager did)."""
    folder = Path(tempfile.mkdtemp(prefix="hellocontainer-trust-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)  # iterative: deep trees too


# --- 1. setuid files of the image ----------------------------------------------------------------

@pytest.fixture
def setuid_layout(hello_static: Path, shared_tmp: Path) -> Path:
    """An image whose /usr/bin/euid is a setuid-root program that prints its euid and mode."""
    compiler = shutil.which("musl-gcc") or require_tool("cc", "gcc")
    source = shared_tmp / "euid.c"
    source.write_text(EUID_C)
    binary = shared_tmp / "euid"
    subprocess.run([compiler, "-static", "-Os", "-o", str(binary), str(source)], check=True)
    layout = shared_tmp / "layout"
    result = cli("build", hello_static, "--output", layout, "--file", f"{binary}:/usr/bin/euid:4755",
                 "--entrypoint", "/usr/bin/euid", timeout=60)
    assert result.returncode == 0, summary(result)
    return layout


def test_a_setuid_root_file_cannot_be_run_by_another_user_of_the_host(setuid_layout, shared_tmp):
    nobody_argv = nobody()
    bundle = shared_tmp / "bundle"
    ok("bundle", setuid_layout, "--output", bundle)
    program = bundle / "rootfs" / "usr" / "bin" / "euid"
    info = os.stat(program)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o4755)  # as the image says
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o700
    # nobody reaches the folder the bundle is in, but not into the bundle.
    assert subprocess.run([*nobody_argv, "ls", str(shared_tmp)], capture_output=True).returncode == 0
    # Through a shell, as a user runs it: setpriv's own execve still holds root's capabilities.
    attempt = subprocess.run([*nobody_argv, "sh", "-c", 'exec "$0"', str(program)],
                             capture_output=True, text=True)
    assert attempt.returncode != 0 and "euid=" not in attempt.stdout
    assert "Permission denied" in attempt.stderr, attempt.stderr


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_the_container_still_sees_the_setuid_mode(setuid_layout, shared_tmp, runtime):
    bundle = shared_tmp / "bundle"
    ok("bundle", setuid_layout, "--output", bundle)
    started = (run_runc if runtime == "runc" else run_crun)(bundle, shared_tmp / runtime)
    assert started.returncode == 0, started.stderr
    assert started.stdout == "euid=0 mode=4755\n"


def test_a_bundle_made_by_another_user_is_theirs_alone(setuid_layout, shared_tmp):
    """Not root: the files are the caller's, setuid bit and all, behind the caller's 0700."""
    output = shared_tmp / "mine"
    output.mkdir()
    shutil.chown(output, "nobody", "nogroup")
    ok("bundle", setuid_layout, "--output", output / "bundle", as_nobody=True)
    bundle = output / "bundle"
    program = os.stat(bundle / "rootfs" / "usr" / "bin" / "euid")
    folder = os.stat(bundle)
    assert program.st_uid == folder.st_uid != 0
    assert stat.S_IMODE(program.st_mode) == 0o4755 and stat.S_IMODE(folder.st_mode) == 0o700


# --- 2. what is at --output ------------------------------------------------------------------------

def small_layout(root: Path) -> Path:
    return make_layout(root, layer(entry("hello", data=b"x", mode=0o755)))


@pytest.mark.parametrize("shape", ["config.json", "rootfs", "unmarked bundle", "forged marker",
                                   "marker of another shape", "marker that is no JSON"])
def test_a_folder_this_tool_did_not_write_is_never_replaced(tmp_path, shape):
    layout = small_layout(tmp_path / "layout")
    output = tmp_path / "out"
    output.mkdir()
    if shape != "rootfs":
        (output / "config.json").write_text('{"auths":{}}')
    if shape != "config.json":
        (output / "rootfs").mkdir()
        (output / "rootfs" / "precious").write_text("x")
    if shape == "forged marker":
        (output / "hellocontainer.json").symlink_to("/etc/hostname")
    if shape == "marker of another shape":
        (output / "hellocontainer.json").write_text('["manifest", "sha256:"]')
    if shape == "marker that is no JSON":
        (output / "hellocontainer.json").write_bytes(b'{"manifest": "\xff')
    before = listing(output)
    error = assert_one_error(run("bundle", layout, "--output", output))
    assert f"--output {output} holds " in error and "choose another --output" in error
    assert listing(output) == before
    no_debris(tmp_path)


def test_a_bundle_this_tool_wrote_is_replaced_and_says_what_it_holds(tmp_path):
    layout = small_layout(tmp_path / "layout")
    output = tmp_path / "out"
    ok("bundle", layout, "--output", output)
    (output / "rootfs" / "hello").unlink()
    ok("bundle", layout, "--output", output)
    assert (output / "rootfs" / "hello").read_bytes() == b"x"
    marker = json.loads((output / "hellocontainer.json").read_text())
    index = json.loads((layout / "index.json").read_text())
    assert marker == {"manifest": index["manifests"][0]["digest"], "platform": "linux/amd64"}
    assert sorted(os.listdir(output)) == ["config.json", "hellocontainer.json", "rootfs"]
    no_debris(tmp_path)


def test_an_output_that_is_a_symbolic_link_is_refused(tmp_path):
    layout = small_layout(tmp_path / "layout")
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to("real")
    error = assert_one_error(run("bundle", layout, "--output", tmp_path / "out"))
    assert f"--output {tmp_path / 'out'} is a symbolic link; name the directory itself" in error
    assert os.listdir(tmp_path / "real") == [] and (tmp_path / "out").is_symlink()


def test_an_output_under_a_file_is_one_error_line(tmp_path):
    layout = small_layout(tmp_path / "layout")
    (tmp_path / "blocker").write_text("")
    error = assert_one_error(run("bundle", layout, "--output", tmp_path / "blocker" / "out"))
    assert f"--output ({tmp_path / 'blocker' / 'out'}): Not a directory" in error


def test_an_output_folder_the_user_cannot_list_is_one_error_line(shared_tmp):
    """A folder another user may enter but not read: which bundle it is cannot be told, so the
    error names --output and the cause (not a later step's words)."""
    layout = small_layout(shared_tmp / "layout")
    output = shared_tmp / "out"
    output.mkdir(mode=0o711)
    output.chmod(0o711)
    error = assert_one_error(run("bundle", layout, "--output", output, as_nobody=True))
    assert f"--output {output}: Permission denied" in error
    assert output.stat().st_mode & 0o7777 == 0o711 and not os.listdir(output)


def test_a_bundle_that_cannot_be_published_is_one_error_line_and_leaves_no_debris(tmp_path):
    """The last step fails (the rename of the finished bundle to --output, made to fail by
    strace): one line naming the bundle, and neither the bundle nor its staging folder remain."""
    strace = require_tool("strace", "strace")
    from layouts import cli_argv, cli_env, finish, start

    layout = small_layout(tmp_path / "layout")
    output = tmp_path / "out"
    # The publishing rename is the only rename of a bundle into a fresh --output (with no
    # .pyc written), so the first traced rename is the one that fails.
    argv = [strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
            "-e", "inject=rename,renameat,renameat2:error=EIO:when=1",
            *cli_argv("bundle", layout, "--output", output)]
    env = cli_env({"PYTHONDONTWRITEBYTECODE": "1"})
    error = assert_one_error(finish(start(argv, env), TIMEOUT))
    assert f"cannot publish the bundle {output}" in error and "Input/output error" in error
    assert not output.exists()
    no_debris(tmp_path)


def test_an_empty_output_folder_becomes_the_bundle(tmp_path):
    layout = small_layout(tmp_path / "layout")
    (tmp_path / "out").mkdir()
    ok("bundle", layout, "--output", tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "hellocontainer.json", "rootfs"]
    no_debris(tmp_path)


@pytest.mark.parametrize(("names", "shown"), [
    (["c", "a", "b"], "a, b, c"),
    (["d", "c", "a", "b"], "a, b, c, ..."),
])
def test_a_foreign_folder_is_refused_naming_its_first_entries(tmp_path, names, shown):
    layout = small_layout(tmp_path / "layout")
    output = tmp_path / "out"
    output.mkdir()
    for name in names:
        (output / name).write_text("x")
    error = assert_one_error(run("bundle", layout, "--output", output))
    assert f"--output {output} holds {shown}, which is no bundle hellocontainer wrote" in error


@pytest.mark.parametrize(("size", "replaced"), [(4096, True), (4097, False)])
def test_a_bundle_marker_is_believed_up_to_4_kib(tmp_path, size, replaced):
    """Deciding whether --output is ours reads at most 4 KiB of its marker, whatever is there."""
    layout = small_layout(tmp_path / "layout")
    output = tmp_path / "out"
    ok("bundle", layout, "--output", output)
    marker = output / "hellocontainer.json"
    text = marker.read_text()
    marker.write_text(text + " " * (size - len(text)))  # still the same JSON document
    result = run("bundle", layout, "--output", output)
    if replaced:
        assert result.returncode == 0, summary(result)
        assert len(marker.read_bytes()) == len(text)
    else:
        assert "which is no bundle hellocontainer wrote" in assert_one_error(result)
        assert len(marker.read_bytes()) == size


@pytest.mark.parametrize("where", ["inside", "itself", "around"])
def test_a_bundle_overlapping_its_layout_is_refused(tmp_path, where):
    layout = small_layout(tmp_path / "layout")
    output = {"inside": layout / "bundle", "itself": layout, "around": tmp_path}[where]
    before = listing(tmp_path)
    error = assert_one_error(run("bundle", layout, "--output", output))
    assert "overlap" in error
    assert listing(tmp_path) == before


# --- 3. deep trees ---------------------------------------------------------------------------------

def deep_layout(root: Path) -> Path:
    """DEPTH nested directories in a few KB: a read-only one at the top and at the bottom, a file
    at the bottom; a second layer hides it with an opaque whiteout and puts another beside it."""
    deep = "/".join(["d"] * DEPTH)
    return make_layout(
        root,
        layer(entry("d", "dir", mode=0o555), entry(f"{deep}/leaf", data=b"lower")),
        layer(entry("d/.wh..wh..opq"), entry(deep, "dir", mode=0o555),
              entry(f"{deep}/upper", data=b"upper"), entry("hello", data=b"x", mode=0o755)))


def deepest(bundle: Path) -> list[str]:
    """The names in the deepest directory (its path is far beyond PATH_MAX)."""
    fd = os.open(bundle / "rootfs", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
@pytest.mark.slow
def test_a_deep_layer_is_bundled_and_bundled_again_over_itself(shared_tmp, as_nobody):
    layout = deep_layout(shared_tmp / "layout")
    output = shared_tmp / "out"
    output.mkdir()
    if as_nobody:
        nobody()
        shutil.chown(output, "nobody", "nogroup")
    bundle = output / "bundle"
    ok("bundle", layout, "--output", bundle, as_nobody=as_nobody, timeout=DEEP_TIMEOUT)
    assert deepest(bundle) == ["upper"]  # the whiteout hid the lower leaf, thousands deep
    # Replaces, exit 0.
    ok("bundle", layout, "--output", bundle, as_nobody=as_nobody, timeout=DEEP_TIMEOUT)
    assert deepest(bundle) == ["upper"]
    no_debris(output)
    # A shallow bundle replaces the deep one, which is removed in full.
    ok("bundle", small_layout(shared_tmp / "small"), "--output", bundle, as_nobody=as_nobody,
       timeout=DEEP_TIMEOUT)
    assert not (bundle / "rootfs" / "d").exists()
    no_debris(output)


def make_deep_debris(staging: Path) -> None:
    """What a run killed in the middle of a deep layer leaves: DEPTH read-only directories."""
    staging.mkdir()
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ["rootfs"] + ["d"] * DEPTH:
            os.mkdir(name, 0o755, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.chmod(name, 0o555, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_killed_deep_runs_staging_is_removed_by_the_next_run(tmp_path):
    debris = tmp_path / ".bundle.bundle-killed"
    make_deep_debris(debris)
    try:
        ok("bundle", small_layout(tmp_path / "layout"), "--output", tmp_path / "bundle",
           timeout=DEEP_TIMEOUT)
        no_debris(tmp_path)
    finally:  # pytest's own clean-up of tmp_path recurses: it must never meet this tree
        subprocess.run(["rm", "-rf", str(debris)], check=True)


def test_removing_a_tree_as_another_user_never_changes_a_mode_through_a_symlink(shared_tmp):
    """A non-root remover makes read-only folders of its own writable to empty them; a symbolic
    link inside (to a folder and to a file of the same user) must be removed, never followed."""
    victim_dir, victim_file = shared_tmp / "victim", shared_tmp / "victim-file"
    victim_dir.mkdir(mode=0o555)
    victim_file.write_text("keep")
    victim_file.chmod(0o444)
    home = shared_tmp / "home"  # nobody's, so that nobody may remove what is in it
    tree = home / "tree"
    (tree / "ro").mkdir(parents=True)
    (tree / "ro" / "to-dir").symlink_to(victim_dir)
    (tree / "ro" / "to-file").symlink_to(victim_file)
    (tree / "ro").chmod(0o555)
    for path in (victim_dir, victim_file, home, tree, tree / "ro"):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    code = ("import sys; from pathlib import Path; from hellocontainer.store.staging import "
            "remove_tree; remove_tree(Path(sys.argv[1]))")
    subprocess.run([*nobody(), sys.executable, "-c", code, str(tree)], check=True,
                   env={**os.environ, "HOME": "/nonexistent"})
    assert not tree.exists()
    assert stat.S_IMODE(victim_dir.stat().st_mode) == 0o555
    assert stat.S_IMODE(victim_file.stat().st_mode) == 0o444 and victim_file.read_text() == "keep"
