"""`hellocontainer autostart`: the init script or systemd unit that starts a container at boot.

Its choices are the runtimes, restart policies and networks `board.autostart` knows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError

HELP = "write the init script or systemd unit that starts a container at boot"
DESCRIPTION = ("Write a SysV/BusyBox init script (--sysv), a systemd unit (--systemd) and/or, "
               "for podman, a Quadlet file (--quadlet) that start the container NAME at boot: "
               "crun or runc run the runtime bundle --bundle, podman runs the image layout "
               "--layout from its store under --podman-root. Paths given to --bundle, --layout, "
               "--podman-root and --runtime-path are paths on the target. Same settings, same "
               "bytes.")


def setup(parser: argparse.ArgumentParser) -> None:
    from ..board.autostart import DEFAULT_PODMAN_ROOT, NETWORKS, RESTART_POLICIES, RUNTIMES

    parser.add_argument("--runtime", choices=RUNTIMES, default="crun",
                        help="the container runtime on the target (default crun)")
    parser.add_argument("--name", required=True, help="container name, e.g. hello")
    parser.add_argument("--bundle", metavar="/DIR", help="crun, runc: the runtime bundle on the "
                        "target (see 'bundle')")
    parser.add_argument("--layout", metavar="/DIR[:TAG]",
                        help="podman: the image layout on the target")
    parser.add_argument("--restart", choices=RESTART_POLICIES, default="on-failure",
                        help="restart the container when it exits: never, after a non-zero "
                        "exit (default) or always; see --restart-max-delay")
    parser.add_argument("--network", choices=NETWORKS, default="none",
                        help="podman: --net=; crun, runc: the bundle decides (pass the value it "
                        "was made with), 'host' only orders the start after the network")
    parser.add_argument("--runtime-path", metavar="/PATH",
                        help="the runtime program on the target (default: found on PATH)")
    parser.add_argument("--restart-max-delay", metavar="SECONDS", type=int, default=300,
                        help="restarts come 1 s after an exit, then 2, 4 ... up to this "
                        "(default 300); a run this long brings the delay back to 1 s")
    parser.add_argument("--give-up-after", metavar="N", type=int, default=0,
                        help="stop restarting after N exits in a row (default 0: never)")
    parser.add_argument("--give-up-window", metavar="SECONDS", type=int, default=0,
                        help="with --give-up-after: count only the exits of the last SECONDS "
                        "(default 0: all since the last long run)")
    parser.add_argument("--verify-key", metavar="/PATH",
                        help="the public key (PEM) on the target that must have signed the "
                        "bundle ('bundle --sign-key'; podman: the image, 'build --sign-key'); "
                        "checked with openssl before each start, nothing starts without it")
    parser.add_argument("--podman-root", metavar="/DIR", default=DEFAULT_PODMAN_ROOT,
                        help="podman: a writable folder on the target for its image store "
                        f"(default {DEFAULT_PODMAN_ROOT}: copied in at each boot, and works on "
                        "a read-only root)")
    parser.add_argument("--sysv", metavar="FILE", help="write the init script here")
    parser.add_argument("--systemd", metavar="FILE", help="write the systemd unit here")
    parser.add_argument("--quadlet", metavar="FILE", help="podman >= 4.8: write a Quadlet "
                        "file here (NAME.container, for /etc/containers/systemd/)")


def run(args: argparse.Namespace) -> int:
    from ..board.autostart import (
        SCRIPT_MODE,
        UNIT_MODE,
        autostart,
        quadlet_container,
        systemd_unit,
        sysv_script,
        write_files,
    )

    if not (args.sysv or args.systemd or args.quadlet):
        raise UsageError("nothing to write: give --sysv FILE, --systemd FILE and/or "
                         "--quadlet FILE")
    cfg = autostart(args.runtime, args.name, restart=args.restart, network=args.network,
                    bundle=args.bundle, layout=args.layout, runtime_path=args.runtime_path,
                    restart_max_delay=args.restart_max_delay, give_up_after=args.give_up_after,
                    give_up_window=args.give_up_window, podman_root=args.podman_root,
                    verify_key=args.verify_key)
    files = []
    if args.sysv:
        files.append((Path(args.sysv), sysv_script(cfg), SCRIPT_MODE))
    if args.systemd:
        files.append((Path(args.systemd), systemd_unit(cfg), UNIT_MODE))
    if args.quadlet:
        files.append((Path(args.quadlet), quadlet_container(cfg), UNIT_MODE))
    write_files(files)
    for path, kind in ((args.sysv, "init script"), (args.systemd, "systemd unit"),
                       (args.quadlet, "Quadlet file")):
        if path:
            print(f"{path}: {kind} starting {cfg.name} with {cfg.runtime}")
    return 0
