"""Publishing never leaves a half-written layout, and never loses another build's tags."""

from __future__ import annotations

import json
import os
import time
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def tags(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return sorted(d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"])


def build_command(binary: Path, layout: Path, tag: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hellocontainer", "build", str(binary), "--output", str(layout),
            "--tag", tag, *extra]


def test_second_tag_keeps_the_first(hellocontainer, hello_static, tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "1.0")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "2.0", "--env", "V=2")
    assert tags(layout) == ["1.0", "2.0"]
    hellocontainer("validate", f"{layout}:1.0")
    hellocontainer("validate", f"{layout}:2.0")


def _blob_names(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_rebuilding_a_tag_keeps_old_blobs_for_readers_until_gc(hellocontainer, hello_static,
                                                               tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "keep", "--env", "K=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    before = _blob_names(layout)
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    assert tags(layout) == ["keep", "moving"]
    # A reader that resolved "moving" a moment ago may still read its old config and manifest:
    # the build leaves them, and validate says how to remove them.
    assert before <= _blob_names(layout) and len(_blob_names(layout)) == 7
    assert "hellocontainer gc" in hellocontainer("validate", layout).stderr
    removed = hellocontainer("gc", layout).stdout
    assert "removed 2 files" in removed
    # The shared layer stays, the old config and manifest of "moving" went.
    assert len(_blob_names(layout)) == 5 and len(before - _blob_names(layout)) == 2
    assert hellocontainer("validate", layout).stderr == ""


def test_a_later_build_collects_garbage_once_the_index_has_settled(hellocontainer, hello_static,
                                                                   tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    assert len(_blob_names(layout)) == 5
    # Ten minutes later no reader of the replaced image is left: the next build removes it.
    settled = time.time() - 600
    os.utime(layout / "index.json", (settled, settled))
    hellocontainer("build", hello_static, "--output", layout, "--tag", "other", "--env", "V=2")
    assert len(_blob_names(layout)) == 3  # one layer, V=2's config and manifest
    assert hellocontainer("validate", layout).stderr == ""


def test_concurrent_builds_into_one_layout_keep_both_tags(hello_static, tmp_path):
    layout = tmp_path / "layout"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
    builds = 8  # enough to race on creating the layout and on each other's staging folders
    for round_ in range(3):  # a new layout, then an existing one, twice
        processes = [subprocess.Popen(build_command(hello_static, layout, f"r{round_}-{n}",
                                                    "--env", f"N={n}"), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for n in range(builds)]
        for process in processes:
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr
    assert tags(layout) == sorted(f"r{r}-{n}" for r in range(3) for n in range(builds))
    validated = subprocess.run([sys.executable, "-m", "hellocontainer", "validate", str(layout)],
                               capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr


@pytest.fixture(scope="module")
def big_binary(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid static ELF (the hello binary) padded to 256 MiB, so a build takes long enough
    to be killed in the middle of writing its layer."""
    path = tmp_path_factory.mktemp("big") / "big"
    chunk = bytes(range(256)) * 4096 + os.urandom(1 << 20)  # part compressible, part not
    with path.open("wb") as stream:
        stream.write(hello_static.read_bytes())
        for _ in range(128):
            stream.write(chunk)
    path.chmod(0o755)
    return path


def _kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILL `process` as soon as `ready()` is true (busy-polling: no sleeps, no timing)."""
    while process.poll() is None and not ready():
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("moment", ["staging", "half-written-layer"])
def test_killed_build_leaves_the_old_layout_valid(hellocontainer, hello_static, big_binary,
                                                  tmp_path, moment):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "old")
    old_index = (layout / "index.json").read_bytes()

    def staged_files() -> list[Path]:
        return [f for d in tmp_path.glob(".layout.hellocontainer-*") for f in d.glob("blob.*")]

    def ready() -> bool:
        if moment == "staging":
            return bool(list(tmp_path.glob(".layout.hellocontainer-*")))
        return any(f.stat().st_size > (8 << 20) for f in staged_files())

    process = subprocess.Popen(build_command(big_binary, layout, "new"),
                               env={**os.environ, "SOURCE_DATE_EPOCH": "1"})
    _kill_when(process, ready)
    assert process.returncode == -signal.SIGKILL
    assert (layout / "index.json").read_bytes() == old_index
    assert tags(layout) == ["old"]
    hellocontainer("validate", f"{layout}:old")
    # The next build publishes normally despite the debris of the killed one.
    hellocontainer("build", hello_static, "--output", layout, "--tag", "next")
    assert tags(layout) == ["next", "old"]
    hellocontainer("validate", layout)
    assert [p.name for p in tmp_path.iterdir()] == ["layout"]  # the killed build's debris is gone
