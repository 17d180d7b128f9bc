"""Publishing never leaves a half-written layout, and never loses another build's tags."""

from __future__ import annotations

import json
import os
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


def test_rebuilding_a_tag_replaces_it_and_drops_its_old_blobs(hellocontainer, hello_static, tmp_path):
    layout = tmp_path / "layout"
    hellocontainer("build", hello_static, "--output", layout, "--tag", "keep", "--env", "K=1")
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=1")
    before = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    hellocontainer("build", hello_static, "--output", layout, "--tag", "moving", "--env", "V=2")
    after = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert tags(layout) == ["keep", "moving"]
    # The shared layer stays, the old config and manifest of "moving" go, the new ones arrive.
    assert len(before) == len(after) == 5
    assert len(before - after) == 2
    hellocontainer("validate", layout)


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
