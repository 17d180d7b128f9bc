"""The command line: the only module that prints or exits.

Every error a user can cause arrives here as a HelloContainerError and leaves as one line,
`hellocontainer: error: …`, with exit status 1 (2 for usage errors) and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .errors import HelloContainerError, UsageError, os_error_message

if TYPE_CHECKING:
    from .board.bundle import BundleRequest

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


def _words(what: str, example: str) -> str:
    """Help text for a flag that takes shell words, with an example in that flag's own syntax."""
    return f"{what}; shell words, e.g. {example}; repeatable"


def _gzip_level(value: str) -> int | str:
    """1-9 as a number, anything else as written: the spec schema then accepts `max` or says
    what a valid level is, for the flag and the spec key alike."""
    return int(value) if value.isdigit() else value


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="OCI image layout directory (created, or extended keeping its tags)")


def _add_tag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--tag", action="append", metavar="WORDS",
                        help=_words("tags for index.json (default: latest)", "--tag 'latest 1.0'"))


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Package one static binary as a small, "
                     "reproducible OCI image layout.")
    # zlib decides the compressed bytes: naming it lets two users tell why their digests differ.
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {__version__} (zlib {zlib.ZLIB_RUNTIME_VERSION})")
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
    build.add_argument("--bundle", metavar="DIR",
                       help="also write the new image as an OCI runtime bundle (see 'bundle')")
    build.add_argument("--jobs", "-j", type=int, metavar="N",
                       help="compression threads (default: available cores; same bytes for any N)")
    image = build.add_argument_group("image settings (also spec keys)")
    image.add_argument("--arch", help="target architecture: OCI (arm64, arm/v7), Yocto, Buildroot or "
                       "GNU name (aarch64, armv7l, x86_64); default: from the ELF header")
    image.add_argument("--tune", metavar="WORDS", help="ARM tune words for the variant "
                       "(Yocto TUNE_FEATURES, gcc -march such as armv7-a)")
    image.add_argument("--path", metavar="/PATH", help="the binary's path in the image (default /BASENAME)")
    image.add_argument("--entrypoint", action="append", metavar="WORDS",
                       help=_words("entrypoint", "--entrypoint '/bin/app --verbose'"))
    image.add_argument("--cmd", action="append", metavar="WORDS",
                       help=_words("default arguments", "--cmd \"serve --title 'two words'\""))
    image.add_argument("--env", action="append", metavar="WORDS",
                       help=_words("KEY=VALUE", "--env \"A=1 GREETING='hello world'\""))
    image.add_argument("--user", metavar="USER[:GROUP]",
                       help="user (and group) to run as: numbers, or names looked up in "
                       "--passwd-file and --group-file and written as numbers")
    image.add_argument("--passwd-file", metavar="FILE",
                       help="the target's /etc/passwd, for a user name in --user")
    image.add_argument("--group-file", metavar="FILE",
                       help="the target's /etc/group, for a group name in --user")
    image.add_argument("--workdir", metavar="/DIR", help="working directory")
    image.add_argument("--port", action="append", metavar="WORDS",
                       help=_words("exposed PORT[/PROTO]", "--port '8080 53/udp'"))
    image.add_argument("--label", action="append", metavar="WORDS",
                       help=_words("config label KEY=VALUE (.KEY: org.opencontainers.image.KEY)",
                                   "--label \".vendor='ACME Inc' tier=demo\""))
    image.add_argument("--annotation", action="append", metavar="WORDS",
                       help=_words("manifest annotation KEY=VALUE (.KEY as for --label)",
                                   "--annotation .licenses=MIT"))
    image.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container")
    _add_tag(image)
    image.add_argument("--file", action="append", metavar="WORDS",
                       help=_words("extra file SRC:DEST[:MODE]",
                                   "--file 'motd:/etc/motd:0644 ca.pem:/etc/ssl/ca.pem'"))
    image.add_argument("--compression", choices=("gzip", "none", "zstd"),
                       help="layer compression (default gzip; zstd needs python zstandard)")
    image.add_argument("--gzip-level", type=_gzip_level, metavar="1-9|max",
                       help="gzip level; max: zopfli, the smallest gzip and the slowest, needs "
                       "python zopfli (default: 9 for layers up to 16 MiB, 3 above)")
    image.add_argument("--allow-dynamic", action="store_const", const=True,
                       help="package a dynamically linked binary anyway")
    sbom = build.add_argument_group(
        "SBOM (spec key sbom)", "An SPDX 2.3 SBOM of the image, attached to it as an OCI 1.1 "
        "referrer. The build system names what the binary is made of; KEYs: "
        "name, version, license (SPDX expression; Yocto's & | and Buildroot's commas are "
        "accepted), supplier, download_location, homepage, cpe (repeatable), purl.")
    sbom.add_argument("--sbom", action="store_const", const=True,
                      help="attach an SBOM (implied by the other --sbom-* options)")
    sbom.add_argument("--sbom-package", action="append", metavar="WORDS",
                      help=_words("the program: KEY=VALUE", "--sbom-package \"name=hello "
                                  "version=1.0 license='MIT OR Apache-2.0'\""))
    sbom.add_argument("--sbom-library", action="append", metavar="WORDS",
                      help="a library linked into the program (the C library first), as "
                      "KEY=VALUE shell words with at least name=; one library per flag, e.g. "
                      "--sbom-library 'name=musl version=1.2.4 license=MIT'")
    sbom.add_argument("--sbom-copy", metavar="FILE",
                      help="also write the SBOM to FILE (e.g. DEPLOY/NAME.spdx.json)")

    validate = commands.add_parser("validate", help="check a layout against the OCI image-spec",
                                   description="Check LAYOUT (or one TAG in it): schemas, digests, "
                                   "sizes, diff_ids, compression, tags. Exit 1 lists every problem.")
    validate.add_argument("ref", metavar="LAYOUT[:TAG]")
    validate.add_argument("--strict", action="store_true",
                          help="treat warnings (SHOULDs of the spec, unverifiable digests, "
                          "leftover files) as problems: exit 1")

    index = commands.add_parser(
        "index", help="join single-platform images into one multi-platform image",
        description="Write one image index listing the platform manifests of every SOURCE "
        "(a layout, or LAYOUT:TAG) into the layout --output, under each --tag.")
    index.add_argument("sources", nargs="+", metavar="SOURCE[:TAG]")
    index.add_argument("--allow-different-programs", action="store_true",
                       help="join platforms whose entrypoint or cmd differ (almost always a "
                       "mistake, so refused by default)")
    _add_output(index)
    _add_tag(index)

    diff = commands.add_parser(
        "diff", help="explain why two images differ",
        description="Compare images A and B (layouts, or LAYOUT:TAG): tags, config fields, layers "
        "and each file's tar header and content. Exit 0 when identical, 1 when they differ, "
        "2 on trouble (like diff(1)).")
    diff.add_argument("a", metavar="A[:TAG]")
    diff.add_argument("b", metavar="B[:TAG]")

    gc = commands.add_parser(
        "gc", help="remove what no tag needs from a layout",
        description="Remove from LAYOUT, under the lock builds take: temporary files and staging "
        "folders of killed builds, and blobs no index.json entry reaches (such as those of "
        "replaced tags, which builds leave for readers that may still be using them). Run it "
        "when no reader of a replaced tag is left.")
    gc.add_argument("layout", metavar="LAYOUT")

    inspect = commands.add_parser("inspect", help="show an image's tags, platform, config and files")
    inspect.add_argument("ref", metavar="LAYOUT[:TAG]")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")

    bundle = commands.add_parser(
        "bundle", help="write an OCI runtime bundle that crun and runc start",
        description="Write config.json (runtime-spec 1.2) and rootfs/ of the image LAYOUT[:TAG] "
        "into --output, which `crun run --bundle DIR` and `runc run --bundle DIR` start. A bundle "
        "already there is replaced.")
    bundle.add_argument("ref", metavar="LAYOUT[:TAG]")
    bundle.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="bundle directory (created, or replaced if it holds a bundle)")
    bundle.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="the image to take from a multi-platform index, e.g. linux/arm64")
    bundle.add_argument("--network", choices=("none", "host"), default="none",
                        help="none (default): a network namespace of its own, loopback only; "
                        "host: the board's network, for device services")

    autostart = commands.add_parser(
        "autostart", help="write the init script or systemd unit that starts a container at boot",
        description="Write a SysV/BusyBox init script (--sysv) and/or a systemd unit (--systemd) "
        "that start the container NAME at boot: crun or runc run the runtime bundle --bundle, "
        "podman runs the image layout --layout. Paths given to --bundle, --layout and "
        "--runtime-path are paths on the target. Same settings, same bytes.")
    autostart.add_argument("--runtime", choices=("crun", "runc", "podman"), default="crun",
                           help="the container runtime on the target (default crun)")
    autostart.add_argument("--name", required=True, help="container name, e.g. hello")
    autostart.add_argument("--bundle", metavar="/DIR", help="crun, runc: the runtime bundle on the "
                           "target (see 'bundle')")
    autostart.add_argument("--layout", metavar="/DIR[:TAG]",
                           help="podman: the image layout on the target")
    autostart.add_argument("--restart", choices=("no", "on-failure", "always"), default="on-failure",
                           help="restart the container when it exits: never, after a non-zero "
                           "exit (default) or always; see --restart-max-delay")
    autostart.add_argument("--network", choices=("none", "host"), default="none",
                           help="podman: --net=; crun, runc: the bundle decides (pass the value it "
                           "was made with), 'host' only orders the start after the network")
    autostart.add_argument("--runtime-path", metavar="/PATH",
                           help="the runtime program on the target (default: found on PATH)")
    # Restart backoff (issue #21): new options only.
    autostart.add_argument("--restart-max-delay", metavar="SECONDS", type=int, default=300,
                           help="restarts come 1 s after an exit, then 2, 4 ... up to this "
                           "(default 300); a run this long brings the delay back to 1 s")
    autostart.add_argument("--give-up-after", metavar="N", type=int, default=0,
                           help="stop restarting after N exits in a row (default 0: never)")
    autostart.add_argument("--give-up-window", metavar="SECONDS", type=int, default=0,
                           help="with --give-up-after: count only the exits of the last SECONDS "
                           "(default 0: all since the last long run)")
    autostart.add_argument("--sysv", metavar="FILE", help="write the init script here")
    autostart.add_argument("--systemd", metavar="FILE", help="write the systemd unit here")
    return parser


IMAGE_FLAGS = ("arch", "tune", "path", "entrypoint", "cmd", "env", "user", "passwd_file",
               "group_file", "workdir", "port", "label", "annotation", "stop_signal", "tag", "file",
               "compression", "gzip_level", "allow_dynamic", "sbom", "sbom_package", "sbom_library")


def _run_build(args: argparse.Namespace) -> int:
    from .image.build import BuildRequest, build
    from .image.spec import flags_document, load_spec_file, merge
    from .sourcedate import source_date_epoch

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
        sbom_copy=Path(args.sbom_copy) if args.sbom_copy else None,
        jobs=args.jobs,
    )
    bundle_dir = Path(os.path.abspath(args.bundle)) if args.bundle else None
    if bundle_dir is not None:
        from .board.bundle import BundleRequest, check_output, check_separate

        # Before building: a --bundle that cannot be written must not cost a published image.
        check_separate(request.output, bundle_dir)
        check_output(bundle_dir)
    result = build(request)
    for tag in result.tags:
        print(f"{args.output}:{tag} {(result.index or result.manifest).digest} "
              f"{result.platform.name()}")
    if result.sbom is not None:
        print(f"{args.output}: SBOM {result.sbom.digest} for {result.manifest.digest}")
    if bundle_dir is not None:
        # The manifest itself, not its tag: another build may retag the layout meanwhile.
        _bundle(BundleRequest(request.output, None, bundle_dir, manifest=result.manifest),
                args.bundle, published=f"{args.output}:{result.tags[0]}")
    return 0


def _bundle(request: BundleRequest, output: str, published: str | None = None) -> None:
    """Write a bundle and say so; `published` names the image a failure leaves behind."""
    from .board.bundle import write_bundle

    try:
        result = write_bundle(request)
    except HelloContainerError as error:
        if published is None:
            raise
        # One line that says both what exists and what does not.
        raise type(error)(f"the image was published as {published}, but its bundle was not "
                          f"written: {error}") from None
    if result.skipped_devices:
        shown = ", ".join(result.skipped_devices[:3]) + (", ..." if len(result.skipped_devices) > 3
                                                          else "")
        print(f"{PROG}: note: {len(result.skipped_devices)} device node(s) of the image not "
              f"created ({shown}); the runtime provides /dev", file=sys.stderr)
    print(f"{output}: runtime bundle of {result.manifest.digest} {result.platform}")


def _run_bundle(args: argparse.Namespace) -> int:
    from .board.bundle import BundleRequest

    layout, tag = _split_ref(args.ref)
    _bundle(BundleRequest(layout, tag, Path(os.path.abspath(args.output)), args.platform,
                          args.network), args.output)
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from .check.validate import validate_layout

    root, tag = _split_ref(args.ref)
    report = validate_layout(root, tag)
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


def _run_gc(args: argparse.Namespace) -> int:
    from .oci.reader import LayoutReader
    from .store.gc import collect
    from .store.layout import locked_layout

    root = Path(args.layout)
    reader = LayoutReader(root)
    reader.index_document()  # refuse anything that is not a readable layout, before deleting
    with locked_layout(root):
        result = collect(root, reader)
    for path in result.removed:
        print(f"removed {path}")
    print(f"{args.layout}: removed {len(result.removed)} file{'s' if len(result.removed) != 1 else ''}"
          f" ({result.bytes} bytes)")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from .check.inspect import describe, inspect_layout

    root, tag = _split_ref(args.ref)
    report = inspect_layout(root, tag)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(describe(report))
    return 0


def _run_index(args: argparse.Namespace) -> int:
    from .image.multiarch import Source, build_index
    from .image.spec import flags_document, merge

    # Split, checked and deduplicated exactly as `build --tag` is.
    tags = merge({}, flags_document({"tag": args.tag})).tags
    sources = [Source(*_split_ref(ref)) for ref in args.sources]
    descriptor = build_index(sources, Path(os.path.abspath(args.output)), tags,
                             args.allow_different_programs)
    for tag in tags:
        print(f"{args.output}:{tag} {descriptor.digest}")
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from .check.diff import diff_layouts

    try:
        differences = diff_layouts(_split_ref(args.a), _split_ref(args.b))
    except HelloContainerError as error:
        error.exit_status = 2  # diff(1): 1 means "they differ", so trouble must be 2
        raise
    for line in differences:
        print(line)
    if not differences:
        print(f"{args.a} and {args.b} are identical")
    return 1 if differences else 0


def _run_autostart(args: argparse.Namespace) -> int:
    from .board.autostart import SCRIPT_MODE, UNIT_MODE, autostart, systemd_unit, sysv_script, write_files

    if not (args.sysv or args.systemd):
        raise UsageError("nothing to write: give --sysv FILE and/or --systemd FILE")
    cfg = autostart(args.runtime, args.name, restart=args.restart, network=args.network,
                    bundle=args.bundle, layout=args.layout, runtime_path=args.runtime_path,
                    restart_max_delay=args.restart_max_delay, give_up_after=args.give_up_after,
                    give_up_window=args.give_up_window)
    files = []
    if args.sysv:
        files.append((Path(args.sysv), sysv_script(cfg), SCRIPT_MODE))
    if args.systemd:
        files.append((Path(args.systemd), systemd_unit(cfg), UNIT_MODE))
    write_files(files)
    for path, kind in ((args.sysv, "init script"), (args.systemd, "systemd unit")):
        if path:
            print(f"{path}: {kind} starting {cfg.name} with {cfg.runtime}")
    return 0


COMMANDS: dict[str, Any] = {
    "build": _run_build, "validate": _run_validate, "inspect": _run_inspect, "index": _run_index,
    "diff": _run_diff, "gc": _run_gc, "bundle": _run_bundle,
    "autostart": _run_autostart,
}


def _command(argv: Sequence[str] | None) -> str | None:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HelloContainerError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_status
    except BrokenPipeError:
        # `hellocontainer inspect … | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        # The one boundary for what the file system says (full disk, read-only, permissions,
        # names too long): modules name the path; the errno decides the advice.
        print(f"{PROG}: error: {os_error_message(error)}", file=sys.stderr)
        return 2 if _command(argv) == "diff" else 1
    except (MemoryError, RecursionError):
        print(f"{PROG}: error: the input is too large or nests too deeply to process; check it "
              f"with '{PROG} validate'", file=sys.stderr)
        return 2 if _command(argv) == "diff" else 1
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted; nothing was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
