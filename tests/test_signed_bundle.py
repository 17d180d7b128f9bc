"""A signed bundle is checked on the board with BusyBox and openssl alone, and agrees with the packager.

The board's shell (the functions the init script and the unit carry) runs here under Debian's
busybox-static, with a PATH of its applets only and the host's openssl: the listing it computes
must be byte for byte the packager's, for names with blanks, quotes, backslashes, tabs and
non-ASCII letters, symbolic links (dangling, absolute, with blanks), setuid, setgid and sticky
bits, empty files, FIFOs, hard links and owners other than root; and the check must start a good
bundle and refuse each kind of tampering with the one reason a person reading the console needs.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bundle import entry, layer, make_layout
from test_yocto_signing import _build_signs_images

import board
from conftest import Runner, require_tool
from hellocontainer.board.autostart import autostart, sysv_script
from hellocontainer.board.signed_bundle import LISTING, PAYLOAD, SIGNATURE, listing

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
KEY = "/etc/hellocontainer/hello.pub"  # as the init script names it; the test maps it


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return board_path(tmp_path_factory.mktemp("busybox-bin"))


def board_path(folder: Path) -> Path:
    """`folder` made a folder of BusyBox applet links, the host's openssl among them: a board's
    PATH."""
    for tool, package in (("apt-get", "apt"), ("dpkg-deb", "dpkg"), ("readelf", "binutils")):
        require_tool(tool, package)
    openssl = require_tool("openssl", "openssl")
    busybox = board.busybox(HOST_ARCH)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        (folder / applet).symlink_to(busybox)
    (folder / "openssl").symlink_to(openssl)
    return folder


def run_board_shell(path: Path, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path / "sh", "-c", script], capture_output=True, text=True, cwd=cwd,
                          env={"PATH": str(path), "LC_ALL": "C"})


def board_functions(bundle: Path, key: Path, copy: Path) -> str:
    """The init script's functions for `bundle` (without its command dispatch), paths mapped."""
    script = sysv_script(autostart("crun", "hello", bundle=str(bundle), verify_key=KEY))
    script = script[:script.rindex('case "$1" in')]
    return script.replace(KEY, str(key)).replace("/run/hellocontainer-hello.bundle", str(copy))


def odd_tree(bundle: Path) -> None:
    """A bundle whose rootfs has every kind of entry and name a listing must survive."""
    root = bundle / "rootfs"
    (root / "bin").mkdir(parents=True)
    (bundle / "config.json").write_text('{"process":{"args":["/bin/hello"]}}')
    (root / "bin" / "hello").write_bytes(b"\x7fELF" + bytes(range(256)) * 9)
    for name in ("empty", "two  spaces", " lead", "trail ", "tab\there", "back\\slash",
                 "quote'\"s", "ünïcödé", "-rf", "star*?[x]", "dollar$HOME"):
        (root / name).write_text(name if name != "empty" else "")
    (root / "setuid").write_bytes(b"s")
    os.chmod(root / "setuid", 0o4755)
    (root / "setgid-noexec").write_bytes(b"g")
    os.chmod(root / "setgid-noexec", 0o2644)
    (root / "setuid-noexec").write_bytes(b"S")
    os.chmod(root / "setuid-noexec", 0o4600)
    (root / "none").write_bytes(b"")
    os.chmod(root / "none", 0)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "ro dir").mkdir()
    (root / "ro dir" / "inside").write_text("x")
    os.chmod(root / "ro dir", 0o555)
    os.symlink("bin/hello", root / "link")
    os.symlink("/abs olute/target", root / "dangling link")
    os.symlink("ünï target", root / "ünï link")
    os.mkfifo(root / "fifo", 0o640)
    os.link(root / "bin" / "hello", root / "hardlink")
    if os.geteuid() == 0:
        os.chown(root / "bin" / "hello", 1000, 1000)
        os.chown(root / "tmp", 0, 5)
        os.chown(root / "link", 33, 33, follow_symlinks=False)
        os.chmod(root / "bin" / "hello", 0o755)


@pytest.mark.parametrize("hasher", ["sha256sum", "openssl"])
def test_busybox_listing_is_the_packagers_for_odd_names_links_modes_and_owners(
        hasher: str, busybox_path: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    odd_tree(bundle)
    path = busybox_path
    if hasher == "openssl":  # Yocto's BusyBox has no sha256sum: openssl hashes instead
        path = tmp_path / "bin"
        shutil.copytree(busybox_path, path, symlinks=True)
        (path / "sha256sum").unlink()
    functions = board_functions(bundle, tmp_path / "key.pub", tmp_path / "copy")
    result = subprocess.run([path / "sh", "-c", functions + 'listing "$0"', bundle],
                            capture_output=True, cwd=tmp_path, env={"PATH": str(path)})
    assert result.stderr == b""
    expected = listing(bundle)
    assert result.stdout == expected
    assert len(expected.splitlines()) == 27
    # The board copies the bundle (cp -a) before it checks it: the copy lists the same.
    copied = tmp_path / "copied"
    subprocess.run([path / "sh", "-c", 'mkdir "$1" && cp -a "$0/config.json" "$0/rootfs" "$1/"',
                    bundle, copied], check=True, env={"PATH": str(path)})
    assert listing(copied) == expected


def test_a_listing_names_modes_owners_and_targets(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    odd_tree(bundle)
    lines = listing(bundle).decode().splitlines()
    owner = "1000 1000" if os.geteuid() == 0 else f"{os.getuid()} {os.getgid()}"
    assert f"-rwxr-xr-x {owner} 2308 " in next(line for line in lines
                                               if line.endswith(" rootfs/bin/hello"))
    assert any(re.fullmatch(r"-rwsr-xr-x \d+ \d+ 1 [0-9a-f]{64} rootfs/setuid", line)
               for line in lines)
    assert any(line.startswith("-rwS------ ") and line.endswith(" rootfs/setuid-noexec")
               for line in lines)
    assert any(line.startswith("drwxrwxrwt ") and line.endswith(" - - rootfs/tmp")
               for line in lines)
    assert any(line.startswith("prw-r----- ") and line.endswith(" - - rootfs/fifo")
               for line in lines)
    assert lines == sorted(lines, key=str.encode)
    # Owners given to the listing replace the files' own.
    assert all(line.split()[1:3] == ["0", "0"]
               for line in listing(bundle, (0, 0)).decode().splitlines())


def test_a_name_with_a_newline_cannot_be_signed(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text("{}")
    (bundle / "rootfs" / "two\nlines").write_text("")
    with pytest.raises(Exception, match="has a newline in its name"):
        listing(bundle)


# ---------------------------------------------------------------------------------------------
# The check itself, on real signed bundles

def make_key(folder: Path, kind: str) -> tuple[Path, Path]:
    private, public = folder / f"{kind}.pem", folder / f"{kind}.pub"
    if kind == "ed25519":
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
    else:
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", private], check=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True)
    return private, public


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, hello_static: Path) -> dict[str, Path]:
    """An image of hello, and its bundle signed by an ECDSA key and by an Ed25519 key."""
    require_tool("openssl", "openssl")
    work = tmp_path_factory.mktemp("signed")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    cli = [sys.executable, "-m", "hellocontainer"]
    subprocess.run([*cli, "build", hello_static, "--output", work / "layout"], env=env, check=True,
                   capture_output=True)
    found = {"layout": work / "layout"}
    for kind in ("ecdsa", "ed25519", "other"):
        private, public = make_key(work, "ed25519" if kind == "ed25519" else "ecdsa-" + kind)
        found[f"{kind}.pub"] = public
        found[f"{kind}.pem"] = private
        subprocess.run([*cli, "bundle", f"{work / 'layout'}:latest", "--output",
                        work / f"bundle-{kind}", "--sign-key", private], env=env, check=True,
                       capture_output=True)
        found[kind] = work / f"bundle-{kind}"
    return found


def check(busybox_path: Path, bundle: Path, key: Path, tmp_path: Path) -> str:
    """What the board's check prints for `bundle` (nothing: it may start)."""
    copy = tmp_path / "run-copy"
    result = run_board_shell(busybox_path, board_functions(bundle, key, copy) + "signature",
                             tmp_path)
    assert result.stderr == ""
    assert result.returncode == 0
    return result.stdout


def tampered(signed: dict[str, Path], tmp_path: Path, kind: str = "ecdsa") -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(signed[kind], bundle, symlinks=True)
    return bundle


FAILED = "hello: signature check failed: "


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_a_good_signature_passes_and_the_runtime_gets_the_checked_copy(
        kind: str, signed: dict[str, Path], busybox_path: Path, tmp_path: Path) -> None:
    assert check(busybox_path, signed[kind], signed[f"{kind}.pub"], tmp_path) == ""
    copy = tmp_path / "run-copy"
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        ["config.json", "rootfs", LISTING, PAYLOAD, SIGNATURE])
    assert listing(copy) == (signed[kind] / LISTING).read_bytes()
    assert oct(copy.stat().st_mode & 0o777) == "0o700"


def test_payload_binds_the_listing_to_the_image_manifest(signed: dict[str, Path]) -> None:
    import hashlib

    payload = json.loads((signed["ecdsa"] / PAYLOAD).read_bytes())
    marker = json.loads((signed["ecdsa"] / "hellocontainer.json").read_bytes())
    assert payload["critical"]["image"]["docker-manifest-digest"] == marker["manifest"]
    assert payload["critical"]["type"] == "cosign container image signature"
    listing_digest = hashlib.sha256((signed["ecdsa"] / LISTING).read_bytes()).hexdigest()
    assert payload["optional"] == {"org.hellocontainer.bundle.listing": f"sha256:{listing_digest}"}


def flip_program_byte(bundle: Path) -> None:
    program = bundle / "rootfs" / "hello"
    data = bytearray(program.read_bytes())
    data[len(data) // 2] ^= 0x01
    program.write_bytes(bytes(data))


def change_config(bundle: Path) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/hello", "--evil"]
    (bundle / "config.json").write_text(json.dumps(config))


TAMPERING = {
    "flipped program byte": (flip_program_byte, "rootfs/hello was changed after signing"),
    "changed config.json": (change_config, "config.json was changed after signing"),
    "setuid bit added": (lambda b: os.chmod(b / "rootfs" / "hello", 0o4755),
                         "rootfs/hello was changed after signing"),
    "file added": (lambda b: (b / "rootfs" / "evil").write_text("x"),
                   "rootfs/evil is not in the signed bundle"),
    "directory removed": (lambda b: (b / "rootfs" / "sys").rmdir(), "rootfs/sys is missing"),
    "missing signature": (lambda b: (b / SIGNATURE).unlink(),
                          f"is not signed ({SIGNATURE} not found)"),
    "listing rewritten": (lambda b: (b / LISTING).write_bytes((b / LISTING).read_bytes() + b"x\n"),
                          f"{LISTING} is not the listing that was signed"),
    "payload rewritten": (lambda b: (b / PAYLOAD).write_bytes(
        (b / PAYLOAD).read_bytes().replace(b'"docker-reference":""', b'"docker-reference":"x"')),
        "the signature is not from the key "),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_bundle_is_refused_with_one_line_naming_why(
        case: str, signed: dict[str, Path], busybox_path: Path, tmp_path: Path) -> None:
    change, reason = TAMPERING[case]
    bundle = tampered(signed, tmp_path)
    change(bundle)
    out = check(busybox_path, bundle, signed["ecdsa.pub"], tmp_path)
    (line,) = out.splitlines()
    assert line.startswith(FAILED) and reason in line, line
    assert not (tmp_path / "run-copy").exists()  # nothing is left to start


@pytest.mark.parametrize("kind,key", [("other", "ecdsa.pub"), ("ed25519", "ecdsa.pub"),
                                      ("ecdsa", "ed25519.pub")])
def test_signature_from_another_key_is_refused(kind: str, key: str, signed: dict[str, Path],
                                               busybox_path: Path, tmp_path: Path) -> None:
    out = check(busybox_path, signed[kind], signed[key], tmp_path)
    assert out == f"{FAILED}the signature is not from the key {signed[key]}\n"


def test_missing_public_key_is_named(signed: dict[str, Path], busybox_path: Path,
                                     tmp_path: Path) -> None:
    out = check(busybox_path, signed["ecdsa"], tmp_path / "nowhere.pub", tmp_path)
    assert out == f"{FAILED}the public key {tmp_path / 'nowhere.pub'} not found\n"


def test_signed_bundle_is_reproducible_and_replaces_an_unsigned_one(
        signed: dict[str, Path], hellocontainer: Runner, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    hellocontainer("bundle", f"{signed['layout']}:latest", "--output", out)
    assert not (out / SIGNATURE).exists()
    hellocontainer("bundle", f"{signed['layout']}:latest", "--output", out,
                   "--sign-key", signed["ed25519.pem"])
    for name in (LISTING, PAYLOAD, SIGNATURE):  # Ed25519: the same bytes on every run
        assert (out / name).read_bytes() == (signed["ed25519"] / name).read_bytes()
    hellocontainer("bundle", f"{signed['layout']}:latest", "--output", out)
    assert not (out / SIGNATURE).exists()


def test_a_bad_key_is_one_line_and_writes_nothing(signed: dict[str, Path],
                                                  hellocontainer: Runner, tmp_path: Path) -> None:
    result = hellocontainer("bundle", f"{signed['layout']}:latest", "--output", tmp_path / "b",
                            "--sign-key", signed["ecdsa.pub"], check=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: cannot load signing key ")
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------
# The init files that carry the check

def test_script_with_the_check_is_shellcheck_clean(hellocontainer: Runner, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    hellocontainer("autostart", "--name", "hello", "--bundle", "/data/hello-bundle",
                   "--verify-key", KEY, "--sysv", tmp_path / "S95hello")
    result = subprocess.run([shellcheck, "--shell=sh", "--severity=style", tmp_path / "S95hello"],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_with_the_check_passes_systemd_analyze_verify(hellocontainer: Runner,
                                                          tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    program = tmp_path / "bin" / "crun"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / "hellocontainer-hello.service"
    hellocontainer("autostart", "--name", "hello", "--bundle", "/data/hello-bundle",
                   "--verify-key", KEY, "--runtime-path", program, "--systemd", unit)
    result = subprocess.run([analyze, "verify", unit], capture_output=True, text=True)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if "hellocontainer-hello" in line]
    assert (result.returncode, ours) == (0, [])


def unit_start(bundle: Path, key: Path, run: Path, runtime: Path) -> list[str]:
    """The unit's ExecStart as systemd parses it (its /run paths under `run`)."""
    from test_restart_backoff import unit_commands

    from hellocontainer.board.autostart import systemd_unit

    cfg = autostart("crun", "hello", bundle=str(bundle), verify_key=KEY, runtime_path=str(runtime))
    unit = (systemd_unit(cfg).replace(KEY, str(key))
            .replace("/run/hellocontainer-", f"{run}/hellocontainer-"))
    ((start,),) = (unit_commands(unit, run.parent)["ExecStart"],)
    assert start[:2] == ["/bin/sh", "-c"]
    return start


@pytest.mark.parametrize("good", [True, False], ids=["signed", "flipped byte"])
def test_unit_checks_before_it_execs_the_runtime_on_the_copy(
        good: bool, signed: dict[str, Path], busybox_path: Path, tmp_path: Path) -> None:
    bundle = tampered(signed, tmp_path)
    if not good:
        flip_program_byte(bundle)
    runtime = tmp_path / "crun"
    runtime.write_text('#!/bin/sh\necho "crun $*"\n')
    runtime.chmod(0o755)
    (tmp_path / "run").mkdir()
    start = unit_start(bundle, signed["ecdsa.pub"], tmp_path / "run", runtime)
    result = run_board_shell(busybox_path, start[2], tmp_path)
    copy = tmp_path / "run" / "hellocontainer-hello.bundle"
    if good:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == f"crun run --bundle {copy} hello"
    else:
        assert result.returncode == 78  # EX_CONFIG: RestartPreventExitStatus, no restart
        assert result.stderr == ("hellocontainer: hello: signature check failed: "
                                 "rootfs/hello was changed after signing\n")
        assert not copy.exists()


@pytest.mark.parametrize("args,expected", [
    (["--runtime", "podman", "--layout", "/usr/share/hello-oci", "--podman-root",
      "/data/podman", "--verify-key", KEY],
     "--verify-key with --podman-root /data/podman: the check covers the layout, not podman's "
     "store"),
    (["--bundle", "/data/hello", "--verify-key", "keys/hello.pub"],
     "--verify-key 'keys/hello.pub': not an absolute path on the target"),
])
def test_impossible_verify_settings_are_one_line(args: list[str], expected: str,
                                                 hellocontainer: Runner, tmp_path: Path) -> None:
    result = hellocontainer("autostart", "--name", "hello", *args, "--sysv", tmp_path / "S",
                            check=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ") and expected in line
    assert not (tmp_path / "S").exists()


# ---------------------------------------------------------------------------------------------
# Made by another user than root (Buildroot's build step): owners 0:0, what the root file
# system image gives the files; an image that needs other owners is refused.

@pytest.fixture
def shared() -> Iterator[tuple[Path, list[str]]]:
    """A folder every user may write in (pytest's own are root's 0700)."""
    setpriv = require_tool("setpriv", "util-linux")
    if os.geteuid() != 0:
        pytest.skip("switching to nobody needs root")
    folder = Path(tempfile.mkdtemp(prefix="hellocontainer-signed-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder / "x", [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    finally:
        shutil.rmtree(folder)


def as_nobody(argv: list[str], shared: tuple[Path, list[str]]) -> subprocess.CompletedProcess[str]:
    folder, setpriv = shared
    return subprocess.run([*setpriv, sys.executable, "-m", "hellocontainer", *argv],
                          capture_output=True, text=True, cwd=folder.parent,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})


def test_a_bundle_signed_by_another_user_is_byte_for_byte_roots(
        signed: dict[str, Path], shared: tuple[Path, list[str]]) -> None:
    folder = shared[0].parent
    key = folder / "ed25519.pem"
    shutil.copyfile(signed["ed25519.pem"], key)
    key.chmod(0o644)
    shutil.copytree(signed["layout"], folder / "layout")
    subprocess.run(["chmod", "-R", "a+rX", folder / "layout"], check=True)
    result = as_nobody(["bundle", "layout:latest", "--output", "bundle", "--sign-key", str(key)],
                       shared)
    assert result.returncode == 0, result.stderr
    for name in (LISTING, PAYLOAD, SIGNATURE):
        assert (folder / "bundle" / name).read_bytes() == (signed["ed25519"] / name).read_bytes()


def _bundle_signed_as_nobody(shared: tuple[Path, list[str]]) -> subprocess.CompletedProcess[str]:
    """`bundle layout:latest --sign-key` run by nobody in the shared folder, with a fresh key."""
    folder = shared[0].parent
    subprocess.run(["chmod", "-R", "a+rX", folder], check=True)
    key = folder / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
    key.chmod(0o644)
    return as_nobody(["bundle", "layout:latest", "--output", "bundle", "--sign-key", str(key)],
                     shared)


def test_another_user_cannot_sign_an_image_with_files_of_other_owners(
        hello_static: Path, shared: tuple[Path, list[str]], hellocontainer: Runner) -> None:
    folder = shared[0].parent
    (folder / "motd").write_text("hello\n")
    spec = folder / "image.yaml"
    spec.write_text('files: [{src: motd, dest: /etc/motd, mode: "0644", uid: 1000, gid: 1000}]\n')
    hellocontainer("build", hello_static, "--output", folder / "layout", "--spec", spec)
    result = _bundle_signed_as_nobody(shared)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: cannot sign the bundle ")
    assert "etc/motd belongs to a user other than root" in line
    assert not (folder / "bundle").exists()


@pytest.mark.parametrize("owner", [(0, 0), (0, 1000), (1000, 0)])
def test_another_user_signs_only_if_the_images_root_folder_is_roots(
        owner: tuple[int, int], shared: tuple[Path, list[str]]) -> None:
    """A layer may carry an entry for the root folder itself ("./"), with an owner: only root
    can give the bundle's rootfs that owner, so another user's signed listing would lie."""
    folder = shared[0].parent
    uid, gid = owner
    make_layout(folder / "layout", layer(entry("./", "dir", uid=uid, gid=gid),
                                         entry("hello", data=b"hi", mode=0o755)))
    result = _bundle_signed_as_nobody(shared)
    if owner == (0, 0):
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "the image's / belongs to a user other than root" in line, line
    assert not (folder / "bundle").exists()


@pytest.mark.skipif(not _build_signs_images(),
                    reason="build --sign-key (the image's signature) is not in this packager")
def test_build_with_a_bundle_signs_the_image_and_the_bundle_with_one_key(
        signed: dict[str, Path], hello_static: Path, hellocontainer: Runner,
        tmp_path: Path) -> None:
    result = hellocontainer("build", hello_static, "--output", tmp_path / "layout", "--json",
                            "--bundle", tmp_path / "bundle", "--sign-key", signed["ecdsa.pem"])
    manifest = json.loads(result.stdout)["manifest"]
    payload = json.loads((tmp_path / "bundle" / PAYLOAD).read_bytes())
    assert payload["critical"]["image"]["docker-manifest-digest"] == manifest
    assert (tmp_path / "bundle" / LISTING).read_bytes() == (signed["ecdsa"] / LISTING).read_bytes()
