"""`hellocontainer gc`: what no tag needs removed from a layout, under the lock builds take."""

from __future__ import annotations

import argparse

from . import options

HELP = "remove what no tag needs from a layout"
DESCRIPTION = ("Remove from LAYOUT, under the lock builds take: temporary files and staging "
               "folders of killed builds, and blobs no index.json entry reaches (such as those of "
               "replaced tags, which builds leave for readers that may still be using them). Run it "
               "when no reader of a replaced tag is left.")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", metavar="LAYOUT")


def run(args: argparse.Namespace) -> int:
    from ..oci.reader import LayoutReader
    from ..store.gc import collect
    from ..store.layout import locked_layout

    root = options.layout_path(args.layout)
    reader = LayoutReader(root)
    reader.index_document()  # refuse anything that is not a readable layout, before deleting
    with locked_layout(root):
        result = collect(root, reader)
    for path in result.removed:
        print(f"removed {path}")
    print(f"{args.layout}: removed {len(result.removed)} file{'s' if len(result.removed) != 1 else ''}"
          f" ({result.bytes} bytes)")
    return 0
