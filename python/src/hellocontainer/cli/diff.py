"""`hellocontainer diff`: why two images differ, with diff(1)'s exit statuses."""

from __future__ import annotations

import argparse

from . import options

HELP = "explain why two images differ"
DESCRIPTION = ("Compare images A and B (layouts, or LAYOUT:TAG): tags, config fields, layers "
               "and each file's tar header and content. Exit 0 when identical, 1 when they differ, "
               "2 on trouble (like diff(1)).")
# diff(1): 1 means "they differ", so any error (ours, the file system's, too large an input)
# must exit 2.
TROUBLE_STATUS = 2


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A[:TAG]")
    parser.add_argument("b", metavar="B[:TAG]")
    options.add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..check.diff import diff_layouts

    differences = diff_layouts(options.split_ref(args.a), options.split_ref(args.b))
    if args.json:
        options.print_json({"a": args.a, "b": args.b, "identical": not differences,
                            "differences": differences})
        return 1 if differences else 0
    for line in differences:
        print(line)
    if not differences:
        print(f"{args.a} and {args.b} are identical")
    return 1 if differences else 0
