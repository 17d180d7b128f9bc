"""`hellocontainer autostart`: the init script or systemd unit that starts a container at boot.

The hard part is that a board gives no second chance to read an error: the files must start the
container the same way under BusyBox/SysV init and under systemd, print what the container
prints and how it ended on the console, and say in words when the runtime is missing, rather than
leave a silent board. So both files are generated here, from one validated `Autostart`, and the
build systems only choose the paths:

- crun and runc run an OCI runtime *bundle* (`crun run --bundle DIR NAME`); podman runs the image
  *layout* (`podman run --rm oci:DIR:TAG`). A stale container of the same name (left by a power
  cut: its state lives in /run only while /run survives) is deleted before each start.
- The SysV script supervises in the background (`start` must return, or the boot stops there):
  it runs the container, prints `hellocontainer: NAME exited N`, and restarts it per the policy,
  one second apart, as the systemd unit does with `RestartSec=1` and no start limit. `stop`
  tells the supervisor not to restart, then signals the container.
- Every value that reaches a file is checked against a small alphabet (paths, names, tags), so no
  quoting is ever needed: the bytes depend on the inputs alone, and no input can inject shell or
  unit-file syntax.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import HelloContainerError, os_error_message
from ..oci.safefile import file_kind
from ..store.staging import write_beside

RUNTIMES = ("crun", "runc", "podman")
RESTART_POLICIES = ("no", "on-failure", "always")
NETWORKS = ("none", "host")

# Where each runtime comes from, named in the message a board prints when it is missing.
RUNTIME_PACKAGES = {
    "crun": "crun (Buildroot: BR2_PACKAGE_CRUN; Yocto: crun from meta-virtualization)",
    "runc": "runc (Buildroot: BR2_PACKAGE_RUNC; Yocto: virtual-runc from meta-virtualization)",
    "podman": "podman (Buildroot: BR2_PACKAGE_PODMAN; Yocto: podman from meta-virtualization)",
}

# runc's rule for container IDs (also podman's for names), without the '+' runc allows: the
# name becomes part of file names (the pid file) and of messages.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Target paths: no blanks, quotes, '$', '%' (a systemd specifier), '\\' or ':' (podman's oci:
# transport separates the tag with it), so a path is the same word in sh and in a unit file.
_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

SCRIPT_MODE = 0o755
UNIT_MODE = 0o644


class AutostartError(HelloContainerError):
    """The autostart settings are invalid, or the files cannot be written."""


@dataclass(frozen=True)
class Autostart:
    """Everything the init files say, already validated. Paths are paths on the target."""

    runtime: str  # crun, runc or podman
    name: str  # container name
    restart: str = "on-failure"
    network: str = "none"
    bundle: str | None = None  # crun, runc: the bundle directory
    layout: str | None = None  # podman: the image layout directory...
    tag: str | None = None  # ...and its tag (None: the layout's only image)
    runtime_path: str | None = None  # None: looked up on PATH at boot

    @property
    def program(self) -> str:
        """The runtime as the files call it: an absolute path, or a name found on PATH."""
        return self.runtime_path or self.runtime


def autostart(runtime: str, name: str, *, restart: str = "on-failure", network: str = "none",
              bundle: str | None = None, layout: str | None = None,
              runtime_path: str | None = None) -> Autostart:
    """Check the settings (as the CLI spells them) and return them as an Autostart.

    `layout` is LAYOUT[:TAG], as `podman run oci:` takes it.
    """
    if runtime not in RUNTIMES:
        raise AutostartError(f"--runtime {runtime}: not a runtime; choose one of {', '.join(RUNTIMES)}")
    if restart not in RESTART_POLICIES:
        raise AutostartError(f"--restart {restart}: not a restart policy; choose one of "
                             f"{', '.join(RESTART_POLICIES)}")
    if network not in NETWORKS:
        raise AutostartError(f"--network {network}: choose one of {', '.join(NETWORKS)}")
    if not _NAME.fullmatch(name):
        raise AutostartError(f"--name {name!r}: a container name is up to 128 letters, digits, "
                             "'_', '.' and '-', starting with a letter or digit; e.g. --name hello")
    tag = None
    if runtime == "podman":
        if bundle is not None:
            raise AutostartError("--bundle is for crun and runc; podman runs the image layout: "
                                 "give --layout DIR[:TAG] instead")
        if layout is None:
            raise AutostartError("--runtime podman needs --layout DIR[:TAG], the image layout's "
                                 "path on the target")
        if layout.startswith("oci:"):  # podman's transport, which the unit itself adds
            raise AutostartError(f"--layout {layout}: give the layout's path without podman's "
                                 f"'oci:' prefix; drop it: --layout {layout.removeprefix('oci:')}")
        if ":" in layout:  # the path alphabet has no ':', so the first one starts the tag
            layout, tag = layout.split(":", 1)
        if tag is not None and not _TAG.fullmatch(tag):
            raise AutostartError(f"--layout {layout}:{tag}: {tag!r} is not a tag; tags are "
                                 "letters, digits, '_', '.' and '-', e.g. latest")
        _check_path("--layout", layout)
    else:
        if layout is not None:
            raise AutostartError(f"--layout is for podman; {runtime} runs a runtime bundle: give "
                                 "--bundle DIR instead (write it with 'hellocontainer bundle')")
        if bundle is None:
            raise AutostartError(f"--runtime {runtime} needs --bundle DIR, the runtime bundle's "
                                 "path on the target")
        _check_path("--bundle", bundle)
    if runtime_path is not None:
        _check_path("--runtime-path", runtime_path)
    return Autostart(runtime, name, restart, network, bundle, layout, tag, runtime_path)


def _check_path(flag: str, path: str) -> None:
    if not _PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise AutostartError(f"{flag} {path!r}: not an absolute path on the target made of "
                             "letters, digits and ._+@-/ (no '.' or '..' parts); e.g. "
                             "/usr/share/hellocontainer/hello")


# ---------------------------------------------------------------------------------------------
# What the runtime is told to do, as shell words: shared by the script and the unit.

def _run_words(cfg: Autostart) -> str:
    if cfg.runtime == "podman":
        image = f"oci:{cfg.layout}" + (f":{cfg.tag}" if cfg.tag else "")
        return f"run --rm --name {cfg.name} --net={cfg.network} {image}"
    # The bundle's config.json decides the namespaces; --network only orders the start.
    return f"run --bundle {cfg.bundle} {cfg.name}"


def _delete_words(cfg: Autostart) -> str:
    return f"rm -f {cfg.name}" if cfg.runtime == "podman" else f"delete -f {cfg.name}"


def _kill_words(cfg: Autostart, signal: str) -> str:
    if cfg.runtime == "podman":
        return f"kill --signal {signal} {cfg.name}"
    return f"kill {cfg.name} {signal}"


def _missing_message(cfg: Autostart) -> str:
    return f"{cfg.program} not found; install {RUNTIME_PACKAGES[cfg.runtime]}"


def _source(cfg: Autostart) -> str:
    """What the container starts from, for the script's header."""
    if cfg.runtime == "podman":
        return f"image layout {cfg.layout}" + (f":{cfg.tag}" if cfg.tag else "")
    return f"runtime bundle {cfg.bundle}"


# ---------------------------------------------------------------------------------------------
# SysV / BusyBox init script

_SYSV = """\
#!/bin/sh
#
# Starts the container @NAME@ (@SOURCE@) with @RUNTIME@.
# Written by hellocontainer autostart; restart policy: @RESTART@.
#
# `start` returns at once: a supervisor in the background runs the container
# with its output on this script's console, prints "hellocontainer: NAME
# exited STATUS" each time it ends, and restarts it (one second later) when
# the policy says so. `stop` ends the supervisor first, so nothing restarts.
#

NAME="@NAME@"
RUNTIME="@PROGRAM@"
PIDFILE="/run/hellocontainer-$NAME.pid"
RESTART="@RESTART@"

# Why the container cannot start, or nothing.
problem() {
	if ! command -v "$RUNTIME" >/dev/null 2>&1; then
		echo "@MISSING@"
@CHECK_SOURCE@	fi
}

# crun, runc and podman need the cgroup file system. systemd and Buildroot's
# cgroupfs-v2-mount mount it; a bare BusyBox init does not.
mount_cgroups() {
	if [ -d /sys/fs/cgroup ] && [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
		mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
	fi
}

running() {
	[ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

supervise() {
	echo "$$" > "$PIDFILE"
	stopping=0
	# `stop` sends TERM; sh runs the trap once the container has exited.
	trap 'stopping=1' TERM
	while [ "$stopping" = 0 ]; do
		# A container of this name left from before (its state outlives a
		# killed supervisor) would make the start fail.
		"$RUNTIME" @DELETE@ >/dev/null 2>&1
		"$RUNTIME" @RUN@ </dev/null
		status=$?
		echo "hellocontainer: $NAME exited $status"
		case "$RESTART" in
			always) ;;
			on-failure) [ "$status" -ne 0 ] || break ;;
			*) break ;;
		esac
		[ "$stopping" = 0 ] && sleep 1
	done
	rm -f "$PIDFILE"
}

start() {
	printf 'Starting %s: ' "$NAME"
	if running; then
		echo "FAIL"
		echo "hellocontainer: $NAME is already running (pid $(cat "$PIDFILE"))" >&2
		return 1
	fi
	reason=$(problem)
	if [ -n "$reason" ]; then
		echo "FAIL"
		echo "hellocontainer: $reason" >&2
		return 1
	fi
	mount_cgroups
	/bin/sh "$0" supervise </dev/null &
	echo "OK"
}

stop() {
	printf 'Stopping %s: ' "$NAME"
	if running; then
		pid=$(cat "$PIDFILE")
		kill "$pid"
		# TERM for ten seconds, then KILL.
		tries=0
		while kill -0 "$pid" 2>/dev/null; do
			if [ "$tries" -lt 10 ]; then
				"$RUNTIME" @KILL_TERM@ >/dev/null 2>&1
			else
				"$RUNTIME" @KILL_KILL@ >/dev/null 2>&1
			fi
			tries=$((tries + 1))
			sleep 1
		done
	fi
	"$RUNTIME" @DELETE@ >/dev/null 2>&1
	rm -f "$PIDFILE"
	echo "OK"
}

restart() {
	stop
	start
}

status() {
	if running; then
		echo "$NAME is running (pid $(cat "$PIDFILE"))"
		return 0
	fi
	echo "$NAME is stopped"
	return 3
}

case "$1" in
	start|stop|restart|status)
		"$1";;
	supervise)
		# Internal: the background loop `start` runs.
		supervise;;
	*)
		echo "Usage: $0 {start|stop|restart|status}"
		exit 1
esac
"""


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass: a value (a path may hold '@') is never scanned for placeholders itself.
    return re.sub(r"@([A-Z_]+)@", lambda match: values[match.group(1)], template)


def sysv_script(cfg: Autostart) -> str:
    """The init script, in the form of Buildroot's package/*/S??* scripts."""
    if cfg.runtime == "podman":
        what, path = "image layout", f"{cfg.layout}/index.json"
    else:
        what, path = "runtime bundle", f"{cfg.bundle}/config.json"
    check = (f'\telif [ ! -f "{path}" ]; then\n'
             f'\t\techo "{path} not found; the {what} is not installed"\n')
    return _fill(_SYSV, {
        "NAME": cfg.name, "SOURCE": _source(cfg), "RUNTIME": cfg.runtime, "PROGRAM": cfg.program,
        "RESTART": cfg.restart, "MISSING": _missing_message(cfg), "CHECK_SOURCE": check,
        "DELETE": _delete_words(cfg), "RUN": _run_words(cfg),
        "KILL_TERM": _kill_words(cfg, "TERM"), "KILL_KILL": _kill_words(cfg, "KILL"),
    })


# ---------------------------------------------------------------------------------------------
# systemd unit

def systemd_unit(cfg: Autostart) -> str:
    """The service unit: Type=exec, output to the journal and the console, Restart= the policy."""
    unit = [
        "[Unit]",
        f"Description=hellocontainer: container {cfg.name} ({cfg.runtime})",
    ]
    if cfg.network == "host":
        # The container shares the board's network: start once it is configured.
        unit += ["Wants=network-online.target", "After=network-online.target"]
    else:
        unit += ["After=local-fs.target"]
    if cfg.restart != "no":
        # Restart forever, one second apart, as the SysV supervisor does.
        unit += ["StartLimitIntervalSec=0"]
    program = cfg.program
    # The runtime is checked by a shell, so that a missing one fails with a message naming
    # the package, not only with status 203/EXEC.
    check = (f"command -v {program} >/dev/null || "
             f"{{ echo 'hellocontainer: {_missing_message(cfg)}' >&2; exit 1; }}")
    service = [
        "",
        "[Service]",
        "Type=exec",
        f'ExecStartPre=/bin/sh -c "{check}"',
        # '-': a missing stale container is the normal case.
        f"ExecStartPre=-{program} {_delete_words(cfg)}",
        f"ExecStart={program} {_run_words(cfg)}",
        # systemd sets EXIT_STATUS for ExecStopPost; '$$' is a '$' left for the shell.
        f"ExecStopPost=/bin/sh -c 'echo \"hellocontainer: {cfg.name} exited $$EXIT_STATUS\"'",
        # If the runtime was killed before its container, the container would be left behind.
        f"ExecStopPost=-{program} {_delete_words(cfg)}",
        f"Restart={cfg.restart}",
        "RestartSec=1",
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(unit + service) + "\n"


# ---------------------------------------------------------------------------------------------
# Writing

def write_files(files: list[tuple[Path, str, int]]) -> None:
    """Write each (path, text, mode) so that an error leaves no file changed.

    Every temporary file is complete, and every file it replaces has a second name, before the
    first rename: if a later rename fails (a full disk, a folder we may not write), the files
    already renamed into place are put back as they were. Parent folders are created, like
    --output's."""
    if len({os.path.abspath(path) for path, _, _ in files}) != len(files):
        raise AutostartError("--sysv and --systemd name the same file; give each its own path")
    staged: list[tuple[str, Path]] = []
    kept: list[str | None] = []
    try:
        for path, text, mode in files:
            staged.append((_stage(path, text.encode(), mode), path))
        for _, path in staged:
            kept.append(_second_name(path))
        done: list[tuple[str | None, Path]] = []
        for (tmp, path), old in zip(staged, kept):
            try:
                os.replace(tmp, path)
            except OSError as error:
                _put_back(done)
                raise AutostartError(os_error_message(error, f"cannot write {path}")) from None
            done.append((old, path))
    finally:
        for leftover in [tmp for tmp, _ in staged] + [old for old in kept if old]:
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _second_name(path: Path) -> str | None:
    """A hidden hard link (or, for a symbolic link, a copy of the link) to what is at `path`, to
    put back if the write fails; None where nothing is there."""
    if not os.path.lexists(path):
        return None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.old-")
        os.close(fd)
        os.unlink(name)  # the name is ours now: mkstemp chose one that no other file has
        if path.is_symlink():
            os.symlink(os.readlink(path), name)
        else:
            os.link(path, name)
    except OSError as error:
        raise AutostartError(os_error_message(error, f"cannot write {path}")) from None
    return name


def _put_back(done: list[tuple[str | None, Path]]) -> None:
    """Undo the renames in `done`: each path gets its old file back, or goes if it had none."""
    for old, path in reversed(done):
        with contextlib.suppress(OSError):
            if old is None:
                os.unlink(path)
            else:
                os.replace(old, path)


def _stage(path: Path, data: bytes, mode: int) -> str:
    """A complete temporary copy of `path` beside it, with `mode` (never the umask's)."""
    try:
        if path.is_dir():
            raise AutostartError(f"{path} is a directory; name the file to write")
        if path.exists() and not path.is_symlink() and not path.is_file():
            # A FIFO, socket or device there is someone's, not an old script of ours.
            raise AutostartError(f"{path} is {file_kind(os.lstat(path).st_mode)}; name the "
                                 "file to write")
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_beside(path, data, mode)
    except OSError as error:
        raise AutostartError(os_error_message(error, f"cannot write {path}")) from None
