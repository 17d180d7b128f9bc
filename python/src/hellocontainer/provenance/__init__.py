"""What an image says about where it came from: its SBOM and its signatures, as OCI referrers.

sbom.py writes the SPDX document; signing.py loads keys and signs bytes, with rfc6979.py for
deterministic ECDSA (the two import the optional `cryptography`, inside functions, so nothing
else needs it), cosignkey.py for cosign's encrypted keys and passphrase.py for the
environment variable a key's passphrase comes from (every --help names it); signature.py gives
a signature cosign's artifact shape; verify.py checks a signed layout. It imports `oci`, `errors` and
`sourcedate`; the image room calls it while building and signing.
"""
