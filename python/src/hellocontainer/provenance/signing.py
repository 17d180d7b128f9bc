"""Keys and signatures: load a signing key from a PEM file, sign bytes, verify them.

This module (with rfc6979.py, which it calls) is the one place that touches `cryptography` (the
optional `sign` extra); the commands call it and never import `cryptography` themselves, so a
packager without the extra still runs every other command and refuses signing options with one
line.

Signatures are over raw bytes (cosign's simple-signing payload, or a bundle's payload): ECDSA
P-256 with SHA-256 in DER (what `cosign generate-key-pair` keys make and `openssl dgst -sha256
-verify` checks on a board), or Ed25519. Both are deterministic here, so the same key and bytes
give the same signature on every `cryptography` release: Ed25519 by construction, ECDSA by the
RFC 6979 nonce (rfc6979.py says why it is derived here). Other key types and curves are refused
with one line: cosign and containers/image verify these two, and one hash (SHA-256) keeps the
board's `openssl` check simple.

Keys are PEM files: PKCS#8 (`openssl genpkey`), SEC1 `EC PRIVATE KEY`, or cosign's own
encrypted format (cosignkey.py). A passphrase comes from the environment only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hellocontainer.errors import HelloContainerError

from .passphrase import COSIGN_PASSPHRASE_ENV, PASSPHRASE_ENV, passphrase


class SigningError(HelloContainerError):
    """A key cannot be loaded or used."""


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise SigningError(
            "signing needs the Python package 'cryptography': install hellocontainer[sign] "
            "(Yocto: python3-cryptography-native, Buildroot: host-python-cryptography)"
        ) from None
    return serialization


@dataclass(frozen=True)
class SigningKey:
    """A private key, kept in memory only: never written anywhere by this tool."""

    key: Any

    def sign(self, data: bytes) -> bytes:
        """The signature of `data`: the same bytes for the same key and data, always."""
        from cryptography.hazmat.primitives.asymmetric import ed25519, utils

        from .rfc6979 import sign_p256

        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return utils.encode_dss_signature(*sign_p256(self.key, data))

    def public_pem(self) -> bytes:
        serialization = _crypto()
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class VerifyKey:
    key: Any

    def verify(self, data: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):  # ValueError: not a DER signature at all
            return False
        return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SigningError(f"cannot read {what} {path}: {error.strerror}") from None


def _check_type(key: Any, path: Path, what: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) \
            and isinstance(key.curve, ec.SECP256R1):
        return
    raise SigningError(f"{what} {path} is not an ECDSA P-256 or Ed25519 key; make one with "
                       "'cosign generate-key-pair' or 'openssl genpkey -algorithm EC "
                       "-pkeyopt ec_paramgen_curve:P-256'")


def load_signing_key(path: Path) -> SigningKey:
    """The private key in PEM file `path`; its passphrase, if any, from PASSPHRASE_ENV (or
    COSIGN_PASSWORD when that is unset)."""
    serialization = _crypto()
    from . import cosignkey

    data = _read(path, "signing key")
    cosign = cosignkey.is_cosign_key(data)
    # PKCS#8 "ENCRYPTED PRIVATE KEY" or a legacy "Proc-Type: 4,ENCRYPTED" header; a passphrase
    # in the environment is not an error for a key that needs none.
    secret = passphrase(cosign) if cosign or b"ENCRYPTED" in data else None
    try:
        if cosign:
            if secret is None:
                raise SigningError(f"signing key {path} is encrypted; set {PASSPHRASE_ENV} (or "
                                   f"{COSIGN_PASSPHRASE_ENV}) to its password")
            key = serialization.load_der_private_key(cosignkey.open_key(data, secret), None)
        else:
            key = serialization.load_pem_private_key(data, secret or None)
    except TypeError as error:
        # cryptography: "Password was not given but private key is encrypted", or the reverse.
        if secret is None:
            raise SigningError(f"signing key {path} is encrypted; set {PASSPHRASE_ENV} to its "
                               "passphrase") from None
        raise SigningError(f"cannot load signing key {path}: {error}") from None
    except ValueError as error:
        reason = str(error).split("\n")[0].rstrip(".")
        raise SigningError(f"cannot load signing key {path}: {reason}; is it a private key in "
                           "PEM form, and the passphrase right?") from None
    _check_type(key, path, "signing key")
    return SigningKey(key)


def load_verify_key(path: Path) -> VerifyKey:
    """The public key in PEM file `path`."""
    serialization = _crypto()
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        reason = str(error).split("\n")[0].rstrip(".")
        raise SigningError(f"cannot load public key {path}: {reason}; give the public key in "
                           "PEM form (cosign.pub)") from None
    _check_type(key, path, "public key")
    return VerifyKey(key)


# cosign's "simple signing" payload type; containers/image's sigstoreSigned policy reads the same.
SIMPLE_SIGNING_TYPE = "cosign container image signature"


def simple_signing_payload(
    manifest_digest: str, docker_reference: str, optional: dict[str, str] | None = None
) -> bytes:
    """The payload a cosign signature signs: which image (by manifest digest), under which
    name, plus free-form `optional` claims. Keys sorted and no spaces, so the same claims
    always give the same bytes (Go's encoder, which cosign uses, gives this order too)."""
    import json

    payload: dict[str, object] = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": dict(optional) if optional else None,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
