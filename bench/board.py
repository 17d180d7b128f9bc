#!/usr/bin/env python3
"""On the board: what each container runtime costs in bytes, and how long until the container greets.

The hard part is timing a boot fairly. qemu's own start, the firmware and the kernel's
decompression run at the host's whims before the guest has a clock, so host wall time says little.
The board prints its own uptime (/proc/uptime) at the first instruction of userland (`init`), when
rcS starts the init script, and when everything that script started has exited, i.e. after the
container printed its greeting and the script printed the exit status. Those guest timestamps
are what is measured. Under TCG (qemu's emulation, used everywhere here) the guest runs several
times slower than a real board, so compare runtimes with each other, not with hardware.

Footprint: the runtime's programs plus every shared library they load (ELF interpreter and
DT_NEEDED, recursively), as Debian 12 packages them for the board's architecture; tests/board.py
finds them. glibc is counted apart: a glibc board has it anyway, a musl or static board does not.
podman is measured, not booted: podman with conmon, and with crun beside them since podman needs
a runtime.

    .venv/bin/python bench/board.py                  # amd64, arm64, armhf: 3 boots per runtime
    .venv/bin/python bench/board.py --arch arm64 --repeat 1

Needs what tests/test_board_boot.py needs (qemu-system-x86, qemu-system-arm, binutils,
gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf) and the packager in the running Python (scripts/dev-venv).
Prints one markdown document on stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import board  # noqa: E402  (tests/board.py: the harness the tests boot with)

HELLO_C = HERE.parent / "examples" / "hello" / "hello.c"
COMPILERS = {"amd64": "x86_64-linux-gnu-gcc", "arm64": "aarch64-linux-gnu-gcc",
             "armhf": "arm-linux-gnueabihf-gcc"}
GLIBC = ("libc6",)
BOOTED = ("crun", "runc")
MEASURED = (("crun",), ("runc",), ("podman",), ("podman", "crun"))
BUNDLE = "/var/lib/hellocontainer/hello"
SCRIPT = "etc/init.d/S50hello"
MIB = 1024 * 1024


def _cli(*args: str | os.PathLike[str]) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    result = subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"hellocontainer {' '.join(map(str, args))} failed:\n{result.stderr}")


def overlay_for(arch: str, runtime: str, work: Path) -> Path:
    """The board's own files: the hello image's bundle and its autostart init script."""
    hello = work / f"hello-{arch}"
    subprocess.run([COMPILERS[arch], "-static", "-Os", "-s", "-o", str(hello), str(HELLO_C)],
                   check=True)
    overlay = work / f"overlay-{arch}-{runtime}"
    _cli("build", hello, "--output", work / f"layout-{arch}", "--tag", "latest")
    _cli("bundle", f"{work / f'layout-{arch}'}:latest", "--output", overlay / BUNDLE.lstrip("/"))
    _cli("autostart", "--runtime", runtime, "--name", "hello", "--bundle", BUNDLE,
         "--sysv", overlay / SCRIPT)
    return overlay


@dataclass(frozen=True)
class Boot:
    kernel_s: float  # power on to the first userland instruction (guest clock)
    to_greeting_s: float  # first userland instruction to the container's exit being printed
    script_s: float  # the init script's start to its last process's end
    host_s: float  # qemu start to exit, host clock (for CI planning only)


def boot_once(arch: str, runtime: str, initramfs: Path) -> Boot:
    started = time.monotonic()
    result = board.boot_initramfs(arch, initramfs)
    host = time.monotonic() - started
    run = result.scripts().get(f"/{SCRIPT}")
    if run is None or run.ended is None or "Hello container!" not in run.output:
        sys.exit(f"{arch}/{runtime}: the container did not greet; console:\n{result.console}")
    init = result.mark("init")
    return Boot(init, run.ended - init, run.ended - run.started, host)


def footprint_rows(arch: str) -> list[str]:
    rows = []
    for names in MEASURED:
        fp = board.runtime_files(arch, names[0])
        for name in names[1:]:
            fp = fp | board.runtime_files(arch, name)
        programs = fp.programs_bytes()
        libraries = fp.bytes(exclude=GLIBC) - programs
        glibc = fp.bytes(packages=GLIBC)
        label = " + ".join(n if n != "podman" else "podman + conmon" for n in names)
        rows.append(f"| {arch} | {label} | {programs:,} | {libraries:,} | {glibc:,} | "
                    f"{fp.bytes():,} | {fp.bytes() / MIB:.1f} | {len(fp.files)} |")
    return rows


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=sorted(board.ARCHES),
                        help="board architecture (repeatable; default: all three)")
    parser.add_argument("--repeat", type=int, default=3, help="boots per runtime (default 3)")
    args = parser.parse_args()
    arches = args.arch or ["amd64", "arm64", "armhf"]

    lines = [
        "# On the board: runtime footprint and boot to greeting",
        "",
        "Generated by `bench/board.py`; the method is in its docstring.",
        "",
        f"- Host: {platform.machine()}, {os.cpu_count()} CPUs; load average (1 min) at start: "
        f"{os.getloadavg()[0]:.2f}",
    ]
    kernels = {arch: board.kernel(arch).version for arch in arches}
    lines += [f"- Debian kernel for {arch}: linux-image-{board.ARCHES[arch].kernel_flavour} {version}"
              for arch, version in kernels.items()]
    lines += [
        "",
        "## Footprint (Debian 12 packages)",
        "",
        "Programs: the runtime's executables. Libraries: the shared libraries they load, without "
        "glibc. glibc: libc and the dynamic loader.",
        "",
        "| arch | runtime | programs bytes | libraries bytes | glibc bytes | total bytes | total MiB "
        "| files |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arch in arches:
        lines += footprint_rows(arch)

    rows = []
    with tempfile.TemporaryDirectory(prefix="board-bench-") as tmp:
        work = Path(tmp)
        for arch in arches:
            for runtime in BOOTED:
                overlay = overlay_for(arch, runtime, work)
                initramfs = board.build_initramfs(arch, overlay, work / "initramfs.cpio", (runtime,))
                boots = [boot_once(arch, runtime, initramfs) for _ in range(args.repeat)]
                rows.append(
                    f"| {arch} | {runtime} | {_spread([b.kernel_s for b in boots])} | "
                    f"{_spread([b.to_greeting_s for b in boots])} | "
                    f"{_spread([b.script_s for b in boots])} | "
                    f"{_spread([b.host_s for b in boots])} | {initramfs.stat().st_size:,} |")
    lines += [
        "",
        f"## Boot to greeting (qemu TCG, guest clock, median (min-max) of {args.repeat} boots)",
        "",
        "Kernel: power on to the first userland instruction. Init to greeting: from there until "
        "the container has printed `Hello container!` and exited and the init script has "
        "printed its status. Init script: its `start` until everything it started has exited "
        "(the runtime's share). Host: qemu's start to its exit on the host clock. Each board "
        "holds only the runtime measured.",
        "",
        "| arch | runtime | kernel s | init to greeting s | init script s | host s | initramfs bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
