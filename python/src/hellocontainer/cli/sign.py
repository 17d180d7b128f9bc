"""`hellocontainer sign`: a cosign-compatible signature of an image already in a layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import options

HELP = "sign an image in a layout (cosign-compatible, as an OCI 1.1 referrer)"
DESCRIPTION = ("Sign the image LAYOUT:TAG names (every tagged image without TAG), and its SBOM, "
               "with the private key --key, the way `build --sign-key` does: a cosign signature "
               "attached as an OCI 1.1 referrer that `skopeo copy --all` carries along. The same "
               "key and image always give the same bytes; signing again with the same key "
               "changes nothing. A key's passphrase comes from $HELLOCONTAINER_SIGN_PASSWORD "
               "(or $COSIGN_PASSWORD). Needs hellocontainer[sign].")


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="LAYOUT[:TAG]")
    parser.add_argument("--key", required=True, metavar="FILE",
                        help="private key (PEM: cosign.key, PKCS#8 or SEC1; ECDSA P-256 or Ed25519)")
    parser.add_argument("--identity", default="", metavar="NAME",
                        help="the repository the image is published as, signed into the payload "
                        "(containers/image's sigstoreSigned policy matches it); default: none")
    options.add_json(parser)


def run(args: argparse.Namespace) -> int:
    from ..image.signing import sign_layout
    from ..provenance.signing import load_signing_key

    root, tag = options.split_ref(args.ref)
    key = load_signing_key(Path(args.key))
    results = sign_layout(root, tag, key, args.identity)
    if args.json:
        options.print_json({"layout": str(root), "tags": [
            {"tag": r.tag, "digest": r.index.digest, "images": [d.digest for d in r.images],
             "signatures": [d.digest for d in r.signatures]} for r in results]})
        return 0
    for result in results:
        state = (f"{len(result.signatures)} signature{'s' if len(result.signatures) != 1 else ''}"
                 " added") if result.signatures else "signed already"
        print(f"{root}:{result.tag} {result.index.digest} {state}")
    return 0
