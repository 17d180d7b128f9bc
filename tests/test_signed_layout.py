"""A signed image layout is checked on the board with BusyBox and openssl before podman reads it.

The board's shell (the functions the podman init script and unit carry with --verify-key) runs
here under Debian's busybox-static with a PATH of its applets and the host's openssl, against
layouts signed by `hellocontainer build --sign-key`: a good one passes and leaves a copy whose
index.json names the signed image alone, which podman pulls and runs; each kind of tampering
gives the one console line that names it, and leaves nothing to start.
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
from test_signed_bundle import board_path, make_key, run_board_shell

from conftest import Runner, podman_command, require_tool
from hellocontainer.board.autostart import autostart, systemd_unit, sysv_script

KEY = "/etc/hellocontainer/hello.pub"  # as the init script names it; the test maps it
LAYOUT = "/usr/share/hellocontainer/hello"
COPY = "/run/hellocontainer/verified/hello"
FAILED = "hello: signature check failed: "
GREETING = "Hello container!"


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board's PATH: BusyBox applets and openssl."""
    return board_path(tmp_path_factory.mktemp("busybox-bin"))


def board_functions(layout: Path, key: Path, copy: Path) -> str:
    """The podman init script's functions (without its command dispatch), paths mapped."""
    script = sysv_script(autostart("podman", "hello", layout=f"{LAYOUT}:latest", verify_key=KEY))
    script = script[:script.rindex('case "$1" in')]
    return script.replace(KEY, str(key)).replace(COPY, str(copy)).replace(LAYOUT, str(layout))


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def document(layout: Path, digest: str) -> dict:
    return json.loads(blob(layout, digest).read_bytes())


def image_of(layout: Path) -> dict[str, str]:
    """The digests of the tagged image's manifest, config and layer, and of its signature."""
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    children = document(layout, entry["digest"])["manifests"]
    manifest = children[0]["digest"]
    found = {"index": entry["digest"], "manifest": manifest,
             "config": document(layout, manifest)["config"]["digest"],
             "layer": document(layout, manifest)["layers"][0]["digest"]}
    signatures = [c["digest"] for c in children[1:]
                  if document(layout, c["digest"]).get("artifactType", "").startswith(
                      "application/vnd.dev.cosign")]
    if signatures:
        found["signature"] = signatures[0]
        found["payload"] = document(layout, signatures[0])["layers"][0]["digest"]
    return found


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("openssl", "openssl")
    work = tmp_path_factory.mktemp("keys")
    found = {}
    for kind in ("ecdsa", "ed25519", "other"):
        private, public = make_key(work, "ed25519" if kind == "ed25519" else "ecdsa-" + kind)
        found[f"{kind}.pem"], found[f"{kind}.pub"] = private, public
    return found


def build(hello: Path, out: Path, key: Path | None, *more: str) -> Path:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    signing = ["--sign-key", str(key)] if key else []
    subprocess.run([sys.executable, "-m", "hellocontainer", "build", hello, "--output", out,
                    "--tag", "latest", *signing, *more], env=env, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, hello_static: Path,
            keys: dict[str, Path]) -> dict[str, Path]:
    """hello's layout signed by each key, unsigned, and another image signed by the ECDSA key."""
    work = tmp_path_factory.mktemp("layouts")
    found = {kind: build(hello_static, work / kind, keys[f"{kind}.pem"])
             for kind in ("ecdsa", "ed25519", "other")}
    found["unsigned"] = build(hello_static, work / "unsigned", None)
    found["another image"] = build(hello_static, work / "another", keys["ecdsa.pem"],
                                   "--label", "version=2")
    found["sbom"] = build(hello_static, work / "sbom", keys["ecdsa.pem"], "--sbom",
                          "--sbom-supplier", "ACME", "--sbom-incomplete")
    return found


def check(busybox: Path, layout: Path, key: Path, tmp_path: Path) -> str:
    """What the board's check prints for `layout` (nothing: podman may copy from the copy)."""
    copy = tmp_path / "run" / "verified" / "hello"
    result = run_board_shell(busybox, board_functions(layout, key, copy) + "signature", tmp_path)
    assert result.stderr == ""
    assert result.returncode == 0
    return result.stdout


def copied(layouts: dict[str, Path], tmp_path: Path, kind: str = "ecdsa") -> Path:
    layout = tmp_path / "layout"
    shutil.copytree(layouts[kind], layout, symlinks=True)
    return layout


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_a_signed_layout_passes_and_its_copy_names_the_signed_image_alone(
        kind: str, layouts: dict[str, Path], keys: dict[str, Path], busybox_path: Path,
        tmp_path: Path) -> None:
    layout = layouts[kind]
    assert check(busybox_path, layout, keys[f"{kind}.pub"], tmp_path) == ""
    copy = tmp_path / "run" / "verified" / "hello"
    image = image_of(layout)
    size = blob(layout, image["manifest"]).stat().st_size
    assert json.loads((copy / "index.json").read_text()) == {
        "manifests": [{"annotations": {"org.opencontainers.image.ref.name": "latest"},
                       "digest": image["manifest"],
                       "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": size}],
        "mediaType": "application/vnd.oci.image.index.v1+json", "schemaVersion": 2}
    assert json.loads((copy / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    # The blobs are the layout's, byte for byte; nothing else is left beside the copy.
    assert sorted(p.name for p in (copy / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (layout / "blobs" / "sha256").iterdir())
    assert oct(copy.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in copy.parent.iterdir()) == ["hello"]


def test_a_signed_sbom_beside_the_image_is_not_what_podman_gets(
        layouts: dict[str, Path], keys: dict[str, Path], busybox_path: Path,
        tmp_path: Path) -> None:
    """Its manifest is signed too (an artifact, whose config is empty): the image is chosen."""
    layout = layouts["sbom"]
    signatures = [p for p in (layout / "blobs" / "sha256").iterdir()
                  if b"dev.cosignproject.cosign/signature" in p.read_bytes()]
    assert len(signatures) == 2
    assert check(busybox_path, layout, keys["ecdsa.pub"], tmp_path) == ""
    copy = tmp_path / "run" / "verified" / "hello"
    (entry,) = json.loads((copy / "index.json").read_text())["manifests"]
    assert entry["digest"] == image_of(layout)["manifest"]


def test_podman_runs_the_image_from_the_checked_copy(layouts: dict[str, Path],
                                                     keys: dict[str, Path], busybox_path: Path,
                                                     podman: Runner, tmp_path: Path) -> None:
    layout = copied(layouts, tmp_path)
    # An unsigned image put beside the signed one and tagged: the copy still names the signed.
    foreign = layouts["unsigned"]
    for path in (foreign / "blobs" / "sha256").iterdir():
        shutil.copyfile(path, layout / "blobs" / "sha256" / path.name)
    shutil.copyfile(foreign / "index.json", layout / "index.json")
    assert check(busybox_path, layout, keys["ecdsa.pub"], tmp_path) == ""
    copy = tmp_path / "run" / "verified" / "hello"
    podman("pull", "--quiet", f"oci:{copy}:latest")
    image = f"localhost{copy}:latest"
    inspected = json.loads(podman("image", "inspect", image).stdout)
    # The manifest pulled under this name. ("Digest" is the first manifest the store saw of the
    # image, which an earlier test may have pulled from another layout: same config, same
    # layers, so the same image.)
    assert f"localhost{copy}@{image_of(layouts['ecdsa'])['manifest']}" \
        in inspected[0]["RepoDigests"], inspected[0]["RepoDigests"]
    assert podman("run", "--rm", "--net=none", image).stdout.strip() == GREETING


def flip_layer_byte(layout: Path) -> str:
    layer = blob(layout, image_of(layout)["layer"])
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0x01
    layer.write_bytes(bytes(data))
    return f"blobs/sha256/{layer.name} was changed after signing"


def change_config_in_place(layout: Path) -> str:
    config = blob(layout, image_of(layout)["config"])
    data = json.loads(config.read_bytes())
    data["config"]["Entrypoint"] = ["/bin/evil"]
    config.write_text(json.dumps(data))
    return f"blobs/sha256/{config.name} was changed after signing"


def _add_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest


def change_config_consistently(layout: Path) -> str:
    """A new config, manifest and index, each under its own digest; the signed ones removed."""
    image = image_of(layout)
    config = document(layout, image["config"])
    config["config"]["Entrypoint"] = ["/bin/evil"]
    manifest = document(layout, image["manifest"])
    manifest["config"]["digest"] = _add_blob(layout, json.dumps(config).encode())
    manifest_data = json.dumps(manifest).encode()
    new_manifest = _add_blob(layout, manifest_data)
    index = document(layout, image["index"])
    index["manifests"][0]["digest"] = new_manifest
    index["manifests"][0]["size"] = len(manifest_data)
    index_data = json.dumps(index).encode()
    top = json.loads((layout / "index.json").read_text())
    top["manifests"][0]["digest"] = _add_blob(layout, index_data)
    top["manifests"][0]["size"] = len(index_data)
    (layout / "index.json").write_text(json.dumps(top))
    for old in ("config", "manifest", "index"):
        blob(layout, image[old]).unlink()
    return f"the signed image {image['manifest']} is not in {layout}"


def extra_symlink(layout: Path) -> str:
    """A link named after a blob's digest, to a copy elsewhere: it would pass the hash check."""
    layer = blob(layout, image_of(layout)["layer"])
    elsewhere = layout.parent / "elsewhere"
    layer.rename(elsewhere)
    layer.symlink_to(elsewhere)
    return f"blobs/sha256/{layer.name} is not a regular file; a signed layout's blobs are files"


def fifo_blob(layout: Path) -> str:
    os.mkfifo(layout / "blobs" / "sha256" / ("0" * 64))
    return f"blobs/sha256/{'0' * 64} is not a regular file; a signed layout's blobs are files"


TAMPERING = {
    "flipped layer byte": flip_layer_byte,
    "config changed in place": change_config_in_place,
    "config, manifest and index rewritten": change_config_consistently,
    "symbolic link for a blob": extra_symlink,
    "FIFO among the blobs": fifo_blob,
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_layout_is_refused_with_one_line_naming_why(
        case: str, layouts: dict[str, Path], keys: dict[str, Path], busybox_path: Path,
        tmp_path: Path) -> None:
    layout = copied(layouts, tmp_path)
    reason = TAMPERING[case](layout)
    assert check(busybox_path, layout, keys["ecdsa.pub"], tmp_path) == f"{FAILED}{reason}\n"
    assert list((tmp_path / "run" / "verified").iterdir()) == []  # nothing is left to start


@pytest.mark.parametrize("kind,key", [("other", "ecdsa.pub"), ("ed25519", "ecdsa.pub"),
                                      ("ecdsa", "ed25519.pub"), ("other", "ed25519.pub")])
def test_a_signature_by_another_key_is_refused(kind: str, key: str, layouts: dict[str, Path],
                                               keys: dict[str, Path], busybox_path: Path,
                                               tmp_path: Path) -> None:
    out = check(busybox_path, layouts[kind], keys[key], tmp_path)
    assert out == f"{FAILED}the signature is not from the key {keys[key]}\n"


def test_an_unsigned_layout_is_refused(layouts: dict[str, Path], keys: dict[str, Path],
                                       busybox_path: Path, tmp_path: Path) -> None:
    out = check(busybox_path, layouts["unsigned"], keys["ecdsa.pub"], tmp_path)
    assert out == (f"{FAILED}{layouts['unsigned']} is not signed (no cosign signature among "
                   "its blobs)\n")


def test_a_signature_of_another_image_is_refused(layouts: dict[str, Path],
                                                 keys: dict[str, Path], busybox_path: Path,
                                                 tmp_path: Path) -> None:
    """The other image's signature manifest and payload (same key) instead of this one's."""
    layout = copied(layouts, tmp_path, "unsigned")
    other = image_of(layouts["another image"])
    for name in ("signature", "payload"):
        shutil.copyfile(blob(layouts["another image"], other[name]),
                        blob(layout, other[name]))
    out = check(busybox_path, layout, keys["ecdsa.pub"], tmp_path)
    assert out == f"{FAILED}the signed image {other['manifest']} is not in {layout}\n"


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, hello_static: Path,
          keys: dict[str, Path]) -> Path:
    """An index of hello for amd64 and arm64, both images signed by the ECDSA key."""
    from foreign import build_static_hello, cross_compilers

    work = tmp_path_factory.mktemp("multi")
    host = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    other = "arm64" if host == "amd64" else "amd64"
    sources = {host: build(hello_static, work / host, None, "--path", "/hello"),
               other: build(build_static_hello(cross_compilers()[other], work), work / other,
                            None, "--path", "/hello")}
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    cli = [sys.executable, "-m", "hellocontainer"]
    subprocess.run([*cli, "index", "--output", work / "multi", "--tag", "latest",
                    *(f"{layout}:latest" for layout in sources.values())], env=env, check=True,
                   capture_output=True)
    subprocess.run([*cli, "sign", f"{work / 'multi'}:latest", "--key", keys["ecdsa.pem"]],
                   env=env, check=True, capture_output=True)
    return work / "multi"


def test_of_several_signed_platforms_the_boards_is_taken(multi: Path, keys: dict[str, Path],
                                                         busybox_path: Path,
                                                         tmp_path: Path) -> None:
    assert check(busybox_path, multi, keys["ecdsa.pub"], tmp_path) == ""
    copy = tmp_path / "run" / "verified" / "hello"
    (entry,) = json.loads((copy / "index.json").read_text())["manifests"]
    manifest = document(multi, entry["digest"])
    config = document(multi, manifest["config"]["digest"])
    host = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    assert config["architecture"] == host


def test_two_signed_images_for_this_board_are_refused(layouts: dict[str, Path],
                                                      keys: dict[str, Path], busybox_path: Path,
                                                      tmp_path: Path) -> None:
    """Which one the tag names is not signed: neither is picked."""
    layout = copied(layouts, tmp_path)
    for path in (layouts["another image"] / "blobs" / "sha256").iterdir():
        shutil.copyfile(path, layout / "blobs" / "sha256" / path.name)
    out = check(busybox_path, layout, keys["ecdsa.pub"], tmp_path)
    assert out == (f"{FAILED}{layout} holds 2 signed images, none or several for this board "
                   f"({os.uname().machine}); install a layout with one signed image per "
                   "platform\n")


def test_a_missing_key_or_openssl_is_named(layouts: dict[str, Path], busybox_path: Path,
                                           tmp_path: Path) -> None:
    out = check(busybox_path, layouts["ecdsa"], tmp_path / "nowhere.pub", tmp_path)
    assert out == f"{FAILED}the public key {tmp_path / 'nowhere.pub'} not found\n"


# ---------------------------------------------------------------------------------------------
# The init files that carry the check

def test_podman_script_with_the_check_is_shellcheck_clean(hellocontainer: Runner,
                                                          tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    hellocontainer("autostart", "--name", "hello", "--runtime", "podman", "--layout",
                   f"{LAYOUT}:latest", "--verify-key", KEY, "--sysv", tmp_path / "S95hello")
    result = subprocess.run([shellcheck, "--shell=sh", "--severity=style", tmp_path / "S95hello"],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("flag", ["--systemd", "--quadlet"])
def test_podman_unit_and_quadlet_with_the_check_pass_systemd_analyze(
        flag: str, hellocontainer: Runner, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    program = tmp_path / "bin" / "podman"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    name = "hellocontainer-hello.service" if flag == "--systemd" else "hello.container"
    extra = ["--runtime-path", str(program)] if flag == "--systemd" else []
    hellocontainer("autostart", "--name", "hello", "--runtime", "podman", "--layout",
                   f"{LAYOUT}:latest", "--verify-key", KEY, *extra, flag, tmp_path / name)
    text = (tmp_path / name).read_text()
    assert f"localhost{COPY}:latest" in text
    if flag == "--systemd":
        result = subprocess.run([analyze, "verify", tmp_path / name], capture_output=True,
                                text=True)
        ours = [line for line in (result.stdout + result.stderr).splitlines()
                if "hellocontainer-hello" in line]
        assert (result.returncode, ours) == (0, [])


@pytest.mark.parametrize("good", [True, False], ids=["signed", "flipped byte"])
def test_unit_checks_then_pulls_from_the_copy(good: bool, layouts: dict[str, Path],
                                              keys: dict[str, Path], busybox_path: Path,
                                              tmp_path: Path) -> None:
    """The unit's ExecStart as systemd parses it, with a podman that writes down its arguments."""
    from test_restart_backoff import unit_commands

    layout = copied(layouts, tmp_path)
    if not good:
        flip_layer_byte(layout)
    runtime = tmp_path / "podman"
    calls = tmp_path / "calls"
    runtime.write_text(f'#!/bin/sh\necho "podman $*" >> {calls}\n')
    runtime.chmod(0o755)
    run = tmp_path / "run"
    run.mkdir()
    cfg = autostart("podman", "hello", layout=f"{LAYOUT}:latest", verify_key=KEY,
                    runtime_path=str(runtime))
    unit = (systemd_unit(cfg).replace(KEY, str(keys["ecdsa.pub"])).replace(LAYOUT, str(layout))
            .replace("/run/hellocontainer", f"{run}/hellocontainer"))
    ((start,),) = (unit_commands(unit, tmp_path)["ExecStart"],)
    result = run_board_shell(busybox_path, start[2], tmp_path)
    copy = run / "hellocontainer" / "verified" / "hello"
    if good:
        assert result.returncode == 0, result.stderr
        lines = calls.read_text().splitlines()
        assert any(line.endswith(f"pull --quiet oci:{copy}:latest") for line in lines), lines
        assert lines[-1].endswith(f"run --rm --quiet --cgroups=split --name hello --net=none "
                                  f"localhost{copy}:latest")
    else:
        assert result.returncode == 78
        assert result.stderr.startswith(f"hellocontainer: {FAILED}blobs/sha256/")
        assert result.stderr.endswith(" was changed after signing\n")
        assert not copy.exists()


# ---------------------------------------------------------------------------------------------
# With the real podman: the script's start, and Quadlet's generator

def test_the_script_starts_the_signed_image_with_the_real_podman(
        layouts: dict[str, Path], keys: dict[str, Path], hellocontainer: Runner,
        podman_home: Path, tmp_path: Path) -> None:
    """`S95hello start` (check, then the supervisor: pull from the copy, run) with the host's
    podman, in a mount namespace whose /run/hellocontainer (the copy, podman's store) is a fresh
    tmpfs."""
    podman = require_tool("podman", "podman")
    unshare = require_tool("unshare", "util-linux")
    require_tool("openssl", "openssl")
    layout = copied(layouts, tmp_path)
    script = tmp_path / "S95hello"
    hellocontainer("autostart", "--runtime", "podman", "--name", "hello", "--layout",
                   f"{layout}:latest", "--restart", "no", "--runtime-path", podman,
                   "--verify-key", keys["ecdsa.pub"], "--sysv", script)
    _, env = podman_command(podman_home)
    program = ("mkdir -p /run/hellocontainer && mount -t tmpfs tmpfs /run/hellocontainer && "
               f"sh {script} start && wait")
    result = subprocess.run([unshare, "-m", "--propagation", "private", "sh", "-c", program],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.splitlines() == ["Starting hello: OK", GREETING,
                                          "hellocontainer: hello exited 0"], result
    # The same with a flipped layer byte: one line, no start.
    reason = flip_layer_byte(layout)
    result = subprocess.run([unshare, "-m", "--propagation", "private", "sh", "-c", program],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert result.stdout == "Starting hello: FAIL\n"
    assert result.stderr == f"hellocontainer: {FAILED}{reason}\n"


def test_quadlet_checks_in_its_condition_and_pulls_from_the_copy(hellocontainer: Runner,
                                                                 tmp_path: Path) -> None:
    from test_podman_autostart import _generate, quadlet_generator

    source = tmp_path / "units" / "hello.container"
    hellocontainer("autostart", "--runtime", "podman", "--name", "hello", "--layout",
                   f"{LAYOUT}:latest", "--verify-key", KEY, "--quadlet", source)
    service = _generate(quadlet_generator(), source)
    (start,) = service["ExecStart"]
    assert start.endswith(f" --quiet localhost{COPY}:latest")
    (condition,) = service["ExecCondition"]
    assert f'cp -a \\"{LAYOUT}/blobs/sha256\\"' in condition
    assert "signature check failed" in condition
    (pre,) = service["ExecStartPre"]
    assert f'pull --quiet \\"oci:{COPY}:latest\\"' in pre


def test_a_name_with_capitals_gets_a_copy_podman_can_name_an_image_after() -> None:
    """podman names the image after the copy's path, which must be lowercase: "Hello" gets a
    digest of its name, and no copy of "hello"."""
    import re

    def copy_of(name: str) -> str:
        script = sysv_script(autostart("podman", name, layout=f"{LAYOUT}:latest",
                                       verify_key=KEY))
        (image,) = set(re.findall(r"localhost(/run/hellocontainer/verified/[^:\s\"]+):latest",
                                  script))
        return image

    assert copy_of("hello") == COPY
    capitals = copy_of("Hello")
    assert re.fullmatch(r"/run/hellocontainer/verified/[0-9a-f]{16}", capitals)
    assert capitals != copy_of("hello.world_x") != COPY
