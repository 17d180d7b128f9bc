"""A runtime bundle's rootfs/: the image's layers applied in order, by the image-spec rules alone.

The hard problem is that a layer is untrusted input that writes to our disk. A tar entry may
name `../../etc/passwd`, or a layer may first plant `lib -> /etc` and then write `lib/passwd`
through it. So no path is ever handed to the kernel whole: every entry is reached by opening
its parent directories one component at a time with O_NOFOLLOW, relative to a descriptor of
the root, and the final name is created with *at() calls on the parent's descriptor. A symbolic
link already in the tree is data for the container to interpret later, never a way for us to
reach anything; an entry whose path goes through one is refused. `..` is refused outright.

The other rules come from image-spec layer.md:
- an entry over an existing path replaces it, except a directory over a directory, which only
  takes the new attributes;
- `.wh.NAME` deletes NAME and `.wh..wh..opq` hides every sibling, but only what lower layers
  made (entries of the same layer stay), and neither marker appears in the result;
- hardlinks name an earlier entry.

Device nodes are skipped, never created: the runtime mounts its own /dev, and a device node
in an image is either a leftover of the build machine's /dev or a way to reach its hardware.
FIFOs are not devices and are created.

Determinism: every file, link and directory gets the mode, owner and mtime of its entry.
Directories get theirs after the last layer (a child's creation changes its parent's mtime,
and a read-only mode would stop us creating children); directories no entry describes (implied
parents, mount points) get mode 0755, owner 0:0 and the newest mtime in the image.
Owners are set only when running as root: anyone else cannot give files away.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..oci.tarstream import Member

# Told the bytes done and the bytes in all (the CLI shows it; nothing here prints).
Progress = Callable[[int, int], None]
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."  # prefix of aufs bookkeeping entries (.wh..wh.plnk, .wh..wh.aufs)
DEFAULT_DIR_MODE = 0o755
BUILD_DIR_MODE = 0o700  # while extracting: ours to write into, whatever the entry's mode says
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
    skipped_devices: list[str] = field(default_factory=list)
    newest_mtime: int = 0
    _dirs: dict[str, _DirAttrs] = field(default_factory=dict)

    # --- walking, without ever following a link ----------------------------------------------

    @contextlib.contextmanager
    def parent(self, parts: list[str], create: bool, what: str) -> Iterator[int | None]:
        """A descriptor of the directory holding `parts[-1]`, or None if it does not exist.

        With `create`, missing directories are made (implied parents of an entry); a component
        that is a symbolic link or a file is an error naming `what`. Without it, such a path
        simply has nothing to delete or read, and None is yielded. `[*dir, "."]` gives the
        directory `dir` itself.
        """
        fd = os.open(self.root, DIR_FLAGS)
        try:
            for depth in range(len(parts) - 1):
                child = self._step(fd, parts, depth, create, what)
                os.close(fd)
                fd = -1 if child is None else child
                if child is None:
                    break
            yield None if fd < 0 else fd
        finally:
            if fd >= 0:
                os.close(fd)

    def _step(self, fd: int, parts: list[str], depth: int, create: bool, what: str) -> int | None:
        """Open directory `parts[depth]` inside `fd`, as `parent` says; None where it stops."""
        part = parts[depth]
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not create:
                return None
            # The kernel says ENOTDIR or ELOOP for a link, depending on the flags' order.
            info = self.lstat(fd, part)
            kind = "a symbolic link" if info is not None and stat.S_ISLNK(info.st_mode) \
                else "not a directory"
            raise LayoutError(f"{what}: /{'/'.join(parts[:depth + 1])} is {kind} in the rootfs, "
                              "and entries are never written through one") from None
        os.mkdir(part, BUILD_DIR_MODE, dir_fd=fd)
        self._dirs["/".join(parts[:depth + 1])] = _DirAttrs()
        return os.open(part, DIR_FLAGS, dir_fd=fd)

    def lstat(self, parent_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def remove(self, parent_fd: int, name: str, relative: str) -> None:
        """Delete whatever is at `name` (a directory with all it holds), never following links."""
        info = self.lstat(parent_fd, name)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            # rmtree refuses a link at the top and does not follow links inside. The path is
            # safe to hand over whole: every component of it was just opened with O_NOFOLLOW,
            # and the staging folder is private to this process.
            shutil.rmtree(self.root / relative)
        else:
            os.unlink(name, dir_fd=parent_fd)
        prefix = relative + "/"
        for key in [k for k in self._dirs if k == relative or k.startswith(prefix)]:
            del self._dirs[key]

    def read_file(self, path: str, cap: int) -> bytes | None:
        """A small regular file of the tree (/etc/passwd), or None if there is none.

        Reached like every entry, without following links: a link would be resolved by the
        container at run time inside its root, not by us on the build machine.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        with self.parent(parts, create=False, what=path) as parent_fd:
            if parent_fd is None:
                return None
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=parent_fd)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ELOOP):
                    return None
                raise
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = stream.read(cap + 1)
        if len(data) > cap:
            raise LayoutError(f"{path} in the image is larger than {cap >> 10} KiB; "
                              "that is not a user database")
        return data

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
                with self.parent(parts, create=True, what=path) as parent_fd:
                    assert parent_fd is not None  # create=True never yields None
                    if self.lstat(parent_fd, parts[-1]) is None:
                        os.mkdir(parts[-1], BUILD_DIR_MODE, dir_fd=parent_fd)
                        self._dirs["/".join(parts)] = _DirAttrs()
            except LayoutError:
                continue  # a link or a file on the way: the runtime's call, as said above

    def finish(self) -> None:
        """Give every directory its mode, owner and mtime, children before their parents."""
        order: list[str] = []
        stack = [""]
        while stack:  # pre-order without recursion: a hostile layer may nest thousands deep
            relative = stack.pop()
            order.append(relative)
            with self._open_dir(relative) as fd, os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(f"{relative}/{entry.name}" if relative else entry.name)
        for relative in reversed(order):  # every child comes after its parent in `order`
            attrs = self._dirs.get(relative, _DirAttrs())
            with self._open_dir(relative) as fd:
                if self.chown:
                    os.fchown(fd, attrs.uid, attrs.gid)
                os.fchmod(fd, attrs.mode)
                self._mtime(fd, self.newest_mtime if attrs.mtime is None else attrs.mtime)

    @contextlib.contextmanager
    def _open_dir(self, relative: str) -> Iterator[int]:
        parts = [p for p in relative.split("/") if p]
        with self.parent([*parts, "."], create=False, what=relative) as fd:
            if fd is None:
                raise LayoutError(f"internal error: /{relative} vanished while finishing the rootfs")
            yield fd

    # --- applying a layer --------------------------------------------------------------------

    def apply_layer(self, reader: LayoutReader, layer: Descriptor, diff_id: str | None = None,
                    read: Callable[[int], None] | None = None) -> None:
        name = layer.digest[:19]
        touched: set[str] = set()  # made by this layer, with their ancestors: whiteouts spare them
        for member in reader.layer_members(layer, diff_id, read):
            self.newest_mtime = max(self.newest_mtime, member.mtime)
            parts = _parts(member.path, f"layer {name} entry {member.path!r}")
            what = f"layer {name} entry /{'/'.join(parts)}"
            if parts and parts[-1].startswith(WHITEOUT):
                self._whiteout(parts, touched, what)
                continue
            for depth in range(len(parts) + 1):
                touched.add("/".join(parts[:depth]))
            if not parts:
                self._root_entry(member, what)
            else:
                self._entry(member, parts, what)

    def _root_entry(self, member: Member, what: str) -> None:
        if member.kind != "dir":
            raise LayoutError(f"{what}: the root of a layer must be a directory, not a "
                              f"{member.kind}")
        self._dirs[""] = _DirAttrs(member.mode, member.uid, member.gid, member.mtime)

    def _whiteout(self, parts: list[str], touched: set[str], what: str) -> None:
        marker = parts[-1]
        if marker.startswith(AUFS_META) and marker != OPAQUE:
            return  # aufs bookkeeping that old Docker layers carry: never content, never shown
        target = marker[len(WHITEOUT):]
        if marker != OPAQUE and target in ("", ".", ".."):
            raise LayoutError(f"{what}: a whiteout must name the file it deletes")
        directory = parts[:-1]
        with self.parent([*directory, "."], create=False, what=what) as fd:
            if fd is None:
                return  # nothing below to hide
            if marker == OPAQUE:
                with os.scandir(fd) as entries:
                    names = sorted(entry.name for entry in entries)
            else:
                names = [target]
            for child in names:
                self._hide_lower(fd, [*directory, child], touched)

    def _hide_lower(self, parent_fd: int, parts: list[str], touched: set[str]) -> None:
        """Delete what lower layers put at `parts`, sparing what this layer made there.

        A whiteout applies to lower layers only, whether it comes before or after this layer's
        own entries (layer.md); sparing what `touched` records makes the order irrelevant.
        """
        relative = "/".join(parts)
        if relative not in touched:
            self.remove(parent_fd, parts[-1], relative)
            return
        info = self.lstat(parent_fd, parts[-1])
        if info is None or not stat.S_ISDIR(info.st_mode):
            return
        fd = os.open(parts[-1], DIR_FLAGS, dir_fd=parent_fd)
        try:
            with os.scandir(fd) as entries:
                names = sorted(entry.name for entry in entries)
            for child in names:
                self._hide_lower(fd, [*parts, child], touched)
        finally:
            os.close(fd)

    def _entry(self, member: Member, parts: list[str], what: str) -> None:
        relative = "/".join(parts)
        name = parts[-1]
        if member.kind in ("char", "block"):
            self.skipped_devices.append("/" + relative)
            return
        if member.kind not in ("file", "dir", "symlink", "hardlink", "fifo"):
            raise LayoutError(f"{what}: unsupported tar entry type; a layer holds files, "
                              "directories, links and FIFOs")
        if member.kind == "hardlink":
            # Checked before anything at the destination is removed: a link to itself would
            # delete the very file it names.
            source = _parts(member.linkname, f"{what}: hardlink target {member.linkname!r}")
            if source == parts:
                raise LayoutError(f"{what}: a hardlink to itself")
        with self.parent(parts, create=True, what=what) as parent_fd:
            assert parent_fd is not None  # create=True never yields None
            existing = self.lstat(parent_fd, name)
            if member.kind == "dir":
                if existing is None or not stat.S_ISDIR(existing.st_mode):
                    self.remove(parent_fd, name, relative)
                    os.mkdir(name, BUILD_DIR_MODE, dir_fd=parent_fd)
                self._dirs[relative] = _DirAttrs(member.mode, member.uid, member.gid, member.mtime)
                return
            if member.kind == "hardlink":
                self._hardlink(parent_fd, name, relative, source, what)
                return
            self.remove(parent_fd, name, relative)
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

    def _hardlink(self, parent_fd: int, name: str, relative: str, source: list[str],
                  what: str) -> None:
        with self.parent(source, create=False, what=what) as source_fd:
            info = None if source_fd is None else self.lstat(source_fd, source[-1])
            if info is None:
                raise LayoutError(f"{what}: its hardlink target /{'/'.join(source)} is not in "
                                  "the image before it")
            if stat.S_ISDIR(info.st_mode):
                raise LayoutError(f"{what}: a hardlink to the directory /{'/'.join(source)}")
            self.remove(parent_fd, name, relative)
            os.link(source[-1], name, src_dir_fd=source_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _parts(path: str, what: str) -> list[str]:
    """A tar path as components inside the root; `..` anywhere is refused, not resolved.

    A leading `/` means the root (the reader strips it, as every tar tool does). `..` is refused
    rather than clamped at the root: no image tool writes it, so it is damage or an attack, and
    resolving it lexically would disagree with a kernel that follows links.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayoutError(f"{what}: the path has a '..' component; refused, since an entry "
                          "must stay inside the root")
    for part in parts[:-1]:
        if part.startswith(WHITEOUT):
            raise LayoutError(f"{what}: '{part}' is a whiteout name, which cannot be a directory")
    return parts


def extract(reader: LayoutReader, layers: list[Descriptor], root: Path,
            diff_ids: list[str] | None = None, progress: Progress | None = None) -> Tree:
    """Apply `layers` in order into the empty directory `root`, and finish its directories.

    Each layer is checked against its config diff_id as it streams (`diff_ids`, when given).
    `progress`, if given, is told the bytes of the layer blobs read so far and their total.
    """
    tree = Tree(root)
    total, done = sum(layer.size for layer in layers), 0

    def read(size: int) -> None:
        nonlocal done
        done += size
        progress(done, total)  # type: ignore[misc]  # read is passed only with a progress

    try:
        for i, layer in enumerate(layers):
            diff_id = diff_ids[i] if diff_ids is not None and i < len(diff_ids) else None
            tree.apply_layer(reader, layer, diff_id, read if progress is not None else None)
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
