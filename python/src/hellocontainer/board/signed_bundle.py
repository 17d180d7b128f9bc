"""A signed runtime bundle: what binds every byte a runtime reads to the signed image, and the
board's check of it, written with BusyBox and the `openssl` command alone.

The hard part is that the board has no Python, no layout and no registry: only the bundle, a
public key on its read-only root, BusyBox and openssl. So the signature cannot be over the
image alone (the board could not tie the unpacked files back to its layers); it is over a
*listing* of the bundle, which both sides compute the same way:

    one line per entry the runtime reads (config.json, rootfs/ and everything below it):
    MODE UID GID SIZE SHA256 PATH
    MODE is `ls -l`'s ten characters (type, permissions, setuid/setgid/sticky), SIZE and SHA256
    are a regular file's size and content hash, a symbolic link's SHA256 is its target's, '-'
    otherwise; PATH is relative to the bundle, last on the line so it may hold blanks; lines
    sorted bytewise (`LC_ALL=C sort`), each ending in a newline.

The signature is cosign's simple-signing payload (`critical.image.docker-manifest-digest` is the
image the bundle was made from, as for the image's own signature), whose `optional` claim
LISTING_CLAIM carries the listing's sha256. The bundle holds the payload, the signature over it
(DER ECDSA P-256/SHA-256 or raw Ed25519, as `openssl` checks them) and the listing itself, so that
a board can name the entry that differs rather than only say that something does.

On the board (BOARD_CHECK, put into the init script and the unit by autostart.py), the bundle is
first copied into RAM (/run), then the copy is checked and started: nothing can change between
the check and the runtime's reads. A bundle is a few kilobytes to megabytes, as its program.
Modification times are not listed: runtimes ignore them, and copies change them.

Owners: as root (or under fakeroot/pseudo) the bundle's files carry the image's owners, and the
listing says so. Another user cannot give files away, so the listing says 0:0, what the files get
once a build system puts them into a root file system; an image with other owners then cannot be
signed without root, rather than be signed with owners no board will see.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..provenance.signing import SigningKey, simple_signing_payload

PAYLOAD = "hellocontainer.payload"  # the simple-signing JSON, as signed
SIGNATURE = "hellocontainer.sig"  # the signature over PAYLOAD, binary (DER ECDSA, or Ed25519)
LISTING = "hellocontainer.listing"  # the listing whose sha256 PAYLOAD carries
FILES = (PAYLOAD, SIGNATURE, LISTING)
LISTING_CLAIM = "org.hellocontainer.bundle.listing"
# What the runtime reads, relative to the bundle: everything else in it (our marker, the
# signature files) is never read by crun or runc, and is not listed.
READ_BY_RUNTIME = ("config.json", "rootfs")
NO_DIGEST = "-"
_CHUNK = 1 << 20


def listing(bundle: Path, owner: tuple[int, int] | None = None) -> bytes:
    """The bundle's listing (module docstring); `owner` replaces every entry's uid and gid."""
    root = os.fsencode(bundle)
    lines = []
    # A stack, not recursion: a rootfs may nest thousands of folders deep.
    pending = [name.encode() for name in READ_BY_RUNTIME]
    while pending:
        path = pending.pop()
        full = os.path.join(root, path)
        info = os.lstat(full)
        lines.append(_line(full, path, info, owner))
        if stat.S_ISDIR(info.st_mode):
            pending += [path + b"/" + name for name in os.listdir(full)]
    lines.sort()  # without their newlines, as `sort` compares them
    return b"".join(line + b"\n" for line in lines)


def _line(full: bytes, path: bytes, info: os.stat_result, owner: tuple[int, int] | None) -> bytes:
    if b"\n" in path:
        raise LayoutError(f"cannot sign the bundle: {os.fsdecode(path)!r} has a newline in its "
                          "name, which the board's line-based check cannot read; rename it in "
                          "the image")
    uid, gid = owner if owner is not None else (info.st_uid, info.st_gid)
    size = digest = NO_DIGEST
    if stat.S_ISREG(info.st_mode):
        size, digest = str(info.st_size), _file_sha256(full)
    elif stat.S_ISLNK(info.st_mode):
        target = os.readlink(full)
        if b"\n" in target:
            raise LayoutError(f"cannot sign the bundle: the symbolic link {os.fsdecode(path)!r} "
                              "points to a name with a newline, which the board's check cannot "
                              "read; change the link in the image")
        digest = hashlib.sha256(target).hexdigest()
    fields = f"{stat.filemode(info.st_mode)} {uid} {gid} {size} {digest} "
    return fields.encode() + path


def _file_sha256(path: bytes) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def payload(manifest_digest: str, listing_bytes: bytes) -> bytes:
    """The simple-signing payload for a bundle of the image `manifest_digest`.

    docker-reference is empty: a board starts a bundle by its path, never pulls it by name,
    and a name here would make the same bundle's payload differ by how it was asked for."""
    claim = "sha256:" + hashlib.sha256(listing_bytes).hexdigest()
    return simple_signing_payload(manifest_digest, "", {LISTING_CLAIM: claim})


def sign(bundle: Path, manifest_digest: str, key: SigningKey, owner: tuple[int, int] | None,
         mode: int, mtime: int) -> None:
    """Write FILES into the finished bundle folder `bundle` (before it is published)."""
    try:
        found = listing(bundle, owner)
        signed = payload(manifest_digest, found)
        for name, data in ((LISTING, found), (PAYLOAD, signed), (SIGNATURE, key.sign(signed))):
            path = bundle / name
            path.write_bytes(data)
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))
    except OSError as error:
        raise LayoutError(os_error_message(error, f"cannot sign the bundle {bundle}")) from None


# ---------------------------------------------------------------------------------------------
# The board's side: shell for BusyBox ash (and any POSIX sh), put into the init files verbatim
# with @NAME@-style placeholders filled by autostart.py. Word for word the rules above; the test
# tests/test_signed_bundle.py runs it under Debian's busybox-static against listing().
#
# SIGNATURE_SHELL is what every signature check on the board shares (signed_layout.py's check of
# an image layout for podman too): the hash, the tools and key it needs, openssl's verification
# of a signature over a file, and `signature`, which runs the check's `signature_problem` and
# prints "NAME: signature check failed: REASON" (then printed as one console line) or nothing,
# in which case @COPY@ holds the checked copy the runtime is started from.

_READ_WORDS = " ".join(READ_BY_RUNTIME)
_FILE_WORDS = " ".join(FILES)
_COPIED_WORDS = " ".join(f'"@BUNDLE@/{name}"' for name in READ_BY_RUNTIME + FILES)
_CLAIM_PATTERN = LISTING_CLAIM.replace(".", "[.]")  # a sed pattern: '.' is any character
OPENSSL_PACKAGES = "openssl (Buildroot: BR2_PACKAGE_LIBOPENSSL_BIN; Yocto: openssl-bin)"

SIGNATURE_SHELL = """\
# A file's sha256 (on stdin), hex: BusyBox's sha256sum, or openssl's where it has none.
sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum
	else
		openssl dgst -sha256 -r
	fi | { read -r sum _; printf '%s\\n' "$sum"; }
}

# Why no signature can be checked here (no openssl, no key), or nothing.
signature_tools() {
	if ! command -v openssl >/dev/null 2>&1; then
		echo "openssl not found; install @OPENSSL_PACKAGES@"
	elif [ ! -f "@KEY@" ]; then
		echo "the public key @KEY@ not found"
	fi
}

# Status 0 when $2 (binary: DER ECDSA P-256/SHA-256, or Ed25519) is @KEY@'s signature of $1.
signed_by_key() {
	case "$(openssl pkey -pubin -in "@KEY@" -noout -text 2>/dev/null)" in
		ED25519*)
			openssl pkeyutl -verify -pubin -inkey "@KEY@" -rawin -in "$1" -sigfile "$2" ;;
		*)
			openssl dgst -sha256 -verify "@KEY@" -signature "$2" "$1" ;;
	esac >/dev/null 2>&1
}

# "NAME: signature check failed: REASON", or nothing: then @COPY@ is checked and may start.
signature() {
	reason=$(signature_problem)
	if [ -n "$reason" ]; then
		rm -rf "@COPY@" "@COPY@.found"
		echo "@NAME@: signature check failed: $reason"
	fi
}
""".replace("@OPENSSL_PACKAGES@", OPENSSL_PACKAGES)

BOARD_CHECK = SIGNATURE_SHELL + f"""\
# The listing of the bundle $1 as the packager signed it: one sorted line per entry the runtime
# reads, "MODE UID GID SIZE SHA256 PATH" (see board/signed_bundle.py).
listing() (
	cd "$1" || exit 1
	find {_READ_WORDS} 2>/dev/null | while IFS= read -r path; do
		# ls, not stat (not in Buildroot's BusyBox) or find -printf (not in BusyBox); only the
		# fields before the name are read.
		# shellcheck disable=SC2012
		ls -lnd "$path" 2>/dev/null | {{
			read -r mode _ uid gid size _
			# ls -l's ten characters; GNU ls may add an ACL or SELinux mark.
			mode=${{mode%"${{mode#??????????}}"}}
			case "$mode" in
				-*) sum=$(sha256 < "$path") ;;
				l*) size={NO_DIGEST}; sum=$(printf '%s' "$(readlink "$path")" | sha256) ;;
				*) size={NO_DIGEST}; sum={NO_DIGEST} ;;
			esac
			printf '%s %s %s %s %s %s\\n' "$mode" "$uid" "$gid" "$size" "$sum" "$path"
		}}
	done | LC_ALL=C sort
)

# The signature check, on a copy in RAM that the runtime then starts from.
signature_problem() {{
	for file in {_FILE_WORDS}; do
		if [ ! -f "@BUNDLE@/$file" ]; then
			echo "@BUNDLE@ is not signed ($file not found)"
			return
		fi
	done
	reason=$(signature_tools)
	if [ -n "$reason" ]; then
		echo "$reason"
		return
	fi
	rm -rf "@COPY@"
	if ! mkdir -m 0700 "@COPY@" 2>/dev/null ||
		! cp -a {_COPIED_WORDS} "@COPY@/" 2>/dev/null; then
		echo "cannot copy @BUNDLE@ to @COPY@"
		return
	fi
	if ! signed_by_key "@COPY@/{PAYLOAD}" "@COPY@/{SIGNATURE}"; then
		echo "the signature is not from the key @KEY@"
		return
	fi
	signed=$(sed -n 's/.*"{_CLAIM_PATTERN}":"sha256:\\([0-9a-f]*\\)".*/\\1/p' "@COPY@/{PAYLOAD}")
	if [ -z "$signed" ] || [ "$signed" != "$(sha256 < "@COPY@/{LISTING}")" ]; then
		echo "{LISTING} is not the listing that was signed"
		return
	fi
	listing "@COPY@" > "@COPY@.found"
	if ! cmp -s "@COPY@/{LISTING}" "@COPY@.found"; then
		line=$(grep -vxF -f "@COPY@/{LISTING}" "@COPY@.found" | head -n 1)
		if [ -n "$line" ]; then
			path=${{line#* * * * * }}
			if cut -d' ' -f6- "@COPY@/{LISTING}" | grep -qxF "$path"; then
				echo "$path was changed after signing"
			else
				echo "$path is not in the signed bundle"
			fi
		else
			line=$(grep -vxF -f "@COPY@.found" "@COPY@/{LISTING}" | head -n 1)
			echo "${{line#* * * * * }} is missing"
		fi
		rm -f "@COPY@.found"
		return
	fi
	rm -f "@COPY@.found"
}}
"""
