"""Digests: their grammar, the algorithms we can compute, and holding bytes to a descriptor.

A digest is the only part of an untrusted document that becomes a path (blobs/ALG/ENCODED), and
the only thing that makes a blob's bytes believable, so both the grammar check and the
verification live here, apart from the files and streams they guard.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import LayoutError, os_error_message
from .model import Descriptor
from .safefile import CHUNK

# descriptor.md: digest := algorithm ":" encoded. Only this grammar ever becomes a path, which is
# what keeps `blobs/sha256/../../x` out: neither part can hold "/" or "..".
DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
# The registered algorithms we can verify, with the encoding each must have ([A-F] must not be used).
ALGORITHMS: dict[str, tuple[Callable[[], Any], re.Pattern[str]]] = {
    "sha256": (hashlib.sha256, re.compile(r"[a-f0-9]{64}")),
    "sha512": (hashlib.sha512, re.compile(r"[a-f0-9]{128}")),
}


# How messages name a blob: its algorithm and the first 12 digits, as docker and podman show ids.
SHORT_DIGITS = 12


def short_digest(digest: str) -> str:
    """`sha256:0123456789ab` for `sha256:0123456789ab…`: enough to tell a layout's blobs apart."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:SHORT_DIGITS]}"


def check_digest(digest: str) -> tuple[str, str]:
    """(algorithm, encoded) of a digest, or a LayoutError if it breaks the grammar."""
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise LayoutError(f"digest {digest!r} does not match the OCI digest grammar "
                          "(algorithm:encoded, e.g. sha256 and 64 lowercase hex digits)")
    algorithm, encoded = match.groups()
    known = ALGORITHMS.get(algorithm)
    if known is not None and not known[1].fullmatch(encoded):
        raise LayoutError(f"digest {digest!r} is not {algorithm} followed by its hex digits "
                          "in lowercase")
    return algorithm, encoded


def verifiable(digest: str) -> bool:
    """Whether we can compute this digest (registered algorithms); others can only be warned of."""
    return digest.split(":", 1)[0] in ALGORITHMS


def new_hasher(digest: str) -> Any | None:
    """A fresh hasher for the digest's algorithm; None for one we cannot compute."""
    algorithm = digest.split(":", 1)[0]
    known = ALGORITHMS.get(algorithm)
    return known[0]() if known else None


def hashed(digest: str, chunks: list[bytes]) -> Any | None:
    """A hasher for the digest's algorithm that has seen `chunks` (None: not computable)."""
    hasher = new_hasher(digest)
    if hasher is not None:
        for chunk in chunks:
            hasher.update(chunk)
    return hasher


def verify(descriptor: Descriptor, hasher: Any | None, size: int) -> None:
    """Hold bytes read (their count and hasher) to the descriptor that named them."""
    if size != descriptor.size:
        amount = f"more than {descriptor.size}" if size > descriptor.size else str(size)
        raise LayoutError(f"blob {descriptor.digest} has {amount} bytes, but the descriptor says "
                          f"{descriptor.size}; the layout is damaged")
    if hasher is not None:
        actual = f"{descriptor.digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if actual != descriptor.digest:
            raise LayoutError(f"blob {descriptor.digest} does not match its digest; the layout "
                              "is damaged")


def verified_chunks(fd: int, descriptor: Descriptor) -> Iterator[bytes]:
    """The bytes of an open blob file, a CHUNK at a time, held to `descriptor` (closing `fd`).

    A file longer than declared stops at once (no need to read a /dev/zero-sized rest); size
    and digest are checked when the file ends, so a consumer that reads to the end has read
    only verified bytes by the time it draws conclusions.
    """
    hasher = new_hasher(descriptor.digest)
    size = 0
    try:
        with os.fdopen(fd, "rb", closefd=True) as stream:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > descriptor.size:
                    break
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk
    except OSError as error:
        raise LayoutError(os_error_message(error, f"blob {descriptor.digest}")) from None
    verify(descriptor, hasher, size)


def diff_checked(chunks: Iterator[bytes], name: str, diff_id: str) -> Iterator[bytes]:
    """`chunks` passed through, checked against `diff_id` when they end (layer `name`)."""
    check_digest(diff_id)
    hasher = new_hasher(diff_id)
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        yield chunk
    if hasher is not None and f"{diff_id.split(':', 1)[0]}:{hasher.hexdigest()}" != diff_id:
        raise LayoutError(f"layer {name} does not inflate to the config's diff_id {diff_id}; "
                          "the image is damaged")
