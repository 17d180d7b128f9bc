"""examples/hello, the classic flow: `./bootstrap && ./configure && make && make container`.

Autotools is slow next to everything else here, so the source tree is copied and bootstrapped
once per module and every build configures it out of tree, in its own temporary directory, with
the packager found on PATH exactly as a user's configure finds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, STRICT, Runner, require_tool
from foreign import (
    EM_AARCH64,
    EM_ARM,
    cross_compilers,
    elf_identity,
    podman_run_foreign,
)
from oci import image_config, image_file, manifest

EXAMPLE = REPO / "examples" / "hello"
GREETING = "Hello container!\n"
# Files ./bootstrap, configure and make create; a developer's in-tree build must not leak in.
GENERATED = ("Makefile", "Makefile.in", "aclocal.m4", "autom4te.cache", "build-aux", "configure",
             "config.log", "config.status", ".deps", "*.o", "hello", "hellocontainer",
             "hellocontainer.root", "*.log", "*.trs", "hello-*.tar.gz")


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} in {cwd} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def build_env() -> dict[str, str]:
    """The environment of every build: the packager on PATH, a pinned SOURCE_DATE_EPOCH."""
    for tool, package in (("autoreconf", "autoconf"), ("automake", "automake"),
                          ("make", "make"), ("gcc", "gcc")):
        require_tool(tool, package)
    # The console script next to the running interpreter is the one installed with this checkout.
    packager = Path(sys.executable).with_name("hellocontainer")
    if not packager.exists():
        found = shutil.which("hellocontainer")
        if found is None:
            message = "hellocontainer not installed; install it with: pipx install ./python"
            if STRICT:
                pytest.fail(message)
            pytest.skip(message)
        packager = Path(found)
    env = dict(os.environ)
    env["PATH"] = f"{packager.parent}{os.pathsep}{env.get('PATH', '')}"
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env.pop("HELLOCONTAINER", None)
    env.pop("CONFIG_SITE", None)
    return env


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory, build_env: dict[str, str]) -> Path:
    """A copy of examples/hello after ./bootstrap, shared by every build in this module."""
    src = tmp_path_factory.mktemp("hello-src") / "hello"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns(*GENERATED))
    _run([src / "bootstrap"], src, build_env)
    return src


def make_container(src: Path, build: Path, env: dict[str, str], *configure_args: str) -> Path:
    """configure (in src, or out of tree in build), make, make container; returns the layout."""
    if build == src:
        _run(["./configure", *configure_args], build, env)
    else:
        build.mkdir(parents=True)
        _run([src / "configure", *configure_args], build, env)
    _run(["make"], build, env)
    _run(["make", "container"], build, env)
    return build / "hellocontainer"


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def native(bootstrapped: Path, tmp_path_factory: pytest.TempPathFactory,
           build_env: dict[str, str]) -> Path:
    """A native glibc build, in the source tree as README shows, after `make container`."""
    build = copy_tree(bootstrapped, tmp_path_factory.mktemp("native") / "hello")
    make_container(build, build, build_env)
    return build


@pytest.fixture(scope="module")
def aarch64(bootstrapped: Path, tmp_path_factory: pytest.TempPathFactory,
            build_env: dict[str, str]) -> Path:
    """Image layout of a `--host=aarch64-linux-gnu` cross build."""
    require_tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    build = tmp_path_factory.mktemp("aarch64") / "build"
    return make_container(bootstrapped, build, build_env, "--host=aarch64-linux-gnu")


def test_podman_runs_image_from_make_container(native: Path, podman: Runner) -> None:
    result = podman("run", "--rm", f"oci:{native / 'hellocontainer'}")
    assert result.stdout == GREETING


def test_image_from_make_container_passes_validate(native: Path, hellocontainer: Runner) -> None:
    result = hellocontainer("validate", native / "hellocontainer", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_holds_the_installed_binary_stripped(native: Path) -> None:
    binary = image_file(native / "hellocontainer", "/hello")
    assert binary[:4] == b"\x7fELF"
    built = (native / "hello").read_bytes()  # unstripped: -g from autoconf's default CFLAGS
    assert len(binary) < len(built)
    assert b".debug_info" not in binary and b".symtab" not in binary


def test_image_created_time_comes_from_source_date_epoch(native: Path) -> None:
    # build_env exports SOURCE_DATE_EPOCH=1700000000; make must hand it to the packager.
    assert image_config(native / "hellocontainer")["created"] == "2023-11-14T22:13:20Z"


def test_built_binary_contains_no_build_directory(native: Path) -> None:
    # The unstripped binary still has its DWARF: this is where a missing prefix map would show.
    built = (native / "hello").read_bytes()
    assert b".debug_info" in built
    assert str(native).encode() not in built


def test_image_digests_equal_when_built_in_two_directories(
        bootstrapped: Path, tmp_path_factory: pytest.TempPathFactory,
        build_env: dict[str, str]) -> None:
    # Two checkouts at different absolute paths (different lengths, too), each configured by
    # absolute path so that both the source and the build directory appear in compiler input.
    first_root = tmp_path_factory.mktemp("one")
    second_root = tmp_path_factory.mktemp("second-checkout") / "deeper"
    layouts = []
    for root in (first_root, second_root):
        src = copy_tree(bootstrapped, root / "src")
        layouts.append(make_container(src, root / "build", build_env))
    first, second = layouts
    assert manifest(first)["layers"] == manifest(second)["layers"]
    assert manifest(first)["config"] == manifest(second)["config"]
    assert (first / "index.json").read_bytes() == (second / "index.json").read_bytes()
    assert sorted(os.listdir(first / "blobs" / "sha256")) == sorted(
        os.listdir(second / "blobs" / "sha256"))


def test_aarch64_cross_build_gives_arm64_image(aarch64: Path) -> None:
    config = image_config(aarch64)
    assert (config["os"], config["architecture"]) == ("linux", "arm64")


def test_aarch64_cross_build_packages_aarch64_binary(aarch64: Path, tmp_path: Path) -> None:
    binary = tmp_path / "hello"
    binary.write_bytes(image_file(aarch64, "/hello"))
    assert elf_identity(binary) == (64, False, EM_AARCH64)


def test_podman_runs_aarch64_image_under_qemu(aarch64: Path, podman_home: Path) -> None:
    result = podman_run_foreign(podman_home, f"oci:{aarch64}", cross_compilers()["arm64"])
    assert result.stdout == GREETING


def test_armhf_cross_build_gives_arm_v7_image(bootstrapped: Path, tmp_path: Path,
                                             build_env: dict[str, str]) -> None:
    require_tool("arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf")
    layout = make_container(bootstrapped, tmp_path / "build", build_env,
                            "--host=arm-linux-gnueabihf")
    config = image_config(layout)
    assert (config["architecture"], config.get("variant")) == ("arm", "v7")
    binary = tmp_path / "hello"
    binary.write_bytes(image_file(layout, "/hello"))
    assert elf_identity(binary) == (32, False, EM_ARM)


def test_musl_image_is_smaller_than_glibc_image(native: Path, bootstrapped: Path,
                                                tmp_path: Path,
                                                build_env: dict[str, str]) -> None:
    require_tool("musl-gcc", "musl-tools")
    musl = make_container(bootstrapped, tmp_path / "build", build_env, "CC=musl-gcc")
    (musl_layer,) = manifest(musl)["layers"]
    (glibc_layer,) = manifest(native / "hellocontainer")["layers"]
    assert musl_layer["size"] < glibc_layer["size"]


def test_configure_fails_naming_how_to_install_missing_packager(
        bootstrapped: Path, tmp_path: Path, build_env: dict[str, str]) -> None:
    env = dict(build_env)
    env["PATH"] = os.pathsep.join(
        d for d in build_env["PATH"].split(os.pathsep)
        if d and not (Path(d) / "hellocontainer").exists())
    result = subprocess.run([bootstrapped / "configure"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "hellocontainer" in error
    assert "pipx install ./python" in error
    assert "HELLOCONTAINER=" in error


def test_configure_refuses_a_packager_path_make_cannot_quote(
        bootstrapped: Path, tmp_path: Path, build_env: dict[str, str]) -> None:
    # container.am and distcheck single-quote the path: spaces pass, a quote would not.
    folder = tmp_path / "Ada's tools"
    folder.mkdir()
    (folder / "hellocontainer").symlink_to(shutil.which("hellocontainer", path=build_env["PATH"]))
    result = subprocess.run([bootstrapped / "configure", f"HELLOCONTAINER={folder}/hellocontainer"],
                            cwd=tmp_path, env=build_env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert f"HELLOCONTAINER={folder}/hellocontainer" in error
    assert "single quote" in error


def test_make_distcheck_passes(native: Path, build_env: dict[str, str]) -> None:
    # distcheck builds from the tarball in a read-only source tree, out of tree, then runs
    # `make check` (the program greets), install, uninstall and distclean.
    output = _run(["make", "distcheck"], native, build_env)
    assert "archives ready for distribution" in output


def test_make_container_after_disable_container_says_how_to_fix(
        bootstrapped: Path, tmp_path: Path, build_env: dict[str, str]) -> None:
    _run([bootstrapped / "configure", "--disable-container"], tmp_path, build_env)
    result = subprocess.run(["make", "container"], cwd=tmp_path, env=build_env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line and
                not line.startswith("make")]
    assert error.startswith("hellocontainer: error:")
    assert "--disable-container" in error
    assert not (tmp_path / "hellocontainer").exists()
