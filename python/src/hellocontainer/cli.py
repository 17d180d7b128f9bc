"""The command line: the only module that prints or exits.

Every error a user can cause arrives here as a HelloContainerError and leaves as one line,
`hellocontainer: error: …`, with exit status 1 (2 for usage errors) and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import HelloContainerError, UsageError

PROG = "hellocontainer"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix rather than a usage dump."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--entry` silently meaning `--entrypoint` today would break build
        # recipes the day another option starting with `--entry` is added.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _split_ref(ref: str) -> tuple[Path, str | None]:
    """`LAYOUT[:TAG]` as podman's oci: transport spells it; a path containing ':' is allowed."""
    if ":" in ref and not Path(ref).exists():
        path, tag = ref.rsplit(":", 1)
        return Path(path), tag or None
    return Path(ref), None


WORDS = "shell words: values may be quoted, e.g. \"A=1 B='two words'\"; repeatable"


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="OCI image layout directory (created, or extended keeping its tags)")


def _add_tag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--tag", action="append", metavar="WORDS",
                        help=f"tags for index.json (default: latest); {WORDS}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Package one static binary as a small, "
                     "reproducible OCI image layout.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    build = commands.add_parser(
        "build", help="package a static binary into an OCI image layout",
        description="Package BINARY into the OCI image layout --output (created, or extended "
        "with new tags). Timestamps come from SOURCE_DATE_EPOCH (unset: 0).")
    build.add_argument("binary", metavar="BINARY", help="the static binary (inside --sysroot if given)")
    _add_output(build)
    build.add_argument("--sysroot", metavar="DIR", help="root directory BINARY is relative to")
    build.add_argument("--spec", metavar="FILE", help="YAML image spec; flags override its keys")
    build.add_argument("--archive", metavar="FILE", help="also write the layout as an oci-archive tar")
    build.add_argument("--jobs", "-j", type=int, metavar="N",
                       help="compression threads (default: available cores; same bytes for any N)")
    image = build.add_argument_group("image settings (also spec keys)")
    image.add_argument("--arch", help="target architecture: OCI (arm64, arm/v7), Yocto, Buildroot or "
                       "GNU name (aarch64, armv7l, x86_64); default: from the ELF header")
    image.add_argument("--tune", metavar="WORDS", help="ARM tune words for the variant "
                       "(Yocto TUNE_FEATURES, gcc -march such as armv7-a)")
    image.add_argument("--path", metavar="/PATH", help="the binary's path in the image (default /BASENAME)")
    image.add_argument("--entrypoint", action="append", metavar="WORDS", help=f"entrypoint; {WORDS}")
    image.add_argument("--cmd", action="append", metavar="WORDS", help=f"default arguments; {WORDS}")
    image.add_argument("--env", action="append", metavar="WORDS", help=f"KEY=VALUE; {WORDS}")
    image.add_argument("--user", metavar="UID[:GID]", help="numeric user (and group) to run as")
    image.add_argument("--workdir", metavar="/DIR", help="working directory")
    image.add_argument("--port", action="append", metavar="WORDS", help=f"exposed PORT[/PROTO]; {WORDS}")
    image.add_argument("--label", action="append", metavar="WORDS", help=f"config label KEY=VALUE; {WORDS}")
    image.add_argument("--annotation", action="append", metavar="WORDS",
                       help=f"manifest annotation KEY=VALUE; {WORDS}")
    image.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container")
    _add_tag(image)
    image.add_argument("--file", action="append", metavar="WORDS",
                       help=f"extra file SRC:DEST[:MODE]; {WORDS}")
    image.add_argument("--compression", choices=("gzip", "none", "zstd"),
                       help="layer compression (default gzip; zstd needs python zstandard)")
    image.add_argument("--gzip-level", type=int, metavar="1-9",
                       help="gzip level (default: 9 for layers up to 16 MiB, 3 above)")
    image.add_argument("--allow-dynamic", action="store_const", const=True,
                       help="package a dynamically linked binary anyway")

    validate = commands.add_parser("validate", help="check a layout against the OCI image-spec",
                                   description="Check LAYOUT (or one TAG in it): schemas, digests, "
                                   "sizes, diff_ids, compression, tags. Exit 1 lists every problem.")
    validate.add_argument("ref", metavar="LAYOUT[:TAG]")

    index = commands.add_parser(
        "index", help="join single-platform images into one multi-platform image",
        description="Write one image index listing the platform manifests of every SOURCE "
        "(a layout, or LAYOUT:TAG) into the layout --output, under each --tag.")
    index.add_argument("sources", nargs="+", metavar="SOURCE[:TAG]")
    _add_output(index)
    _add_tag(index)

    diff = commands.add_parser(
        "diff", help="explain why two images differ",
        description="Compare images A and B (layouts, or LAYOUT:TAG): tags, config fields, layers "
        "and each file's tar header and content. Exit 0 when identical, 1 when they differ.")
    diff.add_argument("a", metavar="A[:TAG]")
    diff.add_argument("b", metavar="B[:TAG]")

    inspect = commands.add_parser("inspect", help="show an image's tags, platform, config and files")
    inspect.add_argument("ref", metavar="LAYOUT[:TAG]")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


IMAGE_FLAGS = ("arch", "tune", "path", "entrypoint", "cmd", "env", "user", "workdir", "port",
               "label", "annotation", "stop_signal", "tag", "file", "compression", "gzip_level",
               "allow_dynamic")


def _run_build(args: argparse.Namespace) -> int:
    from .build import BuildRequest, build
    from .sourcedate import source_date_epoch
    from .spec import flags_document, load_spec_file, merge

    epoch = source_date_epoch()
    file_doc = load_spec_file(Path(args.spec)) if args.spec else {}
    flag_doc = flags_document({name.replace("_", "-"): getattr(args, name) for name in IMAGE_FLAGS})
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be at least 1")
    request = BuildRequest(
        binary=args.binary,
        sysroot=Path(args.sysroot) if args.sysroot else None,
        # Absolute, so that `--output .` has a parent folder to stage beside. Only the file
        # system sees this path; no byte of the image does.
        output=Path(os.path.abspath(args.output)),
        spec=merge(file_doc, flag_doc),
        epoch=epoch,
        archive=Path(args.archive) if args.archive else None,
        jobs=args.jobs,
    )
    result = build(request)
    for tag in result.tags:
        print(f"{args.output}:{tag} {result.manifest.digest} {result.platform.name()}")
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from .validate import validate_layout

    root, tag = _split_ref(args.ref)
    problems = validate_layout(root, tag)
    if problems:
        for message in problems:
            print(f"{PROG}: invalid: {message}", file=sys.stderr)
        print(f"{PROG}: error: {args.ref} is not a valid OCI image layout "
              f"({len(problems)} problem{'s' if len(problems) > 1 else ''} above)", file=sys.stderr)
        return 1
    print(f"{args.ref}: valid OCI image layout")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from .inspect import describe, inspect_layout

    root, tag = _split_ref(args.ref)
    report = inspect_layout(root, tag)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(describe(report))
    return 0


def _run_index(args: argparse.Namespace) -> int:
    from .multiarch import Source, build_index
    from .spec import flags_document, merge

    # Split, checked and deduplicated exactly as `build --tag` is.
    tags = merge({}, flags_document({"tag": args.tag})).tags
    sources = [Source(*_split_ref(ref)) for ref in args.sources]
    descriptor = build_index(sources, Path(os.path.abspath(args.output)), tags)
    for tag in tags:
        print(f"{args.output}:{tag} {descriptor.digest}")
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from .diff import diff_layouts

    differences = diff_layouts(_split_ref(args.a), _split_ref(args.b))
    for line in differences:
        print(line)
    if not differences:
        print(f"{args.a} and {args.b} are identical")
    return 1 if differences else 0


COMMANDS: dict[str, Any] = {
    "build": _run_build, "validate": _run_validate, "inspect": _run_inspect, "index": _run_index,
    "diff": _run_diff,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HelloContainerError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted; nothing was published", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `hellocontainer inspect … | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
