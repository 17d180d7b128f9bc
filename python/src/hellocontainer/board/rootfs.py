"""A runtime bundle's rootfs/: the image's layers applied in order, by the image-spec rules alone.

Every entry is reached through confined.py, never through a link already in the tree. What an
entry alone may be (no `..`, no NUL, ...) is oci/entries.py's rule, which `validate` applies too,
so that the two tools agree on every layer. The rules come from image-spec layer.md:
- an entry over an existing path replaces it, except a directory over a directory, which only
  takes the new attributes;
- `.wh.NAME` deletes NAME and `.wh..wh..opq` hides every sibling, but only what lower layers
  made (entries of the same layer stay), and neither marker appears in the result;
- hardlinks name an earlier entry.

Device nodes are skipped, never created: the runtime mounts its own /dev, and a device node
in an image is either a leftover of the build machine's /dev or a way to reach its hardware.
FIFOs are not devices and are created. Entries of a tar type that is none of these are skipped
too; both are reported (`Tree.notes`), and a skipped entry leaves the path as it was.

Determinism: every file, link and directory gets the mode, owner and mtime of its entry.
Directories get theirs after the last layer (a child's creation changes its parent's mtime,
and a read-only mode would stop us creating children); directories no entry describes (implied
parents, mount points) get mode 0755, owner 0:0 and the newest mtime in the image.
Owners are set only when running as root: anyone else cannot give files away.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci import entries
from ..oci.digests import short_digest
from ..oci.entries import DELETE, IGNORE, OPAQUE, OPAQUE_DIR, ROOT, SKIP, WHITEOUT, Entry, Notes
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..oci.tarstream import Member
from ..store import fdwalk
from ..store.fdwalk import DIR_FLAGS, lstat_at
from .confined import BUILD_DIR_MODE, ConfinedRoot

# Told the bytes done and the bytes in all (the CLI shows it; nothing here prints).
Progress = Callable[[int, int], None]
DEFAULT_DIR_MODE = 0o755

# What a layer made, as a tree of names: {"etc": {"passwd": {}}}. A path is in it with all its
# ancestors, so a whiteout spares what this layer made in one lookup per component.
Touched = dict[str, "Touched"]


class _Made:
    """The Touched tree of one layer, added to where the last entry's directory was: entries
    come directory by directory, so a path thousands deep is not walked again for each."""

    def __init__(self) -> None:
        self.tree: Touched = {}
        self._at: tuple[list[str], Touched] = ([], self.tree)

    def add(self, parts: list[str]) -> None:
        directory, node = self._at
        start = len(directory)
        if len(parts) <= start or parts[:start] != directory:
            start, node = 0, self.tree
        for part in parts[start:-1]:
            node = node.setdefault(part, {})
        self._at = (parts[:-1], node)
        if parts:
            node.setdefault(parts[-1], {})


@dataclass
class _DirAttrs:
    mode: int = DEFAULT_DIR_MODE
    uid: int = 0
    gid: int = 0
    mtime: int | None = None  # None: the image's newest mtime, known only at the end


@dataclass
class Tree:
    """A rootfs being built: where it is, and what must still be applied to its directories."""

    root: Path
    chown: bool = field(default_factory=lambda: os.geteuid() == 0)
    notes: Notes = field(default_factory=Notes)  # what was skipped or read otherwise, to report
    newest_mtime: int = 0
    # The first entry owned by anyone but root, which only root can create as such: a signed
    # bundle made without root must not claim owners its files do not have (signed_bundle.py).
    first_not_root_owned: str | None = None
    # By inode: a directory's attributes follow it, and a path removed and made again gets
    # fresh ones, since every directory we make is recorded anew (no prefix scans on removal).
    _dirs: dict[int, _DirAttrs] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = ConfinedRoot(self.root, self._made)
        self._root_inode = os.lstat(self.root).st_ino

    def _made(self, inode: int) -> None:
        self._dirs[inode] = _DirAttrs()

    def _mkdir(self, parent_fd: int, name: str, attrs: _DirAttrs) -> None:
        os.mkdir(name, BUILD_DIR_MODE, dir_fd=parent_fd)
        self._dirs[os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_ino] = attrs

    def read_file(self, path: str, cap: int) -> bytes | None:
        return self.paths.read_file(path, cap)

    def close(self) -> None:
        self.paths.close()

    def remove(self, parent_fd: int, parts: list[str]) -> None:
        """Delete whatever is at `parts` (a directory with all it holds), never following links."""
        if fdwalk.remove_at(parent_fd, parts[-1]):
            self.paths.forget(parts)

    # --- attributes --------------------------------------------------------------------------

    def _owner(self, name: str | int, member: Member, parent_fd: int | None = None) -> None:
        if not self.chown:
            return
        if isinstance(name, int):
            os.fchown(name, member.uid, member.gid)
        else:
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)

    def _mtime(self, name: str | int, mtime: int, parent_fd: int | None = None) -> None:
        ns = mtime * 1_000_000_000
        if isinstance(name, int):
            os.utime(name, ns=(ns, ns))
        else:
            os.utime(name, ns=(ns, ns), dir_fd=parent_fd, follow_symlinks=False)

    def ensure_dirs(self, paths: Iterable[str]) -> None:
        """Create directories the runtime needs (mount points, the working directory) if absent.

        A runtime creates a missing mount point inside rootfs/ itself, which fails where the
        bundle sits on a read-only file system (a board's root) and changes the bundle on every
        other. Something else already at the path (a link, a file) is left for the runtime to
        judge, as it would judge the image without us.
        """
        for path in paths:
            parts = [p for p in path.split("/") if p not in ("", ".")]
            if not parts or ".." in parts:
                continue
            try:
                with self.paths.parent(parts, create=True, what=path) as parent_fd:
                    assert parent_fd is not None  # create=True never yields None
                    if lstat_at(parent_fd, parts[-1]) is None:
                        self._mkdir(parent_fd, parts[-1], _DirAttrs())
            except LayoutError:
                continue  # a link or a file on the way: the runtime's call, as said above

    def finish(self) -> None:
        """Give every directory its mode, owner and mtime, children before their parents.

        Iterative (store/fdwalk.py): a hostile layer may nest thousands deep.
        """
        self.close()
        fd = os.open(self.root, DIR_FLAGS)
        try:
            fdwalk.walk(fd, None, fdwalk.subdirectories, self._finish_dir)
        finally:
            os.close(fd)

    def _finish_dir(self, fd: int, parent_fd: int | None, name: str | None) -> None:
        info = os.fstat(fd)
        attrs = self._dirs.get(info.st_ino, _DirAttrs())
        if self.chown:
            os.fchown(fd, attrs.uid, attrs.gid)
        os.fchmod(fd, attrs.mode)
        self._mtime(fd, self.newest_mtime if attrs.mtime is None else attrs.mtime)

    # --- applying a layer --------------------------------------------------------------------

    def apply_layer(self, reader: LayoutReader, layer: Descriptor, diff_id: str | None = None,
                    read: Callable[[int], None] | None = None, lowest: bool = False) -> None:
        """Apply one layer. In the `lowest`, whiteouts have nothing below them to hide, so what
        the layer makes is not recorded: a layer of a million entries costs no memory for it."""
        name = short_digest(layer.digest)
        # Made by this layer, with their ancestors: whiteouts spare them.
        made = None if lowest else _Made()
        for member in reader.layer_members(layer, diff_id, read):
            self.newest_mtime = max(self.newest_mtime, member.mtime)
            entry = entries.read_entry(member, name)
            if entry.notes:
                self.notes.add(entry.notes)
            if entry.action in (SKIP, IGNORE):
                continue  # made nothing: spares nothing from a whiteout either
            what = f"layer {name} entry {entry.shown}"
            if entry.action in (DELETE, OPAQUE_DIR):
                if made is not None:  # in the lowest layer there is nothing below to hide
                    self._whiteout(entry.parts, made.tree, what)
                continue
            if made is not None:
                made.add(entry.parts)
            if entry.action == ROOT:
                self._root_entry(member)
            else:
                self._entry(member, entry, what)

    def _root_entry(self, member: Member) -> None:
        if self.first_not_root_owned is None and (member.uid, member.gid) != (0, 0):
            self.first_not_root_owned = member.path or "/"
        self._dirs[self._root_inode] = _DirAttrs(member.mode, member.uid, member.gid,
                                                 member.mtime)

    def _whiteout(self, parts: list[str], touched: Touched, what: str) -> None:
        marker = parts[-1]
        directory = parts[:-1]
        node: Touched | None = touched
        for part in directory:
            node = node.get(part) if node is not None else None
        with self.paths.parent([*directory, "."], create=False, what=what) as fd:
            if fd is None:
                return  # nothing below to hide
            if marker == OPAQUE:
                with os.scandir(fd) as listing:
                    names = [child.name for child in listing]
            else:
                names = [marker[len(WHITEOUT):]]
            for child in names:
                self._hide_lower(fd, [*directory, child], None if node is None else node.get(child))

    def _hide_lower(self, parent_fd: int, parts: list[str], touched: Touched | None) -> None:
        """Delete what lower layers put at `parts`, sparing what this layer made there.

        A whiteout applies to lower layers only, whether it comes before or after this layer's
        own entries (layer.md); sparing what `touched` records makes the order irrelevant.
        """
        if touched is None:
            self.remove(parent_fd, parts)
            return
        info = lstat_at(parent_fd, parts[-1])
        if info is None or not stat.S_ISDIR(info.st_mode):
            return
        fd = os.open(parts[-1], DIR_FLAGS, dir_fd=parent_fd)
        try:
            fdwalk.walk(fd, touched, _hide_below, _stay)
        finally:
            os.close(fd)

    def _entry(self, member: Member, entry: Entry, what: str) -> None:
        if self.first_not_root_owned is None and (member.uid, member.gid) != (0, 0):
            self.first_not_root_owned = member.path
        parts = entry.parts
        name = parts[-1]
        with self.paths.parent(parts, create=True, what=what) as parent_fd:
            assert parent_fd is not None  # create=True never yields None
            existing = lstat_at(parent_fd, name)
            attrs = _DirAttrs(member.mode, member.uid, member.gid, member.mtime)
            if member.kind == "dir":
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    self._dirs[existing.st_ino] = attrs
                    return
                if existing is not None:
                    self.remove(parent_fd, parts)
                self._mkdir(parent_fd, name, attrs)
                return
            if member.kind == "hardlink":
                # The rule refused a link to itself or below itself: removing the destination
                # cannot delete the file it names.
                assert entry.source is not None
                self._hardlink(parent_fd, parts, entry.source, what)
                return
            if existing is not None:
                self.remove(parent_fd, parts)
            if member.kind == "file":
                self._file(parent_fd, name, member)
            elif member.kind == "symlink":
                os.symlink(member.linkname, name, dir_fd=parent_fd)
                self._owner(name, member, parent_fd)
                self._mtime(name, member.mtime, parent_fd)
            else:  # fifo
                os.mkfifo(name, 0o600, dir_fd=parent_fd)
                self._owner(name, member, parent_fd)
                os.chmod(name, member.mode, dir_fd=parent_fd)  # a FIFO we just made: no link
                self._mtime(name, member.mtime, parent_fd)

    def _file(self, parent_fd: int, name: str, member: Member) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        try:
            for chunk in member.chunks():
                _write_all(fd, chunk)
            self._owner(fd, member)
            os.fchmod(fd, member.mode)  # after chown, which clears setuid and setgid
            self._mtime(fd, member.mtime)
        finally:
            os.close(fd)

    def _hardlink(self, parent_fd: int, parts: list[str], source: list[str], what: str) -> None:
        with self.paths.parent(source, create=False, what=what) as source_fd:
            info = None if source_fd is None else lstat_at(source_fd, source[-1])
            if info is None:
                raise LayoutError(f"{what}: {entries.hardlink_missing(source)}")
            if stat.S_ISDIR(info.st_mode):
                raise LayoutError(f"{what}: {entries.hardlink_directory(source)}")
            self.remove(parent_fd, parts)
            os.link(source[-1], parts[-1], src_dir_fd=source_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)


def _hide_below(fd: int, touched: Touched) -> list[tuple[str, Touched]]:
    """`enter` of a whiteout's walk: delete the children of `fd` the layer did not make, and go
    into the directories it made something in. Every deletion is below the directory the
    walk started in, so the cursor (confined.py), which is there, stays valid."""
    with os.scandir(fd) as scan:
        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan]
    below = []
    for name, is_dir in entries:
        child = touched.get(name)
        if child is None:
            fdwalk.remove_at(fd, name)
        elif is_dir:
            below.append((name, child))
    return below


def _stay(fd: int, parent_fd: int | None, name: str | None) -> None:
    """`leave` of a whiteout's walk: nothing to do on the way up."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def extract(reader: LayoutReader, layers: list[Descriptor], root: Path,
            diff_ids: list[str] | None = None, progress: Progress | None = None) -> Tree:
    """Apply `layers` in order into the empty directory `root`, and finish its directories.

    Each layer is checked against its config diff_id as it streams (`diff_ids`, when given).
    `progress`, if given, is told the bytes of the layer blobs read so far and their total.
    """
    total, done = sum(layer.size for layer in layers), 0

    def read(size: int) -> None:
        nonlocal done
        done += size
        progress(done, total)  # type: ignore[misc]  # read is passed only with a progress

    try:
        tree = Tree(root)
        try:
            for i, layer in enumerate(layers):
                diff_id = diff_ids[i] if diff_ids is not None and i < len(diff_ids) else None
                tree.apply_layer(reader, layer, diff_id, read if progress is not None else None,
                                 lowest=i == 0)
        except BaseException:
            tree.close()
            raise
    except OSError as error:
        raise LayoutError(os_error_message(error, f"cannot write rootfs {root}")) from None
    except (OverflowError, ValueError) as error:
        # A mode, owner or mtime outside what the kernel takes (tar allows 2^95 in base-256).
        raise LayoutError(f"a layer entry of the image has an out-of-range attribute: {error}") \
            from None
    return tree


def finish(tree: Tree, extra_dirs: Iterable[str]) -> None:
    """Create the runtime's mount points and give every directory its attributes."""
    try:
        tree.ensure_dirs(extra_dirs)
        tree.finish()
    except OSError as error:
        raise LayoutError(os_error_message(error, f"cannot write rootfs {tree.root}")) from None
