"""One rule for a layer entry, taken alone: what `bundle` does with it and `validate` says of it.

A layer is untrusted, and the two tools must never disagree about one: `validate` is what a user
runs before flashing, so whatever `bundle` would refuse, `validate` calls a problem, and whatever
`bundle` skips (and says so), `validate` warns of. This module is the part of that rule that
needs nothing but the entry itself; what depends on the entries before it (writing through a
link, a hardlink's target) is judged by the real tree in board/rootfs.py and by a model of it
in check/layertree.py, both following the same image-spec semantics.

Refused (a problem): a `..` component, a NUL byte in a name, a whiteout name used as a directory,
a whiteout naming nothing, a layer root that is not a directory, a name component no Linux file
system takes, a hardlink to itself, to the root or to something below itself, a symbolic link to
nothing, and an owner or time no file system holds.
Skipped and reported (a warning): device nodes (the runtime provides /dev) and tar types this
tool does not extract. Reported only: absolute names, which are read inside the root as every
tar tool reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LayoutError
from .tarstream import Member

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."  # prefix of aufs bookkeeping entries (.wh..wh.plnk, .wh..wh.aufs)
NAME_MAX = 255  # bytes in one name component, on every Linux file system
SYMLINK_MAX = 4095  # bytes in a symbolic link's target (PATH_MAX less its NUL)
ID_MAX = (1 << 32) - 1  # uid_t and gid_t
TIME_RANGE = (-(1 << 63), (1 << 63) - 1)  # time_t
EXTRACTED = frozenset({"file", "dir", "symlink", "hardlink", "fifo"})
SHOWN_NOTES = 3  # example paths a note names

# What an entry does (Entry.action).
ROOT = "root"  # the layer's root directory: its attributes
MAKE = "make"  # a file, directory, link or FIFO at `parts`
SKIP = "skip"  # not created (a device node, an unknown type): reported
DELETE = "whiteout"  # `.wh.NAME`: deletes NAME of lower layers
OPAQUE_DIR = "opaque"  # `.wh..wh..opq`: hides the lower layers' content of its directory
IGNORE = "ignore"  # aufs bookkeeping: never content, never shown

# The notes (warnings) an entry may carry, by category: how a summary of them reads.
NOTES = {
    "device": "device node(s) of the image not created ({shown}); the runtime provides /dev",
    "unknown": "entr(y/ies) of a tar type that is not a file, directory, link or FIFO, not "
               "created ({shown})",
    "absolute": "absolute name(s) in the layers, read inside the root ({shown})",
}


@dataclass(frozen=True)
class Entry:
    """A layer entry as the rule reads it."""

    action: str
    parts: list[str]  # components inside the root; [] for the root itself
    kind: str  # the member's kind (file, dir, symlink, hardlink, fifo, char, block, other)
    source: list[str] | None = None  # a hardlink's target, as components
    notes: tuple[tuple[str, str], ...] = ()  # (category of NOTES, path) to report

    @property
    def shown(self) -> str:
        return "/" + "/".join(self.parts)


class Notes:
    """Notes of a whole image, counted by category, with the first few paths of each."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, list[str]]] = {}

    def add(self, notes: tuple[tuple[str, str], ...]) -> None:
        for category, path in notes:
            count, shown = self._seen.get(category, (0, []))
            if len(shown) < SHOWN_NOTES:
                shown.append(path)
            self._seen[category] = (count + 1, shown)

    def lines(self) -> list[str]:
        """One sentence per category, in NOTES' order: `2 device node(s) ... (/dev/a, /dev/b)`."""
        out = []
        for category, text in NOTES.items():
            if category in self._seen:
                count, shown = self._seen[category]
                listed = ", ".join(shown) + (", ..." if count > len(shown) else "")
                out.append(f"{count} " + text.format(shown=listed))
        return out


def read_entry(member: Member, layer: str) -> Entry:
    """What `member` of layer `layer` (a short digest) does, or a LayoutError saying why it is
    refused, naming the layer and the entry."""
    what = f"layer {layer} entry"
    _check_attributes(member, f"{what} {member.path!r}")
    parts = components(member.path, f"{what} {member.path!r}")
    what = f"{what} /{'/'.join(parts)}"
    notes: tuple[tuple[str, str], ...] = ()
    if member.absolute and parts:
        notes = (("absolute", "/" + "/".join(parts)),)
    if parts and parts[-1].startswith(WHITEOUT):
        marker = parts[-1]
        if marker == OPAQUE:
            return Entry(OPAQUE_DIR, parts, member.kind, notes=notes)
        if marker.startswith(AUFS_META):
            return Entry(IGNORE, parts, member.kind)
        if marker[len(WHITEOUT):] in ("", ".", ".."):
            raise LayoutError(f"{what}: a whiteout must name the file it deletes")
        return Entry(DELETE, parts, member.kind, notes=notes)
    if not parts:
        if member.kind != "dir":
            kind = "entry of an unknown type" if member.kind == "other" else member.kind
            raise LayoutError(f"{what}: the root of a layer must be a directory, not a {kind}")
        return Entry(ROOT, parts, member.kind, notes=notes)
    if member.kind in ("char", "block"):
        return Entry(SKIP, parts, member.kind, notes=(*notes, ("device", "/" + "/".join(parts))))
    if member.kind not in EXTRACTED:
        return Entry(SKIP, parts, member.kind,
                     notes=(*notes, ("unknown", f"/{'/'.join(parts)} type {member.typeflag!r}")))
    _check_lengths(parts, what)
    source = None
    if member.kind == "hardlink":
        source = components(member.linkname, f"{what}: hardlink target {member.linkname!r}")
        if member.linkname.startswith("/"):
            notes = (*notes, ("absolute", "/" + "/".join(source)))
        if source == parts:
            raise LayoutError(f"{what}: a hardlink to itself")
        if not source:
            raise LayoutError(f"{what}: a hardlink to the directory /")
        if source[:len(parts)] == parts:
            raise LayoutError(f"{what}: its hardlink target /{'/'.join(source)} is inside the "
                              "path the hardlink replaces")
        _check_lengths(source, what)
    elif member.kind == "symlink":
        if "\0" in member.linkname:
            raise LayoutError(f"{what}: the symbolic link's target holds a NUL byte")
        if not member.linkname:
            raise LayoutError(f"{what}: a symbolic link with an empty target, which Linux "
                              "cannot create")
        if len(member.linkname) > SYMLINK_MAX // 4 \
                and len(_encoded(member.linkname)) > SYMLINK_MAX:
            raise LayoutError(f"{what}: the symbolic link's target is longer than {SYMLINK_MAX} "
                              "bytes, which Linux refuses")
    return Entry(MAKE, parts, member.kind, source, notes)


def components(path: str, what: str) -> list[str]:
    """A tar path as components inside the root; `..` anywhere is refused, not resolved.

    A leading `/` means the root (as every tar tool reads it). `..` is refused rather than
    clamped at the root: no image tool writes it, so it is damage or an attack, and resolving
    it lexically would disagree with a kernel that follows links.
    """
    if "\0" in path:
        raise LayoutError(f"{what}: the name holds a NUL byte, which no file name can")
    parts = path.split("/")
    if "" in parts or "." in parts:  # the test first: a loop in Python costs more than the entry
        parts = [p for p in parts if p not in ("", ".")]
    if ".." in parts:
        raise LayoutError(f"{what}: the path has a '..' component; refused, since an entry "
                          "must stay inside the root")
    if "/" + WHITEOUT in "/" + "/".join(parts[:-1]):  # one search, not a loop: paths run long
        part = next(p for p in parts[:-1] if p.startswith(WHITEOUT))
        raise LayoutError(f"{what}: '{part}' is a whiteout name, which cannot be a directory")
    return parts


def through(parts: list[str], link: bool) -> str:
    """Why an entry below `parts` is refused: it would be written through a link or a file."""
    kind = "a symbolic link" if link else "not a directory"
    return (f"/{'/'.join(parts)} is {kind} in the rootfs, and entries are never written "
            "through one")


def hardlink_missing(source: list[str]) -> str:
    return f"its hardlink target /{'/'.join(source)} is not in the image before it"


def hardlink_directory(source: list[str]) -> str:
    return f"a hardlink to the directory /{'/'.join(source)}"


def _encoded(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _check_lengths(parts: list[str], what: str) -> None:
    # A character is at most 4 bytes: only long components are encoded to be measured.
    if max(map(len, parts)) <= NAME_MAX // 4:
        return
    for part in parts:
        if len(_encoded(part)) > NAME_MAX:
            raise LayoutError(f"{what}: the name {part[:40]!r}... is longer than {NAME_MAX} "
                              "bytes, which Linux file systems refuse")


def _check_attributes(member: Member, what: str) -> None:
    if not (0 <= member.uid <= ID_MAX and 0 <= member.gid <= ID_MAX):
        raise LayoutError(f"{what}: owner {member.uid}:{member.gid} is outside 0 to {ID_MAX}")
    if not TIME_RANGE[0] <= member.mtime <= TIME_RANGE[1]:
        raise LayoutError(f"{what}: mtime {member.mtime} is outside what a file system holds")
