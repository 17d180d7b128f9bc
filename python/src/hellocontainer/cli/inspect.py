"""`hellocontainer inspect`: an image's tags, platform, config and files, for people or as JSON."""

from __future__ import annotations

import argparse
import sys

from . import options

HELP = "show an image's tags, platform, config and files"
DESCRIPTION = None


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from ..check.inspect import describe, inspect_layout
    from ..check.streaming import json_chunks

    root, tag = options.split_ref(args.ref)
    report = inspect_layout(root, tag)  # complete before the first line: errors come alone
    if args.json:
        sys.stdout.writelines(json_chunks(report))
        sys.stdout.write("\n")
    else:
        sys.stdout.writelines(line + "\n" for line in describe(report))
    return 0
