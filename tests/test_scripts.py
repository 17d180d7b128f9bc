"""What a new user meets first: scripts/hello and scripts/test run from a fresh checkout.

The checkout is a copy of this work tree (uncommitted changes included) at a path with a space
and capitals, "My Work…/Hello Container", the kind of path that used to break the report.
scripts/hello runs there for the first time, creating its own .venv as a user's first run does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, STRICT, podman_command, require_tool

EPOCH = "1700000000"
# A tool no machine has, for the skip summary and the missing-package hint.
FAKE_TOOL, FAKE_PACKAGE = "hellocontainer-no-such-tool", "hellocontainer-no-such-package"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of every file git tracks or would track, as a git work tree of its own."""
    git = require_tool("git", "git")
    listing = subprocess.run([git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True)
    if listing.returncode != 0:
        pytest.fail(f"{REPO} is not a git checkout: these tests copy what git would commit")
    listed = listing.stdout
    root = tmp_path_factory.mktemp("My Work") / "Hello Container"
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is not part of it
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name, follow_symlinks=False)
    # Staged, not committed: enough for `git status` to tell tracked from untracked files.
    subprocess.run([git, "init", "-q"], cwd=root, check=True)
    subprocess.run([git, "add", "-A"], cwd=root, check=True)
    return root


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HELLOCONTAINER_VENV", "HELLOCONTAINER_STRICT_TOOLS")}
    env.update(changes)
    return env


@pytest.fixture(scope="module")
def first_hello(checkout: Path) -> subprocess.CompletedProcess[str]:
    """scripts/hello's first run in the checkout (it sets up the checkout's own .venv)."""
    result = subprocess.run([str(checkout / "scripts" / "hello")], capture_output=True, text=True,
                            env=_env(SOURCE_DATE_EPOCH=EPOCH))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _field(output: str, name: str) -> str:
    """The value of the `name:` line of scripts/hello's report."""
    (value,) = [line.split(":", 1)[1].strip() for line in output.splitlines()
                if line.startswith(f"{name}:")]
    return value


def test_hello_first_run_says_what_it_does_and_hides_pip(first_hello, checkout):
    progress = first_hello.stderr.splitlines()
    assert progress[0] == "setting up a Python environment in .venv (first run only) ..."
    # Nothing else but the build's own progress line (and the musl note where musl is missing):
    # no pip chatter, no warnings about the machine's pip configuration.
    assert all(line.startswith(("building examples/hello", "note: musl-gcc not found"))
               for line in progress[1:]), first_hello.stderr
    # The main job installs the packager's runtime dependencies only, not the test tools.
    assert (checkout / ".venv" / "bin" / "hellocontainer").exists()
    assert not (checkout / ".venv" / "bin" / "pytest").exists()


def test_hello_reports_the_manifest_digest_from_a_path_with_a_space(first_hello, checkout):
    layout = checkout / "deploy" / "images" / "hello-oci"
    index = json.loads((layout / "index.json").read_text())
    (latest,) = [m["digest"] for m in index["manifests"]
                 if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", _field(first_hello.stdout, "manifest"))
    assert _field(first_hello.stdout, "manifest") == latest
    assert _field(first_hello.stdout, "image").startswith(f"{layout}:latest ")


def test_hello_gives_the_digest_the_readme_promises(first_hello):
    """The README's example digest is what a checkout builds: a refactoring that changed one
    byte of the image, its config or its layer would change it."""
    require_tool("musl-gcc", "musl-tools")  # the README's digest is the musl build's
    (promised,) = re.findall(r"^manifest: (sha256:[0-9a-f]{64})$", (REPO / "README.md").read_text(), re.M)
    assert _field(first_hello.stdout, "manifest") == promised


def test_hello_run_it_line_runs_as_printed(first_hello, podman_home, tmp_path):
    command = _field(first_hello.stdout, "run it")
    # `podman` on PATH is the real one, pointed at this session's private store.
    argv, env = podman_command(podman_home)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "podman").write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n')
    (shim / "podman").chmod(0o755)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert result.stdout == "Hello container!\n"


def test_hello_help_is_its_usage_and_nothing_else():
    result = subprocess.run([str(REPO / "scripts" / "hello"), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("The main job, end to end:")
    assert lines[-1].strip().startswith("scripts/hello [--deploy-dir DIR]")
    assert not any(line.startswith(("#", "set ")) for line in lines)


def test_hello_names_the_packager_it_used(first_hello, checkout):
    # The packager is not on PATH after scripts/hello: its `tool:` line says where it is, quoted
    # to paste as is, and how to install it instead.
    words = shlex.split(_field(first_hello.stdout, "tool"))
    assert words[0] == str(checkout / ".venv" / "bin" / "hellocontainer")
    assert " ".join(words[1:]) == "(or: pipx install ./python)"
    result = subprocess.run([words[0], "validate", checkout / "deploy" / "images" / "hello-oci"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def readme_hello_console() -> list[str]:
    """The README's example session of scripts/hello: its output lines."""
    readme = (REPO / "README.md").read_text()
    match = re.search(rf"```console\n\$ SOURCE_DATE_EPOCH={EPOCH} scripts/hello\n(.*?)```", readme,
                      re.DOTALL)
    assert match, "README.md has no console block of `SOURCE_DATE_EPOCH=... scripts/hello`"
    return match.group(1).splitlines()


def test_readme_shows_what_scripts_hello_prints(first_hello, checkout):
    # The README's checkout is "/…/My Work"; its digest and size are Debian 12's (musl, gcc),
    # so here only their form is compared. The musl note is the one line a machine may add.
    printed = (first_hello.stderr + first_hello.stdout).replace(str(checkout), "/…/My Work")
    lines = [line for line in printed.splitlines() if not line.startswith("note: musl-gcc")]
    shown = readme_hello_console()
    assert len(lines) == len(shown), printed
    for line, expected in zip(lines, shown):
        if expected.startswith(("manifest:", "size:")):
            form = re.sub(r"[0-9a-f]{64}", "DIGEST", re.sub(r"\b\d+\b", "N", expected))
            line = re.sub(r"[0-9a-f]{64}", "DIGEST", re.sub(r"\b\d+\b", "N", line))
            assert line == form
        elif expected.startswith("building examples/hello"):
            assert line.startswith("building examples/hello (")  # musl or glibc
        else:
            assert line == expected


@pytest.mark.space_in_path
def test_example_builds_and_distchecks_under_a_path_with_a_space(first_hello, checkout, tmp_path):
    """The example's own flow in a folder below "My Work", with the packager that scripts/hello
    left in the checkout (a path with a space too): each path must stay one word through make
    and the shell, in the compiler's prefix maps and in distcheck's configure line."""
    for tool, package in (("autoreconf", "autoconf"), ("automake", "automake"), ("make", "make"),
                          ("gcc", "gcc")):
        require_tool(tool, package)
    source = tmp_path / "My Work" / "hello"
    shutil.copytree(checkout / "examples" / "hello", source)
    packager = checkout / ".venv" / "bin" / "hellocontainer"
    env = _env(SOURCE_DATE_EPOCH=EPOCH, PATH=f"{packager.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("CONFIG_SITE", None)
    for argv in (["./bootstrap"], ["./configure"], ["make"], ["make", "container"],
                 ["make", "distcheck"]):
        result = subprocess.run(argv, cwd=source, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(argv)}\n{result.stdout}\n{result.stderr}"
    assert "archives ready for distribution" in result.stdout
    # The unstripped program keeps its DWARF: the prefix maps took the whole directory away.
    assert b"My Work" not in (source / "hello").read_bytes()
    result = subprocess.run([packager, "validate", source / "hellocontainer"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_run_lists_the_packages_before_installing(tmp_path):
    # .ci/run on its own, with apt-get and scripts/test stood in for: what it prints, and when.
    top = tmp_path / "ci"
    (top / ".ci").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "run", top / ".ci" / "run")
    (top / "tests").mkdir()
    shutil.copy2(REPO / "tests" / "system-tools.txt", top / "tests" / "system-tools.txt")
    (top / "scripts").mkdir()
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for script, line in ((top / "scripts" / "test", 'echo "scripts/test ran $*" >&2'),
                         (stubs / "apt-get", 'echo "apt-get $*" >&2')):
        script.write_text(f"#!/bin/sh\n{line}\n")
        script.chmod(0o755)
    result = subprocess.run([str(top / ".ci" / "run")], capture_output=True, text=True,
                            env=_env(PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    first_apt = next(i for i, line in enumerate(lines) if line.startswith("apt-get "))
    listed = " ".join(lines[:first_apt]).split()
    for line in (REPO / "tests" / "system-tools.txt").read_text().splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            assert words[1] in listed, f"{words[1]} is installed but not listed first"
    assert lines[-1] == "scripts/test ran --full -p no:cacheprovider"  # CI runs every test


def test_pip_install_of_the_packager_leaves_no_untracked_files(first_hello, checkout, tmp_path):
    # What the README's `pipx install ./python` runs, pip install of ./python, into a scratch
    # target; scripts/hello ran before.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(tmp_path / "site"),
                    "./python"], cwd=checkout, capture_output=True, text=True, check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=checkout, capture_output=True, text=True, check=True).stdout
    assert [line for line in status.splitlines() if line.startswith("??")] == []


def test_scripts_test_groups_skip_reasons_and_repeats_the_hint_last(checkout):
    tools = checkout / "tests" / "system-tools.txt"
    listing = tools.read_text()
    probe = checkout / "tests" / "test_zz_missing_tool.py"
    tools.write_text(listing + f"{FAKE_TOOL} {FAKE_PACKAGE}\n")
    probe.write_text(
        "import pytest\n\n"
        "from conftest import require_tool\n\n\n"
        "def test_needs_a_missing_tool_once():\n"
        f"    require_tool({FAKE_TOOL!r}, {FAKE_PACKAGE!r})\n\n\n"
        "def test_needs_a_missing_tool_twice():\n"
        f"    require_tool({FAKE_TOOL!r}, {FAKE_PACKAGE!r})\n\n\n"
        "@pytest.mark.slow\n"
        "def test_needs_a_missing_tool_slowly():\n"
        f"    require_tool({FAKE_TOOL!r}, {FAKE_PACKAGE!r})\n")
    try:
        # The test tools of this session's environment: the checkout's .venv has none.
        result = subprocess.run(
            [str(checkout / "scripts" / "test"), "-p", "no:cacheprovider", "-k",
             "needs_a_missing_tool"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_env(HELLOCONTAINER_VENV=sys.prefix))
    finally:
        tools.write_text(listing)
        probe.unlink()
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout
    reason = f"{FAKE_TOOL} not found; install it with: apt-get install {FAKE_PACKAGE}"
    notice = next(i for i, line in enumerate(lines) if line.startswith("running the fast tests: "))
    assert notice < next(i for i, line in enumerate(lines) if "test session starts" in line)
    assert f"   2  {reason}" in lines  # the slow one was left out of the fast run
    # After pytest's last line ("2 skipped, … deselected in …s"), the hint once more.
    last_result = max(i for i, line in enumerate(lines) if " skipped" in line and "===" in line)
    assert lines[last_result + 1].startswith("note: tests needing these were skipped")
    assert FAKE_PACKAGE in lines[last_result + 2].split()


def test_path_sensitive_tests_pass_in_a_checkout_under_a_path_with_a_space(checkout):
    """scripts/test from the copy under "My Work…/Hello Container", its own packager first on
    the import path and its temporary folders beside it: the parts that put paths on command
    lines (the example's autotools flow, completion scripts sourced by path, the manual page
    rendered from a file) pass there too."""
    result = subprocess.run(
        [str(checkout / "scripts" / "test"), "-p", "no:cacheprovider",
         "--basetemp", str(checkout.parent / "pytest temp"),
         "-k", "test_completion or test_example_hello or test_cli_usage"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(HELLOCONTAINER_VENV=sys.prefix, PYTHONPATH=str(checkout / "python" / "src")))
    summary = [line for line in result.stdout.splitlines() if "passed" in line and "===" in line]
    assert result.returncode == 0 and summary, result.stdout[-3000:]
    assert "failed" not in summary[-1] and "error" not in summary[-1], summary[-1]


def test_system_tools_file_checks_name_files_their_packages_install():
    """A path in tests/system-tools.txt stands for its package: it must be one the package
    really installs, or scripts/test asks for a package that is already there."""
    dpkg = require_tool("dpkg", "dpkg")
    for line in (REPO / "tests" / "system-tools.txt").read_text().splitlines():
        words = line.split()
        if not words or not words[0].startswith("/"):
            continue
        path, package = words[0], words[1]
        listed = subprocess.run([dpkg, "-L", package], capture_output=True, text=True)
        if listed.returncode != 0:
            message = f"{package} not installed; install it with: apt-get install {package}"
            if STRICT:
                pytest.fail(message)
            pytest.skip(message)
        assert path in listed.stdout.splitlines(), f"{package} does not install {path}"


WORDS_FLAGS = ("--entrypoint", "--cmd", "--env", "--port", "--label", "--annotation", "--tag",
               "--file")


def test_build_help_gives_each_words_flag_an_example_of_its_own(hellocontainer):
    # Wide enough that argparse keeps each option's help on its line.
    help_text = hellocontainer("build", "--help", env={"COLUMNS": "1000"}).stdout
    examples = {}
    for flag in WORDS_FLAGS:
        (line,) = [x for x in help_text.splitlines() if x.lstrip().startswith(f"{flag} WORDS")]
        example = line.split("e.g. ", 1)[1]
        assert example.startswith(f"{flag} "), line
        examples[flag] = example
    assert len(set(examples.values())) == len(WORDS_FLAGS)


@pytest.mark.parametrize("argv,message", [
    (["--survivors", "board/rootfs"], "--survivors goes with --resume WORK"),
    (["--jobs", "two", "board/rootfs"], "--jobs takes a number"),
    (["--jobs"], "--jobs takes a number"),
    (["--resume", "/nonexistent/hellocontainer-mutate.x"], "--resume takes a kept work folder"),
    (["--fast"], "unknown option '--fast'"),
])
def test_mutate_refuses_a_wrong_call_in_one_line_before_any_work(argv, message, tmp_path):
    result = subprocess.run([REPO / "scripts" / "mutate", *argv], capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"hellocontainer: error: {message}; see scripts/mutate --help\n"
    assert not list(tmp_path.iterdir()), "a work folder was made"
