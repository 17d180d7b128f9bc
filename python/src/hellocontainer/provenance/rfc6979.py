"""Deterministic ECDSA P-256 with SHA-256 (RFC 6979): the same key and bytes, the same signature.

A signed layout must stay byte-identical on rebuild, so the signature cannot depend on a random
nonce. `cryptography` signs deterministically only from release 43.0.0 on, and only where it
is linked with OpenSSL 3.2 or newer (`ECDSA(..., deterministic_signing=True)`); Yocto
scarthgap ships 42.0.5, and distributions link older OpenSSL. So the nonce is derived here, by
RFC 6979 §3.2 with HMAC-SHA-256, on every release alike, and `cryptography` (OpenSSL) does the
one expensive, secret-dependent step, the point multiplication k·G, by deriving a key from k.
The rest is arithmetic modulo the group order. Where `cryptography` has its own deterministic
mode, the tests prove it gives the very same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

# NIST P-256 (secp256r1): the order of the base point.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_LENGTH = 32  # bytes of the order and of a SHA-256 digest


def nonces(private_value: int, digest: bytes, order: int = P256_ORDER) -> Iterator[int]:
    """RFC 6979 §3.2's candidate nonces k for `digest` (a SHA-256 hash): the first is the one
    used; the next only if the first gives r = 0 or s = 0 (probability about 2^-256)."""
    if len(digest) != _LENGTH or order.bit_length() != 8 * _LENGTH:
        raise ValueError("RFC 6979 here is for a 256-bit order and SHA-256 only")
    x = private_value.to_bytes(_LENGTH, "big")
    # bits2octets(h1): the hash as an integer reduced modulo the order (its length equals qlen).
    h1 = (int.from_bytes(digest, "big") % order).to_bytes(_LENGTH, "big")
    v, k = b"\x01" * _LENGTH, b"\x00" * _LENGTH
    k = hmac.new(k, v + b"\x00" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()  # one HMAC output is qlen bits already
        candidate = int.from_bytes(v, "big")
        if 1 <= candidate < order:
            yield candidate
        k = hmac.new(k, v + b"\x00", hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def sign_p256(private_key: Any, data: bytes) -> tuple[int, int]:
    """(r, s) of the deterministic ECDSA signature of `data` with a `cryptography` P-256 key.

    s is left as computed, not folded to the lower half: that is what RFC 6979 and OpenSSL's
    deterministic mode give, and every ECDSA verifier (Go's, OpenSSL's) accepts either half.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    d = private_key.private_numbers().private_value
    digest = hashlib.sha256(data).digest()
    e = int.from_bytes(digest, "big")
    for k in nonces(d, digest):
        # k·G by OpenSSL: the public point of the "key" k, whose x coordinate gives r.
        point = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
        r = point.x % P256_ORDER
        s = pow(k, -1, P256_ORDER) * (e + r * d) % P256_ORDER
        if r and s:
            return r, s
    raise AssertionError("unreachable: nonces() never ends")
