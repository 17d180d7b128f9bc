"""`hellocontainer verify`: is the image in a layout signed by this key, every byte of it?"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import options

HELP = "check an image's signature and every byte it reaches against a public key"
DESCRIPTION = ("Check that every platform image LAYOUT:TAG names (every tagged image without "
               "TAG), and its SBOM, carries a signature by the public key --key whose payload "
               "names that image, and that every blob they reach has the bytes its digest says. "
               "Accepts signatures made by 'hellocontainer sign', 'build --sign-key' and cosign "
               "(OCI 1.1 referrers, or a layout written by 'cosign save'). Exit 0 with one line; "
               "exit 1 with one line naming what failed. Needs hellocontainer[sign].")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--key", required=True, metavar="FILE",
                        help="public key (PEM, e.g. cosign.pub)")
    parser.add_argument("--to-dir", metavar="FOLDER",
                        help="also write the verified signatures into FOLDER, a copy made with "
                        "'skopeo copy oci:LAYOUT:TAG dir:FOLDER', where containers/image reads "
                        "them (sigstoreSigned policies)")
    options.add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..provenance.signing import load_verify_key
    from ..provenance.verify import verify_layout

    root, tag = options.split_ref(args.ref)
    key = load_verify_key(Path(args.key))
    results = verify_layout(root, tag, key, args.key)
    written = []
    if args.to_dir:
        from ..errors import UsageError
        from ..image.signing import export_to_dir

        if len(results) != 1:
            raise UsageError(f"--to-dir takes one image; name it as LAYOUT:TAG ({args.ref} holds "
                             f"{len(results)})")
        written = export_to_dir(results[0], Path(args.to_dir))
    if args.json:
        options.print_json({"key": args.key, "verified": True, "tags": [
            {"ref": r.ref, "images": [{"digest": d.digest, "platform": p} for d, p in r.images],
             "referrers": [d.digest for d in r.referrers],
             "signatures": [d.digest for d in r.signatures], "blobs": r.blobs}
            for r in results], "written": [str(p) for p in written]})
        return 0
    for r in results:
        images = ", ".join(f"{p} {d.digest}" for d, p in r.images)
        extra = f" and {len(r.referrers)} referrer{'s' if len(r.referrers) != 1 else ''} (SBOM)" \
            if r.referrers else ""
        print(f"{r.ref}: verified with {args.key}: {images}{extra}; {r.blobs} blobs checked")
    for path in written:
        print(f"wrote {path}")
    return 0
