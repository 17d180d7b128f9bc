"""Compression choices: what each gives, and the default level that depends on the layer's size."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import STRICT, require_tool
from oci import blob, manifest

# The gzip header every layer gets, whatever compressed it: deflate, no flags, MTIME 0,
# XFL 2 (maximum compression), OS 255 (unknown).
PINNED_MAX_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 2, 255])


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


@pytest.fixture
def zopfli() -> None:
    """`--gzip-level max` needs the optional zopfli module (in the test extra, so CI has it)."""
    try:
        import zopfli.zopfli  # noqa: F401
    except ImportError:
        message = "Python module zopfli not installed; install it with: pip install zopfli"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)


def test_gzip_level_max_gives_a_smaller_layer_than_level_9(hellocontainer, hello_static, zopfli,
                                                           tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "9", "--gzip-level", "9")
    hellocontainer("build", hello_static, "--output", tmp_path / "max", "--gzip-level", "max")
    level_9, level_max = layer_bytes(tmp_path / "9")[1], layer_bytes(tmp_path / "max")[1]
    assert len(level_max) < len(level_9)
    # Smaller, same content: the tar inside is the very same one.
    assert gzip.decompress(level_max) == gzip.decompress(level_9)


def test_gzip_level_max_is_plain_gzip_with_the_pinned_header(hellocontainer, hello_static, zopfli,
                                                             tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--gzip-level", "max")
    media_type, data = layer_bytes(tmp_path / "o")
    assert media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert data[:10] == PINNED_MAX_HEADER
    unpacked = subprocess.run([require_tool("gzip", "gzip"), "-d", "-c"], input=data,
                              capture_output=True, check=True).stdout
    assert unpacked == gzip.decompress(data)
    assert unpacked[257:262] == b"ustar"
    hellocontainer("validate", tmp_path / "o")


def test_gzip_level_max_gives_the_same_bytes_every_time(hellocontainer, hello_static, zopfli,
                                                        tmp_path):
    for name, jobs in (("a", "1"), ("b", "2")):
        hellocontainer("build", hello_static, "--output", tmp_path / name, "--gzip-level", "max",
                       "--jobs", jobs)
    assert layer_bytes(tmp_path / "a") == layer_bytes(tmp_path / "b")
    assert (tmp_path / "a" / "index.json").read_bytes() == \
        (tmp_path / "b" / "index.json").read_bytes()


def test_spec_key_gzip_level_max_equals_the_flag(hellocontainer, hello_static, zopfli, tmp_path):
    spec = tmp_path / "image.yaml"
    spec.write_text("gzip_level: max\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "spec", "--spec", spec)
    hellocontainer("build", hello_static, "--output", tmp_path / "flag", "--gzip-level", "max")
    assert layer_bytes(tmp_path / "spec") == layer_bytes(tmp_path / "flag")


@pytest.mark.parametrize("level", ["0", "10", "maximum"])
def test_gzip_level_outside_1_to_9_or_max_is_refused(hellocontainer, hello_static, tmp_path,
                                                     level):
    result = hellocontainer("build", hello_static, "--output", tmp_path / "o", "--gzip-level",
                            level, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("hellocontainer: error: --gzip-level ")
    assert result.stderr.endswith("; expected 1 to 9, or max\n")
    assert result.stderr.count("\n") == 1


def test_gzip_level_max_without_zopfli_says_how_to_get_it(hello_static, tmp_path):
    """A build host without zopfli: a sitecustomize in the interpreter's path blocks the
    import, and the packager runs as users run it (`python -m hellocontainer`)."""
    blocker = tmp_path / "no-zopfli"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['zopfli'] = None\n")
    result = subprocess.run(
        [sys.executable, "-m", "hellocontainer", "build", str(hello_static),
         "--gzip-level", "max", "--output", str(tmp_path / "o")],
        capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))})
    assert result.returncode == 1
    assert result.stderr == ("hellocontainer: error: gzip level 'max' needs the optional Python "
                             "module zopfli; install it (pip install zopfli) or use level 9\n")
    assert not (tmp_path / "o").exists()


def test_half_random_binary_gives_the_same_stored_layer_that_podman_runs(hellocontainer,
                                                                         hello_static, podman,
                                                                         tmp_path):
    """A program with 3 MiB of random data appended (as firmware blobs or compressed assets
    are): its incompressible blocks are stored, the bytes are the same whatever the thread
    count, gunzip and podman read the layer, and it is within 0.1 % of gzip -9's one stream
    (tests/test_pgzip.py: never bigger than deflating every block, as before)."""
    noise = b"".join(__import__("hashlib").sha256(i.to_bytes(8, "big")).digest()
                     for i in range(3 << 15))
    binary = tmp_path / "hello"
    binary.write_bytes(hello_static.read_bytes() + noise)
    binary.chmod(0o755)
    for jobs in ("1", "3"):
        hellocontainer("build", binary, "--output", tmp_path / jobs, "--jobs", jobs,
                       "--gzip-level", "9")
    assert layer_bytes(tmp_path / "1") == layer_bytes(tmp_path / "3")
    _, data = layer_bytes(tmp_path / "1")
    tar = gzip.decompress(data)
    gunzip = require_tool("gzip", "gzip")
    assert subprocess.run([gunzip, "-d", "-c"], input=data, capture_output=True,
                          check=True).stdout == tar
    assert len(data) <= 1.001 * len(gzip.compress(tar, 9, mtime=0))
    hellocontainer("validate", tmp_path / "1")
    assert podman("run", "--rm", "--net=none", f"oci:{tmp_path}/1:latest").stdout == \
        "Hello container!\n"
