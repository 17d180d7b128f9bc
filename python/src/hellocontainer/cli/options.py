"""What several commands' options share: the program's name, `LAYOUT[:TAG]` references, the
`--output`, `--tag`, `--json` and `--quiet` options, the progress line, and the image flags that
are also spec keys.

The image flags' names are read from their argument groups, never listed by hand, so a flag added
to a group reaches the spec instead of being parsed and silently ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..provenance.passphrase import COSIGN_PASSPHRASE_ENV, PASSPHRASE_ENV

PROG = "hellocontainer"


def split_ref(ref: str) -> tuple[Path, str | None]:
    """`LAYOUT[:TAG]` as podman's oci: transport spells it; a path containing ':' is allowed."""
    if ":" in ref and not Path(ref).exists():
        path, tag = ref.rsplit(":", 1)
        return layout_path(ref, path), tag or None
    return layout_path(ref, ref), None


def layout_path(ref: str, path: str | None = None) -> Path:
    """The layout folder `path` (default: `ref`) of what the user wrote, `ref`; refused with
    the fix when `ref` is podman's `oci:LAYOUT[:TAG]` (a folder really named `oci:…` is fine)."""
    folder = Path(ref if path is None else path)
    if ref.startswith("oci:") and not folder.exists():
        raise UsageError(f"{ref}: {PROG} takes the layout's path without podman's 'oci:' "
                         f"prefix; drop it: {ref.removeprefix('oci:')}")
    return folder


def words(what: str, example: str) -> str:
    """Help text for a flag that takes shell words, with an example in that flag's own syntax."""
    return f"{what}; shell words, e.g. {example}; repeatable"


def _gzip_level(value: str) -> int | str:
    """1-9 as a number, anything else as written: the spec schema then accepts `max` or says
    what a valid level is, for the flag and the spec key alike."""
    return int(value) if value.isdigit() else value


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object (README: its keys); errors "
                        "stay one line on stderr")


def print_json(document: Any) -> None:
    """A result for scripts: keys sorted, so the same result always prints the same text;
    streamed, so a report of a million files never stands in memory as one string."""
    from ..check.streaming import json_chunks

    sys.stdout.writelines(json_chunks(document))
    sys.stdout.write("\n")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress line (shown on a terminal's stderr only, when the work "
                        "takes over a second)")


# Seconds of work before the progress line appears: quick work shows none.
PROGRESS_AFTER = "HELLOCONTAINER_PROGRESS_AFTER"


@contextlib.contextmanager
def progress(quiet: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A callback for the long work of a command, drawing one line on stderr, rewritten with \\r
    and cleared at the end: `WHAT: 12.0 of 100.0 MiB (12%)`. None (nothing shown) with
    `quiet` or when stderr is no terminal, so build logs stay clean."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    line = _ProgressLine(what, float(os.environ.get(PROGRESS_AFTER) or 1))
    try:
        yield line
    finally:
        line.clear()


class _ProgressLine:
    def __init__(self, what: str, after: float) -> None:
        self._what, self._width = what, 0
        self._next = time.monotonic() + after  # when the line may next be drawn

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.1  # a terminal needs no more than ten a second
        mib = 1 << 20
        text = (f"{self._what}: {done / mib:.1f} of {total / mib:.1f} MiB "
                f"({100 * done // max(total, 1)}%)")
        self._draw(text)

    def _draw(self, text: str) -> None:
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = max(self._width, len(text))

    def clear(self) -> None:
        if self._width:
            self._draw("")
            sys.stderr.write("\r")
            sys.stderr.flush()


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, metavar="DIR",
                        help="OCI image layout directory (created, or extended keeping its tags)")


def add_tag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--tag", action="append", metavar="WORDS",
                        help=words("tags for index.json (default: latest)", "--tag 'latest 1.0'"))


def add_image_flags(parser: argparse.ArgumentParser) -> None:
    """The image settings and SBOM groups of `build`: flags that are also spec keys.

    Their names, read from the two groups once they are filled, become the parser's default
    `image_flags`, which `image_flags()` reads back.
    """
    # The compressions the layer writer knows; imported only when `build` is the command parsed.
    from ..image.compress import MEDIA_TYPES

    image = parser.add_argument_group("image settings (also spec keys)")
    # --platform as `bundle` and podman spell it; --arch as build systems do: one option.
    image.add_argument("--platform", "--arch", dest="arch", metavar="PLATFORM",
                       help="target platform: OCI (linux/arm64, arm/v7), Yocto, Buildroot or "
                       "GNU name (aarch64, armv7l, x86_64); --arch is the same option; "
                       "default: from the ELF header")
    image.add_argument("--tune", metavar="WORDS", help="ARM tune words for the variant "
                       "(Yocto TUNE_FEATURES, gcc -march such as armv7-a)")
    image.add_argument("--path", metavar="/PATH", help="the binary's path in the image (default /BASENAME)")
    image.add_argument("--entrypoint", action="append", metavar="WORDS",
                       help=words("entrypoint", "--entrypoint '/bin/app --verbose'"))
    image.add_argument("--cmd", action="append", metavar="WORDS",
                       help=words("default arguments", "--cmd \"serve --title 'two words'\""))
    image.add_argument("--env", action="append", metavar="WORDS",
                       help=words("KEY=VALUE", "--env \"A=1 GREETING='hello world'\""))
    image.add_argument("--user", metavar="USER[:GROUP]",
                       help="user (and group) to run as: numbers, or names looked up in "
                       "--passwd-file and --group-file and written as numbers")
    image.add_argument("--passwd-file", metavar="FILE",
                       help="the target's /etc/passwd, for a user name in --user")
    image.add_argument("--group-file", metavar="FILE",
                       help="the target's /etc/group, for a group name in --user")
    image.add_argument("--workdir", metavar="/DIR", help="working directory")
    image.add_argument("--port", action="append", metavar="WORDS",
                       help=words("exposed PORT[/PROTO]", "--port '8080 53/udp'"))
    image.add_argument("--label", action="append", metavar="WORDS",
                       help=words("config label KEY=VALUE (.KEY: org.opencontainers.image.KEY)",
                                  "--label \".vendor='ACME Inc' tier=demo\""))
    image.add_argument("--annotation", action="append", metavar="WORDS",
                       help=words("manifest annotation KEY=VALUE (.KEY as for --label)",
                                  "--annotation .licenses=MIT"))
    image.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container")
    add_tag(image)
    image.add_argument("--file", action="append", metavar="WORDS",
                       help=words("extra file SRC:DEST[:MODE]",
                                  "--file 'motd:/etc/motd:0644 ca.pem:/etc/ssl/ca.pem'"))
    image.add_argument("--compression", choices=sorted(MEDIA_TYPES),
                       help="layer compression (default gzip; zstd needs python zstandard)")
    image.add_argument("--gzip-level", type=_gzip_level, metavar="1-9|max",
                       help="gzip level; max: zopfli, the smallest gzip and the slowest, needs "
                       "python zopfli (default: 9 for layers up to 16 MiB, 3 above)")
    image.add_argument("--allow-dynamic", action="store_const", const=True,
                       help="package a dynamically linked binary anyway")
    sbom = parser.add_argument_group(
        "SBOM (spec key sbom)", "SBOMs of the image (SPDX 2.3, SPDX 3.0.1, CycloneDX 1.6), "
        "each attached to it as an OCI 1.1 referrer and complete by NTIA's minimum elements "
        "(a supplier and every version are required). The build system names what the binary "
        "is made of; KEYs: "
        "name, version, license (SPDX expression; Yocto's & | and Buildroot's commas are "
        "accepted), supplier, download_location, homepage, cpe (repeatable), purl.")
    sbom.add_argument("--sbom", action="store_const", const=True,
                      help="attach an SBOM (implied by the other --sbom-* options)")
    sbom.add_argument("--sbom-package", action="append", metavar="WORDS",
                      help=words("the program: KEY=VALUE", "--sbom-package \"name=hello "
                                 "version=1.0 license='MIT OR Apache-2.0'\""))
    sbom.add_argument("--sbom-library", action="append", metavar="WORDS",
                      help="a library linked into the program (the C library first), as "
                      "KEY=VALUE shell words with at least name=; one library per flag, e.g. "
                      "--sbom-library 'name=musl version=1.2.4 license=MIT'")
    sbom.add_argument("--sbom-supplier", metavar="NAME",
                      help="who supplies the image (an organization, or 'Person: NAME (EMAIL)'); "
                      "also the supplier of every package that names none")
    sbom.add_argument("--sbom-creator-organization", metavar="NAME",
                      help="the organization that creates the SBOM, named beside the tool")
    sbom.add_argument("--sbom-format", action="append", choices=("spdx2", "spdx3", "cyclonedx"),
                      help="write this format (repeatable, one referrer each; default spdx2)")
    sbom.add_argument("--sbom-link", action="append", metavar="ELEMENT",
                      help="an element of the build system's own SBOM that the image comes from: "
                      "an SPDX 3 spdxId, or for SPDX 2 'NAMESPACE#SPDXRef-ID sha1:HEX' of the "
                      "document holding it (the Yocto class passes the recipe's)")
    sbom.add_argument("--sbom-incomplete", action="store_const", const=True,
                      help="write the SBOM even when a supplier or a version is missing")
    # Where the SBOM is copied to, like --archive: an output of the build, not a spec key.
    sbom_copy = sbom.add_argument("--sbom-copy", metavar="FILE", action="append",
                                  help="also write the SBOM to FILE (e.g. DEPLOY/NAME.spdx.json); "
                                  "once per --sbom-format, in the same order")
    sign = parser.add_argument_group(
        "signature (spec keys sign_key, sign_identity)", "A cosign-compatible signature of the "
        "image (and of its SBOM), attached as an OCI 1.1 referrer; needs hellocontainer[sign]. "
        f"A key's passphrase comes from ${PASSPHRASE_ENV} (or ${COSIGN_PASSPHRASE_ENV}), never a flag.")
    sign.add_argument("--sign-key", metavar="FILE",
                      help="private key (PEM: cosign.key, PKCS#8 or SEC1; ECDSA P-256 or Ed25519)")
    sign.add_argument("--sign-identity", metavar="NAME",
                      help="the repository the image is published as, signed into the payload "
                      "(containers/image's sigstoreSigned policy matches it); default: none")
    # argparse keeps each group's own actions in _group_actions, in the order they were added.
    parser.set_defaults(image_flags=tuple(
        action.dest for group in (image, sbom, sign) for action in group._group_actions
        if action is not sbom_copy))


def image_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The image flags as `flags_document` takes them: by flag name, None when not given."""
    return {name.replace("_", "-"): getattr(args, name) for name in args.image_flags}
