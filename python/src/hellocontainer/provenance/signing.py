"""Keys and signatures: load a signing key from a PEM file, sign bytes, verify them.

This is the one place that touches `cryptography` (the optional `sign` extra); the commands
call it and never import `cryptography` themselves, so a packager without the extra still
runs every other command and refuses signing options with one line.

Signatures are over raw bytes (cosign's simple-signing payload, or a bundle's payload): ECDSA
P-256 with SHA-256 in DER (what `cosign generate-key-pair` keys make and `openssl dgst -sha256
-verify` checks on a board), or Ed25519.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hellocontainer.errors import HelloContainerError

# The environment variable a key's passphrase comes from; never a command-line argument, which
# any user of the machine can read in /proc.
PASSPHRASE_ENV = "HELLOCONTAINER_SIGN_PASSWORD"


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
        # Seed implementation; the deterministic (RFC 6979) form is the packager's job to
        # provide, so that the same key and image give the same signature bytes.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

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
        except InvalidSignature:
            return False
        return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SigningError(f"cannot read {what} {path}: {error.strerror}") from None


def load_signing_key(path: Path) -> SigningKey:
    """The private key in PEM file `path`, its passphrase (if any) from PASSPHRASE_ENV."""
    serialization = _crypto()
    data = _read(path, "signing key")
    secret = os.environ.get(PASSPHRASE_ENV)
    try:
        key = serialization.load_pem_private_key(data, secret.encode() if secret else None)
    except (ValueError, TypeError) as error:
        raise SigningError(f"cannot load signing key {path}: {error}") from None
    return SigningKey(key)


def load_verify_key(path: Path) -> VerifyKey:
    """The public key in PEM file `path`."""
    serialization = _crypto()
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise SigningError(f"cannot load public key {path}: {error}") from None
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
