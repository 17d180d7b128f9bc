"""Boot Debian's own kernel in qemu with a BusyBox userland and a container runtime: a board in a VM.

The hard part is making a root file system that behaves like a board's, from packages that are
never installed on this machine. Everything comes from Debian's archive for the *board's*
architecture through a private apt state (its own package lists, an empty dpkg status, the host's
sources), so an arm64 board needs neither `dpkg --add-architecture` nor anything else changed on
the host: the kernel package gives /boot/vmlinuz-*, busybox-static gives init and the shell, and
the runtime package plus the libraries its Depends name give the runtime. Of those libraries only
the files the runtime's ELF closure (PT_INTERP and DT_NEEDED, read by binutils' readelf, which
reads every architecture) needs go on the board, which also makes their byte count the runtime's
on-board footprint.

Second hard part: runtimes pivot_root into the container, and pivot_root fails when the root is
the initramfs itself. So the initramfs holds the board's tree under /board and a first /init
that copies it into a tmpfs and switch_roots there, as a board would mount its real root file
system. BusyBox init then runs /etc/init.d/rcS, which mounts what a board mounts, runs the init
scripts (Buildroot's /etc/init.d/S??* and Yocto's /etc/rc5.d/S*, each with `start`), prints
guest-clock marks around each, and powers off so that qemu exits by itself.

Downloads and extracted files are cached in ${XDG_CACHE_HOME:-~/.cache}/hellocontainer-tests/board,
keyed by package file name (so by version). Nothing here imports pytest: tests and bench share it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

T = TypeVar("T")

# The prefix of every line the board's own scripts print, so tests can tell them from the
# container's output and from kernel messages.
MARK = "board:"
DEFAULT_TIMEOUT = 180.0  # seconds; a TCG boot takes a few, this bounds a hang


class BoardError(Exception):
    """Something the harness needs is missing or failed (a tool, a package, a download)."""


@dataclass(frozen=True)
class Arch:
    """One board architecture: its Debian names, its qemu and how the kernel finds the console."""

    name: str  # OCI / Debian architecture name
    triplet: str  # Debian multiarch directory under /lib and /usr/lib
    qemu: str
    qemu_package: str
    qemu_args: tuple[str, ...]
    console: str
    kernel_flavour: str  # Debian's linux-image-FLAVOUR metapackage
    # More kernel command line: amd64 boots under a loaded host can panic in the timer check
    # ("IO-APIC + timer doesn't work"), which TCG's slow clock fails for no fault of the board.
    append: tuple[str, ...] = ()


ARCHES: dict[str, Arch] = {
    "amd64": Arch("amd64", "x86_64-linux-gnu", "qemu-system-x86_64", "qemu-system-x86",
                  (), "ttyS0", "amd64", ("no_timer_check",)),
    # cortex-a57: an ARMv8.0 core, the baseline Debian's arm64 port builds for.
    "arm64": Arch("arm64", "aarch64-linux-gnu", "qemu-system-aarch64", "qemu-system-arm",
                  ("-M", "virt", "-cpu", "cortex-a57"), "ttyAMA0", "arm64"),
    # 32-bit ARM, the most common embedded target: Debian armhf (ARMv7-A, hard float) and its
    # multiplatform kernel on a Cortex-A15. highmem=off: that kernel has no LPAE, so nothing
    # of the machine may sit above 4 GiB.
    "armhf": Arch("armhf", "arm-linux-gnueabihf", "qemu-system-arm", "qemu-system-arm",
                  ("-M", "virt,highmem=off", "-cpu", "cortex-a15"), "ttyAMA0", "armmp"),
}


@dataclass(frozen=True)
class Runtime:
    """An OCI runtime as Debian packages it: the package and the programs it puts on the board."""

    package: str
    programs: tuple[str, ...]  # paths inside the package, without the leading slash
    # Other packages whose programs belong to the same footprint (podman's conmon).
    companions: tuple[Runtime, ...] = ()


RUNTIMES: dict[str, Runtime] = {
    "crun": Runtime("crun", ("usr/bin/crun",)),
    "runc": Runtime("runc", ("usr/sbin/runc",)),
    # Not a runtime: the openssl command line, which the signature check before a start needs
    # (autostart --verify-key).
    "openssl": Runtime("openssl", ("usr/bin/openssl",)),
    # Measured only (bench/board.py), never booted: podman needs far more than a board offers.
    "podman": Runtime("podman", ("usr/bin/podman",),
                      (Runtime("conmon", ("usr/bin/conmon",)),)),
}


def host_tools(arch: str) -> list[tuple[str, str]]:
    """(program, Debian package) of everything the host needs to build and boot an `arch` board."""
    board = ARCHES[arch]
    return [(board.qemu, board.qemu_package), ("apt-get", "apt"), ("dpkg-deb", "dpkg"),
            ("readelf", "binutils")]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hellocontainer-tests" / "board"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise cache writers (two pytest runs, or a test and the bench, at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str | os.PathLike[str]], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BoardError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                         f"{result.stdout}{result.stderr}")
    return result


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BoardError(f"{name} not found; install it with: apt-get install {package}")
    return path


# --- Debian packages for the board's architecture ------------------------------------------------

@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str  # the pool file's name: name_version_arch.deb, unique per version
    depends: tuple[tuple[str, ...], ...]  # Pre-Depends + Depends, each a list of alternatives
    section: str

    @property
    def library(self) -> bool:
        # zlib1g is a library without the lib prefix; its Section says so.
        return self.section.endswith("libs") or self.name.startswith("lib")


def _parse_depends(value: str) -> tuple[tuple[str, ...], ...]:
    """`a (>= 1) | b, c:any` -> (("a", "b"), ("c",)): names only, versions and qualifiers dropped."""
    groups = []
    for group in value.split(","):
        names = tuple(alt.split("(")[0].split(":")[0].strip() for alt in group.split("|"))
        groups.append(tuple(n for n in names if n))
    return tuple(g for g in groups if g)


class _Stale(BoardError):
    """The package lists name a package or version the archive no longer has."""


def _host_mirror() -> str:
    """The Debian mirror URI the host's own apt sources use (deb822 or one-line form)."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    texts += [p.read_text() for p in (Path("/etc/apt/sources.list"),) if p.is_file()]
    for text in texts:
        for uri in re.findall(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    raise BoardError("no Debian mirror in the host's apt sources")


# A mirror in mid-sync serves a security or updates index whose size its Release file does not
# yet promise (seen for bookworm-security armhf): apt-get update fails, but the release's main
# index is whole, and apt then resolves from it alone: older security versions, a board all
# the same. Any other failure is an error.
_FAILED_INDEX = re.compile(r"^Err:\d+ \S+ (\S+?)/", re.MULTILINE)


def _only_extra_suites_failed(output: str) -> bool:
    suites = _FAILED_INDEX.findall(output)
    return bool(suites) and all(s.endswith(("-security", "-updates")) for s in suites)


class Archive:
    """Debian's archive for one architecture, through apt with a private state directory.

    With `suite` (e.g. "trixie"), that release of the same mirror instead of the host's own
    sources: newer tools (cosign, podman's Quadlet, skopeo) are unpacked from it, never installed.
    """

    def __init__(self, arch: str, root: Path | None = None, suite: str | None = None) -> None:
        self.arch = arch
        self.suite = suite
        self.root = (root or cache_root()) / (f"{suite}-{arch}" if suite else arch)
        self.debs = self.root / "debs"
        self.tree = self.root / "tree"
        self._state = self.root / "apt"
        self._refreshed = False

    def _options(self) -> list[str]:
        state = self._state
        return [
            # Its own lists and an empty dpkg status: the host's package state is not read or
            # changed, and the host need not know the architecture (`dpkg --add-architecture`).
            f"-oDir::State::Lists={state / 'lists'}",
            f"-oDir::State::status={state / 'status'}",
            f"-oDir::Cache={state / 'cache'}",
            # Keep apt's parsed lists between calls (some hosts turn this cache off).
            "-oDir::Cache::pkgcache=pkgcache.bin",
            "-oDir::Cache::srcpkgcache=srcpkgcache.bin",
            *self._source_options(),
            f"-oAPT::Architecture={self.arch}",
            f"-oAPT::Architectures={self.arch}",
            # apt drops to the _apt user to download, which cannot write into root's cache.
            "-oAPT::Sandbox::User=root",
            "-oQuiet=1",
        ]

    def _source_options(self) -> list[str]:
        if self.suite is None:
            return []
        sources = self._state / "sources.list"
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        text = f"deb [signed-by={keyring}] {_host_mirror()} {self.suite} main\n"
        if not sources.is_file() or sources.read_text() != text:
            (self._state / "sources.list.d").mkdir(parents=True, exist_ok=True)
            sources.write_text(text)
        return [f"-oDir::Etc::SourceList={sources}",
                f"-oDir::Etc::SourceParts={self._state / 'sources.list.d'}"]

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([_tool(tool, "apt"), *self._options(), *args], capture_output=True,
                              text=True, cwd=cwd, env={**os.environ, "LC_ALL": "C"})

    def refresh(self) -> None:
        """`apt-get update` into the private lists."""
        for sub in ("lists/partial", "cache/archives/partial"):
            (self._state / sub).mkdir(parents=True, exist_ok=True)
        (self._state / "status").touch()
        result = self._apt("apt-get", "update")
        if result.returncode != 0 and not _only_extra_suites_failed(result.stdout + result.stderr):
            raise BoardError(f"apt-get update for {self.arch} failed:\n{result.stdout}{result.stderr}")
        self._refreshed = True

    def _stale(self, message: str) -> BoardError:
        """Lists never refreshed in this process may be older than the archive: say so."""
        return BoardError(message) if self._refreshed else _Stale(message)

    def fresh(self, work: Callable[[], T]) -> T:
        """Run `work` under the cache lock; when the lists proved stale, update them and rerun it."""
        with _locked(self.root / "lock"):
            lists = self._state / "lists"
            if not (lists.is_dir() and any("_Packages" in p.name for p in lists.iterdir())):
                self.refresh()
            try:
                return work()
            except _Stale:
                self.refresh()
                return work()

    def show(self, names: Iterable[str]) -> dict[str, Package]:
        """The candidate version of each name that is a real package (virtual ones are left out)."""
        names = sorted(set(names))
        if not names:
            return {}
        # Exit status 100 only means some name is virtual; the records of the others are printed.
        output = self._apt("apt-cache", "show", "--no-all-versions", *names).stdout
        found: dict[str, Package] = {}
        for record in output.split("\n\n"):
            fields: dict[str, str] = {}
            key = ""
            for line in record.splitlines():
                if line[:1] in (" ", "\t") and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
            if "Package" in fields and "Filename" in fields:
                depends = ", ".join(filter(None, (fields.get("Pre-Depends"), fields.get("Depends"))))
                found[fields["Package"]] = Package(fields["Package"], fields["Version"],
                                                   PurePosixPath(fields["Filename"]).name,
                                                   _parse_depends(depends), fields.get("Section", ""))
        return found

    def resolve(self, names: Iterable[str], libraries: bool = True) -> list[Package]:
        """`names` and, with `libraries`, every library package they depend on, recursively.

        Of alternatives the first real package counts, as apt would pick. Only libraries are
        followed: a runtime's other Depends (config files, docs) are no part of its footprint.
        """
        wanted = set(names)
        shown = self.show(wanted)
        missing = sorted(wanted - shown.keys())
        if missing:
            raise self._stale(f"no {self.arch} package named {', '.join(missing)}")
        result: dict[str, Package] = {}
        while shown:
            result.update(shown)
            if not libraries:
                break
            # One apt-cache call per level of the dependency tree: each call reads the lists.
            alternatives = {a for p in shown.values() for group in p.depends for a in group}
            available = {**result, **self.show(alternatives - result.keys())}
            deeper: dict[str, Package] = {}
            for package in shown.values():
                for group in package.depends:
                    chosen = next((a for a in group if a in available), None)
                    if chosen and chosen not in result and available[chosen].library:
                        deeper[chosen] = available[chosen]
            shown = deeper
        return sorted(result.values(), key=lambda p: p.name)

    def fetch(self, packages: Iterable[Package]) -> dict[str, Path]:
        """The .deb of each package, downloaded into the cache unless already there."""
        packages = list(packages)
        self.debs.mkdir(parents=True, exist_ok=True)
        missing = [p for p in packages if not (self.debs / p.filename).is_file()]
        if missing:
            with tempfile.TemporaryDirectory(dir=self.root) as tmp:
                specs = [f"{p.name}={p.version}" for p in missing]
                result = self._apt("apt-get", "download", *specs, cwd=Path(tmp))
                if result.returncode != 0:
                    raise self._stale(f"apt-get download failed:\n{result.stdout}{result.stderr}")
                by_identity = {(_deb_field(d, "Package"), _deb_field(d, "Version")): d
                               for d in Path(tmp).glob("*.deb")}
                for p in missing:
                    deb = by_identity.get((p.name, p.version))
                    if deb is None:
                        raise BoardError(f"apt-get download gave no {p.name} {p.version}")
                    # Renamed to the pool's file name: apt-get escapes an epoch's colon.
                    deb.rename(self.debs / p.filename)
        return {p.name: self.debs / p.filename for p in packages}

    def unpack(self, package: Package, members: str | None = None) -> Path:
        """The package's files, extracted once into the cache.

        With `members` (a path prefix) only those: the kernel package is mostly modules the
        board does not need, and extracting them would cost seconds and hundreds of MiB.
        """
        deb = self.fetch([package])[package.name]
        suffix = hashlib.sha256(members.encode()).hexdigest()[:8] if members else "all"
        target = self.tree / f"{PurePosixPath(package.filename).stem}.{suffix}"
        if target.is_dir():
            return target
        self.tree.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.tree) as tmp:
            partial = Path(tmp) / "x"
            partial.mkdir()
            if members is None:
                _run(["dpkg-deb", "-x", deb, partial])
            else:
                _extract_members(deb, partial, members)
            partial.rename(target)
        return target


def _deb_field(deb: Path, name: str) -> str:
    return _run(["dpkg-deb", "-f", deb, name]).stdout.strip()


def _extract_members(deb: Path, into: Path, prefix: str) -> None:
    """Extract the members of a .deb whose path starts with `prefix`, streaming its data tar.

    dpkg-deb writes a folder's files one after another, so reading stops at the first member
    past the wanted ones: the kernel's /boot comes before its hundreds of MiB of modules.
    """
    found = False
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                              stderr=errors) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if not name.startswith(prefix):
                        if found:
                            break
                        continue
                    found = True
                    source = tar.extractfile(member)
                    if source is None:  # a directory or a link: the board needs files only
                        continue
                    out = into / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with open(out, "wb") as sink:
                        shutil.copyfileobj(source, sink)
            # dpkg-deb may still be writing: it ends on the closed pipe and complains of it,
            # which matters only when the wanted files were not found.
            proc.stdout.close()
        if not found:
            errors.seek(0)
            raise BoardError(f"{deb.name} has no file under {prefix}\n"
                             f"{errors.read().decode(errors='replace')}")


# --- files of the board: the ELF closure of a program ------------------------------------------

@dataclass(frozen=True)
class BoardFile:
    """A file the board needs: where it is in an unpacked package, and which package."""

    package: str
    source: Path


class Tree:
    """Several unpacked packages seen as one root, as they would be once installed."""

    def __init__(self, roots: dict[str, Path], triplet: str) -> None:
        self.roots = roots  # package name -> its unpacked files
        self.search = [f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib"]

    def locate(self, path: str) -> BoardFile | None:
        for package, root in self.roots.items():
            candidate = root / path
            if candidate.is_symlink() or candidate.exists():
                return BoardFile(package, candidate)
        return None

    def chain(self, path: str) -> list[tuple[str, BoardFile]]:
        """`path` and every symlink hop to its file, as (board path, where it is)."""
        hops = []
        current = PurePosixPath(path.lstrip("/"))
        for _ in range(40):
            found = self.locate(str(current))
            if found is None:
                raise BoardError(f"{current} is in none of the packages unpacked for the board")
            hops.append((str(current), found))
            if not found.source.is_symlink():
                return hops
            target = os.readlink(found.source)
            joined = target if target.startswith("/") else f"{current.parent}/{target}"
            current = PurePosixPath(os.path.normpath(joined).lstrip("/"))
        raise BoardError(f"symlink loop at {path}")

    def closure(self, programs: Iterable[str]) -> dict[str, BoardFile]:
        """Every file (and symlink) the programs need to start, by board path."""
        files: dict[str, BoardFile] = {}
        todo = list(programs)
        seen: set[str] = set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            hops = self.chain(path)
            files.update(hops)
            interpreter, needed = _elf_dependencies(hops[-1][1].source)
            if interpreter:
                todo.append(interpreter.lstrip("/"))
            for soname in needed:
                where = next((f"{d}/{soname}" for d in self.search if self.locate(f"{d}/{soname}")),
                             None)
                if where is None:
                    raise BoardError(f"{path} needs {soname}, which no unpacked package has")
                todo.append(where)
        return files


def _elf_dependencies(path: Path) -> tuple[str | None, list[str]]:
    """(PT_INTERP, DT_NEEDED) of an ELF file of any architecture, as binutils' readelf shows them."""
    readelf = _tool("readelf", "binutils")
    text = _run([readelf, "--wide", "--program-headers", "--dynamic", path],
                env={**os.environ, "LC_ALL": "C"}).stdout
    interpreter = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", text)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", text)
    return (interpreter.group(1) if interpreter else None), needed


@dataclass(frozen=True)
class Footprint:
    """What a runtime puts on the board: its programs and the libraries they load."""

    programs: tuple[str, ...]  # board paths
    files: dict[str, BoardFile]  # board path -> where it comes from, symlinks included

    def bytes(self, packages: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> int:
        """Bytes of the regular files (symlinks are free), of `packages` only if given."""
        chosen = None if packages is None else set(packages)
        excluded = set(exclude)
        return sum(f.source.stat().st_size for f in self.files.values()
                   if not f.source.is_symlink() and f.package not in excluded
                   and (chosen is None or f.package in chosen))

    def programs_bytes(self) -> int:
        return sum(self.files[p].source.stat().st_size for p in self.programs)

    def __or__(self, other: Footprint) -> Footprint:
        """Two runtimes on one board: shared libraries counted once."""
        return Footprint(self.programs + other.programs, {**self.files, **other.files})


def runtime_files(arch: str, runtime: str, archive: Archive | None = None) -> Footprint:
    """The runtime's programs and the shared libraries they load, from Debian's packages."""
    spec = RUNTIMES.get(runtime)
    if spec is None:
        raise BoardError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    archive = archive or Archive(arch)
    specs = [spec, *spec.companions]
    programs = tuple(prog for s in specs for prog in s.programs)

    def work() -> Footprint:
        packages = archive.resolve(s.package for s in specs)
        tree = Tree({p.name: archive.unpack(p) for p in packages}, ARCHES[arch].triplet)
        return Footprint(programs, tree.closure(programs))

    return archive.fresh(work)


@dataclass(frozen=True)
class Kernel:
    version: str  # the Debian package version
    vmlinuz: Path


def kernel(arch: str, archive: Archive | None = None) -> Kernel:
    """The vmlinuz of Debian's default kernel for `arch`, never installed.

    linux-image-<flavour> is a metapackage; its Depends names the versioned image package.
    """
    archive = archive or Archive(arch)

    def work() -> Kernel:
        (meta,) = archive.resolve([f"linux-image-{ARCHES[arch].kernel_flavour}"], libraries=False)
        name = next(g[0] for g in meta.depends if g[0].startswith("linux-image-"))
        (package,) = archive.resolve([name], libraries=False)
        (vmlinuz,) = (archive.unpack(package, members="boot/vmlinuz-") / "boot").glob("vmlinuz-*")
        return Kernel(package.version, vmlinuz)

    return archive.fresh(work)


def busybox(arch: str, archive: Archive | None = None) -> Path:
    """BusyBox from Debian's busybox-static: init, shell and tools in one static program."""
    archive = archive or Archive(arch)

    def work() -> Path:
        (package,) = archive.resolve(["busybox-static"], libraries=False)
        return archive.unpack(package) / "bin" / "busybox"

    return archive.fresh(work)


# --- the initramfs ----------------------------------------------------------------------------

# The first init: copy the board's tree into a tmpfs and make that the root, because runtimes
# pivot_root and pivot_root refuses the initramfs (rootfs) as the old root. The guest clock mark
# is the earliest point userland runs; the bench measures from it.
#
# From here on the kernel keeps its messages off the console: a warning printed while a script
# writes a line (a clocksource found unstable on a loaded host) would split that line. rcS
# prints the warnings logged meanwhile at the end, where they break nothing.
STAGE1 = f"""#!/board/bin/busybox sh
bb=/board/bin/busybox
$bb dmesg -n 1
$bb dmesg -c >/dev/null
$bb mount -t proc proc /proc
read -r up _ < /proc/uptime
# On a line of its own: the firmware may have left the cursor after its last words.
echo
echo "{MARK} init at $up"
$bb umount /proc
$bb mount -t tmpfs -o mode=0755 root /newroot
$bb cp -a /board/. /newroot/
# Applet links where a board has them (/bin/sh, /sbin/init, /usr/bin/env ...); files the board
# tree already has are kept.
$bb chroot /newroot /bin/busybox --install -s
exec $bb switch_root /newroot /sbin/init
"""

INITTAB = """\
# BusyBox init: one system start script; it powers the board off when it is done.
::sysinit:/etc/init.d/rcS
"""

# The system start script, as Buildroot's /etc/init.d/rcS plus Yocto's runlevel 5 links. It mounts
# what a board's init mounts before services start (cgroup2 for the runtimes, /run for their state).
#
# An init script's `start` returns at once and leaves its container to a background supervisor,
# so rcS cannot wait for it as a child. Instead each script runs with fd 9 on a pipe whose
# reader (cat) sees end-of-file only when every process the script started, and their runtimes,
# have exited: they all inherit fd 9. The container's own output still goes straight to the
# console. Waiting for one script's processes before starting the next keeps each script's
# console lines together; a service that never ends keeps the board up until the host's timeout.
RCS = f"""#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mark() {{ read -r up _ < /proc/uptime; echo "{MARK} $* at $up"; }}
mark rcS
exec 3>&1
for script in /etc/init.d/S??* /etc/rc5.d/S*; do
    [ -x "$script" ] || continue
    mark start "$script"
    {{
        exec 9>&1 >&3 2>&3
        "$script" start
        mark "$script" returned $?
    }} | cat
    mark "$script" ended
done
mark done
# Kernel warnings and worse since the first init (what `quiet` would have shown).
dmesg -r | grep '^<[0-4]>'
sync
poweroff -f
"""

# Folders rcS mounts on, and those `busybox --install` puts applet links into.
BOARD_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "run",
              "root")


@dataclass
class _Entry:
    mode: int
    data: bytes = b""
    source: Path | None = None
    rdev: tuple[int, int] = (0, 0)


def _newc(path: str, entry: _Entry, ino: int) -> Iterator[bytes]:
    """One newc cpio member: header, NUL-terminated name, data, each padded to 4 bytes."""
    data = entry.data if entry.source is None else entry.source.read_bytes()
    name = path.encode() + b"\0"
    # mtime 0, uid/gid 0: the image depends on its contents only.
    fields = (ino, entry.mode, 0, 0, 1, 0, len(data), 0, 0, *entry.rdev, len(name), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    yield header + name + b"\0" * (-(len(header) + len(name)) % 4)
    yield data + b"\0" * (-len(data) % 4)


def write_cpio(entries: dict[str, _Entry], out: Path) -> None:
    """Write `entries` as a newc archive, parents before children, in name order."""
    with open(out, "wb") as sink:
        for ino, path in enumerate(sorted(entries, key=lambda p: PurePosixPath(p).parts), 1):
            for chunk in _newc(path, entries[path], ino):
                sink.write(chunk)
        for chunk in _newc("TRAILER!!!", _Entry(0), 0):
            sink.write(chunk)


def _add_parents(entries: dict[str, _Entry], path: str) -> None:
    parts = PurePosixPath(path).parts
    for depth in range(1, len(parts)):
        entries.setdefault("/".join(parts[:depth]), _Entry(stat.S_IFDIR | 0o755))


def _add_file(entries: dict[str, _Entry], path: str, source: Path) -> None:
    """Add a file, folder or symlink as it is on this machine, and every parent it lacks."""
    _add_parents(entries, path)
    info = source.lstat()
    if stat.S_ISLNK(info.st_mode):
        entries[path] = _Entry(stat.S_IFLNK | 0o777, os.readlink(source).encode())
    elif stat.S_ISDIR(info.st_mode):
        entries[path] = _Entry(stat.S_IFDIR | stat.S_IMODE(info.st_mode))
    else:
        entries[path] = _Entry(stat.S_IFREG | stat.S_IMODE(info.st_mode), source=source)


def _add_text(entries: dict[str, _Entry], path: str, text: str, mode: int = 0o755) -> None:
    _add_parents(entries, path)
    entries[path] = _Entry(stat.S_IFREG | mode, text.encode())


def _add_tree(entries: dict[str, _Entry], prefix: str, root: Path) -> None:
    """Add everything under `root` at `prefix`, keeping modes and symlinks (later adds win)."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(directory)
        for name in sorted(dirs) + sorted(files):
            rel = (here / name).relative_to(root).as_posix()
            _add_file(entries, f"{prefix}/{rel}", here / name)


def build_initramfs(arch: str, overlay: Path | None, out: Path,
                    runtimes: Sequence[str] = ("crun",)) -> Path:
    """Write the board's initramfs to `out`: BusyBox, `runtimes`, rcS, then `overlay` on top.

    `overlay` is a directory laid over the board's root (init scripts, bundles); its files win.
    """
    archive = Archive(arch)
    entries: dict[str, _Entry] = {}
    for name in ("dev", "proc", "newroot", "board"):
        entries[name] = _Entry(stat.S_IFDIR | 0o755)
    # The kernel opens /dev/console for the first init before anything can mount devtmpfs.
    entries["dev/console"] = _Entry(stat.S_IFCHR | 0o600, rdev=(5, 1))
    _add_text(entries, "init", STAGE1)
    for name in BOARD_DIRS:
        _add_parents(entries, f"board/{name}")
        entries[f"board/{name}"] = _Entry(stat.S_IFDIR | 0o755)
    entries["board/tmp"] = _Entry(stat.S_IFDIR | 0o1777)
    _add_file(entries, "board/bin/busybox", busybox(arch, archive))
    # switch_root checks for the new init before it runs; `busybox --install` makes the rest.
    entries["board/sbin/init"] = _Entry(stat.S_IFLNK | 0o777, b"/bin/busybox")
    _add_text(entries, "board/etc/inittab", INITTAB, 0o644)
    _add_text(entries, "board/etc/init.d/rcS", RCS)
    for runtime in runtimes:
        for path, found in runtime_files(arch, runtime, archive).files.items():
            _add_file(entries, f"board/{path}", found.source)
    if overlay is not None:
        _add_tree(entries, "board", overlay)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_cpio(entries, out)
    return out


# --- booting ------------------------------------------------------------------------------

# The firmware's terminal resets and cursor moves (SeaBIOS on x86): they would glue themselves to
# the first line the board prints.
ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])")
MARK_LINE = re.compile(rf"^{re.escape(MARK)} (?P<what>.*) at (?P<uptime>\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class ScriptRun:
    """One init script's `start` as rcS saw it, with everything it left running."""

    path: str
    output: str  # the console lines from its start until its last process ended
    status: int | None  # what `start` returned; None: the board stopped before it returned
    started: float  # guest uptime, seconds
    ended: float | None  # when its last process ended; None: never (timeout)


@dataclass(frozen=True)
class BootResult:
    console: str  # the serial console, \r\n turned into \n
    returncode: int | None  # qemu's exit status; None when it was killed on timeout
    timed_out: bool
    kernel_version: str
    marks: list[tuple[str, float]] = field(default_factory=list)  # (what, guest uptime)

    @property
    def powered_off(self) -> bool:
        """rcS ran to its end: every init script returned."""
        return any(what == "done" for what, _ in self.marks)

    def mark(self, what: str) -> float:
        """The guest uptime at the board's mark `what` (e.g. `init`, `done`)."""
        for name, uptime in self.marks:
            if name == what:
                return uptime
        raise BoardError(f"the board never printed '{MARK} {what}'; console:\n{self.console}")

    def scripts(self) -> dict[str, ScriptRun]:
        """Each init script rcS started, by its path on the board."""
        runs: dict[str, ScriptRun] = {}
        path, started, status, lines = None, 0.0, None, []
        for line in self.console.splitlines():
            match = MARK_LINE.match(line)
            if match is None:
                lines.append(line)
                continue
            what, uptime = match["what"], float(match["uptime"])
            if what.startswith("start "):
                path, started, status, lines = what.removeprefix("start "), uptime, None, []
            elif path and what.startswith(f"{path} returned "):
                status = int(what.rsplit(" ", 1)[1])
            elif path and what == f"{path} ended":
                runs[path] = ScriptRun(path, "\n".join(lines), status, started, uptime)
                path = None
        if path:  # started, never ended
            runs[path] = ScriptRun(path, "\n".join(lines), status, started, None)
        return runs

    def script(self, name: str) -> ScriptRun:
        """The run of the script whose board path ends with `name` (e.g. `S50hello`)."""
        matches = [run for path, run in self.scripts().items() if path.endswith(f"/{name}")]
        if len(matches) != 1:
            raise BoardError(f"init script {name} ran {len(matches)} times; console:\n"
                             f"{self.console}")
        return matches[0]


def assert_refused_once(booted: BootResult, script: str, reason: str,
                        greeting: str = "Hello container!") -> None:
    """The init script `script` (e.g. S81flipped) refused to start its container NAME: it
    failed, printed exactly one line of ours, `hellocontainer: NAME: signature check failed:
    REASON` (`reason` a regular expression), said FAIL, and nothing ran or exited."""
    run = booted.script(script)
    name = script[3:]
    assert run.status not in (0, None), booted.console
    assert greeting not in run.output, booted.console
    ours = [line for line in run.output.splitlines() if line.startswith("hellocontainer: ")]
    assert len(ours) == 1, booted.console
    assert re.fullmatch(f"hellocontainer: {name}: signature check failed: {reason}", ours[0]), \
        booted.console
    assert f"Starting {name}: FAIL" in run.output, booted.console
    assert " exited " not in run.output, booted.console


def boot_initramfs(arch: str, initramfs: Path, timeout: float = DEFAULT_TIMEOUT,
                   memory_mib: int = 512) -> BootResult:
    """Boot Debian's kernel with `initramfs` in qemu and return the console once the board is off.

    The board powers itself off after its init scripts; on `timeout` qemu is killed and the
    console so far is returned with timed_out set.
    """
    board = ARCHES[arch]
    qemu = _tool(board.qemu, board.qemu_package)
    image = kernel(arch)
    # TCG, even where KVM exists: the same emulation on every machine, and KVM inside a VM
    # (nested) can hang or abort at boot.
    argv = [qemu, *board.qemu_args, "-accel", "tcg", "-m", str(memory_mib), "-smp", "1",
            "-nographic", "-no-reboot", "-net", "none",
            "-kernel", str(image.vmlinuz), "-initrd", str(initramfs),
            # panic=-1: a kernel panic reboots at once, which -no-reboot turns into qemu's exit.
            "-append", " ".join([f"console={board.console}", "panic=-1", "quiet", *board.append])]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        raw, returncode, timed_out = done.stdout + done.stderr, done.returncode, False
    except subprocess.TimeoutExpired as expired:  # run() has killed qemu already
        raw = (expired.stdout or b"") + (expired.stderr or b"")
        returncode, timed_out = None, True
    console = ESCAPES.sub("", raw.decode(errors="replace")).replace("\r\n", "\n").replace("\r", "")
    marks = [(m["what"], float(m["uptime"])) for m in map(MARK_LINE.match, console.splitlines()) if m]
    return BootResult(console, returncode, timed_out, image.version, marks)


def boot(arch: str, overlay: Path | None, runtimes: Sequence[str] = ("crun",),
         timeout: float = DEFAULT_TIMEOUT) -> BootResult:
    """Build a board for `arch` with `runtimes` and `overlay` laid over its root, boot it once."""
    with tempfile.TemporaryDirectory(prefix="board-") as tmp:
        initramfs = build_initramfs(arch, overlay, Path(tmp) / "initramfs.cpio", runtimes)
        return boot_initramfs(arch, initramfs, timeout)
