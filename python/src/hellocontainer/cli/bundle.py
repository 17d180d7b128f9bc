"""`hellocontainer bundle`: an image out of a layout, as the runtime bundle crun and runc start.

`write` is also how `build --bundle` writes and reports its bundle, so both say the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HelloContainerError
from . import options
from .options import PROG

if TYPE_CHECKING:
    from ..board.bundle import BundleRequest, BundleResult

HELP = "write an OCI runtime bundle that crun and runc start"
DESCRIPTION = ("Write config.json (runtime-spec 1.2) and rootfs/ of the image LAYOUT[:TAG] "
               "into --output, which `crun run --bundle DIR` and `runc run --bundle DIR` start. A bundle "
               "already there is replaced.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="bundle directory (created, or replaced if it holds a bundle)")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="the image to take from a multi-platform index, e.g. linux/arm64")
    options.add_quiet(parser)
    add_sign_key(parser)
    add_settings(parser, "bundle settings (also for build --bundle)")


def add_sign_key(parser: argparse.ArgumentParser) -> None:
    """--sign-key: sign the bundle, so that a board's autostart --verify-key checks it."""
    parser.add_argument("--sign-key", metavar="PATH", type=Path,
                        help="sign the bundle with this private key (PEM; a passphrase comes "
                        "from HELLOCONTAINER_SIGN_PASSWORD) for autostart --verify-key")


def add_settings(parser: argparse.ArgumentParser, title: str) -> None:
    """The settings of the bundle itself, which `build --bundle` takes too: every option added
    here reaches both commands. Their names, read back from the group, become the parser's
    default `bundle_settings`, which `settings()` reads; each defaults to None, so that
    BundleRequest's default applies and `build` can tell what was given."""
    from ..board.runtime_config import NETWORKS

    group = parser.add_argument_group(title)
    group.add_argument("--network", choices=NETWORKS,
                       help="none (default): a network namespace of its own, loopback only; "
                       "host: the board's network, for device services")
    # argparse keeps each group's own actions in _group_actions, in the order they were added.
    parser.set_defaults(bundle_settings=tuple(action.dest for action in group._group_actions))


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The bundle settings given, by BundleRequest's field names."""
    return {name: getattr(args, name) for name in args.bundle_settings
            if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    from ..board.bundle import BundleRequest

    layout, tag = options.split_ref(args.ref)
    write(BundleRequest(layout, tag, Path(os.path.abspath(args.output)), args.platform,
                        sign_key=args.sign_key, **settings(args)), args.output, quiet=args.quiet)
    return 0


def write(request: BundleRequest, output: str, published: str | None = None,
          say: bool = True, quiet: bool = False) -> BundleResult:
    """Write a bundle and (with `say`) say so; `published` names the image a failure leaves
    behind; `quiet`: no progress line."""
    from ..board.bundle import write_bundle

    try:
        with options.progress(quiet, "unpacking the layers") as progress:
            result = write_bundle(request, progress)
    except HelloContainerError as error:
        if published is None:
            raise
        # One line that says both what exists and what does not.
        raise type(error)(f"the image was published as {published}, but its bundle was not "
                          f"written: {error}") from None
    for note in result.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    if say:
        signed = ", signed" if request.sign_key is not None else ""
        print(f"{output}: runtime bundle of {result.manifest.digest} {result.platform}{signed}")
    return result
