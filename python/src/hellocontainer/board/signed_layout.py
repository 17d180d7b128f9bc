"""A signed image layout checked on the board before podman copies it: BusyBox and `openssl` only.

The hard part is that podman reads the layout itself (index.json, then the manifests, config and
layers its digests name), so the check cannot hand podman the layout it checked: an index.json
is not signed (cosign signs image manifests), and an unsigned index may list an unsigned image
for the board's platform beside the signed one. So the board builds what podman reads:

1. the layout's blobs/sha256 is copied into RAM (/run); a symbolic link or any other file that
   is not a regular file or folder in it is refused (a link named after a good blob's digest
   would pass the hash check and then be read elsewhere);
2. every blob must hash to its own name;
3. the cosign signature manifests among the blobs (build --sign-key, `hellocontainer sign`: an
   OCI 1.1 referrer whose layer is the simple-signing payload and whose annotation
   `dev.cosignproject.cosign/signature` is the base64 signature) give candidates, read from
   untrusted JSON with grep and sed; `openssl` decides which payload is signed by the key, with
   the very code the bundle check uses (signed_bundle.SIGNATURE_SHELL);
4. the signed payloads' `critical.image.docker-manifest-digest` name the image: the copy gets an
   index.json (and oci-layout) written by the script, naming that manifest (or index) alone
   under the tag podman is asked for.

Every byte podman then reads is either written by the script or hash-checked and reachable from
the signed digest. When several signed images are in the layout (one per platform), the one for
this board's architecture (`uname -m` against the config's "architecture") is taken. Which
signed image a tag named is not signed, so it is not used: a layout for a board holds one image
per platform; two signed images of one architecture are refused, rather than picked by a hint
an attacker could write.
"""

from __future__ import annotations

from .signed_bundle import SIGNATURE_SHELL

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
# Media types a signed digest may name for podman: an image manifest (by its config's type: a
# signature or an SBOM is a manifest too, of an artifact) or an index (cosign signs one too).
IMAGE_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json",
                      "application/vnd.docker.container.image.v1+json")
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

# `uname -m` to the OCI architecture a config names (Go's GOARCH).
_MACHINES = {
    "x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "arm*": "arm", "i?86": "386",
    "riscv64": "riscv64", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "mips64": "mips64", "mips": "mips",
}
_MACHINE_CASES = "\n".join(f"\t\t{machine}) echo {arch} ;;" for machine, arch in _MACHINES.items())
_ANNOTATION_PATTERN = SIGNATURE_ANNOTATION.replace(".", "[.]")
_CONFIG_PATTERNS = " ".join(f"-e '\"{media}\"'" for media in IMAGE_CONFIG_TYPES)

# Placeholders: @LAYOUT@ (the installed layout), @COPY@ (its checked copy, what podman reads),
# @TAG@, @KEY@, @NAME@, filled by autostart.py.
LAYOUT_CHECK = SIGNATURE_SHELL + f"""\
# This board's architecture as an image config names it, or nothing.
board_arch() {{
	case "$(uname -m)" in
{_MACHINE_CASES}
	esac
}}

# The sha256 digests (hex) of the signed images among the copy's blobs, one a line, maybe
# twice; sets $signatures (how many signatures were found), $verified (a payload's signature is
# the key's) and $unknown (a signed image that is not in the layout).
signed_images() {{
	signatures=0
	verified=""
	unknown=""
	for blob in "@COPY@"/blobs/sha256/*; do
		grep -q '"{_ANNOTATION_PATTERN}"' "$blob" 2>/dev/null || continue
		# Base64 signatures and hex digests are one word each.
		# shellcheck disable=SC2013
		for sig in $(grep -o '"{_ANNOTATION_PATTERN}":"[A-Za-z0-9+/=]*"' "$blob" |
			sed 's/^"[^"]*":"//; s/"$//'); do
			signatures=$((signatures + 1))
			printf '%s' "$sig" | openssl base64 -d -A > "@COPY@.sig" 2>/dev/null || continue
			# Which of the digests the manifest names is the payload: each is tried, and
			# only the signature decides.
			# shellcheck disable=SC2013
			for payload in $(grep -o 'sha256:[0-9a-f]\\{{64\\}}' "$blob" | sort -u); do
				file="@COPY@/blobs/sha256/${{payload#sha256:}}"
				if [ ! -f "$file" ] || ! signed_by_key "$file" "@COPY@.sig"; then
					continue
				fi
				verified=1
				image=$(sed -n 's/.*"docker-manifest-digest":"sha256:\\([0-9a-f]\\{{64\\}}\\)".*/\\1/p' \\
					"$file")
				if [ -z "$image" ]; then
					continue
				elif [ ! -f "@COPY@/blobs/sha256/$image" ]; then
					unknown=$image
				elif grep -q -e '"manifests"' {_CONFIG_PATTERNS} "@COPY@/blobs/sha256/$image"; then
					echo "$image"
				fi
			done
		done
	done
	rm -f "@COPY@.sig"
}}

# The one signed image to start, from the signed images $@ (one per platform at most).
chosen_image() {{
	if [ "$#" -gt 1 ]; then
		arch=$(board_arch)
		for image in "$@"; do
			config=$(sed -n 's/.*"config":{{[^}}]*"digest":"sha256:\\([0-9a-f]\\{{64\\}}\\)".*/\\1/p' \\
				"@COPY@/blobs/sha256/$image")
			if [ -n "$arch" ] && [ -f "@COPY@/blobs/sha256/$config" ] &&
				grep -q "\\"architecture\\":\\"$arch\\"" "@COPY@/blobs/sha256/$config"; then
				shift
				set -- "$@" "$image"
			else
				shift
			fi
		done
	fi
	[ "$#" -eq 1 ] && echo "$1"
}}

# The signature check of the image layout, on a copy in RAM that podman then copies from.
signature_problem() {{
	reason=$(signature_tools)
	if [ -n "$reason" ]; then
		echo "$reason"
		return
	fi
	rm -rf "@COPY@"
	if ! mkdir -p "@COPY@/blobs" 2>/dev/null || ! chmod 0700 "@COPY@" ||
		! cp -a "@LAYOUT@/blobs/sha256" "@COPY@/blobs/" 2>/dev/null; then
		echo "cannot copy @LAYOUT@/blobs/sha256 to @COPY@"
		return
	fi
	# cp -a copies a link as a link and a FIFO as a FIFO: nothing was followed or read yet.
	odd=$(find "@COPY@/blobs/sha256" ! -type f | grep -vxF "@COPY@/blobs/sha256" | head -n 1)
	[ ! -L "@COPY@/blobs/sha256" ] || odd="@COPY@/blobs/sha256"
	if [ -n "$odd" ]; then
		echo "${{odd#"@COPY@/"}} is not a regular file; a signed layout's blobs are files"
		return
	fi
	for blob in "@COPY@"/blobs/sha256/*; do
		[ -f "$blob" ] || continue
		if [ "$(sha256 < "$blob")" != "${{blob##*/}}" ]; then
			echo "blobs/sha256/${{blob##*/}} was changed after signing"
			return
		fi
	done
	signed_images > "@COPY@.found"
	# shellcheck disable=SC2046 # digests: one word each
	image=$(chosen_image $(sort -u "@COPY@.found"))
	if [ -z "$image" ]; then
		if [ -s "@COPY@.found" ]; then
			echo "@LAYOUT@ holds $(sort -u "@COPY@.found" | wc -l) signed images, none or" \\
				"several for this board ($(uname -m)); install a layout with one signed image" \\
				"per platform"
		elif [ -n "$unknown" ]; then
			echo "the signed image sha256:$unknown is not in @LAYOUT@"
		elif [ "$signatures" -eq 0 ]; then
			echo "@LAYOUT@ is not signed (no cosign signature among its blobs)"
		elif [ -n "$verified" ]; then
			echo "@LAYOUT@ holds no signed image"
		else
			echo "the signature is not from the key @KEY@"
		fi
		return
	fi
	rm -f "@COPY@.found"
	if grep -q '"manifests"' "@COPY@/blobs/sha256/$image"; then
		media={MEDIA_INDEX}
	else
		media={MEDIA_MANIFEST}
	fi
	size=$(($(wc -c < "@COPY@/blobs/sha256/$image")))
	printf '%s\\n' '{{"imageLayoutVersion":"1.0.0"}}' > "@COPY@/oci-layout"
	printf '{{"manifests":[{{"annotations":{{"{REF_NAME}":"%s"}},"digest":"sha256:%s",' \\
		"@TAG@" "$image" > "@COPY@/index.json"
	printf '"mediaType":"%s","size":%s}}],"mediaType":"{MEDIA_INDEX}","schemaVersion":2}}\\n' \\
		"$media" "$size" >> "@COPY@/index.json"
}}
"""
