"""`hellocontainer index`: single-platform images joined into one multi-platform image."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import options

HELP = "join single-platform images into one multi-platform image"
DESCRIPTION = ("Write one image index listing the platform manifests of every SOURCE "
               "(a layout, or LAYOUT:TAG) into the layout --output, under each --tag.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE[:TAG]")
    parser.add_argument("--allow-different-programs", action="store_true",
                        help="join platforms whose entrypoint or cmd differ (almost always a "
                        "mistake, so refused by default)")
    options.add_output(parser)
    options.add_tag(parser)


def run(args: argparse.Namespace) -> int:
    from ..image.multiarch import Source, build_index
    from ..image.spec import flags_document, merge

    # Split, checked and deduplicated exactly as `build --tag` is.
    tags = merge({}, flags_document({"tag": args.tag})).tags
    sources = [Source(*options.split_ref(ref)) for ref in args.sources]
    descriptor = build_index(sources, Path(os.path.abspath(args.output)), tags,
                             args.allow_different_programs)
    for tag in tags:
        print(f"{args.output}:{tag} {descriptor.digest}")
    return 0
