"""Keys and signatures: deterministic on every supported `cryptography`, cosign's keys opened.

The signing module's promises, each against an outside judge: RFC 6979's own test vectors,
`cryptography`'s deterministic mode (where the release has it), a venv holding scarthgap's
cryptography 42.0.5 (which has none), keys made by the real `cosign generate-key-pair`, and
the one-line errors a user meets.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cryptography  # the `test` extra installs it; a missing one fails, never skips
import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils

from conftest import REPO
from hellocontainer.provenance import cosignkey, rfc6979, signing

BUILD_TOOLS = Path(__file__).resolve().parent / "build-tools"

# RFC 6979 appendix A.2.5: ECDSA, 256 bits (prime field), with SHA-256.
A25_KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
A25 = {
    b"sample": (0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
                0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
                0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
    b"test": (0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
              0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
              0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083),
}


def pem(key: object, password: bytes | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, encryption)


@pytest.mark.parametrize("message", sorted(A25))
def test_rfc6979_a25_vectors_give_the_nonce_and_signature(message: bytes) -> None:
    k, r, s = A25[message]
    assert next(rfc6979.nonces(A25_KEY, hashlib.sha256(message).digest())) == k
    key = ec.derive_private_key(A25_KEY, ec.SECP256R1())
    assert rfc6979.sign_p256(key, message) == (r, s)


def test_same_bytes_as_cryptographys_own_deterministic_mode() -> None:
    """Where the release has it (43.0.0 and later, with OpenSSL 3.2+), its bytes are ours."""
    try:
        mode = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except (TypeError, UnsupportedAlgorithm):
        pytest.skip(f"cryptography {cryptography.__version__} has no deterministic ECDSA here")
    for seed in range(20):
        key = ec.derive_private_key(int.from_bytes(hashlib.sha256(bytes([seed])).digest(), "big")
                                    % rfc6979.P256_ORDER, ec.SECP256R1())
        data = hashlib.sha512(bytes([seed])).digest() * seed
        ours = signing.SigningKey(key).sign(data)
        assert ours == key.sign(data, mode)
        key.public_key().verify(ours, data, ec.ECDSA(hashes.SHA256()))


def test_signing_twice_gives_the_same_bytes_and_each_verifies(tmp_path: Path) -> None:
    for key in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()):
        (tmp_path / "k.pem").write_bytes(pem(key))
        loaded = signing.load_signing_key(tmp_path / "k.pem")
        first, second = loaded.sign(b"payload"), loaded.sign(b"payload")
        assert first == second
        (tmp_path / "k.pub").write_bytes(loaded.public_pem())
        verifier = signing.load_verify_key(tmp_path / "k.pub")
        assert verifier.verify(b"payload", first)
        assert not verifier.verify(b"payload!", first)
        assert not verifier.verify(b"payload", b"not a signature")


SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from cryptography.hazmat.primitives.asymmetric import ec
from hellocontainer.provenance import signing
import cryptography
key = ec.derive_private_key(int(sys.argv[2]), ec.SECP256R1())
print(cryptography.__version__, signing.SigningKey(key).sign(b"the same payload").hex())
"""


@pytest.mark.slow
def test_scarthgaps_cryptography_gives_the_same_signature_bytes(tmp_path: Path) -> None:
    """cryptography 42.0.5 (Yocto scarthgap, no deterministic ECDSA of its own), in a venv of
    its own, signs with the very bytes the newest release gives."""
    pin = next(line for line in (BUILD_TOOLS / "scarthgap.txt").read_text().splitlines()
               if line.startswith("cryptography=="))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([python, "-m", "pip", "install", "-q", pin], capture_output=True,
                             text=True)
    assert install.returncode == 0, install.stderr
    scalar = str(A25_KEY)
    old = subprocess.run([python, "-c", SCRIPT, REPO / "python" / "src", scalar],
                         capture_output=True, text=True, check=True).stdout.split()
    new = subprocess.run([sys.executable, "-c", SCRIPT, REPO / "python" / "src", scalar],
                         capture_output=True, text=True, check=True).stdout.split()
    assert old[0] == pin.split("==")[1] and new[0] != old[0]
    assert old[1] == new[1]


def test_encrypted_pkcs8_key_takes_its_passphrase_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "k.pem"
    path.write_bytes(pem(ec.generate_private_key(ec.SECP256R1()), b"s3cret"))
    monkeypatch.delenv(signing.PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(signing.COSIGN_PASSPHRASE_ENV, raising=False)
    with pytest.raises(signing.SigningError, match=f"encrypted; set {signing.PASSPHRASE_ENV}"):
        signing.load_signing_key(path)
    monkeypatch.setenv(signing.PASSPHRASE_ENV, "wrong")
    with pytest.raises(signing.SigningError, match="passphrase right"):
        signing.load_signing_key(path)
    monkeypatch.setenv(signing.PASSPHRASE_ENV, "s3cret")
    signing.load_signing_key(path)


def test_a_plain_key_ignores_a_passphrase_meant_for_cosign(tmp_path, monkeypatch):
    path = tmp_path / "k.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    monkeypatch.setenv(signing.COSIGN_PASSPHRASE_ENV, "for another key")
    signing.load_signing_key(path)


@pytest.mark.parametrize("make", [lambda: ec.generate_private_key(ec.SECP384R1()),
                                  lambda: rsa.generate_private_key(65537, 2048)],
                         ids=["p384", "rsa"])
def test_other_key_types_are_refused_with_the_command_that_makes_a_good_one(tmp_path, make):
    path = tmp_path / "k.pem"
    path.write_bytes(pem(make()))
    with pytest.raises(signing.SigningError, match=r"not an ECDSA P-256 or Ed25519 key.*genpkey"):
        signing.load_signing_key(path)


def test_secretbox_opens_what_it_should_and_refuses_a_flipped_bit() -> None:
    """NaCl's crypto_secretbox test vector (tests/secretbox.c of NaCl 20110221: Alice to Bob)."""
    key = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
    nonce = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
    plain = bytes.fromhex(
        "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d4"
        "5e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a"
        "024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705")
    tag_and_cipher = bytes.fromhex(
        "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c5"
        "31a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8a"
        "b932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622"
        "a43d14a6599b1f654cb45a74e355a5")
    assert cosignkey.secretbox_open(tag_and_cipher, nonce, key) == plain
    flipped = bytearray(tag_and_cipher)
    flipped[40] ^= 1
    assert cosignkey.secretbox_open(bytes(flipped), nonce, key) is None


def test_signature_is_cosigns_base64_of_der() -> None:
    key = signing.SigningKey(ec.derive_private_key(A25_KEY, ec.SECP256R1()))
    der = key.sign(b"sample")
    assert utils.decode_dss_signature(der) == A25[b"sample"][1:]
    assert base64.b64decode(base64.b64encode(der)) == der


def test_without_cryptography_signing_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """A packager installed without the `sign` extra: every other command works, signing
    options say what to install."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "cryptography.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO / "python" / "src")])}
    (tmp_path / "k.pem").write_bytes(b"unused")
    for args in (["sign", str(tmp_path / "L"), "--key", str(tmp_path / "k.pem")],
                 ["verify", str(tmp_path / "L"), "--key", str(tmp_path / "k.pem")]):
        result = subprocess.run([sys.executable, "-m", "hellocontainer", *args],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == ("hellocontainer: error: signing needs the Python package "
                                 "'cryptography': install hellocontainer[sign] (Yocto: "
                                 "python3-cryptography-native, Buildroot: "
                                 "host-python-cryptography)\n")
