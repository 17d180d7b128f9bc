"""Restarts back off and give up loudly; a missing or foreign part fails once: under both inits.

The generated files run here for real, with stand-ins only where a board would take time:

- a fake runtime on --runtime-path that plays a plan (`STATUS SECONDS` per run: it exits STATUS
  after SECONDS on the fake clock; `stop`: someone stops the service during that run);
- a fake `sleep` first on PATH that records its argument and returns at once;
- the clock, /proc/uptime in the files, pointed at a file that the fakes move forward.

The SysV script runs its supervisor loop in the foreground. The systemd unit is read by
systemd itself (`systemd-analyze verify` at debug level prints each command line as parsed),
and its ExecStart, ExecStop and ExecStopPost shells run in the order systemd 252 runs them,
with the variables it sets and the restart decision Restart= and RestartPreventExitStatus=
make. Both must print the same console lines and wait the same time between runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Runner, require_tool
from hellocontainer.board.autostart import NO_RESTART_STATUS, autostart, systemd_unit, sysv_script

RUNTIME = """\
#!/bin/sh
# A runtime that plays the plan: one line per run.
[ "$1" = run ] || exit 0
IFS= read -r line < "$FAKE/plan" || line="stop"
sed -i 1d "$FAKE/plan"
echo "run" >> "$FAKE/log"
if [ "$line" = stop ]; then
    # Stopped by a person: under SysV `stop` signals the supervisor.
    [ "$FAKE_INIT" = sysv ] && kill -TERM "$PPID"
    exit 143
fi
set -- $line
read -r now _ < "$FAKE/uptime"
echo "$((${now%%.*} + $2)).00 0.00" > "$FAKE/uptime"
exit "$1"
"""

SLEEP = """\
#!/bin/sh
echo "sleep $1" >> "$FAKE/log"
read -r now _ < "$FAKE/uptime"
echo "$((${now%%.*} + $1)).00 0.00" > "$FAKE/uptime"
"""


@dataclass
class Board:
    """A folder that plays a board: fake runtime, sleep and clock, a bundle of this machine."""

    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def env(self, init: str) -> dict[str, str]:
        return {**os.environ, "FAKE": str(self.root), "FAKE_INIT": init,
                "PATH": f"{self.root}/bin:{os.environ['PATH']}"}

    def files(self, **settings) -> tuple[str, str]:
        """The script and the unit, their clock and /run paths pointed into this folder."""
        cfg = autostart("crun", "hello", bundle=str(self.bundle),
                        runtime_path=str(self.root / "bin" / "crun"), **settings)
        script, unit = sysv_script(cfg), systemd_unit(cfg)
        return tuple(text.replace("/proc/uptime", f"{self.root}/uptime")
                     .replace('"/run/', f'"{self.root}/run/') for text in (script, unit))

    def log(self) -> list[str]:
        path = self.root / "log"
        return path.read_text().splitlines() if path.exists() else []

    def plan(self, *runs: str) -> None:
        (self.root / "plan").write_text("".join(f"{run}\n" for run in runs))


@pytest.fixture
def board(tmp_path: Path) -> Board:
    root = tmp_path / "board"
    (root / "bin").mkdir(parents=True)
    (root / "run").mkdir()
    for name, text in (("crun", RUNTIME), ("sleep", SLEEP)):
        (root / "bin" / name).write_text(text)
        (root / "bin" / name).chmod(0o755)
    (root / "uptime").write_text("100.00 0.00\n")
    # A bundle whose program is of this machine's architecture (/bin/sh is).
    (root / "bundle" / "rootfs").mkdir(parents=True)
    shutil.copy("/bin/sh", root / "bundle" / "rootfs" / "hello")
    (root / "bundle" / "config.json").write_text(
        '{"ociVersion":"1.0.2","process":{"args":["/hello"],"cwd":"/"},"root":{"path":"rootfs"}}')
    return Board(root)


def console(result: subprocess.CompletedProcess[str]) -> list[str]:
    return (result.stdout + result.stderr).splitlines()


# ---------------------------------------------------------------------------------------------
# The two inits, each run to the end of the plan; they return the console and the gaps.

def run_sysv(board: Board, **settings) -> tuple[list[str], list[int]]:
    """The supervisor loop `start` puts in the background, in the foreground."""
    script, _ = board.files(**settings)
    (board.root / "S95hello").write_text(script)
    result = subprocess.run(["sh", str(board.root / "S95hello"), "supervise"], env=board.env("sysv"),
                            capture_output=True, text=True, timeout=60)
    gaps = [int(line.split()[1]) for line in board.log() if line.startswith("sleep ")]
    return console(result), gaps


SYSTEMD_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "$": "$", " ": " "}


def _unquote(line: str) -> list[str]:
    """The words of a command line as systemd prints it (quoted words, C escapes)."""
    words, word, quote, i, started = [], "", None, 0, False
    while i < len(line):
        char = line[i]
        if char == "\\":
            word += SYSTEMD_ESCAPES[line[i + 1]]
            i += 2
            started = True
            continue
        if quote and char == quote:
            quote = None
        elif not quote and char in "\"'":
            quote, started = char, True
        elif not quote and char == " ":
            if started:
                words.append(word)
            word, started = "", False
        else:
            word += char
            started = True
        i += 1
    if started:
        words.append(word)
    return words


def unit_commands(unit: str, directory: Path) -> dict[str, list[list[str]]]:
    """Each Exec*= of `unit` as systemd 252 parses it, with '$$' made '$' as at exec time."""
    analyze = require_tool("systemd-analyze", "systemd")
    path = directory / "hellocontainer-hello.service"
    path.write_text(unit)
    result = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                            env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"})
    commands: dict[str, list[list[str]]] = {}
    setting = None
    for line in (result.stdout + result.stderr).splitlines():
        match = re.fullmatch(r"\s*-> (Exec\w+):", line)
        if match:
            setting = match[1]
        elif setting and line.strip().startswith("Command Line: "):
            words = _unquote(line.strip().removeprefix("Command Line: "))
            commands.setdefault(setting, []).append([w.replace("$$", "$") for w in words])
    return commands


def run_systemd(board: Board, policy: str = "on-failure", **settings) -> tuple[list[str], list[int]]:
    """Start, exit, ExecStopPost, restart ... as systemd does with the unit, to the plan's end."""
    _, unit = board.files(restart=policy, **settings)
    commands = unit_commands(unit, board.root)
    ((start,),) = (commands["ExecStart"],)
    ((stop,),) = (commands["ExecStop"],)
    ((stopped,),) = (commands["ExecStopPost"],)
    assert start[:2] == stop[:2] == stopped[:2] == ["/bin/sh", "-c"]
    env = board.env("systemd")
    lines: list[str] = []
    prevent = {NO_RESTART_STATUS}
    for _ in range(100):
        plan = (board.root / "plan").read_text().splitlines()
        result = subprocess.run(start, env=env, capture_output=True, text=True, timeout=60)
        lines += console(result)
        if not plan or plan[0] == "stop":  # systemctl stop: ExecStop while the main process ran
            lines += console(subprocess.run(stop, env={**env, "MAINPID": "4242"},
                                            capture_output=True, text=True))
        status = result.returncode
        service_result = "success" if status == 0 else "exit-code"
        stopping = (board.root / "run" / "hellocontainer-hello.restart.stop").exists()
        after = subprocess.run(stopped, capture_output=True, text=True, env={
            **env, "EXIT_CODE": "exited", "EXIT_STATUS": str(status),
            "SERVICE_RESULT": service_result})
        lines += console(after)
        assert after.returncode == 0, after
        restarts = {"always": True, "on-failure": service_result != "success", "no": False}[policy]
        if stopping or not restarts or status in prevent:
            break
        with open(board.root / "log", "a") as log:  # RestartSec=1
            log.write("restartsec 1\n")
        uptime = board.root / "uptime"
        uptime.write_text(f"{int(float(uptime.read_text().split()[0])) + 1}.00 0.00\n")
    # Each gap: RestartSec plus ExecStart's sleep.
    gaps, gap = [], 0
    for line in board.log():
        if line == "run":
            gaps.append(gap)
            gap = 0
        else:
            gap += int(line.split()[1])
    return lines, gaps[1:]


INITS = {"sysv": run_sysv, "systemd": run_systemd}


def _say(status: int, delay: int) -> str:
    return f"hellocontainer: hello exited {status}, restarting in {delay} s"


# ---------------------------------------------------------------------------------------------
# the backoff

@pytest.mark.parametrize("init", sorted(INITS))
def test_delay_doubles_to_the_cap_and_each_line_is_printed_once(init: str, board: Board) -> None:
    board.plan(*["1 0"] * 9, "stop")
    lines, gaps = INITS[init](board, restart_max_delay=20)
    assert gaps == [1, 2, 4, 8, 16, 20, 20, 20, 20]
    # At the cap nothing new happens, so nothing more is said; the stop is said.
    assert lines == [_say(1, 1), _say(1, 2), _say(1, 4), _say(1, 8), _say(1, 16), _say(1, 20),
                     "hellocontainer: hello exited 143"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_a_program_failing_for_ten_minutes_is_said_ten_times(init: str, board: Board) -> None:
    # Default settings; each run fails after 1 s (a failed start on a board). Starts at 0, 2, 5,
    # 10, 19, 36, 69, 134, 263 and 520 s: ten in ten minutes (the next is at 821 s), where a
    # restart every second printed two lines per second, about 1,200.
    board.plan(*["1 1"] * 10, "stop")
    lines, gaps = INITS[init](board)
    assert gaps == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert sum(gaps[:9]) + 10 <= 600 < sum(gaps) + 11
    assert lines == [*(_say(1, delay) for delay in gaps), "hellocontainer: hello exited 143"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_a_run_as_long_as_the_cap_starts_the_backoff_again(init: str, board: Board) -> None:
    board.plan("1 0", "1 0", "1 0", "1 7", "1 8", "1 0", "stop")
    lines, gaps = INITS[init](board, restart_max_delay=8)
    assert gaps == [1, 2, 4, 8, 1, 2]  # 7 s is shorter than the cap, 8 s is not
    assert lines == [_say(1, 1), _say(1, 2), _say(1, 4), _say(1, 8), _say(1, 1), _say(1, 2),
                     "hellocontainer: hello exited 143"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_a_new_status_at_the_cap_is_said(init: str, board: Board) -> None:
    board.plan("1 0", "1 0", "1 0", "2 0", "2 0", "stop")
    lines, gaps = INITS[init](board, restart_max_delay=2)
    assert gaps == [1, 2, 2, 2, 2]
    assert lines == [_say(1, 1), _say(1, 2), _say(2, 2), "hellocontainer: hello exited 143"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_always_backs_off_a_program_that_exits_0(init: str, board: Board) -> None:
    board.plan("0 0", "0 0", "0 0", "stop")
    lines, gaps = run_sysv(board, restart="always") if init == "sysv" else \
        run_systemd(board, "always")
    assert gaps == [1, 2, 4]
    assert lines == [_say(0, 1), _say(0, 2), _say(0, 4), "hellocontainer: hello exited 143"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_on_failure_ends_at_a_clean_exit_and_no_status_78_is_restarted(init: str,
                                                                       board: Board) -> None:
    board.plan("1 0", "0 0", "1 0")
    lines, _ = INITS[init](board)
    assert lines == [_say(1, 1), "hellocontainer: hello exited 0"]
    assert board.log().count("run") == 2
    board.plan("78 0", "1 0")
    (board.root / "log").unlink()
    lines, _ = INITS[init](board)
    assert lines == ["hellocontainer: hello exited 78"]
    assert board.log() == ["run"]


@pytest.mark.parametrize("init", sorted(INITS))
def test_gives_up_after_n_exits_in_a_row_with_one_line(init: str, board: Board) -> None:
    board.plan(*["3 0"] * 10)
    lines, _ = INITS[init](board, give_up_after=4)
    assert board.log().count("run") == 4
    assert lines == [_say(3, 1), _say(3, 2), _say(3, 4),
                     "hellocontainer: hello exited 3, 4 times in a row; not restarting it"]
    assert not list((board.root / "run").iterdir())  # nothing left for the next start


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("window,runs", [(3, 6), (4, 3)])
def test_give_up_counts_only_the_exits_within_the_window(init: str, window: int, runs: int,
                                                         board: Board) -> None:
    # Exits at 100, 101, 103, 105, 107, 109 (delays 1, 2, 2, ...): never 3 within 3 s,
    # but 100, 101 and 103 are within 4 s.
    board.plan(*["1 0"] * 6)
    lines, _ = INITS[init](board, restart_max_delay=2, give_up_after=3, give_up_window=window)
    assert board.log().count("run") == runs + (runs == 6)  # 6: then the plan's end, a stop
    given_up = "hellocontainer: hello exited 1, 3 times within 4 s; not restarting it"
    assert (lines[-1] == given_up) == (window == 4)


# ---------------------------------------------------------------------------------------------
# a missing or foreign part: one line, no restart

def _foreign(board: Board) -> str:
    """Make the bundle's program an aarch64 ELF file (an x86-64 one on an aarch64 host)."""
    ours = (board.root / "bundle" / "rootfs" / "hello").read_bytes()[18:20]
    machine = b"\x3e\x00" if ours == b"\xb7\x00" else b"\xb7\x00"
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    header[18:20] = machine
    (board.root / "bundle" / "rootfs" / "hello").write_bytes(bytes(header))
    return "aarch64" if machine == b"\xb7\x00" else "x86-64"


PROBLEMS = {
    "runtime": lambda board: ((board.root / "bin" / "crun").unlink(),
                              f"{board.root}/bin/crun not found; install crun (Buildroot: "
                              "BR2_PACKAGE_CRUN; Yocto: crun from meta-virtualization)")[1],
    "bundle": lambda board: ((board.bundle / "config.json").unlink(),
                             f"{board.bundle}/config.json not found; the runtime bundle is not "
                             "installed")[1],
    "architecture": lambda board: f"{board.bundle}/rootfs/hello is a program for "
                                  f"{_foreign(board)}, and this board runs "
                                  f"{'x86-64' if os.uname().machine == 'x86_64' else 'aarch64'}",
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_sysv_start_fails_once_naming_the_part(problem: str, board: Board) -> None:
    reason = PROBLEMS[problem](board)
    script, _ = board.files(restart="always")
    (board.root / "S95hello").write_text(script)
    result = subprocess.run(["sh", str(board.root / "S95hello"), "start"], env=board.env("sysv"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == "Starting hello: FAIL\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"hellocontainer: {reason}")
    assert board.log() == []


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_systemd_start_fails_once_naming_the_part_and_is_not_restarted(problem: str,
                                                                       board: Board) -> None:
    reason = PROBLEMS[problem](board)
    board.plan("1 0")
    lines, _ = run_systemd(board, "always")
    (line,) = lines
    assert line.startswith(f"hellocontainer: {reason}")
    assert board.log() == []
    assert not list((board.root / "run").iterdir())


def test_a_32_bit_program_on_its_64_bit_board_is_let_through(board: Board) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the pair tested is i386 on x86-64")
    header = bytearray((board.root / "bundle" / "rootfs" / "hello").read_bytes()[:64])
    header[4], header[18:20] = 1, b"\x03\x00"
    (board.root / "bundle" / "rootfs" / "hello").write_bytes(bytes(header))
    board.plan("0 0")
    lines, _ = run_sysv(board)
    assert lines == ["hellocontainer: hello exited 0"]


# ---------------------------------------------------------------------------------------------
# the files themselves

def test_unit_shells_are_shellcheck_clean(board: Board) -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    _, unit = board.files(give_up_after=3)
    for setting, commands in unit_commands(unit, board.root).items():
        for command in commands:
            result = subprocess.run([shellcheck, "--shell=sh", "--severity=style", "-"],
                                    input=command[2], capture_output=True, text=True)
            assert (result.returncode, result.stdout) == (0, ""), (setting, result.stdout)


def test_unit_restarts_no_faster_than_its_floor_and_never_after_status_78(board: Board) -> None:
    _, unit = board.files()
    assert re.findall(r"^(Restart\w*)=(.*)$", unit, re.MULTILINE) == [
        ("Restart", "on-failure"), ("RestartSec", "1"), ("RestartPreventExitStatus", "78")]
    # systemd 252 ignores RestartSteps= and RestartMaxDelaySec= (254): none are used.
    assert "RestartSteps" not in unit and "RestartMaxDelaySec" not in unit


BAD = {
    ("--restart-max-delay", "0"): "--restart-max-delay 0: give 1 to 86400 seconds",
    ("--restart-max-delay", "90000"): "--restart-max-delay 90000: give 1 to 86400 seconds",
    ("--give-up-after", "-1"): "--give-up-after -1: give 0 to 86400 exits",
    ("--give-up-window", "-5"): "--give-up-window -5: give 0 to 86400 seconds",
    ("--restart-max-delay", "5m"): "argument --restart-max-delay: invalid int value: '5m'",
}


@pytest.mark.parametrize("flag,value", sorted(BAD))
def test_bad_restart_settings_are_one_line(flag: str, value: str, hellocontainer: Runner,
                                           tmp_path: Path) -> None:
    result = hellocontainer("autostart", "--name", "hello", "--bundle", "/b", flag, value,
                            "--sysv", tmp_path / "S95hello", check=False)
    assert result.returncode in (1, 2)
    (line,) = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ") and BAD[flag, value] in line
    assert list(tmp_path.iterdir()) == []


def test_restart_settings_reach_both_files(hellocontainer: Runner, tmp_path: Path) -> None:
    hellocontainer("autostart", "--name", "hello", "--bundle", "/b", "--restart-max-delay", "60",
                   "--give-up-after", "5", "--give-up-window", "600",
                   "--sysv", tmp_path / "S95hello", "--systemd", tmp_path / "hello.service")
    for name in ("S95hello", "hello.service"):
        text = (tmp_path / name).read_text()
        for setting in ("MAX_DELAY=60", "GIVE_UP=5", "GIVE_UP_WINDOW=600", "within 600 s"):
            assert setting in text, (name, setting)
