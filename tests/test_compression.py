"""Compression choices: what each gives, and the default level that depends on the layer's size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oci import blob, manifest


def layer_bytes(layout: Path) -> tuple[str, bytes]:
    (layer,) = manifest(layout)["layers"]
    return layer["mediaType"], blob(layout, layer["digest"])


@pytest.fixture(scope="module")
def binary_of_17_mib(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid static ELF (hello) padded past the 16 MiB line with compressible bytes."""
    path = tmp_path_factory.mktemp("large") / "large"
    path.write_bytes(hello_static.read_bytes() + bytes(range(256)) * (17 << 12))
    path.chmod(0o755)
    return path


def test_small_layer_gets_level_9_by_default(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o")
    media_type, data = layer_bytes(tmp_path / "o")
    assert media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert data[8] == 2  # gzip XFL: "maximum compression" (level 9)


def test_large_layer_gets_level_3_by_default(hellocontainer, binary_of_17_mib, tmp_path):
    hellocontainer("build", binary_of_17_mib, "--output", tmp_path / "o")
    assert layer_bytes(tmp_path / "o")[1][8] == 0  # gzip XFL: neither fastest nor maximum


def test_explicit_level_wins_over_the_default(hellocontainer, binary_of_17_mib, tmp_path):
    hellocontainer("build", binary_of_17_mib, "--output", tmp_path / "o", "--gzip-level", "9")
    assert layer_bytes(tmp_path / "o")[1][8] == 2


def test_uncompressed_layer_is_a_plain_tar(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--compression", "none")
    media_type, data = layer_bytes(tmp_path / "o")
    assert media_type == "application/vnd.oci.image.layer.v1.tar"
    assert data[257:262] == b"ustar"
    hellocontainer("validate", tmp_path / "o")


def test_zstd_layer_validates_and_runs(hellocontainer, hello_static, podman, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--compression", "zstd")
    media_type, data = layer_bytes(tmp_path / "o")
    assert media_type == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    hellocontainer("validate", tmp_path / "o")
    assert podman("run", "--rm", "--net=none", f"oci:{tmp_path}/o:latest").stdout == \
        "Hello container!\n"


def test_zstd_without_its_module_says_how_to_get_it(hello_static, tmp_path):
    """The optional module absent (an import of it fails), as on a build host without it."""
    program = ("import sys; sys.modules['zstandard'] = None; "
               "from hellocontainer.cli import main; sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", program, "build", str(hello_static),
                             "--compression", "zstd", "--output", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("hellocontainer: error: ") and result.stderr.count("\n") == 1
    assert "zstandard" in result.stderr and "gzip" in result.stderr
    assert not (tmp_path / "o").exists()


def test_jobs_do_not_change_the_bytes(hellocontainer, binary_of_17_mib, tmp_path):
    for jobs in ("1", "2", "4"):
        hellocontainer("build", binary_of_17_mib, "--output", tmp_path / jobs, "--jobs", jobs)
    indexes = {json.loads((tmp_path / j / "index.json").read_text())["manifests"][0]["digest"]
               for j in ("1", "2", "4")}
    assert len(indexes) == 1
