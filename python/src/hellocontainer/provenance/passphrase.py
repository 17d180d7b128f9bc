"""Where a signing key's passphrase comes from: the environment, never a command-line argument
(which any user of the machine can read in /proc).

A module of its own, free of imports, because every command's --help names the variable: the
command line reads it here without loading the signing code.
"""

from __future__ import annotations

import os

PASSPHRASE_ENV = "HELLOCONTAINER_SIGN_PASSWORD"
# cosign's own variable, read when ours is unset: a key made by `cosign generate-key-pair`
# then opens the way cosign opens it.
COSIGN_PASSPHRASE_ENV = "COSIGN_PASSWORD"


def passphrase(cosign: bool) -> bytes | None:
    """The passphrase from the environment; COSIGN_PASSWORD counts for cosign's keys only, so
    that a shell set up for cosign does not break a plain PEM key."""
    secret = os.environ.get(PASSPHRASE_ENV)
    if secret is None and cosign:
        secret = os.environ.get(COSIGN_PASSPHRASE_ENV)
    return None if secret is None else secret.encode()
