"""`hellocontainer autostart`: the init script or systemd unit that starts a container at boot.

The hard part is that a board gives no second chance to read an error: the files must start the
container the same way under BusyBox/SysV init and under systemd, print what the container
prints and how it ended on the console, and say in words when the runtime is missing, rather than
leave a silent board. So both files are generated here, from one validated `Autostart`, and the
build systems only choose the paths:

- crun and runc run an OCI runtime *bundle* (`crun run --bundle DIR NAME`); podman runs the image
  *layout*, copied once into a store of its own on a writable path (see "podman on a board"
  below; a Quadlet .container file is a third form, for podman's systemd generator). A stale
  container of the same name (left by a power cut: its state lives in /run only while /run
  survives) is deleted before each start.
- The SysV script supervises in the background (`start` must return, or the boot stops there):
  it runs the container and restarts it per the policy. `stop` tells the supervisor not to
  restart, then signals the container. The systemd unit lets systemd restart it (`Restart=`).
- Restarts back off: 1 s, doubled after each exit up to --restart-max-delay (default 300 s), and
  back to 1 s after a run that lasted at least that long. Both files print one console line per
  change, `hellocontainer: NAME exited 1, restarting in 8 s`: a line equal to the one printed
  last is not printed again, so a program failing at the cap prints nothing more until its
  status or the delay changes. An exit that is not restarted always prints
  `hellocontainer: NAME exited N`. With --give-up-after N, the Nth such exit in a row (without
  a run long enough to reset the delay; with --give-up-window W, only those of the last W
  seconds count) prints `..., N times ...; not restarting it` and stops restarting.
  That logic is ONE shell function (`_BACKOFF`) put verbatim into both files: the SysV loop
  keeps its state in variables; the unit keeps it in /run/hellocontainer-NAME.restart between
  its ExecStopPost (which records the exit) and the next ExecStart (a /bin/sh that backs off,
  sleeps, then `exec`s the runtime, so the runtime stays the main process: systemd 252 has no
  RestartSteps=/RestartMaxDelaySec=, and Type=exec has no start timeout during the sleep).
- A part that is missing or wrong fails once with one line: the runtime, the bundle (or
  layout), and a bundle's program built for another architecture (the ELF machine of the
  config.json's process.args[0] in rootfs/, read with `od`, against /bin/sh's). SysV's `start`
  says FAIL; the unit's ExecStart exits 78 (EX_CONFIG), which RestartPreventExitStatus= keeps
  from restarting. A container that exits 78 is not restarted either, under both.
- Every value that reaches a file is checked against a small alphabet (paths, names, tags), so no
  quoting is ever needed: the bytes depend on the inputs alone, and no input can inject shell or
  unit-file syntax.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import HelloContainerError, os_error_message
from ..oci.safefile import file_kind
from ..store.staging import write_beside
from .signed_bundle import BOARD_CHECK
from .signed_layout import LAYOUT_CHECK

RUNTIMES = ("crun", "runc", "podman")
RESTART_POLICIES = ("no", "on-failure", "always")
NETWORKS = ("none", "host")

# podman's image store on the target: under /run, because the root may be read-only and a board
# mounts a tmpfs there. A board with a writable data partition may keep it there instead.
DEFAULT_PODMAN_ROOT = "/run/hellocontainer/podman"
DEFAULT_RESTART_MAX_DELAY = 300  # seconds: the backoff's cap, and the run that resets it
RESTART_MAX_DELAY_LIMIT = 86400
# The status of "cannot start, do not restart" (sysexits.h's EX_CONFIG).
NO_RESTART_STATUS = 78

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
    restart_max_delay: int = DEFAULT_RESTART_MAX_DELAY  # seconds
    give_up_after: int = 0  # exits in a row; 0: never give up
    give_up_window: int = 0  # seconds; 0: no time limit, only a long run resets the count
    podman_root: str = DEFAULT_PODMAN_ROOT  # podman: its image store, a writable path
    verify_key: str | None = None  # the public key that must have signed the bundle or image

    @property
    def program(self) -> str:
        """The runtime as the files call it: an absolute path, or a name found on PATH."""
        return self.runtime_path or self.runtime


def autostart(runtime: str, name: str, *, restart: str = "on-failure", network: str = "none",
              bundle: str | None = None, layout: str | None = None,
              runtime_path: str | None = None,
              restart_max_delay: int = DEFAULT_RESTART_MAX_DELAY, give_up_after: int = 0,
              give_up_window: int = 0, podman_root: str = DEFAULT_PODMAN_ROOT,
              verify_key: str | None = None) -> Autostart:
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
        _check_podman_name(layout, tag)
        _check_path("--podman-root", podman_root)
    else:
        if layout is not None:
            raise AutostartError(f"--layout is for podman; {runtime} runs a runtime bundle: give "
                                 "--bundle DIR instead (write it with 'hellocontainer bundle')")
        if podman_root != DEFAULT_PODMAN_ROOT:
            raise AutostartError(f"--podman-root is for podman; {runtime} keeps no image store: "
                                 "drop it")
        if bundle is None:
            raise AutostartError(f"--runtime {runtime} needs --bundle DIR, the runtime bundle's "
                                 "path on the target")
        _check_path("--bundle", bundle)
    if runtime_path is not None:
        _check_path("--runtime-path", runtime_path)
    _check_seconds("--restart-max-delay", restart_max_delay, 1)
    _check_seconds("--give-up-after", give_up_after, 0, "exits, e.g. 10 (0: never give up)")
    _check_seconds("--give-up-window", give_up_window, 0)
    _check_verify_key(runtime, verify_key, podman_root)
    return Autostart(runtime, name, restart, network, bundle, layout, tag, runtime_path,
                     restart_max_delay, give_up_after, give_up_window, podman_root, verify_key)


def _check_verify_key(runtime: str, verify_key: str | None, podman_root: str) -> None:
    if verify_key is None:
        return
    _check_path("--verify-key", verify_key)
    # The check covers the layout, not podman's store: a store that outlives the boot (on a
    # data partition) would start what is in it, whoever wrote it, without a copy from the
    # checked layout. Under /run it starts empty at each boot and only root writes it.
    if runtime == "podman" and not (podman_root + "/").startswith("/run/"):
        raise AutostartError(f"--verify-key with --podman-root {podman_root}: the check covers "
                             "the layout, not podman's store, and a store that outlives the "
                             "boot is not checked again; keep the store under /run (the "
                             f"default, {DEFAULT_PODMAN_ROOT})")


def _check_seconds(flag: str, value: int, least: int, unit: str = "seconds, e.g. 300") -> None:
    # bool is an int too; a value reaches the files as decimal digits only.
    if type(value) is not int or not least <= value <= RESTART_MAX_DELAY_LIMIT:
        raise AutostartError(f"{flag} {value}: give {least} to {RESTART_MAX_DELAY_LIMIT} {unit}")


def _check_path(flag: str, path: str) -> None:
    if not _PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise AutostartError(f"{flag} {path!r}: not an absolute path on the target made of "
                             "letters, digits and ._+@-/ (no '.' or '..' parts); e.g. "
                             "/usr/share/hellocontainer/hello")


# podman names the image it copies from `oci:DIR` localhost/DIR, and an image name is lowercase
# letters and digits, parts joined by one '.', one or two '_' or any number of '-' (the
# distribution reference grammar); a path outside it fails at every start on the board
# ("repository name must be lowercase"), so it is refused here.
_NAME_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def _check_podman_name(layout: str, tag: str | None) -> None:
    bad = [part for part in layout.split("/")[1:] if not _NAME_PART.fullmatch(part)]
    if bad or len(_podman_image(layout, tag)) > 255:
        why = (f"{bad[0]!r} is not" if bad else "the path is too long for")
        raise AutostartError(f"--layout {layout}: podman names the image after the layout's "
                             f"path, and {why} a part of an image name (lowercase letters and "
                             "digits, joined by '.', '_' or '-', at most 255 characters in "
                             "all); install the layout at a path such as "
                             "/usr/share/hellocontainer/hello")


# ---------------------------------------------------------------------------------------------
# podman on a board: a writable store, the layout copied in once.
#
# podman's default store (/var/lib/containers, overlay driver) fails on a read-only root and on
# a tmpfs root; every call therefore names the store: --root under --podman-root, with the vfs
# driver (plain directories: works on any file system, and a hello-sized image costs no more),
# --runroot and --tmpdir (state that must not outlive a boot) under /run. `podman run oci:DIR`
# would copy the layout into the store at every start: the shell pulls it once, and again only
# when the layout's index.json (which names every manifest by digest) differs from the copy
# kept beside the store; the container then runs the stored image by name, with --quiet.

PODMAN_RUN = "/run/hellocontainer/podman-run"


def _podman_image(layout: str, tag: str | None) -> str:
    """The name podman gives the image it copies from oci:LAYOUT[:TAG]."""
    return f"localhost{layout}:{tag or 'latest'}"


def _podman_globals(cfg: Autostart) -> str:
    return (f"--root {cfg.podman_root}/storage --runroot {PODMAN_RUN} "
            f"--tmpdir {PODMAN_RUN}/libpod --storage-driver vfs")


_PODMAN_PULL = """\
# podman writes image temporaries to TMPDIR (/var/tmp by default, which a
# read-only root does not have) when it copies an image and when it runs one.
TMPDIR="@PODMAN_ROOT@/tmp"
export TMPDIR

# The image in podman's store, copied from the layout unless the copy is
# from the layout's present index.json. Status 1, with podman's error, when
# the copy fails.
podman_image() {
	mkdir -p "$TMPDIR" || return 1
	kept="@PODMAN_ROOT@/$NAME.index.json"
	if cmp -s "@SOURCE_LAYOUT@/index.json" "$kept" &&
		"$RUNTIME" @GLOBALS@ image exists "@IMAGE@"; then
		return 0
	fi
	# Recorded before the copy: a layout replaced meanwhile is copied again next time.
	cp "@SOURCE_LAYOUT@/index.json" "$kept.new" || return 1
	"$RUNTIME" @GLOBALS@ pull --quiet "@SOURCE_IMAGE@" >/dev/null || return 1
	mv "$kept.new" "$kept"
}
"""


def _podman_shell(cfg: Autostart) -> str:
    """podman_image(), for the shared shell of a podman script or unit."""
    assert cfg.layout is not None
    source = _podman_source(cfg)
    return _fill(_PODMAN_PULL, {
        "PODMAN_ROOT": cfg.podman_root, "SOURCE_LAYOUT": source, "GLOBALS": _podman_globals(cfg),
        "IMAGE": _podman_image(source, _podman_tag(cfg)),
        "SOURCE_IMAGE": f"oci:{source}" + (f":{_podman_tag(cfg)}" if _podman_tag(cfg) else ""),
    })


def _podman_source(cfg: Autostart) -> str:
    """The layout podman copies its image from: the checked copy with --verify-key."""
    assert cfg.layout is not None
    return _verified_copy(cfg) if cfg.verify_key else cfg.layout


def _podman_tag(cfg: Autostart) -> str | None:
    """The tag podman is asked for: the checked copy's index.json always names one."""
    return (cfg.tag or "latest") if cfg.verify_key else cfg.tag


# ---------------------------------------------------------------------------------------------
# What the runtime is told to do, as shell words: shared by the script and the unit.

def _run_words(cfg: Autostart, podman_options: str = "") -> str:
    if cfg.runtime == "podman":
        assert cfg.layout is not None
        return (f"{_podman_globals(cfg)} run --rm --quiet{podman_options} --name {cfg.name} "
                f"--net={cfg.network} {_podman_image(_podman_source(cfg), _podman_tag(cfg))}")
    # The bundle's config.json decides the namespaces; --network only orders the start.
    return f"run --bundle {_started_bundle(cfg)} {cfg.name}"


# ---------------------------------------------------------------------------------------------
# A signed bundle or image (--verify-key): checked before each start by signed_bundle.BOARD_CHECK
# (crun, runc) or signed_layout.LAYOUT_CHECK (podman), on a copy in /run that the runtime then
# starts from (podman: copies its image from), so nothing changes between check and start.

VERIFIED_LAYOUTS = "/run/hellocontainer/verified"


def _verified_copy(cfg: Autostart) -> str:
    """Where the checked copy of the bundle or layout lives on the board (RAM, gone at the next
    boot). podman names the image after the layout's path, so a layout's copy is named by the
    container's name where that is an image name's part, else by a digest of it (a name with
    capitals: "Hello" and "hello" are two containers)."""
    if cfg.runtime != "podman":
        return f"/run/hellocontainer-{cfg.name}.bundle"
    part = cfg.name
    if not _NAME_PART.fullmatch(part):
        part = hashlib.sha256(part.encode()).hexdigest()[:16]
    return f"{VERIFIED_LAYOUTS}/{part}"


def _started_bundle(cfg: Autostart) -> str:
    """The bundle the runtime starts: the checked copy with --verify-key, else the bundle."""
    return _verified_copy(cfg) if cfg.verify_key else str(cfg.bundle)


def _signature_shell(cfg: Autostart) -> str:
    """The board's check, or nothing without --verify-key."""
    if not cfg.verify_key:
        return ""
    # Their placeholders (@KEY@, @COPY@ ...) are among _shared's.
    return LAYOUT_CHECK if cfg.runtime == "podman" else BOARD_CHECK


def _else_checks(cfg: Autostart, arch: str) -> str:
    """The last branch of `problem`: the signature (first: nothing else of an unchecked bundle
    is worth reading), then the architecture of the bundle's program."""
    if not cfg.verify_key:
        return "\telse\n\t\twrong_arch\n" if arch else ""
    if not arch:
        return "\telse\n\t\tsignature\n"
    return ("\telse\n\t\treason=$(signature)\n"
            "\t\tif [ -n \"$reason\" ]; then echo \"$reason\"; else wrong_arch; fi\n")


def _start_words(cfg: Autostart) -> str:
    """The SysV supervisor's start of the container (podman: the image copied in first)."""
    run = f'"$RUNTIME" {_run_words(cfg)}'
    return f"podman_image && {run}" if cfg.runtime == "podman" else run


def _exec_lines(cfg: Autostart) -> str:
    """The unit's last lines: the runtime replaces the shell, as the service's main process."""
    # podman under systemd: the container's cgroups go below the unit's own (Delegate=yes),
    # as Quadlet does, rather than into a scope made over D-Bus, which a board without a bus
    # does not have ("crun: cannot open sd-bus").
    run = f'exec "$RUNTIME" {_run_words(cfg, " --cgroups=split")}'
    return f"podman_image || exit 1\n{run}" if cfg.runtime == "podman" else run


def _delete_words(cfg: Autostart) -> str:
    if cfg.runtime == "podman":
        return f"{_podman_globals(cfg)} rm -f {cfg.name}"
    return f"delete -f {cfg.name}"


def _kill_words(cfg: Autostart, signal: str) -> str:
    if cfg.runtime == "podman":
        return f"{_podman_globals(cfg)} kill --signal {signal} {cfg.name}"
    return f"kill {cfg.name} {signal}"


def _missing_message(cfg: Autostart) -> str:
    return f"{cfg.program} not found; install {RUNTIME_PACKAGES[cfg.runtime]}"


def _source(cfg: Autostart) -> str:
    """What the container starts from, for the script's header."""
    if cfg.runtime == "podman":
        return f"image layout {cfg.layout}" + (f":{cfg.tag}" if cfg.tag else "")
    return f"runtime bundle {cfg.bundle}"


# ---------------------------------------------------------------------------------------------
# Shell shared by the script and the unit, word for word: the settings, the checks before a
# start, and the backoff after an exit.

_SETTINGS = """\
NAME="@NAME@"
RUNTIME="@PROGRAM@"
UPTIME="/proc/uptime"
"""

_LIMITS = """\
MAX_DELAY=@MAX_DELAY@
GIVE_UP=@GIVE_UP@
GIVE_UP_WINDOW=@GIVE_UP_WINDOW@
"""

_PROBLEM = """\
# Why the container cannot start, or nothing.
problem() {
	if ! command -v "$RUNTIME" >/dev/null 2>&1; then
		echo "@MISSING@"
	elif [ ! -f "@SOURCE_FILE@" ]; then
		echo "@SOURCE_FILE@ not found; the @WHAT@ is not installed"
@ELSE_ARCH@	fi
}
"""

# A bundle's program for another architecture fails with "exec format error" at every start:
# compare ELF machines (od is in BusyBox) with /bin/sh's, which runs on this board. Unknown
# cases (not ELF, a relative or unreadable args[0]) and the 32-bit programs a 64-bit kernel may
# run pass: the runtime will say.
_ARCH = """\
# An ELF file's machine as 4 hex digits (003e: x86-64), or nothing.
elf_machine() {
	hex=$(od -An -tx1 -N20 "$1" 2>/dev/null | tr -d ' \n')
	case "$hex" in
		7f454c46*) [ "${#hex}" -eq 40 ] || return 0 ;;
		*) return 0 ;;
	esac
	low=$(echo "$hex" | cut -c37-38)
	high=$(echo "$hex" | cut -c39-40)
	if [ "$(echo "$hex" | cut -c11-12)" = 01 ]; then echo "$high$low"; else echo "$low$high"; fi
}

arch_name() {
	case "$1" in
		003e) echo x86-64 ;; 0003) echo i386 ;; 00b7) echo aarch64 ;; 0028) echo arm ;;
		00f3) echo riscv ;; 0008) echo mips ;; 0014) echo ppc ;; 0015) echo ppc64 ;;
		0016) echo s390x ;; *) echo "ELF machine 0x$1" ;;
	esac
}

# Why the bundle's program cannot run on this board, or nothing.
wrong_arch() {
	program=$(sed -n 's|.*"process":{"args":\\["\\(/[^"]*\\)".*|\\1|p' "@BUNDLE@/config.json")
	[ -n "$program" ] || return 0
	theirs=$(elf_machine "@BUNDLE@/rootfs$program")
	ours=$(elf_machine /bin/sh)
	[ -n "$theirs" ] && [ -n "$ours" ] && [ "$theirs" != "$ours" ] || return 0
	case "$ours $theirs" in
		"00b7 0028"|"003e 0003") return 0 ;;
	esac
	theirs=$(arch_name "$theirs")
	ours=$(arch_name "$ours")
	echo "@BUNDLE@/rootfs$program is a program for $theirs, and this board runs $ours:" \\
		"make the bundle for this board's architecture"
}
"""

_NOW = """\
# Seconds since boot, whole.
now() {
	read -r up _ < "$UPTIME"
	echo "${up%%.*}"
}
"""

_BACKOFF = """\
# After an exit (status $1) that the policy restarts, the run from uptime $started to $ended:
# the next $delay (1 s, doubled up to MAX_DELAY; 1 s again after a run of MAX_DELAY or more),
# one console line if it differs from the last one ($shown), and status 1, with its line,
# when GIVE_UP exits came in a row (within GIVE_UP_WINDOW s, if not 0).
backoff() {
	if [ "$delay" -eq 0 ] || [ $((ended - started)) -ge "$MAX_DELAY" ]; then
		delay=1
		fails=""
	elif [ $((delay * 2)) -lt "$MAX_DELAY" ]; then
		delay=$((delay * 2))
	else
		delay=$MAX_DELAY
	fi
	if [ "$GIVE_UP" -gt 0 ]; then
		count=0
		kept=""
		for at in $fails $ended; do
			if [ "$GIVE_UP_WINDOW" -eq 0 ] || [ $((ended - at)) -lt "$GIVE_UP_WINDOW" ]; then
				count=$((count + 1))
				kept="$kept $at"
			fi
		done
		fails=$kept
		if [ "$count" -ge "$GIVE_UP" ]; then
			echo "hellocontainer: $NAME exited $1, $count times @GIVE_UP_SPAN@; not restarting it"
			return 1
		fi
	fi
	if [ "$shown" != "$1/$delay" ]; then
		shown="$1/$delay"
		echo "hellocontainer: $NAME exited $1, restarting in $delay s"
	fi
}
"""


def _shared(cfg: Autostart) -> dict[str, str]:
    """The placeholders of the shared shell, and the shared shell itself (@SHARED@)."""
    if cfg.runtime == "podman":
        what, path, arch = "image layout", f"{cfg.layout}/index.json", ""
    else:
        what, path, arch = "runtime bundle", f"{cfg.bundle}/config.json", _ARCH
    values = {
        "NAME": cfg.name, "PROGRAM": cfg.program, "RUNTIME": cfg.runtime,
        "MAX_DELAY": str(cfg.restart_max_delay), "GIVE_UP": str(cfg.give_up_after),
        "GIVE_UP_WINDOW": str(cfg.give_up_window),
        "GIVE_UP_SPAN": (f"within {cfg.give_up_window} s" if cfg.give_up_window else "in a row"),
        "MISSING": _missing_message(cfg), "SOURCE_FILE": path, "WHAT": what,
        "ELSE_ARCH": _else_checks(cfg, arch), "BUNDLE": cfg.bundle or "",
        "LAYOUT": cfg.layout or "", "TAG": cfg.tag or "latest",
        "DELETE": _delete_words(cfg), "START": _start_words(cfg), "EXEC": _exec_lines(cfg),
        "RESTART": cfg.restart,
        "NO_RESTART": str(NO_RESTART_STATUS),
        "KEY": cfg.verify_key or "", "COPY": _verified_copy(cfg),
    }
    values["SETTINGS"] = _fill(_SETTINGS, values)
    values["NOW"] = _NOW
    podman = _podman_shell(cfg) if cfg.runtime == "podman" else ""
    values["SHARED"] = _fill("\n".join([_LIMITS, _PROBLEM, arch, podman, _signature_shell(cfg),
                                        _NOW, _BACKOFF])
                             .replace("\n\n\n", "\n\n"), values)
    return values


# ---------------------------------------------------------------------------------------------
# SysV / BusyBox init script

_SYSV = """\
#!/bin/sh
#
# Starts the container @NAME@ (@SOURCE@) with @RUNTIME@.
# Written by hellocontainer autostart; restart policy: @RESTART@.
#
# `start` returns at once: a supervisor in the background runs the container
# with its output on this script's console and restarts it when the policy
# says so, 1 s later, then 2, 4 ... up to MAX_DELAY s (1 s again after a run
# of MAX_DELAY s or more); it prints "hellocontainer: NAME exited STATUS,
# restarting in N s" when the status or the delay changed, and "exited
# STATUS" alone when it does not restart. A container that exits @NO_RESTART@ is
# not restarted. `stop` ends the supervisor first, so nothing restarts.
#

@SETTINGS@PIDFILE="/run/hellocontainer-$NAME.pid"
RESTART="@RESTART@"

@SHARED@
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
	delay=0
	shown=""
	fails=""
	# `stop` sends TERM; sh runs the trap once the container has exited,
	# or at once while it waits for the next start.
	trap 'stopping=1' TERM
	while [ "$stopping" = 0 ]; do
		# A container of this name left from before (its state outlives a
		# killed supervisor) would make the start fail.
		"$RUNTIME" @DELETE@ >/dev/null 2>&1
		started=$(now)
		@START@ </dev/null
		status=$?
		ended=$(now)
		again=0
		case "$RESTART" in
			always) again=1 ;;
			on-failure) [ "$status" -eq 0 ] || again=1 ;;
		esac
		if [ "$stopping" != 0 ] || [ "$again" = 0 ] || [ "$status" -eq @NO_RESTART@ ]; then
			echo "hellocontainer: $NAME exited $status"
			break
		fi
		backoff "$status" || break
		sleep "$delay" &
		wait "$!"
		kill "$!" 2>/dev/null
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
    values = _shared(cfg)
    return _fill(_SYSV, {
        **values, "SOURCE": _source(cfg),
        "KILL_TERM": _kill_words(cfg, "TERM"), "KILL_KILL": _kill_words(cfg, "KILL"),
    })


# ---------------------------------------------------------------------------------------------
# systemd unit
#
# systemd restarts the container (Restart=); the backoff and the checks run in shell around it.
# The state between an exit and the next start is one line in /run/hellocontainer-NAME.restart:
#   PHASE STATUS STARTED ENDED DELAY SHOWN FAILS...
# PHASE is "running" (ExecStart wrote it, then exec'd the runtime), "exited" (ExecStopPost
# wrote it: systemd restarts the unit next) or "failed" (ExecStart gave up or found a problem,
# and exited NO_RESTART_STATUS: ExecStopPost says nothing more). No file: a fresh start.
# ExecStop runs on every stop, also after the main process ended by itself; only then is
# $MAINPID unset, so the ".stop" file it leaves tells ExecStopPost that a person stopped it.

_UNIT_START = """\
@SETTINGS@STATE="/run/hellocontainer-$NAME.restart"
@SHARED@
rm -f "$STATE.stop"
reason=$(problem)
if [ -n "$reason" ]; then
	echo "hellocontainer: $reason" >&2
	echo failed > "$STATE"
	exit @NO_RESTART@
fi
phase=""
if [ -f "$STATE" ]; then
	read -r phase status started ended delay shown fails < "$STATE"
fi
if [ "$phase" = exited ]; then
	if ! backoff "$status"; then
		echo failed > "$STATE"
		exit @NO_RESTART@
	fi
	if [ "$delay" -gt 1 ]; then
		sleep $((delay - 1))
	fi
else
	delay=0
	shown=-
	fails=""
fi
"$RUNTIME" @DELETE@ >/dev/null 2>&1
echo "running - $(now) - $delay $shown $fails" > "$STATE"
@EXEC@
"""

_UNIT_STOP = """\
[ -z "$MAINPID" ] || : > "/run/hellocontainer-@NAME@.restart.stop"
"""

_UNIT_STOPPED = """\
@SETTINGS@STATE="/run/hellocontainer-$NAME.restart"
RESTART="@RESTART@"
@NOW@
if command -v "$RUNTIME" >/dev/null 2>&1; then
	"$RUNTIME" @DELETE@ >/dev/null 2>&1
fi
phase=""
if [ -f "$STATE" ]; then
	read -r phase status started _ delay shown fails < "$STATE"
fi
if [ "$phase" = failed ]; then
	rm -f "$STATE" "$STATE.stop"
	exit 0
fi
status="${EXIT_STATUS:-$SERVICE_RESULT}"
again=0
case "$RESTART" in
	always) again=1 ;;
	on-failure) [ "$SERVICE_RESULT" = success ] || again=1 ;;
esac
if [ -f "$STATE.stop" ] || [ "$status" = @NO_RESTART@ ] || [ "$phase" != running ]; then
	again=0
fi
if [ "$again" = 1 ]; then
	echo "exited $status $started $(now) $delay $shown $fails" > "$STATE"
else
	echo "hellocontainer: $NAME exited $status"
	rm -f "$STATE" "$STATE.stop"
fi
"""


def _exec_shell(program: str) -> str:
    """`/bin/sh -c "PROGRAM"` as a unit file's command line: one shell line per unit file line.

    Inside systemd's double quotes, backslash and '"' are escaped, a newline is the C escape \\n
    (then a line continuation, for the reader), '$' is '$$' (else systemd substitutes its own
    variables) and '%' is '%%' (a specifier). A continued line that starts with '#' or ';'
    would be a comment to systemd: the shell code has no such line."""
    lines = []
    for line in program.rstrip("\n").split("\n"):
        if line.lstrip().startswith(("#", ";")) or not line.strip():
            continue  # comments and blank lines are for the script's reader only
        line = (line.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
                .replace("%", "%%"))
        lines.append(line + "\\n")
    return '/bin/sh -c "' + "\\\n".join(lines) + '"'


def _unit_section(cfg: Autostart, description: str) -> list[str]:
    """The [Unit] section of the systemd unit and of the Quadlet file."""
    unit = ["[Unit]", f"Description=hellocontainer: {description}"]
    if cfg.network == "host":
        # The container shares the board's network: start once it is configured.
        unit += ["Wants=network-online.target", "After=network-online.target"]
    else:
        unit += ["After=local-fs.target"]
    if cfg.restart != "no":
        # The backoff limits the restarts, not systemd's start limit.
        unit += ["StartLimitIntervalSec=0"]
    return unit


def systemd_unit(cfg: Autostart) -> str:
    """The service unit: Type=exec, output to the journal and the console, Restart= the policy,
    with the backoff and the checks in shell around the runtime (see above)."""
    values = _shared(cfg)
    unit = _unit_section(cfg, f"container {cfg.name} ({cfg.runtime})")
    service = [
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + _exec_shell(_fill(_UNIT_START, values)),
        "ExecStop=" + _exec_shell(_fill(_UNIT_STOP, values)),
        # systemd sets EXIT_STATUS and SERVICE_RESULT for ExecStopPost.
        "ExecStopPost=" + _exec_shell(_fill(_UNIT_STOPPED, values)),
        f"Restart={cfg.restart}",
        # A floor under the backoff (ExecStart sleeps the rest of it).
        "RestartSec=1",
        f"RestartPreventExitStatus={NO_RESTART_STATUS}",
        *(["Delegate=yes"] if cfg.runtime == "podman" else []),  # --cgroups=split, above
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(unit + service) + "\n"


# ---------------------------------------------------------------------------------------------
# Quadlet .container file (podman >= 4.8)
#
# meta-virtualization installs podman containers as Quadlet files: podman's systemd generator
# (/usr/lib/systemd/system-generators/podman-system-generator) turns NAME.container in
# /etc/containers/systemd/ into NAME.service at boot. The file names the same store as the
# script and the unit (GlobalArgs=, podman 4.8) and runs the stored image by name;
# ExecCondition= checks the parts and ExecStartPre= copies the layout in when it changed, with
# the script's own shell functions.
# Restarts back off with systemd's own RestartSteps=/RestartMaxDelaySec= (systemd >= 254; older
# systemd warns about them and restarts every second): the exits are systemd's console lines.

# A missing part is checked by ExecCondition=: its failure (1) skips the unit once, with the
# line, and systemd does not restart a skipped unit (an ExecStartPre= failure would be
# restarted, and RestartPreventExitStatus= looks at the main process only).
_QUADLET_CHECK = """\
@SETTINGS@@PROBLEM@
reason=$(problem)
if [ -n "$reason" ]; then
	echo "hellocontainer: $reason" >&2
	exit 1
fi
"""

_QUADLET_PRE = """\
@SETTINGS@@PODMAN@
podman_image
"""


def quadlet_container(cfg: Autostart) -> str:
    """The Quadlet .container file for a podman Autostart."""
    if cfg.runtime != "podman" or cfg.layout is None:
        raise AutostartError(f"--quadlet is for podman; {cfg.runtime} has no Quadlet: give "
                             "--runtime podman --layout DIR[:TAG], or write --sysv/--systemd")
    if cfg.runtime_path is not None:
        raise AutostartError("--quadlet: Quadlet starts the podman it came with; drop "
                             "--runtime-path")
    values = _shared(cfg)
    values["PROBLEM"] = _fill("\n".join([_PROBLEM, _signature_shell(cfg)]).rstrip("\n") + "\n",
                              values)
    values["PODMAN"] = _podman_shell(cfg)
    unit = _unit_section(cfg, f"container {cfg.name} (podman, Quadlet)")
    # Steps from 1 s to the cap: about one doubling each, as the script's backoff.
    steps = max(1, cfg.restart_max_delay.bit_length() - 1)
    lines = [
        *unit,
        "",
        "[Container]",
        f"ContainerName={cfg.name}",
        f"Image={_podman_image(_podman_source(cfg), _podman_tag(cfg))}",
        f"Network={cfg.network}",
        f"GlobalArgs={_podman_globals(cfg)}",
        # Quadlet runs the container detached (-d); passthrough gives it the service's own
        # output, so its lines reach the console as under the script and the unit.
        "LogDriver=passthrough",
        "PodmanArgs=--quiet",
        "",
        "[Service]",
        f"Environment=TMPDIR={cfg.podman_root}/tmp",
        "ExecCondition=" + _exec_shell(_fill(_QUADLET_CHECK, values)),
        "ExecStartPre=" + _exec_shell(_fill(_QUADLET_PRE, values)),
        f"Restart={cfg.restart}",
        "RestartSec=1",
        f"RestartSteps={steps}",
        f"RestartMaxDelaySec={cfg.restart_max_delay}",
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Writing

def write_files(files: list[tuple[Path, str, int]]) -> None:
    """Write each (path, text, mode) so that an error leaves no file changed.

    Every temporary file is complete, and every file it replaces has a second name, before the
    first rename: if a later rename fails (a full disk, a folder we may not write), the files
    already renamed into place are put back as they were. Parent folders are created, like
    --output's."""
    if len({os.path.abspath(path) for path, _, _ in files}) != len(files):
        raise AutostartError("two of --sysv, --systemd and --quadlet name the same file; give "
                             "each its own path")
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
