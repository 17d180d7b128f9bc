"""Every platform we claim: a real cross-compiled hello, packaged, described right, and run.

Each binary comes from Debian's cross gcc for that platform (tests/foreign.py has the table).
Foreign images run under qemu-user-static registered in a private binfmt_misc of a user
namespace, pinned to the oldest CPU of the platform, so "runs" means "runs on that CPU".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foreign import (
    PLATFORMS,
    Platform,
    build_static_hello,
    cross_compilers,
    podman_run_foreign,
    run_foreign,
    run_image_with_runc,
)

GREETING = "Hello container!\n"
ARM = [p for p in PLATFORMS if p.architecture == "arm"]
by_platform = pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.id)


@pytest.fixture(scope="session")
def cross_hello(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Platform], Path]:
    """The hello binary for a platform, cross-compiled once per session."""
    out = tmp_path_factory.mktemp("cross")
    built: dict[Platform, Path] = {}

    def get(platform: Platform) -> Path:
        if platform not in built:
            built[platform] = build_static_hello(platform, out)
        return built[platform]

    return get


@pytest.fixture(scope="session")
def _layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Platform, str]]:
    """Where the session's per-platform layouts live, and the manifest digest of each."""
    return tmp_path_factory.mktemp("layouts"), {}


@pytest.fixture
def image(hellocontainer, cross_hello, _layouts) -> Callable[[Platform], Path]:
    """The layout `hellocontainer build` makes from a platform's hello (no --arch: the ELF
    header decides), built once per session; tag `latest`."""
    root, digests = _layouts

    def get(platform: Platform) -> Path:
        layout = root / platform.id
        if platform not in digests:
            result = hellocontainer("build", cross_hello(platform), "--output", layout,
                                    "--path", "/hello")
            digests[platform] = manifest_digest(result.stdout)
        return layout

    return get


def manifest_digest(build_stdout: str) -> str:
    """`DIR:TAG sha256:…` → the digest; the build prints one such line per tag."""
    (line,) = build_stdout.splitlines()
    return line.split()[-1]


def read_blob(layout: Path, digest: str) -> dict:
    algorithm, hexdigest = digest.split(":")
    return json.loads((layout / "blobs" / algorithm / hexdigest).read_bytes())


def expected_platform(platform: Platform) -> dict[str, str]:
    expected = {"architecture": platform.architecture, "os": "linux"}
    if platform.variant:
        expected["variant"] = platform.variant
    return expected


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hellocontainer: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@by_platform
def test_index_descriptor_names_the_binarys_platform(image, platform):
    index = json.loads((image(platform) / "index.json").read_text())
    (descriptor,) = index["manifests"]
    assert descriptor["platform"] == expected_platform(platform)


@by_platform
def test_config_names_the_binarys_platform(image, platform):
    layout = image(platform)
    (descriptor,) = json.loads((layout / "index.json").read_text())["manifests"]
    config = read_blob(layout, read_blob(layout, descriptor["digest"])["config"]["digest"])
    described = {key: config[key] for key in ("architecture", "os", "variant") if key in config}
    assert described == expected_platform(platform)


@by_platform
def test_validate_accepts_image_for(hellocontainer, image, platform):
    ref = f"{image(platform)}:latest"
    result = hellocontainer("validate", ref)
    # The whole line: "valid" alone would also match "invalid".
    assert result.stdout == f"{ref}: valid OCI image layout\n"
    assert result.stderr == ""


@by_platform
def test_naming_the_own_platform_gives_the_same_image(hellocontainer, cross_hello, image,
                                                      _layouts, platform, tmp_path):
    """--arch as OCI name (Yocto/podman users) or as the triplet's CPU (autotools host_cpu)
    changes nothing: the ELF header already said the same."""
    image(platform)
    gnu_cpu = platform.compiler.split("-")[0]
    for n, arch in enumerate((platform.oci, gnu_cpu)):
        result = hellocontainer("build", cross_hello(platform), "--output", tmp_path / str(n),
                                "--path", "/hello", "--arch", arch)
        assert manifest_digest(result.stdout) == _layouts[1][platform], arch


@by_platform
def test_binary_declared_for_another_architecture_is_refused(hellocontainer, cross_hello,
                                                             platform, tmp_path):
    binary = cross_hello(platform)
    others = {p.architecture: p for p in PLATFORMS if p.architecture != platform.architecture}

    def build_as(other: Platform):
        return hellocontainer("build", binary, "--output", tmp_path / other.id,
                              "--arch", other.oci, check=False)

    # One packager run per other architecture; in parallel, as they are independent processes.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = dict(zip(others.values(), pool.map(build_as, others.values())))
    accepted = [other.oci for other, result in results.items() if result.returncode == 0]
    assert accepted == [], f"{platform.oci} binary packaged as {accepted}"
    for other, result in results.items():
        assert_one_line_error(result, binary.name, other.architecture, "--arch")
        assert not (tmp_path / other.id).exists()


@pytest.mark.parametrize(
    ("built", "declared"),
    [(b, d) for b in ARM for d in ARM if d.variant < b.variant],
    ids=lambda p: p.id)
def test_arm_binary_declared_for_an_older_arm_is_refused(hellocontainer, cross_hello, built,
                                                         declared, tmp_path):
    result = hellocontainer("build", cross_hello(built), "--output", tmp_path / "out",
                            "--arch", declared.oci, check=False)
    assert_one_line_error(result, f"ARM {built.variant}", declared.oci)


def test_arm_v5_binary_may_be_declared_for_arm_v7(hellocontainer, cross_hello, tmp_path):
    """An ARMv5 program runs on an ARMv7 board; the declared (newer) variant is kept."""
    (v5,) = (p for p in ARM if p.variant == "v5")
    layout = tmp_path / "out"
    hellocontainer("build", cross_hello(v5), "--output", layout, "--arch", "arm/v7")
    (descriptor,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert descriptor["platform"] == {"architecture": "arm", "os": "linux", "variant": "v7"}


@by_platform
def test_runc_runs_image_built_for(image, platform):
    assert run_image_with_runc(image(platform), "latest", platform).stdout == GREETING


@by_platform
def test_podman_runs_image_built_for(podman_home, image, platform):
    result = podman_run_foreign(podman_home, f"oci:{image(platform)}:latest", platform)
    assert result.stdout == GREETING


# Controls: the proofs above mean something only if emulation is what ran each binary, and only
# on the CPU named in the table.

def test_foreign_binary_does_not_run_without_its_interpreter(cross_hello):
    """With nothing registered in the namespace, arm64 code cannot run: no host binfmt helps."""
    arm64 = cross_compilers()["arm64"]
    result = run_foreign([cross_hello(arm64)], [], check=False)
    assert result.returncode != 0 and "Exec format error" in result.stderr


def test_arm_v7_binary_does_not_run_on_an_arm_v5_cpu(cross_hello):
    """The pinned qemu CPU really is older: ARMv7 code dies there with an illegal instruction."""
    table = cross_compilers()
    v7, v5 = table["arm/v7"], table["arm/v5"]
    result = run_foreign([cross_hello(v7)], [v5], env={**os.environ, **v5.emulation_env()},
                         check=False, timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    assert "Illegal instruction" in result.stderr
