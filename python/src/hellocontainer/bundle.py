"""`hellocontainer bundle`: an image of a layout in, an OCI runtime bundle out.

    layout (reader) → rootfs/ (rootfs.py) → config.json (runtime_config.py) → publish (atomic)

A bundle is what `crun run --bundle DIR` and `runc run --bundle DIR` start: config.json beside
rootfs/. It is written into a staging folder beside --output and renamed into place only when
complete, so an error or a kill never leaves half a bundle where a runtime (or an init script
at boot) would start it. A bundle already at --output is replaced, which is what a rebuild
needs: the old one is renamed aside, the new one renamed in, the old one removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import model, rootfs, runtime_config
from .errors import LayoutError, os_error_message
from .model import Descriptor
from .reader import LayoutReader

BUNDLE_ENTRIES = {"config.json", "rootfs"}
FILE_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class BundleRequest:
    layout: Path
    tag: str | None
    output: Path  # absolute, so that its parent is a real folder to stage beside
    platform: str | None = None  # os/arch[/variant], to choose in a multi-platform index
    network: str = "none"
    # The exact manifest to bundle (`build --bundle`: the image just built, even if another
    # build retags meanwhile); None: what `tag` names.
    manifest: Descriptor | None = None


@dataclass(frozen=True)
class BundleResult:
    manifest: Descriptor
    platform: str
    skipped_devices: tuple[str, ...]  # device nodes of the layers, not created (see rootfs.py)


def write_bundle(request: BundleRequest) -> BundleResult:
    reader = LayoutReader(request.layout)
    if request.manifest is not None:
        image = reader.platform_image(request.manifest, request.platform)
    else:
        image = reader.image(request.tag, request.platform)
    platform = model.platform_name(image.platform)
    if image.platform.get("os") != "linux":
        raise LayoutError(f"the image is for {platform}; runtime bundles are made for Linux images")
    check_output(request.output)

    with _Staging(request.output) as staging:
        try:
            root = staging.dir / "rootfs"
            root.mkdir()
            diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
            if len(diff_ids) != len(image.layers):
                raise LayoutError(f"the image config lists {len(diff_ids)} diff_ids for "
                                  f"{len(image.layers)} layers; run 'hellocontainer validate'")
            tree = rootfs.extract(reader, image.layers, root, diff_ids)
            document = runtime_config.runtime_config(image.config, tree, request.network)
            rootfs.finish(tree, runtime_config.mount_points(document))
            config = staging.dir / "config.json"
            config.write_bytes(model.canonical_json(document))
            # One clock for what we write ourselves: the newest time in the image, so the
            # bundle depends on the layout alone and not on when or where it was made.
            for path, mode in ((config, FILE_MODE), (staging.dir, DIR_MODE)):
                os.chmod(path, mode)  # explicit: the umask of whoever bundles must not show
                os.utime(path, (tree.newest_mtime, tree.newest_mtime))
        except OSError as error:
            raise LayoutError(os_error_message(error, f"cannot write the bundle {request.output}")) \
                from None
        staging.publish()
    return BundleResult(image.manifest_descriptor, platform, tuple(tree.skipped_devices))


def check_output(output: Path) -> None:
    """Refuse an --output we must not replace, before any work: only a bundle or nothing goes."""
    try:
        info = os.lstat(output)
        names = set(os.listdir(output)) if stat.S_ISDIR(info.st_mode) else set()
    except FileNotFoundError:
        return
    except OSError as error:
        raise LayoutError(os_error_message(error, "--output")) from None
    if stat.S_ISLNK(info.st_mode):
        raise LayoutError(f"--output {output} is a symbolic link; name the directory itself")
    if not stat.S_ISDIR(info.st_mode):
        raise LayoutError(f"--output {output} exists and is not a directory; choose another --output")
    if not names <= BUNDLE_ENTRIES:  # what a bundle holds, or part of it: ours to replace
        shown = ", ".join(sorted(names - BUNDLE_ENTRIES)[:3])
        raise LayoutError(f"--output {output} exists and is not a runtime bundle (it holds {shown}); "
                          "choose another --output or remove it")


def check_separate(layout: Path, output: Path) -> None:
    """A bundle and the layout it comes from must not contain each other."""
    for a, b in ((layout, output), (output, layout)):
        if a == b or a in b.parents:
            raise LayoutError(f"--bundle {output} and the layout {layout} overlap; write the "
                              "bundle beside the layout")


class _Staging:
    """A private folder beside the output where the bundle is built, removed unless published.

    Beside the output so that publishing is a rename within one file system. It is locked
    (flock) while this process lives, so a later run can tell the debris of a killed one,
    which it removes, from a live one.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.published = False
        self._created: list[Path] = []
        try:
            for parent in reversed([output.parent, *output.parent.parents]):
                if not parent.exists():
                    parent.mkdir()
                    self._created.append(parent)
            with _locked(output.parent):
                _remove_stale(output)
                self.dir = Path(tempfile.mkdtemp(prefix=_prefix(output), dir=output.parent))
                self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError as error:
            self._remove_created()
            raise LayoutError(os_error_message(error, f"cannot write --output {output}")) from None

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            _remove_tree(self.dir)
        os.close(self._lock_fd)
        if exc_info[0] is not None:
            self._remove_created()

    def _remove_created(self) -> None:
        for parent in reversed(self._created):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only ever a folder we made and left empty

    def publish(self) -> None:
        """Rename the finished bundle to --output, replacing an old bundle there."""
        output = self.output
        try:
            with _locked(output.parent):
                check_output(output)  # again: another run may have put something there since
                mtime = os.stat(self.dir).st_mtime_ns
                aside = None
                if os.path.lexists(output) and os.listdir(output):
                    aside = Path(tempfile.mkdtemp(prefix=_prefix(output), dir=output.parent))
                    os.rename(output, aside)  # onto the empty folder mkdtemp made: atomic
                os.rename(self.dir, output)  # onto nothing or an empty folder: atomic
                self.published = True
                os.utime(output, ns=(mtime, mtime))  # a renamed folder may take a new time
                if aside is not None:
                    _remove_tree(aside)
        except OSError as error:
            raise LayoutError(os_error_message(error, f"cannot publish the bundle {output}")) \
                from None


def _prefix(output: Path) -> str:
    return f".{output.name}.bundle-"


def _remove_tree(path: Path) -> None:
    """Remove a staging folder or a replaced bundle, whatever modes its layers gave its folders.

    Root removes anything. Anyone else first gives back to themselves the folders an image made
    read-only (0555 is common), top-down so that each is writable before its children go.
    """
    if os.geteuid() != 0:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        for folder, subfolders, _ in os.walk(path):
            for name in subfolders:
                child = os.path.join(folder, name)
                if not os.path.islink(child):  # chmod would follow it out of the tree
                    with contextlib.suppress(OSError):
                        os.chmod(child, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale(output: Path) -> None:
    """Remove folders of runs that were killed (SIGKILL, power loss) before cleaning up."""
    for candidate in output.parent.glob(_prefix(output) + "*"):
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live run holds it
        finally:
            os.close(fd)
        _remove_tree(candidate)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive flock(2) on a folder: bundle runs for one --output take turns publishing."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

