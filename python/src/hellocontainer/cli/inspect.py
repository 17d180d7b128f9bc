"""`hellocontainer inspect`: an image's tags, platform, config and files, for people or as JSON."""

from __future__ import annotations

import argparse
import json

from . import options

HELP = "show an image's tags, platform, config and files"
DESCRIPTION = ("Show the images of LAYOUT (or the one TAG names): tags, digests, platform, "
               "config and each layer's files; --json for scripts.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from ..check.inspect import describe, inspect_layout

    root, tag = options.split_ref(args.ref)
    report = inspect_layout(root, tag)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(describe(report))
    return 0
