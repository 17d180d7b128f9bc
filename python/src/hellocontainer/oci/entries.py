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

from typing import NamedTuple

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


class Entry(NamedTuple):
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


class _Refused(Exception):
    """Why an entry is refused; `parts`: its components, when they could be read."""

    def __init__(self, reason: str, parts: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.parts = reason, parts


def read_entry(member: Member, layer: str) -> Entry:
    """What `member` of layer `layer` (a short digest) does, or a LayoutError saying why it is
    refused, naming the layer and the entry."""
    try:
        return _read(member)
    except _Refused as refused:
        shown = repr(member.path) if refused.parts is None else "/" + "/".join(refused.parts)
        raise LayoutError(f"layer {layer} entry {shown}: {refused.reason}") from None


def _read(member: Member) -> Entry:
    # Messages are made only for a refused entry: this runs for each of millions of entries.
    if not (0 <= member.uid <= ID_MAX and 0 <= member.gid <= ID_MAX):
        raise _Refused(f"owner {member.uid}:{member.gid} is outside 0 to {ID_MAX}")
    if not TIME_RANGE[0] <= member.mtime <= TIME_RANGE[1]:
        raise _Refused(f"mtime {member.mtime} is outside what a file system holds")
    parts = _components(member.path)
    kind = member.kind
    notes: tuple[tuple[str, str], ...] = ()
    if member.absolute and parts:
        notes = (("absolute", "/" + "/".join(parts)),)
    if parts and parts[-1].startswith(WHITEOUT):
        marker = parts[-1]
        if marker == OPAQUE:
            return Entry(OPAQUE_DIR, parts, kind, None, notes)
        if marker.startswith(AUFS_META):
            return Entry(IGNORE, parts, kind)
        if marker[len(WHITEOUT):] in ("", ".", ".."):
            raise _Refused("a whiteout must name the file it deletes", parts)
        return Entry(DELETE, parts, kind, None, notes)
    if not parts:
        if kind != "dir":
            raise _Refused("the root of a layer must be a directory, not a "
                           + ("entry of an unknown type" if kind == "other" else kind), parts)
        return Entry(ROOT, parts, kind, None, notes)
    if kind in ("char", "block"):
        return Entry(SKIP, parts, kind, None, (*notes, ("device", "/" + "/".join(parts))))
    if kind not in EXTRACTED:
        return Entry(SKIP, parts, kind, None,
                     (*notes, ("unknown", f"/{'/'.join(parts)} type {member.typeflag!r}")))
    _check_lengths(parts)
    source = None
    if kind == "hardlink":
        try:
            source = _components(member.linkname)
        except _Refused as refused:
            raise _Refused(f"hardlink target {member.linkname!r}: {refused.reason}",
                           parts) from None
        if member.linkname.startswith("/"):
            notes = (*notes, ("absolute", "/" + "/".join(source)))
        if source == parts:
            raise _Refused("a hardlink to itself", parts)
        if not source:
            raise _Refused(hardlink_directory(source), parts)
        if source[:len(parts)] == parts:
            raise _Refused(f"its hardlink target /{'/'.join(source)} is inside the path the "
                           "hardlink replaces", parts)
        _check_lengths(source, parts)
    elif kind == "symlink":
        link = member.linkname
        if "\0" in link:
            raise _Refused("the symbolic link's target holds a NUL byte", parts)
        if not link:
            raise _Refused("a symbolic link with an empty target, which Linux cannot create",
                           parts)
        if len(link) > SYMLINK_MAX // 4 and len(_encoded(link)) > SYMLINK_MAX:
            raise _Refused(f"the symbolic link's target is longer than {SYMLINK_MAX} bytes, "
                           "which Linux refuses", parts)
    return Entry(MAKE, parts, kind, source, notes)


def _components(path: str) -> list[str]:
    """A tar path as components inside the root; `..` anywhere is refused, not resolved.

    A leading `/` means the root (as every tar tool reads it). `..` is refused rather than
    clamped at the root: no image tool writes it, so it is damage or an attack, and resolving
    it lexically would disagree with a kernel that follows links.
    """
    if "\0" in path:
        raise _Refused("the name holds a NUL byte, which no file name can")
    parts = path.split("/")
    if "" in parts or "." in parts:  # the test first: a loop in Python costs more than the entry
        parts = [p for p in parts if p not in ("", ".")]
    if ".." in parts:
        raise _Refused("the path has a '..' component; refused, since an entry must stay "
                       "inside the root")
    if "/" + WHITEOUT in "/" + "/".join(parts[:-1]):  # one search, not a loop: paths run long
        part = next(p for p in parts[:-1] if p.startswith(WHITEOUT))
        raise _Refused(f"'{part}' is a whiteout name, which cannot be a directory")
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


def _check_lengths(names: list[str], parts: list[str] | None = None) -> None:
    """Each of `names` fits a file system (`parts`: the entry's, for the message)."""
    # A character is at most 4 bytes: only long components are encoded to be measured.
    if max(map(len, names)) <= NAME_MAX // 4:
        return
    for name in names:
        if len(_encoded(name)) > NAME_MAX:
            raise _Refused(f"the name {name[:40]!r}... is longer than {NAME_MAX} bytes, which "
                           "Linux file systems refuse", parts if parts is not None else names)
