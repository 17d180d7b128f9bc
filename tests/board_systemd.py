"""A board that boots systemd: Debian 12's systemd 252, unpacked with dpkg-deb, never installed.

The BusyBox board of tests/board.py runs init scripts; this one puts Debian's systemd package
and the libraries its programs load (their ELF closure, as for the runtimes) over that board's
root and makes /sbin/init systemd. BusyBox still gives the shell and the tools. systemd starts
the units the overlay enables (symbolic links in multi-user.target.wants, as `systemctl enable`
makes them), with multi-user.target as the default; `board-done.service` waits until every
enabled hellocontainer unit has settled (none activating, active or waiting to restart),
prints each one's result and how often it started as `board:` lines, then powers the board off.
Console lines of the units come through journald (StandardOutput=journal+console).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import board

# Units of the systemd package a BusyBox board cannot run (no D-Bus, no getty program, no udev
# rules), masked so that their failures stay off the console.
MASKED = ("systemd-logind.service", "getty.target", "serial-getty@.service",
          "systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service",
          "systemd-pstore.service", "systemd-journald-audit.socket", "systemd-remount-fs.service",
          "systemd-firstboot.service", "systemd-homed.service", "systemd-userdbd.socket",
          "systemd-boot-update.service", "ldconfig.service", "systemd-hwdb-update.service")

DONE_SERVICE = """\
[Unit]
Description=board: power off once the hellocontainer units have settled
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh /etc/board-done
StandardOutput=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
"""

# `systemctl is-active` says activating while a unit waits to restart: settled means none of
# ours is activating, active or deactivating for SETTLE seconds in a row (a restart must have
# had its chance), or TIMEOUT passed.
DONE_SCRIPT = f"""\
mark() {{ read -r up _ < /proc/uptime; echo "{board.MARK} $* at $up"; }}
units=$(ls /etc/systemd/system/multi-user.target.wants | grep '^hellocontainer-')
quiet=0
waited=0
while [ "$quiet" -lt @SETTLE@ ] && [ "$waited" -lt @TIMEOUT@ ]; do
	busy=0
	for unit in $units; do
		case "$(systemctl is-active "$unit")" in
			activating|active|deactivating|reloading) busy=1 ;;
		esac
	done
	if [ "$busy" = 1 ]; then quiet=0; else quiet=$((quiet + 1)); fi
	sleep 1
	waited=$((waited + 1))
done
for unit in $units; do
	starts=$(systemctl show -P NRestarts "$unit")
	result=$(systemctl show -P Result "$unit")
	exited=$(systemctl show -P ExecMainExitTimestampMonotonic "$unit")
	echo "{board.MARK} unit $unit result $result restarts $starts exited-us $exited"
done
mark done
sync
poweroff -f
"""


def systemd_overlay(arch: str, into: Path, settle: int = 10, timeout: int = 240) -> None:
    """Lay Debian's systemd, the libraries its programs load, and the board's units into `into`.

    Units of ours go into `into`/etc/systemd/system before or after; each
    hellocontainer-*.service there is enabled by a link in multi-user.target.wants."""
    archive = board.Archive(arch)

    def work() -> tuple[Path, dict[str, board.BoardFile]]:
        (systemd,) = archive.resolve(["systemd"], libraries=False)
        packages = archive.resolve(["systemd"])
        roots = {p.name: archive.unpack(p) for p in packages}
        tree = board.Tree(roots, board.ARCHES[arch].triplet)
        # systemd's programs find libsystemd-shared by their RUNPATH, in its own folder.
        tree.search += [f"usr/lib/{board.ARCHES[arch].triplet}/systemd", "lib/systemd",
                        "usr/lib/systemd"]
        root = roots[systemd.name]
        programs = sorted(str(path.relative_to(root)) for path in root.rglob("*")
                          if path.is_file() and not path.is_symlink() and _is_elf(path))
        return root, tree.closure(programs)

    root, files = archive.fresh(work)
    shutil.copytree(root, into, symlinks=True, dirs_exist_ok=True)
    for path, found in files.items():
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() and not target.is_symlink():
            shutil.copy(found.source, target, follow_symlinks=False)
    etc = into / "etc"
    (etc / "systemd" / "system" / "multi-user.target.wants").mkdir(parents=True, exist_ok=True)
    (into / "sbin").mkdir(exist_ok=True)
    _link(into / "sbin" / "init", "/lib/systemd/systemd")
    _link(etc / "systemd" / "system" / "default.target", "/lib/systemd/system/multi-user.target")
    for unit in MASKED:
        _link(etc / "systemd" / "system" / unit, "/dev/null")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nsystemd-journal:x:101:\n")
    (etc / "os-release").write_text('NAME="board"\nID=board\n')
    (etc / "machine-id").write_text("")
    (etc / "board-done").write_text(DONE_SCRIPT.replace("@SETTLE@", str(settle))
                                    .replace("@TIMEOUT@", str(timeout)))
    (etc / "systemd" / "system" / "board-done.service").write_text(DONE_SERVICE)
    _link(etc / "systemd" / "system" / "multi-user.target.wants" / "board-done.service",
          "/etc/systemd/system/board-done.service")


def enable(into: Path, unit: str) -> None:
    """`systemctl enable UNIT` for a unit in `into`/etc/systemd/system (WantedBy=multi-user)."""
    _link(into / "etc" / "systemd" / "system" / "multi-user.target.wants" / unit,
          f"/etc/systemd/system/{unit}")


def _link(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"
