"""cosign's encrypted private key ("ENCRYPTED SIGSTORE PRIVATE KEY"), opened without cosign.

`cosign generate-key-pair` writes the PKCS#8 key sealed with a password: scrypt derives a
32-byte key, and NaCl's secretbox (XSalsa20 with a Poly1305 tag) seals the key's DER bytes.
The PEM body is JSON naming both with their parameters. Python's hashlib has scrypt; secretbox
is small enough to carry here in pure Python, so a packager reads cosign's keys with no
dependency beyond `cryptography`, which parses the DER once opened. Only opening is
implemented: keys are made with cosign or openssl, never by this tool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from typing import Any

# cosign 2.x writes the first; cosign 1.x wrote the second (same content).
PEM_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
MAX_SCRYPT_MEMORY = 1 << 30  # cosign's default (N=2^16, r=8) needs 64 MiB; refuse a hostile N


class CosignKeyError(ValueError):
    """The key is not cosign's format, or the password does not open it."""


def is_cosign_key(pem: bytes) -> bool:
    return any(f"-----BEGIN {label}-----".encode() in pem for label in PEM_LABELS)


def open_key(pem: bytes, password: bytes) -> bytes:
    """The DER (PKCS#8) bytes of cosign's encrypted key `pem`, opened with `password`."""
    text = pem.decode("ascii", "replace")
    for label in PEM_LABELS:
        begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if begin in text and end in text:
            body = text.split(begin, 1)[1].split(end, 1)[0]
            break
    else:
        raise CosignKeyError("not an encrypted cosign key")
    try:
        sealed: Any = json.loads(base64.b64decode("".join(body.split()), validate=True))
        kdf, cipher = sealed["kdf"], sealed["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        box = base64.b64decode(sealed["ciphertext"])
    except (ValueError, KeyError, TypeError) as error:
        raise CosignKeyError(f"malformed encrypted cosign key ({error})") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise CosignKeyError(f"unknown key encryption {kdf.get('name')}/{cipher.get('name')}")
    if len(nonce) != 24 or n < 2 or n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_MEMORY:
        raise CosignKeyError("malformed encrypted cosign key (scrypt or nonce parameters)")
    key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32,
                         maxmem=2 * 128 * n * r * p + (1 << 20))
    opened = secretbox_open(box, nonce, key)
    if opened is None:
        raise CosignKeyError("wrong password, or the key is damaged")
    return opened


# --- NaCl secretbox: XSalsa20-Poly1305 (Bernstein, "Cryptography in NaCl") -------------------

_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_MASK = 0xFFFFFFFF


def _rounds(state: list[int]) -> list[int]:
    """Salsa20's 20 rounds (ten double rounds) over a copy of `state`."""
    x = list(state)

    def quarter(a: int, b: int, c: int, d: int) -> None:
        def rotl(value: int, shift: int) -> int:
            return ((value << shift) | (value >> (32 - shift))) & _MASK
        x[b] ^= rotl((x[a] + x[d]) & _MASK, 7)
        x[c] ^= rotl((x[b] + x[a]) & _MASK, 9)
        x[d] ^= rotl((x[c] + x[b]) & _MASK, 13)
        x[a] ^= rotl((x[d] + x[c]) & _MASK, 18)

    for _ in range(10):
        quarter(0, 4, 8, 12), quarter(5, 9, 13, 1), quarter(10, 14, 2, 6), quarter(15, 3, 7, 11)
        quarter(0, 1, 2, 3), quarter(5, 6, 7, 4), quarter(10, 11, 8, 9), quarter(15, 12, 13, 14)
    return x


def _state(key: bytes, middle: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    m = struct.unpack("<4I", middle)
    return [_SIGMA[0], *k[:4], _SIGMA[1], *m, _SIGMA[2], *k[4:], _SIGMA[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        state = _state(key, nonce8 + struct.pack("<Q", counter))
        mixed = _rounds(state)
        out += struct.pack("<16I", *((a + b) & _MASK for a, b in zip(mixed, state)))
        counter += 1
    return bytes(out[:length])


def _poly1305(message: bytes, key: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(message), 16):
        acc = (acc + int.from_bytes(message[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def secretbox_open(box: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """NaCl's crypto_secretbox_open (Go's secretbox.Open): tag ‖ ciphertext in, plaintext out,
    or None when the tag does not match."""
    if len(box) < 16:
        return None
    subkey = _hsalsa20(key, nonce[:16])
    stream = _salsa20_stream(subkey, nonce[16:], 32 + len(box) - 16)
    tag, ciphertext = box[:16], box[16:]
    if not hmac.compare_digest(_poly1305(ciphertext, stream[:32]), tag):
        return None
    return bytes(a ^ b for a, b in zip(ciphertext, stream[32:]))
