"""Long work shows one progress line on a terminal's stderr, rewritten in place and cleared at
the end; anything else (a build log, a pipe, --quiet, quick work) gets nothing."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The line appears at once rather than after a second: the tests' inputs are small.
AT_ONCE = {"HELLOCONTAINER_PROGRESS_AFTER": "0"}


def on_a_terminal(*args: object, env: dict[str, str] | None = None) -> tuple[str, str, int]:
    """Run the CLI with stderr on a pseudo-terminal: (stdout, what the terminal got, status)."""
    master, slave = pty.openpty()
    full_env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "hellocontainer", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=slave, env=full_env)
    os.close(slave)
    terminal = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        terminal += data
    os.close(master)
    stdout = process.stdout.read().decode()  # type: ignore[union-attr]
    return stdout, terminal.decode(), process.wait()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(6 << 20))
    return path


def assert_cleared_progress(terminal: str, what: str) -> None:
    """Redrawn with \\r, never a new line, and blank at the end."""
    assert "\n" not in terminal, repr(terminal)
    lines = terminal.split("\r")
    assert lines[0] == "" and lines[-1] == "", repr(terminal[-200:])
    shown = [line.rstrip() for line in lines if line.strip()]
    assert shown and all(line.startswith(f"{what}: ") and " MiB (" in line for line in shown)
    assert lines[-2].strip() == ""  # the last line drawn is the one that blanks it


def test_build_and_bundle_show_progress_on_a_terminal(hellocontainer, hello_static, big_file,
                                                      tmp_path):
    out, bundle = tmp_path / "o", tmp_path / "b"
    stdout, terminal, status = on_a_terminal(
        "build", hello_static, "--output", out, "--file", f"{big_file}:/data.bin",
        "--compression", "none", env=AT_ONCE)
    assert status == 0 and stdout.startswith(f"{out}:latest sha256:")
    assert_cleared_progress(terminal, "writing the layer")
    assert "of 6.0 MiB" in terminal
    stdout, terminal, status = on_a_terminal("bundle", out, "--output", bundle, env=AT_ONCE)
    assert status == 0 and stdout.startswith(f"{bundle}: runtime bundle of")
    assert_cleared_progress(terminal, "unpacking the layers")
    # The layer blobs read so far, of all of them: growing, never past the whole.
    shown = re.findall(r"unpacking the layers: ([0-9.]+) of ([0-9.]+) MiB \((\d+)%\)", terminal)
    assert shown and {total for _, total, _ in shown} == {"6.0"}, shown
    done = [float(part) for part, _, _ in shown]
    assert done == sorted(done) and done[0] >= 0 and done[-1] <= 6.0, shown


def test_quiet_quick_work_and_a_log_get_no_progress(hellocontainer, hello_static, big_file,
                                                    tmp_path):
    file = ["--file", f"{big_file}:/data.bin", "--compression", "none"]
    _, terminal, status = on_a_terminal("build", hello_static, "--output", tmp_path / "q",
                                        *file, "--quiet", env=AT_ONCE)
    assert status == 0 and terminal == ""
    _, terminal, status = on_a_terminal("build", hello_static, "--output", tmp_path / "quick")
    assert status == 0 and terminal == ""
    logged = hellocontainer("build", hello_static, "--output", tmp_path / "log", *file,
                            env=AT_ONCE)
    assert logged.stderr == ""
    bundled = hellocontainer("bundle", tmp_path / "log", "--output", tmp_path / "b", env=AT_ONCE)
    assert bundled.stderr == ""


def test_an_error_on_a_terminal_is_still_one_line(hello_static, tmp_path):
    _, terminal, status = on_a_terminal("build", hello_static, "--output", tmp_path / "o",
                                        "--file", "nope:/nope", env=AT_ONCE)
    assert status == 1
    assert terminal.count("\n") == 1 and terminal.startswith("hellocontainer: error: ")
