"""`hellocontainer build`: the command that packages a binary, and the only one that takes the
image flags (the spec keys as options) and the SOURCE_DATE_EPOCH of the environment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UsageError
from . import bundle, options

HELP = "package a static binary into an OCI image layout"
DESCRIPTION = ("Package BINARY into the OCI image layout --output (created, or extended "
               "with new tags). Timestamps come from SOURCE_DATE_EPOCH (unset: 0).")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("binary", metavar="BINARY", help="the static binary (inside --sysroot if given)")
    options.add_output(parser)
    parser.add_argument("--sysroot", metavar="DIR", help="root directory BINARY is relative to")
    parser.add_argument("--spec", metavar="FILE", help="YAML image spec; flags override its keys")
    parser.add_argument("--archive", metavar="FILE", help="also write the layout as an oci-archive tar")
    parser.add_argument("--bundle", metavar="DIR",
                        help="also write the new image as an OCI runtime bundle (see 'bundle')")
    parser.add_argument("--jobs", "-j", type=int, metavar="N",
                        help="compression threads (default: available cores; same bytes for any N)")
    options.add_json(parser)
    options.add_quiet(parser)
    options.add_image_flags(parser)
    bundle.add_settings(parser, "runtime bundle (with --bundle; see 'bundle')")


def run(args: argparse.Namespace) -> int:
    from ..image.build import BuildRequest, build
    from ..image.spec import flags_document, load_spec_file, merge
    from ..sourcedate import source_date_epoch

    epoch = source_date_epoch()
    file_doc = load_spec_file(Path(args.spec)) if args.spec else {}
    flag_doc = flags_document(options.image_flags(args))
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
        sbom_copy=tuple(Path(p) for p in args.sbom_copy or ()),
        jobs=args.jobs,
    )
    bundle_dir = Path(os.path.abspath(args.bundle)) if args.bundle else None
    bundle_settings = bundle.settings(args)
    if bundle_settings and bundle_dir is None:
        given = ", ".join(f"--{name.replace('_', '-')}" for name in bundle_settings)
        raise UsageError(f"{given} set{'s' if len(bundle_settings) == 1 else ''} up the runtime "
                         "bundle; add --bundle DIR, or drop it")
    if bundle_dir is not None:
        from ..board.bundle import BundleRequest, check_output, check_separate

        # Before building: a --bundle that cannot be written must not cost a published image.
        check_separate(request.output, bundle_dir)
        check_output(bundle_dir)
    with options.progress(args.quiet, "writing the layer") as progress:
        result = build(request, progress)
    digest = (result.index or result.manifest).digest  # what the tags name
    if not args.json:
        for tag in result.tags:
            print(f"{args.output}:{tag} {digest} {result.platform.name()}")
        for name, artifact in result.sboms:
            print(f"{args.output}: SBOM {artifact.digest} ({name}) for {result.manifest.digest}")
        for signed in result.signatures:
            print(f"{args.output}: signature {signed.digest}")
    written = None
    if bundle_dir is not None:
        # The manifest itself, not its tag: another build may retag the layout meanwhile.
        # build's --sign-key (the image's signature) signs its bundle too.
        written = bundle.write(BundleRequest(request.output, None, bundle_dir,
                                             manifest=result.manifest,
                                             sign_key=getattr(args, "sign_key", None),
                                             **bundle_settings),
                               args.bundle, published=f"{args.output}:{result.tags[0]}",
                               say=not args.json, quiet=args.quiet)
    if args.json:
        options.print_json({
            "layout": args.output, "tags": list(result.tags), "digest": digest,
            "manifest": result.manifest.digest, "platform": result.platform.name(),
            "sbom": result.sbom and result.sbom.digest,
            "sboms": [{"format": name, "digest": artifact.digest} for name, artifact in result.sboms],
            "archive": args.archive, "signatures": [d.digest for d in result.signatures],
            "bundle": written and {"path": args.bundle, "manifest": written.manifest.digest,
                                   "platform": written.platform}})
    return 0
