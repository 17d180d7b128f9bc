"""`build --sign-key`, `sign` and `verify` on layouts: what a packager and a reviewer see.

Signed layouts are still byte-identical on rebuild, still run with podman by tag and without,
and `verify` names each way a layout can fail to be proven: a changed byte, no signature, a
signature by another key, a payload made for another image. The private key's bytes appear
nowhere in what is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hellocontainer.oci.model import Descriptor, canonical_json
from hellocontainer.provenance import signature, signing

TAG = "1.0"
SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def write_key(folder: Path, name: str, key: object) -> tuple[Path, Path]:
    private = folder / f"{name}.key"
    private.write_bytes(key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public = folder / f"{name}.pub"
    public.write_bytes(key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("keys")
    return {"p256": write_key(folder, "p256", ec.generate_private_key(ec.SECP256R1())),
            "other": write_key(folder, "other", ec.generate_private_key(ec.SECP256R1())),
            "ed25519": write_key(folder, "ed25519", ed25519.Ed25519PrivateKey.generate())}


def build(hellocontainer, binary: Path, out: Path, *extra: object) -> Path:
    hellocontainer("build", binary, "--output", out, "--tag", TAG, "-q", *extra)
    return out


def files(layout: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*"))
            if p.is_file()}


def index_of(layout: Path) -> dict:
    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    return json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())


def manifest_platform(layout: Path) -> str:
    platform = index_of(layout)["manifests"][0]["platform"]
    return f"{platform['os']}/{platform['architecture']}"


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def retag(layout: Path, index: dict) -> None:
    """Point the tag at a changed index (a forger's edit, with every digest made consistent)."""
    data = canonical_json(index)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    document = json.loads((layout / "index.json").read_text())
    document["manifests"][0].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(document))


def verify(hellocontainer, layout: Path, public: Path, check: bool = False):
    return hellocontainer("verify", f"{layout}:{TAG}", "--key", public, check=check)


@pytest.fixture(scope="module")
def signed(hello_static: Path, keys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout built with an SBOM and signed at build time (never modified by the tests)."""
    out = tmp_path_factory.mktemp("signed") / "hello"
    subprocess.run([sys.executable, "-m", "hellocontainer", "build", hello_static, "--output",
                    out, "--tag", TAG, "--sbom", "--sign-key", keys["p256"][0], "-q"],
                   check=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    return out


def copy(layout: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(layout, target)
    return target


def test_signed_build_verifies_with_one_line(hellocontainer, signed, keys) -> None:
    result = verify(hellocontainer, signed, keys["p256"][1], check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stderr == ""
    assert lines[0].startswith(f"{signed}:{TAG}: verified with {keys['p256'][1]}: linux/")
    assert "and 1 referrer (SBOM)" in lines[0]


def test_image_and_sbom_each_carry_one_cosign_signature(signed) -> None:
    index = index_of(signed)
    image, sbom, *signatures = index["manifests"]
    assert [json.loads(blob_path(signed, s["digest"]).read_text())["artifactType"]
            for s in signatures] == [SIG_TYPE, SIG_TYPE]
    subjects = []
    for entry in signatures:
        assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
        manifest = json.loads(blob_path(signed, entry["digest"]).read_text())
        (layer,) = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
        assert "dev.cosignproject.cosign/signature" in layer["annotations"]
        payload = json.loads(blob_path(signed, layer["digest"]).read_text())
        assert payload["critical"]["type"] == "cosign container image signature"
        assert payload["critical"]["image"]["docker-manifest-digest"] == manifest["subject"]["digest"]
        subjects.append(manifest["subject"]["digest"])
    assert subjects == [image["digest"], sbom["digest"]]


def test_two_signed_builds_are_byte_identical(hellocontainer, hello_static, keys, tmp_path) -> None:
    a = build(hellocontainer, hello_static, tmp_path / "a", "--sbom", "--sign-key", keys["p256"][0])
    b = build(hellocontainer, hello_static, tmp_path / "b", "--sbom", "--sign-key", keys["p256"][0])
    assert files(a) == files(b)


def test_signing_later_gives_the_bytes_of_signing_at_build(hellocontainer, hello_static, signed,
                                                           keys, tmp_path) -> None:
    later = build(hellocontainer, hello_static, tmp_path / "later", "--sbom")
    result = hellocontainer("sign", f"{later}:{TAG}", "--key", keys["p256"][0])
    assert result.stdout.endswith(" 2 signatures added\n")
    hellocontainer("gc", later)  # the unsigned index the tag named before
    assert files(later) == files(signed)
    again = hellocontainer("sign", f"{later}:{TAG}", "--key", keys["p256"][0])
    assert again.stdout.endswith(" signed already\n")
    assert files(later) == files(signed)


def test_a_changed_key_gives_a_new_signature(hellocontainer, hello_static, keys, tmp_path) -> None:
    a = build(hellocontainer, hello_static, tmp_path / "a", "--sign-key", keys["p256"][0])
    b = build(hellocontainer, hello_static, tmp_path / "b", "--sign-key", keys["other"][0])
    assert index_of(a)["manifests"][1] != index_of(b)["manifests"][1]
    verify(hellocontainer, b, keys["other"][1], check=True)


def test_a_second_key_adds_its_signatures_beside_the_first(hellocontainer, signed, keys,
                                                           tmp_path) -> None:
    layout = copy(signed, tmp_path)
    hellocontainer("sign", layout, "--key", keys["ed25519"][0])
    for name in ("p256", "ed25519"):
        verify(hellocontainer, layout, keys[name][1], check=True)
    assert len(index_of(layout)["manifests"]) == 6
    differences = hellocontainer("diff", f"{signed}:{TAG}", f"{layout}:{TAG}", check=False)
    assert differences.returncode == 1
    assert differences.stdout.splitlines() == [
        f"tag {TAG}: platform {platform} {SIG_TYPE} #2 only in B"
        for platform in (f"{manifest_platform(signed)} application/spdx+json",
                         manifest_platform(signed))]


def test_signed_layout_is_valid_inspectable_and_survives_gc(hellocontainer, signed,
                                                            tmp_path) -> None:
    layout = copy(signed, tmp_path)
    hellocontainer("validate", "--strict", layout)
    report = json.loads(hellocontainer("inspect", "--json", layout).stdout)
    (manifest,) = report["images"][0]["manifests"]
    sbom, image_signature = manifest["referrers"]
    assert image_signature["artifactType"] == SIG_TYPE
    assert [r["artifactType"] for r in sbom["referrers"]] == [SIG_TYPE]
    before = files(layout)
    assert hellocontainer("gc", layout).stdout.endswith("removed 0 files (0 bytes)\n")
    assert files(layout) == before


def test_podman_runs_the_signed_layout_with_and_without_tag(podman, signed) -> None:
    for ref in (f"oci:{signed}", f"oci:{signed}:{TAG}"):
        assert podman("run", "--rm", "--net=none", ref).stdout == "Hello container!\n"


def test_unsigned_layout_fails_naming_the_missing_signature(hellocontainer, hello_static, keys,
                                                            tmp_path) -> None:
    layout = build(hellocontainer, hello_static, tmp_path / "plain")
    result = verify(hellocontainer, layout, keys["p256"][1])
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "signature check failed: the linux/" in result.stderr
    assert "has no signature; sign it with 'hellocontainer sign'" in result.stderr


def test_another_key_fails(hellocontainer, signed, keys) -> None:
    result = verify(hellocontainer, signed, keys["other"][1])
    assert result.returncode == 1
    assert f"verifies with {keys['other'][1]} (signed with another key" in result.stderr


@pytest.mark.parametrize("what", ["layer", "config", "sbom", "payload"])
def test_a_flipped_byte_anywhere_fails_naming_the_blob(hellocontainer, signed, keys, tmp_path,
                                                       what) -> None:
    layout = copy(signed, tmp_path)
    index = index_of(layout)
    image = json.loads(blob_path(layout, index["manifests"][0]["digest"]).read_text())
    target = {"layer": image["layers"][0]["digest"], "config": image["config"]["digest"],
              "sbom": json.loads(blob_path(layout, index["manifests"][1]["digest"]).read_text())
              ["layers"][0]["digest"],
              "payload": json.loads(blob_path(layout, index["manifests"][2]["digest"]).read_text())
              ["layers"][0]["digest"]}[what]
    path = blob_path(layout, target)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify(hellocontainer, layout, keys["p256"][1])
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "signature check failed" in result.stderr and target in result.stderr


def test_a_changed_program_behind_a_rewritten_manifest_fails(hellocontainer, signed, keys,
                                                             tmp_path) -> None:
    """A forger who rewrites the manifest (new layer digest) and the index to match: the
    signature no longer names that manifest."""
    layout = copy(signed, tmp_path)
    index = index_of(layout)
    old = index["manifests"][0]
    image = json.loads(blob_path(layout, old["digest"]).read_text())
    image["annotations"] = {"forged": "yes"}
    data = canonical_json(image)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    index["manifests"][0] = {**old, "digest": digest, "size": len(data)}
    retag(layout, index)
    result = verify(hellocontainer, layout, keys["p256"][1])
    assert result.returncode == 1
    assert f" image {digest} has no signature" in result.stderr


def test_a_payload_for_another_image_fails(hellocontainer, signed, keys, tmp_path) -> None:
    """A genuine signature by the right key, for some other image, attached to this one."""
    layout = copy(signed, tmp_path)
    index = index_of(layout)
    image = index["manifests"][0]
    other = Descriptor(image["mediaType"], "sha256:" + "ab" * 32, 1234)
    key = signing.load_signing_key(keys["p256"][0])
    artifact = signature.sign(key, other)
    manifest = json.loads(artifact.manifest)
    manifest["subject"]["digest"], manifest["subject"]["size"] = image["digest"], image["size"]
    for _, data in artifact.blobs()[:2]:
        blob_path(layout, "sha256:" + hashlib.sha256(data).hexdigest()).write_bytes(data)
    data = canonical_json(manifest)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    # The build's own signature of the image goes; the forged one takes its place.
    index["manifests"][2] = {**index["manifests"][2], "digest": digest, "size": len(data)}
    retag(layout, index)
    result = verify(hellocontainer, layout, keys["p256"][1])
    assert result.returncode == 1
    assert f"is for another image ({other.digest})" in result.stderr


def test_the_private_key_is_written_nowhere(hellocontainer, hello_static, keys, tmp_path) -> None:
    spec = tmp_path / "spec" / "image.yaml"
    spec.parent.mkdir()
    shutil.copy(keys["p256"][0], spec.parent / "signing.key")
    spec.write_text("sign_key: signing.key\nsbom: true\n")  # relative to the spec file
    layout = tmp_path / "out"
    hellocontainer("build", hello_static, "--spec", spec, "--output", layout, "--tag", TAG,
                   "--archive", tmp_path / "out.tar", "-q")
    key = serialization.load_pem_private_key(keys["p256"][0].read_bytes(), None)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[attr-defined]
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    written = [*list(files(layout).values()), (tmp_path / "out.tar").read_bytes()]
    for data in written:
        for secret in (scalar, der, keys["p256"][0].read_bytes(), b"signing.key"):
            assert secret not in data
    verify(hellocontainer, layout, keys["p256"][1], check=True)


def test_key_errors_are_one_line(hellocontainer, hello_static, keys, tmp_path) -> None:
    missing = hellocontainer("build", hello_static, "--output", tmp_path / "o", "--sign-key",
                             tmp_path / "nope.key", check=False)
    assert missing.returncode == 1 and not (tmp_path / "o").exists()
    assert missing.stderr == (f"hellocontainer: error: cannot read signing key "
                              f"{tmp_path / 'nope.key'}: No such file or directory\n")
    public_as_private = hellocontainer("sign", tmp_path, "--key", keys["p256"][1], check=False)
    assert public_as_private.returncode == 1 and public_as_private.stderr.count("\n") == 1
    assert "cannot load signing key" in public_as_private.stderr


def test_an_index_of_signed_images_keeps_every_signature_and_sign_signs_each_platform(
        hellocontainer, keys, tmp_path) -> None:
    from foreign import build_static_hello, cross_compilers

    sources, unsigned = [], []
    for oci in ("amd64", "arm64"):
        binary = build_static_hello(cross_compilers()[oci], tmp_path)
        for signed_at_build, into in ((True, sources), (False, unsigned)):
            layout = tmp_path / f"{oci}-{signed_at_build}"
            extra = ["--sign-key", keys["p256"][0]] if signed_at_build else []
            build(hellocontainer, binary, layout, "--path", "/hello", "--sbom", *extra)
            into.append(f"{layout}:{TAG}")
    joined = tmp_path / "joined"
    hellocontainer("index", "--output", joined, "--tag", TAG, *sources)
    hellocontainer("validate", "--strict", joined)
    result = verify(hellocontainer, joined, keys["p256"][1], check=True).stdout
    assert "linux/amd64 sha256:" in result and "linux/arm64 sha256:" in result
    assert "and 2 referrers (SBOM)" in result
    later = tmp_path / "later"
    hellocontainer("index", "--output", later, "--tag", TAG, *unsigned)
    assert verify(hellocontainer, later, keys["p256"][1]).returncode == 1
    signed = hellocontainer("sign", f"{later}:{TAG}", "--key", keys["p256"][0]).stdout
    assert signed.endswith(" 4 signatures added\n")  # two images, two SBOMs
    verify(hellocontainer, later, keys["p256"][1], check=True)


def test_a_tag_moved_while_signing_is_not_overwritten(hello_static, keys, tmp_path,
                                                      monkeypatch) -> None:
    """A build that retags the layout between `sign` reading the tag and publishing wins: the
    signed index of the old image is not published over it."""
    import hellocontainer.image.signing as signing_module

    layout = tmp_path / "race"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-m", "hellocontainer", "build", hello_static, "--output",
                    layout, "--tag", TAG, "-q"], check=True, env=env)
    real_publish = signing_module.publish

    def build_then_publish(*args, **kwargs):
        subprocess.run([sys.executable, "-m", "hellocontainer", "build", hello_static, "--output",
                        layout, "--tag", TAG, "--env", "RACE=1", "-q"], check=True, env=env)
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(signing_module, "publish", build_then_publish)
    before_sign = json.loads((layout / "index.json").read_text())
    with pytest.raises(signing_module.LayoutError, match=f"tag {TAG} of .* changed while"):
        signing_module.sign_layout(layout, TAG, signing.load_signing_key(keys["p256"][0]))
    after = json.loads((layout / "index.json").read_text())["manifests"]
    assert after != before_sign["manifests"]  # the racing build's tag stands
    assert json.loads(blob_path(layout, after[0]["digest"]).read_text())["mediaType"] == \
        "application/vnd.oci.image.manifest.v1+json"
