"""Our signatures and cosign's, judged by the real tools: cosign 2.5 and skopeo 1.18 (trixie).

- A key made by `cosign generate-key-pair` signs our builds (its encrypted format opened here).
- `cosign verify --offline` accepts our signature of an image pushed with `skopeo copy --all`,
  found both ways cosign looks: the `sha256-<digest>.sig` tag and, with --experimental-oci11,
  the OCI 1.1 referrers (the registry's fallback tag, as Distribution 2.8 has no referrers API).
- `cosign save` writes a layout `cosign verify --local-image` accepts, and so does our `verify`.
- A signature cosign makes with a key passes our `verify`: its classic `.sig` image (through
  `cosign save`) and its OCI 1.1 referrer (pulled beside the image).
- After a round trip through a registry (`skopeo copy --all` both ways) the layout is the same
  bytes and still verifies.
- Exported for a `dir:` copy, the signature satisfies containers/image's `sigstoreSigned` policy
  in trixie's skopeo (Debian 12's is built without sigstore), and another key's does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_registry
from newer_tools import cosign
from newer_tools import skopeo as new_skopeo
from test_registry import skopeo, tagged_digest

from conftest import require_tool

TAG = "1.0"
PASSWORD = "correct horse"
SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
IDENTITY = "registry.example.com/hello"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a private Distribution 2.8 registry (test_registry.py's, started anew)."""
    yield from test_registry.registry.__wrapped__(tmp_path_factory)


def run(argv: list[str | os.PathLike[str]], env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, f"{argv[-3:]} exited {result.returncode}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cosign's HOME: nothing of the machine's user (no ~/.sigstore, no docker credentials)."""
    return tmp_path_factory.mktemp("cosign-home")


def run_cosign(home: Path, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([*cosign(), *map(str, args)], env={"HOME": str(home), "COSIGN_PASSWORD": PASSWORD},
               check=check)


@pytest.fixture(scope="module")
def cosign_keys(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two key pairs made by `cosign generate-key-pair` (encrypted with PASSWORD)."""
    folder = tmp_path_factory.mktemp("cosign-keys")
    keys = {}
    for name in ("good", "other"):
        subprocess.run([*cosign(), "generate-key-pair", "--output-key-prefix", name], cwd=folder,
                       check=True, capture_output=True,
                       env={**os.environ, "HOME": str(home), "COSIGN_PASSWORD": PASSWORD})
        keys[name], keys[f"{name}.pub"] = folder / f"{name}.key", folder / f"{name}.pub"
    assert keys["good"].read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    return keys


@pytest.fixture(scope="module")
def signed(hello_static: Path, cosign_keys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built with an SBOM, signed at build time with cosign's key (its passphrase from
    COSIGN_PASSWORD, as cosign reads it)."""
    out = tmp_path_factory.mktemp("signed") / "hello"
    run([sys.executable, "-m", "hellocontainer", "build", hello_static,
         "--output", out, "--tag", TAG, "--sbom", "--sign-key", cosign_keys["good"],
         "--sign-identity", IDENTITY, "-q"],
        env={"SOURCE_DATE_EPOCH": "1700000000", "COSIGN_PASSWORD": PASSWORD})
    return out


def index_of(layout: Path) -> dict:
    digest = tagged_digest(layout, TAG)
    return json.loads((layout / "blobs" / "sha256" / digest[7:]).read_text())


def image_and_signature(layout: Path) -> tuple[dict, dict]:
    """The image's index entry and its signature's (the build lists the image's first)."""
    manifests = index_of(layout)["manifests"]
    image = manifests[0]
    for entry in manifests[1:]:
        document = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
        if document.get("artifactType") == SIG_TYPE and \
                document["subject"]["digest"] == image["digest"]:
            return image, entry
    raise AssertionError("no signature of the image in the index")


def push(layout: Path, registry: str, name: str) -> str:
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:{TAG}",
           f"docker://{registry}/{name}:{TAG}")
    return f"{registry}/{name}"


def test_cosigns_encrypted_key_opens_to_the_key_of_its_public_half(cosign_keys,
                                                                   monkeypatch) -> None:
    from hellocontainer.provenance.signing import PASSPHRASE_ENV, SigningError, load_signing_key

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    key = load_signing_key(cosign_keys["good"])
    assert key.public_pem() == cosign_keys["good.pub"].read_bytes()
    monkeypatch.setenv(PASSPHRASE_ENV, "not the password")  # ours comes first
    with pytest.raises(SigningError, match="wrong password"):
        load_signing_key(cosign_keys["good"])


def test_cosign_verifies_our_signature_by_its_sig_tag(registry, signed, home, cosign_keys) -> None:
    repository = push(signed, registry, "hello-sig")
    image, sig = image_and_signature(signed)
    # cosign's tag scheme: the signature manifest (the same bytes) under sha256-<hex>.sig.
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{repository}@{sig['digest']}",
           f"docker://{repository}:sha256-{image['digest'][7:]}.sig")
    result = run_cosign(home, "verify", "--key", cosign_keys["good.pub"], "--offline",
                        "--insecure-ignore-tlog", "--allow-insecure-registry",
                        f"{repository}@{image['digest']}")
    (claim,) = json.loads(result.stdout)
    assert claim["critical"]["image"]["docker-manifest-digest"] == image["digest"]
    assert claim["critical"]["identity"]["docker-reference"] == IDENTITY
    other = run_cosign(home, "verify", "--key", cosign_keys["other.pub"], "--offline",
                       "--insecure-ignore-tlog", "--allow-insecure-registry",
                       f"{repository}@{image['digest']}", check=False)
    assert other.returncode != 0


def test_cosign_verifies_an_ed25519_signature(registry, hello_static, home, hellocontainer,
                                              tmp_path) -> None:
    """Ed25519, deterministic by construction, is a key type cosign verifies too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private, public = tmp_path / "ed.pem", tmp_path / "ed.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    layout = tmp_path / "ed"
    hellocontainer("build", hello_static, "--output", layout, "--tag", TAG, "--sign-key", private,
                   "-q")
    repository = push(layout, registry, "hello-ed25519")
    image, sig = image_and_signature(layout)
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{repository}@{sig['digest']}",
           f"docker://{repository}:sha256-{image['digest'][7:]}.sig")
    run_cosign(home, "verify", "--key", public, "--offline", "--insecure-ignore-tlog",
               "--allow-insecure-registry", f"{repository}@{image['digest']}")


def test_cosign_finds_our_signature_as_an_oci_1_1_referrer(registry, signed, home,
                                                           cosign_keys) -> None:
    repository = push(signed, registry, "hello-referrers")
    image, sig = image_and_signature(signed)
    # Distribution 2.8 has no referrers API; clients then read the fallback tag, an index of
    # the referrers with their artifactType (image-spec 1.1, "Referrers Tag Schema").
    fallback = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [
        {"mediaType": sig["mediaType"], "digest": sig["digest"], "size": sig["size"],
         "artifactType": SIG_TYPE}]}).encode()
    request = urllib.request.Request(
        f"http://{repository.replace('/', '/v2/', 1)}/manifests/sha256-{image['digest'][7:]}",
        data=fallback, method="PUT", headers={"Content-Type": MEDIA_INDEX})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
    args = ["verify", "--key", cosign_keys["good.pub"], "--offline", "--insecure-ignore-tlog",
            "--allow-insecure-registry", f"{repository}@{image['digest']}"]
    run_cosign(home, *args[:1], "--experimental-oci11", *args[1:])
    # Without the OCI 1.1 lookup cosign finds nothing there: the referrer was what it used.
    assert "no signatures found" in run_cosign(home, *args, check=False).stderr


def test_cosign_save_layout_verifies_with_cosign_and_with_us(registry, signed, home, cosign_keys,
                                                             hellocontainer, tmp_path) -> None:
    repository = push(signed, registry, "hello-save")
    image, sig = image_and_signature(signed)
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{repository}@{sig['digest']}",
           f"docker://{repository}:sha256-{image['digest'][7:]}.sig")
    saved = tmp_path / "saved"
    run_cosign(home, "save", "--allow-insecure-registry", "--dir", saved,
               f"{repository}@{image['digest']}")
    run_cosign(home, "verify", "--key", cosign_keys["good.pub"], "--offline",
               "--insecure-ignore-tlog", "--local-image", saved)
    result = hellocontainer("verify", saved, "--key", cosign_keys["good.pub"])
    assert f"verified with {cosign_keys['good.pub']}" in result.stdout
    assert image["digest"] in result.stdout


def test_a_signature_cosign_makes_passes_our_verify(registry, hello_static, home, cosign_keys,
                                                    hellocontainer, tmp_path) -> None:
    plain = tmp_path / "plain"
    hellocontainer("build", hello_static, "--output", plain, "--tag", TAG, "-q")
    repository = push(plain, registry, "hello-cosign-signed")
    digest = tagged_digest(plain, TAG)
    run_cosign(home, "sign", "--yes", "--key", cosign_keys["good"], "--tlog-upload=false",
               "--allow-insecure-registry", f"{repository}@{digest}")
    saved = tmp_path / "saved"
    run_cosign(home, "save", "--allow-insecure-registry", "--dir", saved, f"{repository}@{digest}")
    result = hellocontainer("verify", saved, "--key", cosign_keys["good.pub"])
    assert result.stdout.startswith(f"{saved}: verified with ")
    other = hellocontainer("verify", saved, "--key", cosign_keys["other.pub"], check=False)
    assert other.returncode == 1 and "signed with another key" in other.stderr


def test_cosigns_oci_1_1_referrer_signature_passes_our_verify(registry, hello_static, home,
                                                              cosign_keys, hellocontainer,
                                                              tmp_path) -> None:
    """cosign's own OCI 1.1 form (config.mediaType names the type; experimental in 2.5), pulled
    into the layout beside the image as an untagged index.json entry, as OCI 1.1 tools do."""
    layout = tmp_path / "plain"
    hellocontainer("build", hello_static, "--output", layout, "--tag", TAG, "-q")
    repository = push(layout, registry, "hello-cosign-oci11")
    digest = tagged_digest(layout, TAG)
    run([*cosign(), "sign", "--yes", "--key", cosign_keys["good"], "--tlog-upload=false",
         "--registry-referrers-mode=oci-1-1", "--allow-insecure-registry",
         f"{repository}@{digest}"],
        env={"HOME": str(home), "COSIGN_PASSWORD": PASSWORD, "COSIGN_EXPERIMENTAL": "1"})
    fallback = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                                 f"docker://{repository}:sha256-{digest[7:]}"))
    (referrer,) = fallback["manifests"]
    assert referrer["artifactType"] == SIG_TYPE
    skopeo("copy", "--src-tls-verify=false", f"docker://{repository}@{referrer['digest']}",
           f"oci:{layout}")
    result = hellocontainer("verify", f"{layout}:{TAG}", "--key", cosign_keys["good.pub"])
    assert digest in result.stdout
    other = hellocontainer("verify", f"{layout}:{TAG}", "--key", cosign_keys["other.pub"],
                           check=False)
    assert other.returncode == 1


def test_signature_survives_a_registry_round_trip(registry, signed, cosign_keys, hellocontainer,
                                                  tmp_path) -> None:
    repository = push(signed, registry, "hello-round-trip")
    back = tmp_path / "back"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{repository}:{TAG}",
           f"oci:{back}:{TAG}")
    assert tagged_digest(back, TAG) == tagged_digest(signed, TAG)
    blobs = sorted(p.name for p in (signed / "blobs" / "sha256").iterdir())
    assert sorted(p.name for p in (back / "blobs" / "sha256").iterdir()) == blobs
    hellocontainer("verify", f"{back}:{TAG}", "--key", cosign_keys["good.pub"])


def policy(folder: Path, public: Path) -> Path:
    path = folder / f"policy-{public.stem}.json"
    path.write_text(json.dumps({
        "default": [{"type": "reject"}],
        "transports": {
            "dir": {"": [{"type": "sigstoreSigned", "keyPath": str(public),
                          "signedIdentity": {"type": "exactRepository",
                                             "dockerRepository": IDENTITY}}]},
            "oci": {"": [{"type": "insecureAcceptAnything"}]}}}))
    return path


def test_exported_signature_satisfies_a_sigstore_signed_policy(signed, cosign_keys,
                                                               hellocontainer, tmp_path) -> None:
    require_tool("skopeo", "skopeo")
    copy = tmp_path / "dir-copy"
    skopeo("copy", f"oci:{signed}:{TAG}", f"dir:{copy}")
    written = hellocontainer("verify", f"{signed}:{TAG}", "--key", cosign_keys["good.pub"],
                             "--to-dir", copy).stdout
    assert f"wrote {copy / 'signature-1'}" in written
    assert (copy / "signature-1").read_bytes().startswith(b"\x00sigstore-json\n")

    def use(public: Path) -> subprocess.CompletedProcess[str]:
        out = tmp_path / f"out-{public.stem}"
        return run([*new_skopeo(), "--policy", policy(tmp_path, public), "copy",
                    "--remove-signatures", f"dir:{copy}", f"oci:{out}:{TAG}"], check=False)

    accepted = use(cosign_keys["good.pub"])
    assert accepted.returncode == 0, accepted.stderr
    rejected = use(cosign_keys["other.pub"])
    assert rejected.returncode != 0
    assert "cryptographic signature verification failed" in rejected.stderr
    (copy / "signature-1").unlink()
    unsigned = use(cosign_keys["good.pub"])
    assert unsigned.returncode != 0 and "no signature exists" in unsigned.stderr


def test_an_all_copy_gets_each_instances_signature(signed, cosign_keys, hellocontainer,
                                                   tmp_path) -> None:
    """`--all` copies: each image's and SBOM's signature beside its manifest; the policy then
    still refuses the copy, as containers/image wants every instance signed, the signature
    artifacts too (README says so)."""
    copy = tmp_path / "all"
    skopeo("copy", "--all", f"oci:{signed}:{TAG}", f"dir:{copy}")
    image, sbom = index_of(signed)["manifests"][:2]
    hellocontainer("verify", f"{signed}:{TAG}", "--key", cosign_keys["good.pub"], "--to-dir", copy)
    assert sorted(p.name for p in copy.glob("*.signature-*")) == sorted(
        f"{d['digest'][7:]}.signature-1" for d in (image, sbom))
    refused = run([*new_skopeo(), "--policy", policy(tmp_path, cosign_keys["good.pub"]), "copy",
                   "--all", "--remove-signatures", f"dir:{copy}", f"oci:{tmp_path / 'o'}:{TAG}"],
                  check=False)
    assert refused.returncode != 0 and "from manifest list" in refused.stderr
    other = tmp_path / "other"
    skopeo("copy", f"oci:{signed}:{TAG}", f"dir:{other}")
    (other / "manifest.json").write_text("{}")
    wrong = hellocontainer("verify", f"{signed}:{TAG}", "--key", cosign_keys["good.pub"],
                           "--to-dir", other, check=False)
    assert wrong.returncode == 1 and "not a copy of" in wrong.stderr
