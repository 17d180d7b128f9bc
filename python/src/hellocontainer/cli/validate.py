"""`hellocontainer validate`: a layout checked against the OCI image-spec, every problem listed
one per line, and the exit status saying whether there was any."""

from __future__ import annotations

import argparse
import sys

from . import options
from .options import PROG

HELP = "check a layout against the OCI image-spec"
DESCRIPTION = ("Check LAYOUT (or one TAG in it): schemas, digests, sizes, diff_ids, "
               "compression, tags, and every layer entry as `bundle` would extract it. "
               "Exit 1 lists every problem.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (SHOULDs of the spec, unverifiable digests, "
                        "leftover files, layer entries bundle skips) as problems: exit 1")
    options.add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..check.validate import validate_layout

    root, tag = options.split_ref(args.ref)
    report = validate_layout(root, tag)
    failed = bool(report.problems) or bool(report.warnings and args.strict)
    if args.json:
        options.print_json({"ref": args.ref, "valid": not failed, "strict": args.strict,
                            "problems": report.problems, "warnings": report.warnings})
        return 1 if failed else 0
    for message in report.warnings:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    if report.problems:
        for message in report.problems:
            print(f"{PROG}: invalid: {message}", file=sys.stderr)
        count = len(report.problems)
        print(f"{PROG}: error: {args.ref} is not a valid OCI image layout "
              f"({count} problem{'s' if count > 1 else ''} above)", file=sys.stderr)
        return 1
    if report.warnings and args.strict:
        print(f"{PROG}: error: {args.ref} has warnings, and --strict makes them fail",
              file=sys.stderr)
        return 1
    print(f"{args.ref}: valid OCI image layout"
          + (f" ({len(report.warnings)} warning{'s' if len(report.warnings) > 1 else ''})"
             if report.warnings else ""))
    return 0
