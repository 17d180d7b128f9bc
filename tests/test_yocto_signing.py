"""hellocontainer.bbclass signing the image and its bundle, and checking the bundle at boot.

The class's own functions on a dict datastore (tests/yocto_class.py), as in
test_yocto_autostart.py: which calls, flags and packages the keys add, what the parse refuses,
and what ${D} holds afterwards (the signed bundle, the public key, the init script that checks
it) without the private key anywhere. tests/test_yocto_layer.py holds the signature table
BitBake checks when a checkout is given.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from yocto_class import BBFatal, call, class_appends, datastore, recipe_values, yocto_oci_files

KEY_PATH = "/etc/hellocontainer/keys/hello-prebuilt.pub"
DATA_BUNDLE = "/data/hello-bundle"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("openssl", "openssl")
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "sign.pem", folder / "sign.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", private], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True,
                   capture_output=True)
    return private, public


def recipe(tmp_path: Path, **variables: str):
    return datastore(recipe_values(tmp_path, tmp_path / "hello", "x86_64", **variables))


def test_sign_key_reaches_build_and_bundle_and_verify_key_the_autostart(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    d = recipe(tmp_path, HELLOCONTAINER_SIGN_KEY=str(private),
               HELLOCONTAINER_VERIFY_KEY=str(public),
               HELLOCONTAINER_AUTOSTART_BUNDLE_DIR=DATA_BUNDLE)
    build = call("build_argv", d, "/p", "/l")
    assert build[build.index("--sign-key") + 1] == str(private)
    bundle, autostart = call("target_argvs", d, "/l")
    assert bundle[bundle.index("--sign-key") + 1] == str(private)
    assert autostart[autostart.index("--verify-key") + 1] == KEY_PATH
    assert autostart[autostart.index("--bundle") + 1] == DATA_BUNDLE
    assert KEY_PATH in call("installed_paths", d)


def test_no_keys_add_no_flags(tmp_path: Path) -> None:
    d = recipe(tmp_path)
    argvs = [call("build_argv", d, "/p", "/l"), *call("target_argvs", d, "/l")]
    assert not any(flag in argv for argv in argvs for flag in ("--sign-key", "--verify-key"))
    assert call("openssl_package", d) == ""
    assert call("key_file_checksums", d) == ""


def test_verify_key_adds_openssl_and_keys_are_in_the_signature_by_content(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    d = recipe(tmp_path, HELLOCONTAINER_SIGN_KEY=str(private),
               HELLOCONTAINER_VERIFY_KEY=str(public))
    assert call("openssl_package", d) == "openssl-bin"  # oe-core's openssl recipe's program
    assert "openssl_package(d)" in class_appends("RDEPENDS:${PN}-oci")
    assert "${HELLOCONTAINER_VERIFY_KEY_PATH}" in class_appends("FILES:${PN}-oci")
    # By content, and by name without the folder ("/./": BitBake hashes what follows it).
    assert call("key_file_checksums", d) == \
        f"{private.parent}/./{private.name}:True {public.parent}/./{public.name}:True"


@pytest.mark.parametrize("variables,expected", [
    ({"HELLOCONTAINER_SIGN_KEY": "/nowhere/cosign.key"},
     'HELLOCONTAINER_SIGN_KEY = "/nowhere/cosign.key" is not a file on this machine'),
    ({"HELLOCONTAINER_VERIFY_KEY": "relative.pub"},
     'HELLOCONTAINER_VERIFY_KEY = "relative.pub" is not a file on this machine'),
])
def test_a_key_that_is_not_there_stops_the_parse(variables: dict[str, str], expected: str,
                                                 tmp_path: Path) -> None:
    with pytest.raises(BBFatal, match=expected):
        call("check_keys", recipe(tmp_path, **variables))


def test_verify_key_with_podman_checks_the_layout_at_boot(tmp_path: Path,
                                                         keys: tuple[Path, Path]) -> None:
    private, public = keys
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART="podman", HELLOCONTAINER_SIGN_KEY=str(private),
               HELLOCONTAINER_VERIFY_KEY=str(public))
    call("check_keys", d)
    build = call("build_argv", d, "/p", "/l")
    assert build[build.index("--sign-key") + 1] == str(private)  # the signature the board checks
    (autostart,) = call("target_argvs", d, "/l")
    assert autostart[autostart.index("--verify-key") + 1] == KEY_PATH
    assert autostart[autostart.index("--podman-root") + 1].startswith("/run/")
    assert call("openssl_package", d) == "openssl-bin"


@pytest.mark.parametrize("variables,expected", [
    ({"HELLOCONTAINER_AUTOSTART": "podman", "HELLOCONTAINER_PODMAN_ROOT": "/var/lib/hello"},
     'HELLOCONTAINER_PODMAN_ROOT = "/var/lib/hello" outlives a reboot'),
    ({"HELLOCONTAINER_AUTOSTART": ""},
     "set HELLOCONTAINER_AUTOSTART to crun, runc or podman"),
])
def test_a_verify_key_without_a_checked_start_stops_the_parse(
        variables: dict[str, str], expected: str, tmp_path: Path,
        keys: tuple[Path, Path]) -> None:
    with pytest.raises(BBFatal, match=expected):
        call("check_keys", recipe(tmp_path, HELLOCONTAINER_VERIFY_KEY=str(keys[1]), **variables))


def test_a_bundle_on_a_data_partition_needs_none_installed(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_BUNDLE="0",
               HELLOCONTAINER_AUTOSTART_BUNDLE_DIR=DATA_BUNDLE)
    call("check_autostart", d)  # an update tool brings it: nothing to refuse
    (autostart,) = call("target_argvs", d, "/l")
    assert autostart[autostart.index("--bundle") + 1] == DATA_BUNDLE


def _build_signs_images() -> bool:
    """Whether this packager's `build` takes --sign-key (the image's own signature)."""
    from hellocontainer.cli import build

    parser = argparse.ArgumentParser()
    build.setup(parser)
    return any("--sign-key" in action.option_strings for action in parser._actions)


@pytest.mark.skipif(not _build_signs_images(),
                    reason="build --sign-key (the image's signature) is not in this packager")
def test_signed_install_holds_the_public_key_and_a_checked_bundle_and_never_the_private_key(
        tmp_path: Path, keys: tuple[Path, Path], hello_static: Path) -> None:
    private, public = keys
    image = yocto_oci_files(tmp_path, hello_static, "x86_64",
                            HELLOCONTAINER_SIGN_KEY=str(private),
                            HELLOCONTAINER_VERIFY_KEY=str(public))
    assert (image / KEY_PATH.lstrip("/")).read_bytes() == public.read_bytes()
    bundle = image / "usr/share/hellocontainer/hello-prebuilt-bundle"
    assert (bundle / "hellocontainer.sig").is_file()
    script = (image / "etc/init.d/hellocontainer-hello-prebuilt").read_text()
    assert f'"{KEY_PATH}"' in script
    # The private key's bytes are nowhere below the recipe's folders (WORKDIR, ${D}).
    secret = private.read_bytes()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and secret in p.read_bytes()]
