"""Build the hello example for every platform we claim and run it there, without touching the host.

The hard part is running a foreign binary *inside a container* while leaving the machine alone.
The kernel picks an emulator for a foreign ELF through binfmt_misc, and registering one on the
host would change every process on it. Since Linux 6.7 binfmt_misc is per user namespace: a
process in `unshare --user --map-root-user --mount` can mount its own, empty binfmt_misc instance,
register qemu-*-static there, and everything it starts (runc, podman, the container's init) sees
those registrations while the host sees none. The F flag makes the kernel open the interpreter at
registration time, so it works inside a container root file system that holds no qemu.

Everything here is plain functions over real tools; tests call them, fixtures cache their results.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import HELLO_C, STRICT, podman_command, require_tool

QEMU_PACKAGE = "qemu-user-static"
UNSHARE_PACKAGE = "util-linux"

# ELF e_machine numbers (elf.h); the check below reads them with struct, not with the packager's
# ELF library, so a bug there cannot hide behind the same bug here.
EM_386, EM_MIPS, EM_PPC64, EM_S390, EM_ARM, EM_X86_64, EM_AARCH64, EM_RISCV = (
    3, 8, 21, 22, 40, 62, 183, 243)


@dataclass(frozen=True)
class Platform:
    """One OCI platform, the Debian cross compiler that targets it and the qemu that runs it."""

    architecture: str          # OCI / Go GOARCH name
    variant: str | None        # OCI platform variant (ARM only)
    compiler: str              # Debian cross gcc
    compiler_package: str      # apt package that installs `compiler`
    elf_class: int             # 32 or 64
    big_endian: bool
    elf_machine: int
    qemu: str                  # qemu-user-static interpreter
    cflags: tuple[str, ...] = ()
    native_on: tuple[str, ...] = ()   # `uname -m` values that run it without emulation
    # The oldest CPU of the platform, so emulation proves the binary runs *there*: qemu's
    # default CPU has every extension and would also run, say, ARMv7 code in an arm/v5 image.
    qemu_cpu: str | None = None

    @property
    def oci(self) -> str:
        """`arm/v7`, `arm64`: the form `--arch` and `--platform linux/…` take."""
        return f"{self.architecture}/{self.variant}" if self.variant else self.architecture

    @property
    def id(self) -> str:
        """A pytest id without slashes: `arm-v7`."""
        return self.oci.replace("/", "-")

    @property
    def native(self) -> bool:
        return os.uname().machine in self.native_on

    def emulation_env(self) -> dict[str, str]:
        """Environment for the emulated process that pins qemu to `qemu_cpu`."""
        return {"QEMU_CPU": self.qemu_cpu} if self.qemu_cpu and not self.native else {}

    def binfmt_rule(self, interpreter: str) -> str:
        """The binfmt_misc `register` line for executables of this platform.

        Matches the first 20 header bytes like qemu's own qemu-binfmt-conf.sh: ELF magic, class,
        byte order, version; OS ABI and ABI version masked (static glibc binaries may carry
        ELFOSABI_GNU); e_type 2 or 3 (EXEC or PIE); e_machine.
        """
        order = ">" if self.big_endian else "<"
        magic = (b"\x7fELF" + bytes([self.elf_class // 32, 2 if self.big_endian else 1, 1])
                 + bytes(9) + struct.pack(order + "HH", 2, self.elf_machine))
        mask = (b"\xff" * 7 + b"\x00\x00" + b"\xff" * 7
                + struct.pack(order + "HH", 0xFFFE, 0xFFFF))
        escape = "".join(f"\\x{b:02x}" for b in magic), "".join(f"\\x{b:02x}" for b in mask)
        # F: the kernel opens the interpreter now, so it need not exist in the container.
        name = self.qemu.removesuffix("-static")
        return f":{name}:M::{escape[0]}:{escape[1]}:{interpreter}:F"


def _gcc(triplet: str) -> tuple[str, str]:
    return f"{triplet}-gcc", f"gcc-{triplet}"


# Every platform the packager claims, each proven by tests/test_architectures.py.
PLATFORMS: tuple[Platform, ...] = (
    # On an amd64 machine (CI) Debian's plain gcc package provides x86_64-linux-gnu-gcc.
    Platform("amd64", None, "x86_64-linux-gnu-gcc", "gcc", 64, False, EM_X86_64,
             "qemu-x86_64-static", native_on=("x86_64",)),
    # x86_64 kernels run i386 code natively (IA32 emulation, on in Debian's and CI kernels).
    Platform("386", None, *_gcc("i686-linux-gnu"), 32, False, EM_386,
             "qemu-i386-static", native_on=("x86_64", "i686", "i386")),
    Platform("arm64", None, *_gcc("aarch64-linux-gnu"), 64, False, EM_AARCH64,
             "qemu-aarch64-static", native_on=("aarch64",), qemu_cpu="cortex-a53"),
    # Debian armhf: ARMv7-A, VFPv3-D16, hard float.
    Platform("arm", "v7", *_gcc("arm-linux-gnueabihf"), 32, False, EM_ARM,
             "qemu-arm-static", native_on=("armv7l",), qemu_cpu="cortex-a8"),
    # Debian armel (soft float) is built for ARMv5TE; its static libc links into ARMv6 code
    # too, which is what a Raspberry Pi 1/Zero-class (ARM1176) board runs.
    Platform("arm", "v6", *_gcc("arm-linux-gnueabi"), 32, False, EM_ARM,
             "qemu-arm-static", cflags=("-march=armv6",), native_on=("armv6l", "armv7l"),
             qemu_cpu="arm1176"),
    Platform("arm", "v5", *_gcc("arm-linux-gnueabi"), 32, False, EM_ARM,
             "qemu-arm-static", cflags=("-march=armv5te",),
             native_on=("armv5tel", "armv6l", "armv7l"), qemu_cpu="arm926"),
    Platform("riscv64", None, *_gcc("riscv64-linux-gnu"), 64, False, EM_RISCV,
             "qemu-riscv64-static", native_on=("riscv64",)),
    # ppc64le's ABI baseline is POWER8; qemu's default would be newer.
    Platform("ppc64le", None, *_gcc("powerpc64le-linux-gnu"), 64, False, EM_PPC64,
             "qemu-ppc64le-static", native_on=("ppc64le",), qemu_cpu="power8"),
    Platform("s390x", None, *_gcc("s390x-linux-gnu"), 64, True, EM_S390,
             "qemu-s390x-static", native_on=("s390x",)),
    Platform("mips64le", None, *_gcc("mips64el-linux-gnuabi64"), 64, False, EM_MIPS,
             "qemu-mips64el-static"),
    # No native_on for MIPS: `uname -m` says "mips"/"mips64" for either byte order.
    Platform("mipsle", None, *_gcc("mipsel-linux-gnu"), 32, False, EM_MIPS,
             "qemu-mipsel-static"),
    Platform("mips", None, *_gcc("mips-linux-gnu"), 32, True, EM_MIPS,
             "qemu-mips-static"),
)


def cross_compilers() -> dict[str, Platform]:
    """The platform table keyed by OCI name (`arm/v7`)."""
    return {p.oci: p for p in PLATFORMS}


def apt_packages() -> list[str]:
    """What CI installs to run every test in this module's table."""
    return sorted({p.compiler_package for p in PLATFORMS} | {QEMU_PACKAGE, UNSHARE_PACKAGE})


def elf_identity(path: Path) -> tuple[int, bool, int]:
    """(class bits, big endian, e_machine) read straight from the ELF header."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise AssertionError(f"{path} is not an ELF file")
    big = header[5] == 2
    (machine,) = struct.unpack((">" if big else "<") + "H", header[18:20])
    return 32 * header[4], big, machine


def build_static_hello(platform: Platform, out_dir: Path) -> Path:
    """examples/hello/hello.c built static and stripped by the platform's cross gcc."""
    compiler = require_tool(platform.compiler, platform.compiler_package)
    out = out_dir / f"hello-{platform.id}"
    result = subprocess.run(
        [compiler, "-static", "-Os", "-s", *platform.cflags, "-o", str(out), str(HELLO_C)],
        check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{compiler} failed:\n{result.stderr}")
    identity = elf_identity(out)
    expected = (platform.elf_class, platform.big_endian, platform.elf_machine)
    if identity != expected:
        raise AssertionError(f"{compiler} built {identity}, expected {expected}")
    return out


@functools.cache
def _binfmt_namespace_problem() -> str | None:
    """Why a user namespace cannot have its own binfmt_misc here, or None if it can."""
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount",
         "mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"],
        check=False, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    return ("binfmt_misc cannot be mounted inside a user namespace on this kernel "
            f"({os.uname().release}; Linux >= 6.7 is needed): {result.stderr.strip()}")


def require_binfmt_namespace() -> None:
    """Skip (fail under CI) when foreign binaries cannot be run without changing the host."""
    require_tool("unshare", UNSHARE_PACKAGE)
    problem = _binfmt_namespace_problem()
    if problem is not None:
        if STRICT:
            pytest.fail(problem)
        pytest.skip(problem)


# Runs inside the namespace: mount a private binfmt_misc, register each rule given before `--`,
# then run the command after it. printf keeps the rules' \xNN text for the kernel to decode.
# The command runs as a child, not exec'd: this shell stays pid 1 of the namespace, so a
# crashing emulated command is not pid 1 and dies of its signal instead of hanging.
_ENTER = """set -eu
ulimit -c 0  # a crashing qemu would otherwise leave a core file in the caller's directory
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
while [ "$1" != -- ]; do
    printf '%s\\n' "$1" > /proc/sys/fs/binfmt_misc/register
    shift
done
shift
status=0
"$@" || status=$?
exit "$status"
"""


def foreign_argv(argv: Sequence[str | os.PathLike[str]],
                 platforms: Iterable[Platform] = PLATFORMS) -> list[str]:
    """`argv` wrapped so it runs where every non-native platform in `platforms` executes via qemu.

    Only the namespace's own binfmt_misc is touched: the mount namespace keeps the mount private
    and the user namespace gives it a fresh instance, so the host's registrations (if any) are
    neither seen nor changed.
    """
    require_binfmt_namespace()
    rules: dict[str, None] = {}   # ordered, deduplicated: arm v5/v6/v7 share one rule
    for platform in platforms:
        if not platform.native:
            interpreter = require_tool(platform.qemu, QEMU_PACKAGE)
            rules[platform.binfmt_rule(os.path.realpath(interpreter))] = None
    # --pid --fork --kill-child: the command runs as pid 1 of its own pid namespace, so killing
    # unshare (on timeout) kills everything below it. That matters: a crashing emulated program
    # that is pid 1 of its container cannot kill itself (qemu's re-raised signal is ignored for
    # a namespace's init), and would hang forever.
    return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork",
            "--kill-child", "--mount-proc", "sh", "-c", _ENTER, "sh", *rules, "--",
            *map(str, argv)]


def run_foreign(argv: Sequence[str | os.PathLike[str]],
                platforms: Iterable[Platform] = PLATFORMS, *, check: bool = True,
                env: dict[str, str] | None = None, cwd: Path | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `argv` with qemu registered for `platforms` in a private binfmt_misc; text output."""
    full = foreign_argv(argv, platforms)
    result = subprocess.run(full, check=False, capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} (in a binfmt namespace) exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def run_image_with_runc(layout: Path, tag: str, platform: Platform, *, check: bool = True,
                        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Unpack LAYOUT:TAG with umoci and run it once with runc, emulating `platform` if foreign.

    Only `platform`'s interpreter is registered, pinned to its oldest CPU, so the image runs only
    if its binary really is for that platform. umoci + runc is the runtime path with the fewest
    moving parts (no image store, no platform matching), so a failure points at the image.
    """
    umoci = require_tool("umoci", "umoci")
    runc = require_tool("runc", "runc")
    with tempfile.TemporaryDirectory(prefix="hellocontainer-runc-") as tmp:
        bundle, state = Path(tmp, "bundle"), Path(tmp, "state")
        unpack = subprocess.run(
            [umoci, "unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle)],
            check=False, capture_output=True, text=True)
        if unpack.returncode != 0:
            raise AssertionError(f"umoci unpack {layout}:{tag} failed:\n{unpack.stderr}")
        config_path = bundle / "config.json"
        config = json.loads(config_path.read_text())
        # umoci asks for a terminal; runc would then need a console socket we do not have.
        config["process"]["terminal"] = False
        # qemu reads QEMU_CPU from the environment of the process it emulates.
        config["process"]["env"] = [
            *config["process"].get("env", []),
            *(f"{key}={value}" for key, value in platform.emulation_env().items())]
        config_path.write_text(json.dumps(config))
        state.mkdir()
        # --root: runc's state stays in our temp dir, not in /run/runc of the host.
        return run_foreign([runc, "--root", state, "run", "--bundle", bundle, "hello"],
                           [platform], check=check, timeout=timeout)


# podman, as the conftest `podman` fixture runs it, but started inside the binfmt namespace.
# The namespace maps only uid/gid 0, so podman's default /dev/pts mount (gid=5) is refused;
# a devpts mount without a gid option works.
PODMAN_FOREIGN_RUN_ARGS = ("--mount", "type=devpts,destination=/dev/pts")


def podman_run_foreign(podman_home: Path, image: str, platform: Platform, *, check: bool = True,
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`podman run --rm --platform linux/<platform> IMAGE`, emulating `platform` if foreign."""
    argv, env = podman_command(podman_home)
    cpu = [f"--env={key}={value}" for key, value in platform.emulation_env().items()]
    return run_foreign([*argv, "run", "--rm", "--platform", f"linux/{platform.oci}",
                        *PODMAN_FOREIGN_RUN_ARGS, *cpu, image], [platform],
                       check=check, env=env, timeout=timeout)
