"""`hellocontainer inspect`: an image's tags, platform, config and files, for people or as JSON."""

from __future__ import annotations

import argparse
import sys

from . import options

HELP = "show an image's tags, platform, config and files"
DESCRIPTION = ("Show the images of LAYOUT (or the one TAG names): tags, digests, platform, "
               "config and each layer's files; --json for scripts.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    options.add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..check.inspect import describe, inspect_layout

    root, tag = options.split_ref(args.ref)
    report = inspect_layout(root, tag)  # complete before the first line: errors come alone
    if args.json:
        options.print_json(report)
    else:
        sys.stdout.writelines(line + "\n" for line in describe(report))
    return 0
