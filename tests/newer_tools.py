"""Tools newer than the host's, from Debian trixie: cosign 2.5 and skopeo 1.18 (sigstore on).

Debian 12 has no cosign, and its skopeo 1.9 is built without sigstore. Trixie's packages are
downloaded and unpacked into the test cache (board.Archive, with a private apt state), never
installed: the host's packages are not touched. Trixie's programs link against trixie's glibc,
so they run through trixie's own dynamic loader with the unpacked libraries on its path; cosign
is the same program it would be on a trixie machine.

A test that needs one calls `cosign()` or `skopeo()`: the first call downloads (seconds, then
cached), and a failure to reach the mirror fails the test (a skip under a developer machine's
missing network would hide that interop is unproven).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from board import Archive, BoardError

SUITE = "trixie"


@functools.cache
def _unpacked(arch: str, program: str) -> tuple[Path, tuple[Path, ...], Path]:
    """(loader, library folders, the program) of `program`'s package and its libraries."""
    archive = Archive(arch, suite=SUITE)

    def work() -> list[Path]:
        return [archive.unpack(p) for p in archive.resolve([program], libraries=True)]

    trees = archive.fresh(work)
    binary = next((t / "usr" / "bin" / program for t in trees
                   if (t / "usr" / "bin" / program).is_file()), None)
    loaders = [p for t in trees for p in t.glob("usr/lib/*/ld-linux*.so*")]
    if binary is None or not loaders:
        raise BoardError(f"{SUITE}'s {program} package has no usr/bin/{program} or no loader")
    libraries = tuple(sorted({p.parent for t in trees for p in t.glob("usr/lib/*/lib*.so*")}))
    return loaders[0], libraries, binary


def command(program: str, arch: str = "amd64") -> list[str]:
    """The argv prefix that runs trixie's `program` here."""
    loader, libraries, binary = _unpacked(arch, program)
    return [str(loader), "--library-path", os.pathsep.join(map(str, libraries)), str(binary)]


def cosign() -> list[str]:
    """cosign 2.5 (Debian trixie)."""
    return command("cosign")


def skopeo() -> list[str]:
    """skopeo 1.18 (Debian trixie), built with sigstore support."""
    return command("skopeo")
