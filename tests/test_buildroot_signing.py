"""The Buildroot package signing its image and bundle, and checking the bundle at boot.

Plain make on the tree's real external.mk (tests/test_buildroot_external.py's harness): what
the target gets with the verify options (the public key, the script that checks, the bundle at
its path), and, where this packager signs images, a signed bundle from a key given only in the
environment, whose bytes reach no file of the output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_yocto_signing import _build_signs_images

import test_buildroot_external
from conftest import require_tool
from test_buildroot_external import (
    buildroot,
    buildroot_arch,
    buildroot_make,
    buildroot_target_overlay,
    merge_defconfig,
    needs_buildroot,
    write_config,
)

# The harness's module fixtures, for this module too.
host_dir = test_buildroot_external.host_dir
make_env = test_buildroot_external.make_env

PUBLIC = "/etc/hellocontainer/keys/hello.pub"
DATA_BUNDLE = "/data/hello-bundle"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("openssl", "openssl")
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "cosign.key", folder / "cosign.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", private], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True,
                   capture_output=True)
    return private, public


def test_verify_installs_the_public_key_and_the_script_checks_the_bundle_at_its_path(
        tmp_path: Path, hello_static: Path, keys: tuple[Path, Path]) -> None:
    _, public = keys
    target = buildroot_target_overlay(
        tmp_path, hello_static, buildroot_arch(),
        BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY="y",
        BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY_KEY=f'"{public}"',
        BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH=f'"{DATA_BUNDLE}"')
    assert (target / PUBLIC.lstrip("/")).read_bytes() == public.read_bytes()
    assert (target / DATA_BUNDLE.lstrip("/") / "config.json").is_file()
    script = (target / "etc/init.d/S95hellocontainer-hello").read_text()
    assert f'"{PUBLIC}"' in script and f'"{DATA_BUNDLE}/config.json"' in script
    assert "run --bundle /run/hellocontainer-hello.bundle hello" in script


@pytest.mark.skipif(not _build_signs_images(),
                    reason="build --sign-key (the image's signature) is not in this packager")
def test_verify_with_podman_signs_the_layout_and_the_script_checks_it(
        tmp_path: Path, hello_static: Path, keys: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = keys
    monkeypatch.setenv("HCTR_SIGN_KEY", str(private))
    target = buildroot_target_overlay(
        tmp_path, hello_static, buildroot_arch(), runtime="podman",
        BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY="y",
        BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY_KEY=f'"{public}"')
    assert (target / PUBLIC.lstrip("/")).read_bytes() == public.read_bytes()
    layout = target / "usr/share/hellocontainer/hello-oci"
    signatures = [p for p in (layout / "blobs" / "sha256").iterdir()
                  if b"dev.cosignproject.cosign/signature" in p.read_bytes()]
    assert len(signatures) == 1
    assert not (target / "usr/share/hellocontainer/hello-bundle").exists()
    script = (target / "etc/init.d/S95hellocontainer-hello").read_text()
    assert f'"{PUBLIC}"' in script
    assert 'cp -a "/usr/share/hellocontainer/hello-oci/blobs/sha256"' in script
    assert "pull --quiet \"oci:/run/hellocontainer/verified/hello:latest\"" in script


@pytest.mark.parametrize("symbols,expected", [
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY": "y"},
     "BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY is set, but BR2_PACKAGE_HELLOCONTAINER_HELLO_"
     "VERIFY_KEY names no public key"),
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH": '"/"'},
     'BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH="/" is not a directory inside the root'),
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH": '"data/hello"'},
     'BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH="data/hello" is not a directory inside'),
    ({"BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH": '"/data/../etc"'},
     "is not a directory inside the root"),
])
def test_impossible_verify_settings_stop_make(symbols: dict[str, str], expected: str,
                                              tmp_path: Path, host_dir: Path,
                                              make_env: dict[str, str]) -> None:
    config = write_config(tmp_path / ".config", {"BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART": "y"},
                          BR2_ARCH='"x86_64"', BR2_INIT_BUSYBOX="y", **symbols)
    # Buildroot sets BR_BUILDING=y for every goal that builds.
    result = buildroot_make("all:\n\t@echo configured\n", tmp_path, host_dir, make_env,
                            f"CONFIG={config}", "BR_BUILDING=y", check=False)
    assert result.returncode != 0
    assert expected in result.stderr


@pytest.mark.skipif(not _build_signs_images(),
                    reason="build --sign-key (the image's signature) is not in this packager")
def test_key_from_the_environment_signs_the_bundle_and_is_copied_nowhere(
        tmp_path: Path, hello_static: Path, keys: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = keys
    monkeypatch.setenv("HCTR_SIGN_KEY", str(private))
    target = buildroot_target_overlay(tmp_path, hello_static, buildroot_arch())
    assert (target / "usr/share/hellocontainer/hello-bundle/hellocontainer.sig").is_file()
    secret = private.read_bytes()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()
                and secret in p.read_bytes()]


@needs_buildroot
def test_buildroot_verify_selects_the_openssl_program_and_signing_host_cryptography(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    output = tmp_path / "output"
    merge_defconfig(output, "qemu_x86_64", extra=(
        "BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART=y\n"
        "BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY=y\n"
        f'BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY_KEY="{public}"\n'))
    config = set((output / ".config").read_text().splitlines())
    assert {"BR2_PACKAGE_OPENSSL=y", "BR2_PACKAGE_LIBOPENSSL=y",
            "BR2_PACKAGE_LIBOPENSSL_BIN=y"} <= config
    # The private key never reaches the configuration: it comes from the command line.
    assert not any(str(private) in line for line in config)
    script = buildroot(output, "printvars", "VARS=HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV")
    assert "--verify-key /etc/hellocontainer/keys/hello.pub" in " ".join(script.split())
    info = json.loads(buildroot(output, "hellocontainer-hello-show-info",
                                f"HCTR_SIGN_KEY={private}"))["hellocontainer-hello"]
    assert "host-python-cryptography" in info["dependencies"]
    unsigned = json.loads(buildroot(output, "hellocontainer-hello-show-info"))
    assert "host-python-cryptography" not in unsigned["hellocontainer-hello"]["dependencies"]
