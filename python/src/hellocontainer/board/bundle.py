"""`hellocontainer bundle`: an image of a layout in, an OCI runtime bundle out.

    layout (reader) → rootfs/ (rootfs.py) → config.json (runtime_config.py) → publish (atomic)

A bundle is what `crun run --bundle DIR` and `runc run --bundle DIR` start: config.json beside
rootfs/. It is written into a staging folder beside --output and renamed into place only when
complete, so an error or a kill never leaves half a bundle where a runtime (or an init script
at boot) would start it. A bundle already at --output is replaced, which is what a rebuild
needs: the old one is renamed aside, the new one renamed in, the old one removed. Only a bundle
this tool wrote is replaced: it carries MARKER, and holds nothing else but config.json and
rootfs/; anything else at --output is the user's and is refused.

The bundle folder is 0700 (as umoci makes it): rootfs/ keeps the image's owners and modes,
setuid and setgid bits included, for the container, and no other user of the host may reach
them, let alone run a setuid-root program of the image.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci import model
from ..oci.leftovers import staging_prefix
from ..oci.model import Descriptor
from ..oci.reader import LayoutReader
from ..provenance.signing import load_signing_key
from ..store.staging import StagingDir, locked, remove_tree
from . import rootfs, runtime_config, signed_bundle

MARKER = "hellocontainer.json"  # {"manifest": DIGEST, "platform": OS/ARCH}: we wrote this bundle
BUNDLE_ENTRIES = {"config.json": stat.S_ISREG, "rootfs": stat.S_ISDIR, MARKER: stat.S_ISREG}
# A signed bundle (--sign-key) holds these too; an unsigned one does not.
SIGNED_ENTRIES = {name: stat.S_ISREG for name in signed_bundle.FILES}
MARKER_CAP = 4096
FILE_MODE = 0o644
DIR_MODE = 0o700  # the bundle's own folder: only its owner reaches rootfs/


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
    # A private key (PEM) to sign the bundle with (signed_bundle.py), so that a board's
    # autostart can check it before it starts; None: unsigned.
    sign_key: Path | None = None


@dataclass(frozen=True)
class BundleResult:
    manifest: Descriptor
    platform: str
    notes: tuple[str, ...]  # what was skipped or read otherwise (device nodes, ...): rootfs.py


def write_bundle(request: BundleRequest, progress: rootfs.Progress | None = None) -> BundleResult:
    """Write the bundle; `progress`, if given, is told the layer bytes unpacked and their total."""
    reader = LayoutReader(request.layout)
    if request.manifest is not None:
        image = reader.platform_image(request.manifest, request.platform)
    else:
        image = reader.image(request.tag, request.platform)
    platform = model.platform_name(image.platform)
    if image.platform.get("os") != "linux":
        raise LayoutError(f"the image is for {platform}; runtime bundles are made for Linux images")
    check_separate(request.layout, request.output, "--output")
    check_output(request.output)
    # Loaded before any work: a wrong key or passphrase costs nothing.
    key = load_signing_key(Path(request.sign_key)) if request.sign_key is not None else None

    with _Staging(request.output) as staging:
        try:
            root = staging.dir / "rootfs"
            root.mkdir()
            diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
            if len(diff_ids) != len(image.layers):
                raise LayoutError(f"the image config lists {len(diff_ids)} diff_ids for "
                                  f"{len(image.layers)} layers; run 'hellocontainer validate'")
            tree = rootfs.extract(reader, image.layers, root, diff_ids, progress)
            try:
                document = runtime_config.runtime_config(image.config, tree, request.network)
                rootfs.finish(tree, runtime_config.mount_points(document))
            finally:
                tree.close()
            config = staging.dir / "config.json"
            config.write_bytes(model.canonical_json(document))
            marker = staging.dir / MARKER
            marker.write_bytes(model.canonical_json({"manifest": image.manifest_descriptor.digest,
                                                     "platform": platform}))
            # One clock for what we write ourselves: the newest time in the image, so the
            # bundle depends on the layout alone and not on when or where it was made.
            for path, mode in ((config, FILE_MODE), (marker, FILE_MODE), (staging.dir, DIR_MODE)):
                os.chmod(path, mode)  # explicit: the umask of whoever bundles must not show
                os.utime(path, (tree.newest_mtime, tree.newest_mtime))
            if key is not None:
                signed_bundle.sign(staging.dir, image.manifest_descriptor.digest, key,
                                   _signed_owner(tree, request.output), FILE_MODE,
                                   tree.newest_mtime)
        except OSError as error:
            raise LayoutError(os_error_message(error, f"cannot write the bundle {request.output}")) \
                from None
        staging.publish()
    return BundleResult(image.manifest_descriptor, platform, tuple(tree.notes.lines()))


def _signed_owner(tree: rootfs.Tree, output: Path) -> tuple[int, int] | None:
    """The owner a signed listing gives every entry, or None: the owners the files have."""
    if tree.chown:
        return None  # root wrote the image's own owners
    if tree.first_not_root_owned is not None:
        raise LayoutError(f"cannot sign the bundle {output}: the image's "
                          f"{tree.first_not_root_owned} belongs to a user other than root, and "
                          "only root can give it that owner; run the bundle step as root, or "
                          "under fakeroot or pseudo as Yocto and Buildroot do")
    # Not root: the files are ours, and will be root's once in a root file system.
    return (0, 0)


def check_output(output: Path) -> None:
    """Refuse an --output we must not replace, before any work: only our bundle or nothing goes."""
    try:
        info = os.lstat(output)
    except FileNotFoundError:
        return
    except OSError as error:
        raise LayoutError(os_error_message(error, "--output")) from None
    if stat.S_ISLNK(info.st_mode):
        raise LayoutError(f"--output {output} is a symbolic link; name the directory itself")
    if not stat.S_ISDIR(info.st_mode):
        raise LayoutError(f"--output {output} exists and is not a directory; choose another --output")
    try:
        names = sorted(os.listdir(output))
        if not names or _ours(output, names):
            return
    except OSError as error:
        raise LayoutError(os_error_message(error, f"--output {output}")) from None
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise LayoutError(f"--output {output} holds {shown}, which is no bundle hellocontainer wrote "
                      f"(those hold {MARKER}); choose another --output or remove it yourself")


def _ours(output: Path, names: list[str]) -> bool:
    """Whether the folder holds exactly a bundle's entries, with our marker in it."""
    kinds = {**BUNDLE_ENTRIES, **SIGNED_ENTRIES} if SIGNED_ENTRIES.keys() & set(names) else \
        BUNDLE_ENTRIES
    if set(names) != set(kinds):
        return False
    for name, is_kind in kinds.items():
        if not is_kind(os.lstat(output / name).st_mode):
            return False
    fd = os.open(output / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(MARKER_CAP + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    try:
        document = json.loads(data) if len(data) <= MARKER_CAP else None
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("manifest"), str)


def check_separate(layout: Path, output: Path, flag: str = "--bundle") -> None:
    """A bundle and the layout it comes from must not contain each other."""
    real_layout, real_output = (Path(os.path.realpath(p)) for p in (layout, output))
    for a, b in ((real_layout, real_output), (real_output, real_layout)):
        if a == b or a in b.parents:
            raise LayoutError(f"{flag} {output} and the layout {layout} overlap; write the "
                              "bundle beside the layout")


class _Staging(StagingDir):
    """The folder beside --output where the bundle is built (see staging.py)."""

    def __init__(self, output: Path) -> None:
        super().__init__(output, "bundle", "--output")

    def __enter__(self) -> _Staging:
        return self

    def publish(self) -> None:
        """Rename the finished bundle to --output, replacing an old bundle there."""
        output = self.output
        try:
            with locked(output.parent):
                check_output(output)  # again: another run may have put something there since
                mtime = os.stat(self.dir).st_mtime_ns
                aside = None
                if os.path.lexists(output) and os.listdir(output):
                    aside = Path(tempfile.mkdtemp(prefix=staging_prefix(output, self.kind),
                                                  dir=output.parent))
                    os.rename(output, aside)  # onto the empty folder mkdtemp made: atomic
                os.rename(self.dir, output)  # onto nothing or an empty folder: atomic
                self.published = True
                # Published: nothing may fail now. What is left of `aside` is a killed run's
                # debris to the next run, which removes it.
                with contextlib.suppress(OSError):
                    os.utime(output, ns=(mtime, mtime))  # a renamed folder may take a new time
                if aside is not None:
                    remove_tree(aside)
        except OSError as error:
            raise LayoutError(os_error_message(error, f"cannot publish the bundle {output}")) \
                from None
