"""`hellocontainer autostart`: the init script and systemd unit that start a container at boot.

What a board does with these files is the boot test's business (tests/board.py boots them); here
are the properties a reader of the files can check on this machine: the right runtime command
with the right target paths, clean under shellcheck and `systemd-analyze verify`, byte-identical
for the same settings wherever they are written, and one-line errors that leave nothing behind.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Runner, require_tool

BUNDLE = "/usr/share/hellocontainer/hello-bundle"
LAYOUT = "/usr/share/hellocontainer/hello-oci"


def write(hellocontainer: Runner, directory: Path, *args: str, check: bool = True
          ) -> subprocess.CompletedProcess[str]:
    """`hellocontainer autostart ARGS --sysv DIR/S95hello --systemd DIR/hello.service`."""
    return hellocontainer("autostart", *args, "--sysv", directory / "S95hello",
                          "--systemd", directory / "hello.service", check=check)


def crun_files(hellocontainer: Runner, directory: Path, *args: str) -> tuple[str, str]:
    write(hellocontainer, directory, "--name", "hello", "--bundle", BUNDLE, *args)
    return ((directory / "S95hello").read_text(), (directory / "hello.service").read_text())


def unit_values(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)


def unit_shell(unit: str, key: str) -> str:
    """The shell program of `key=/bin/sh -c "..."`, unquoted (tests/test_restart_backoff.py
    runs it as systemd parses it)."""
    joined = unit.replace("\\\n", "")
    (value,) = unit_values(joined, key)
    assert value.startswith('/bin/sh -c "') and value.endswith('"')
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]),
                  value[len('/bin/sh -c "'):-1]).replace("$$", "$")


def script_commands(script: str) -> list[list[str]]:
    """The runtime calls of the script, as the words the shell passes ("$RUNTIME" kept)."""
    return [shlex.split(line.split(">", 1)[0].split("<", 1)[0])
            for line in script.splitlines() if line.strip().startswith('"$RUNTIME"')]


# ---------------------------------------------------------------------------------------------
# the commands

def test_crun_script_deletes_a_stale_container_then_runs_the_bundle(
        hellocontainer: Runner, tmp_path: Path) -> None:
    script, _ = crun_files(hellocontainer, tmp_path)
    assert 'RUNTIME="crun"' in script
    commands = script_commands(script)
    assert commands[:2] == [["$RUNTIME", "delete", "-f", "hello"],
                            ["$RUNTIME", "run", "--bundle", BUNDLE, "hello"]]


def test_crun_unit_deletes_a_stale_container_then_runs_the_bundle(
        hellocontainer: Runner, tmp_path: Path) -> None:
    _, unit = crun_files(hellocontainer, tmp_path)
    start = unit_shell(unit, "ExecStart")
    assert 'RUNTIME="crun"' in start
    # The shell ends in the runtime: it stays the service's main process.
    assert script_commands(start) == [["$RUNTIME", "delete", "-f", "hello"]]
    assert start.endswith(f'\nexec "$RUNTIME" run --bundle {BUNDLE} hello\n')


def test_runc_runs_the_bundle_with_runc(hellocontainer: Runner, tmp_path: Path) -> None:
    script, unit = crun_files(hellocontainer, tmp_path, "--runtime", "runc")
    assert 'RUNTIME="runc"' in script
    assert ["$RUNTIME", "run", "--bundle", BUNDLE, "hello"] in script_commands(script)
    assert 'RUNTIME="runc"' in unit_shell(unit, "ExecStart")
    assert unit_shell(unit, "ExecStart").endswith(f'"$RUNTIME" run --bundle {BUNDLE} hello\n')


# podman's store on a writable path, with a driver any file system has (the board's root may
# be read-only, or a tmpfs, which overlay refuses).
PODMAN_STORE = ["--root", "/run/hellocontainer/podman/storage", "--runroot",
                "/run/hellocontainer/podman-run", "--tmpdir", "/run/hellocontainer/podman-run/libpod",
                "--storage-driver", "vfs"]


def test_podman_runs_the_stored_image_by_tag_with_the_chosen_network(
        hellocontainer: Runner, tmp_path: Path) -> None:
    write(hellocontainer, tmp_path, "--runtime", "podman", "--name", "hello",
          "--layout", f"{LAYOUT}:1.0", "--network", "host")
    script = (tmp_path / "S95hello").read_text()
    unit = (tmp_path / "hello.service").read_text()
    run = shlex.join([*PODMAN_STORE, "run", "--rm", "--quiet", "--name", "hello", "--net=host",
                      f"localhost{LAYOUT}:1.0"])
    # The layout is copied into the store first (podman_image), then run from there.
    assert f'\t\tpodman_image && "$RUNTIME" {run} </dev/null\n' in script
    assert ["$RUNTIME", *PODMAN_STORE, "rm", "-f", "hello"] in script_commands(script)
    assert f'"$RUNTIME" {shlex.join(PODMAN_STORE)} pull --quiet "oci:{LAYOUT}:1.0"' in script
    # Under systemd the container's cgroups go below the unit's (no D-Bus needed).
    unit_run = run.replace(" --quiet ", " --quiet --cgroups=split ", 1)
    assert unit_shell(unit, "ExecStart").endswith(
        f'podman_image || exit 1\nexec "$RUNTIME" {unit_run}\n')
    assert unit_values(unit, "Delegate") == ["yes"]
    # A host-network container waits for the network.
    assert unit_values(unit, "After") == ["network-online.target"]


def test_podman_gets_no_network_unless_host_networking_is_asked(
        hellocontainer: Runner, tmp_path: Path) -> None:
    write(hellocontainer, tmp_path, "--runtime", "podman", "--name", "hello", "--layout", LAYOUT)
    script = (tmp_path / "S95hello").read_text()
    unit = (tmp_path / "hello.service").read_text()
    run = shlex.join([*PODMAN_STORE, "run", "--rm", "--quiet", "--name", "hello", "--net=none",
                      f"localhost{LAYOUT}:latest"])
    assert f'podman_image && "$RUNTIME" {run} </dev/null' in script
    assert f'pull --quiet "oci:{LAYOUT}" >/dev/null' in script
    unit_run = run.replace(" --quiet ", " --quiet --cgroups=split ", 1)
    assert unit_shell(unit, "ExecStart").endswith(f'exec "$RUNTIME" {unit_run}\n')


def test_podman_store_goes_where_podman_root_says(hellocontainer: Runner, tmp_path: Path) -> None:
    write(hellocontainer, tmp_path, "--runtime", "podman", "--name", "hello", "--layout", LAYOUT,
          "--podman-root", "/data/podman")
    script = (tmp_path / "S95hello").read_text()
    assert '"$RUNTIME" --root /data/podman/storage --runroot /run/hellocontainer/podman-run ' in script
    assert 'TMPDIR="/data/podman/tmp"\nexport TMPDIR\n' in script
    assert "/run/hellocontainer/podman/" not in script


def test_runtime_path_is_used_as_given(hellocontainer: Runner, tmp_path: Path) -> None:
    script, unit = crun_files(hellocontainer, tmp_path, "--runtime-path", "/opt/bin/crun")
    assert 'RUNTIME="/opt/bin/crun"' in script
    assert 'RUNTIME="/opt/bin/crun"' in unit_shell(unit, "ExecStart")


@pytest.mark.parametrize("policy", ["no", "on-failure", "always"])
def test_restart_policy_reaches_both_files(policy: str, hellocontainer: Runner,
                                           tmp_path: Path) -> None:
    script, unit = crun_files(hellocontainer, tmp_path, "--restart", policy)
    assert f'RESTART="{policy}"' in script
    assert unit_values(unit, "Restart") == [policy]
    # Both restart with a backoff (tests/test_restart_backoff.py) and no start limit, or not at
    # all; RestartSec is the floor under the unit's backoff.
    assert unit_values(unit, "RestartSec") == ["1"]
    assert unit_values(unit, "StartLimitIntervalSec") == ([] if policy == "no" else ["0"])


def test_unit_logs_to_journal_and_console_and_prints_the_exit_status(
        hellocontainer: Runner, tmp_path: Path) -> None:
    _, unit = crun_files(hellocontainer, tmp_path)
    assert unit_values(unit, "Type") == ["exec"]
    assert unit_values(unit, "StandardOutput") == ["journal+console"]
    assert unit_values(unit, "StandardError") == ["journal+console"]
    stopped = unit_shell(unit, "ExecStopPost")
    assert 'status="${EXIT_STATUS:-$SERVICE_RESULT}"' in stopped
    assert 'echo "hellocontainer: $NAME exited $status"' in stopped
    assert unit_values(unit, "WantedBy") == ["multi-user.target"]


def test_script_prints_the_exit_status_and_starts_in_the_background(
        hellocontainer: Runner, tmp_path: Path) -> None:
    script, _ = crun_files(hellocontainer, tmp_path)
    assert 'echo "hellocontainer: $NAME exited $status"' in script
    assert "printf 'Starting %s: ' \"$NAME\"" in script
    assert '/bin/sh "$0" supervise </dev/null &' in script


@pytest.mark.parametrize("runtime,package", [
    ("crun", "BR2_PACKAGE_CRUN"), ("runc", "BR2_PACKAGE_RUNC"), ("podman", "BR2_PACKAGE_PODMAN")])
def test_missing_runtime_fails_naming_its_package(runtime: str, package: str,
                                                  hellocontainer: Runner, tmp_path: Path) -> None:
    place = ["--layout", LAYOUT] if runtime == "podman" else ["--bundle", BUNDLE]
    write(hellocontainer, tmp_path, "--runtime", runtime, "--name", "hello", *place)
    script = (tmp_path / "S95hello").read_text()
    unit = (tmp_path / "hello.service").read_text()
    message = f"{runtime} not found; install {runtime} (Buildroot: {package}; Yocto: "
    assert message in script
    assert 'echo "FAIL"' in script
    assert message in unit_shell(unit, "ExecStart")


# ---------------------------------------------------------------------------------------------
# the tools' verdicts

@pytest.mark.parametrize("runtime", ["crun", "runc", "podman"])
def test_script_is_shellcheck_clean(runtime: str, hellocontainer: Runner, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    place = ["--layout", f"{LAYOUT}:latest"] if runtime == "podman" else ["--bundle", BUNDLE]
    write(hellocontainer, tmp_path, "--runtime", runtime, "--name", "hello", *place)
    result = subprocess.run([shellcheck, "--shell=sh", "--severity=style", tmp_path / "S95hello"],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("runtime,network", [("crun", "none"), ("runc", "host"), ("podman", "none")])
def test_unit_passes_systemd_analyze_verify(runtime: str, network: str, hellocontainer: Runner,
                                            tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    # verify also checks that ExecStart's program exists: give a stand-in for the runtime.
    program = tmp_path / "bin" / runtime
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    place = ["--layout", LAYOUT] if runtime == "podman" else ["--bundle", BUNDLE]
    hellocontainer("autostart", "--runtime", runtime, "--name", "hello", *place,
                   "--network", network, "--runtime-path", program,
                   "--systemd", tmp_path / "hellocontainer-hello.service")
    result = subprocess.run([analyze, "verify", tmp_path / "hellocontainer-hello.service"],
                            capture_output=True, text=True)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if "hellocontainer-hello" in line]
    assert (result.returncode, ours) == (0, [])


# ---------------------------------------------------------------------------------------------
# reproducibility and writing

def test_same_settings_give_the_same_bytes_wherever_they_are_written(
        hellocontainer: Runner, tmp_path: Path) -> None:
    args = ["--name", "hello", "--bundle", BUNDLE, "--restart", "always"]
    write(hellocontainer, tmp_path / "one", *args)
    # Another folder, named relative to another working directory.
    other = tmp_path / "some" / "other place"
    other.mkdir(parents=True)
    hellocontainer("autostart", *args, "--sysv", "S95hello", "--systemd", "hello.service",
                   cwd=other)
    for name in ("S95hello", "hello.service"):
        first = (tmp_path / "one" / name).read_bytes()
        assert first == (other / name).read_bytes()
        assert str(tmp_path).encode() not in first


def test_script_is_executable_and_unit_is_not_whatever_the_umask(tmp_path: Path) -> None:
    from hellocontainer.cli import main

    old = os.umask(0o077)
    try:
        assert main(["autostart", "--name", "hello", "--bundle", BUNDLE,
                     "--sysv", str(tmp_path / "S95hello"),
                     "--systemd", str(tmp_path / "hello.service")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "S95hello").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "hello.service").stat().st_mode) == 0o644


def test_existing_files_are_replaced_and_no_temporary_file_is_left(
        hellocontainer: Runner, tmp_path: Path) -> None:
    (tmp_path / "S95hello").write_text("old\n")
    crun_files(hellocontainer, tmp_path)
    assert (tmp_path / "S95hello").read_text().startswith("#!/bin/sh\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S95hello", "hello.service"]


def test_parent_folders_are_created(hellocontainer: Runner, tmp_path: Path) -> None:
    hellocontainer("autostart", "--name", "hello", "--bundle", BUNDLE,
                   "--sysv", tmp_path / "etc" / "init.d" / "S95hello")
    assert (tmp_path / "etc" / "init.d" / "S95hello").is_file()


# ---------------------------------------------------------------------------------------------
# errors: one line, nothing written

ERRORS = {
    "relative bundle": (["--bundle", "usr/share/hello"], "--bundle 'usr/share/hello': not an "
                        "absolute path on the target"),
    "dot-dot bundle": (["--bundle", "/usr/../etc"], "(no '.' or '..' parts)"),
    "blank in path": (["--bundle", "/usr/share/two words"], "not an absolute path"),
    "crun with layout": (["--layout", LAYOUT], "--layout is for podman; crun runs a runtime "
                         "bundle: give --bundle DIR instead"),
    "crun without bundle": ([], "--runtime crun needs --bundle DIR"),
    "podman with bundle": (["--runtime", "podman", "--bundle", BUNDLE],
                           "--bundle is for crun and runc"),
    "podman without layout": (["--runtime", "podman"], "--runtime podman needs --layout DIR[:TAG]"),
    "bad tag": (["--runtime", "podman", "--layout", f"{LAYOUT}:-x"], "'-x' is not a tag"),
    # podman would fail at every start on the board: "repository name must be lowercase".
    "capitals in podman layout": (["--runtime", "podman", "--layout", "/usr/share/Hello-OCI"],
                                  "podman names the image after the layout's path, and "
                                  "'Hello-OCI' is not a part of an image name"),
    "plus in podman layout": (["--runtime", "podman", "--layout", "/opt/gtk+/oci"],
                              "'gtk+' is not a part of an image name"),
    "podman root for crun": (["--bundle", BUNDLE, "--podman-root", "/data"],
                             "--podman-root is for podman"),
    "relative podman root": (["--runtime", "podman", "--layout", LAYOUT, "--podman-root", "data"],
                             "--podman-root 'data': not an absolute path"),
    "bad name": (["--bundle", BUNDLE, "--name", "my container"], "--name 'my container': a "
                 "container name is"),
    "bad restart": (["--bundle", BUNDLE, "--restart", "sometimes"], "argument --restart: invalid "
                    "choice: 'sometimes'"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_settings_are_one_line_and_write_nothing(case: str, hellocontainer: Runner,
                                                     tmp_path: Path) -> None:
    args, expected = ERRORS[case]
    if "--name" not in args:
        args = ["--name", "hello", *args]
    result = write(hellocontainer, tmp_path, *args, check=False)
    assert result.returncode in (1, 2)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ")
    assert expected in line
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_write_is_a_usage_error(hellocontainer: Runner) -> None:
    result = hellocontainer("autostart", "--name", "hello", "--bundle", BUNDLE, check=False)
    assert (result.returncode, result.stderr) == (
        2, "hellocontainer: error: nothing to write: give --sysv FILE, --systemd FILE and/or "
        "--quadlet FILE\n")


def test_unwritable_target_writes_neither_file(hellocontainer: Runner, tmp_path: Path) -> None:
    (tmp_path / "etc").write_text("a file where a folder should be\n")
    result = hellocontainer("autostart", "--name", "hello", "--bundle", BUNDLE,
                            "--systemd", tmp_path / "hello.service",
                            "--sysv", tmp_path / "etc" / "init.d" / "S95hello", check=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"hellocontainer: error: cannot write {tmp_path}/etc/init.d/S95hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc"]


def test_same_file_for_both_is_refused(hellocontainer: Runner, tmp_path: Path) -> None:
    result = hellocontainer("autostart", "--name", "hello", "--bundle", BUNDLE,
                            "--sysv", tmp_path / "x", "--systemd", tmp_path / "x", check=False)
    assert result.returncode == 1
    assert "two of --sysv, --systemd and --quadlet name the same file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_where_the_script_goes_is_refused_not_replaced(hellocontainer: Runner,
                                                              tmp_path: Path) -> None:
    fifo = tmp_path / "S95hello"
    os.mkfifo(fifo)
    result = hellocontainer("autostart", "--name", "hello", "--bundle", "/b", "--sysv", fifo,
                            check=False)
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("hellocontainer: error: ") and "FIFO" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


RENAMES = "rename,renameat,renameat2"


def _autostart_failing_at_second_rename(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`autostart` writing both files, with the second rename(2) failing with EIO."""
    strace = require_tool("strace", "strace")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}",
                           "-e", f"inject={RENAMES}:error=EIO:when=2", sys.executable, "-m",
                           "hellocontainer", "autostart", "--name", "hello", *args,
                           "--sysv", str(directory / "S95hello"),
                           "--systemd", str(directory / "hello.service")],
                          capture_output=True, text=True, env=env)


def test_a_failed_second_write_puts_the_first_file_back(hellocontainer: Runner,
                                                        tmp_path: Path) -> None:
    write(hellocontainer, tmp_path, "--name", "hello", "--bundle", BUNDLE)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = _autostart_failing_at_second_rename(tmp_path, "--bundle", "/other/bundle")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("hellocontainer: error: ") and "Input/output error" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no leftovers either


def test_a_failed_second_write_removes_the_first_new_file(tmp_path: Path) -> None:
    result = _autostart_failing_at_second_rename(tmp_path, "--bundle", BUNDLE)
    assert result.returncode == 1, result.stderr
    assert list(tmp_path.iterdir()) == []
