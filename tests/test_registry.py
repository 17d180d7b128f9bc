"""A real registry round trip: skopeo pushes our layouts to Distribution 2.8 and pulls them back.

The registry is Debian's `docker-registry`, started by the test on 127.0.0.1 with a config file
written here (plain HTTP, storage in a temporary folder) and stopped afterwards. What must
survive the trip: the digest of every manifest and index, so that a signature or an SBOM made
for the image still names it on the other side, and the image must still run.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_tool
from foreign import build_static_hello, cross_compilers
from oci import blob

EPOCH = "1700000000"
START_TIMEOUT = 30.0  # seconds for the registry to say it listens; it takes well under one

REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: hellocontainer-tests
"""


def packager(*args: object) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    subprocess.run([sys.executable, "-m", "hellocontainer", *map(str, args)], check=True,
                   capture_output=True, env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen[bytes], address: str) -> None:
    """Read the registry's log until it says it listens on `address` (or it dies)."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    log = b""
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        chunk = os.read(fd, 65536)  # unbuffered: a line already read can never hide in a buffer
        if not chunk:  # the registry exited
            break
        log += chunk
        if f"listening on {address}".encode() in log:
            return
    process.kill()
    raise AssertionError("docker-registry did not start:\n" + log.decode(errors="replace")[-2000:])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a private Distribution 2.8 registry, for this module's tests."""
    program = require_tool("docker-registry", "docker-registry")
    require_tool("skopeo", "skopeo")
    home = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = home / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=home / "storage", port=port))
    process = subprocess.Popen([program, "serve", str(config)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _wait_until_listening(process, f"127.0.0.1:{port}")
        # The log must keep draining, or a chatty registry would block on a full pipe.
        assert process.stderr is not None
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def skopeo(*args: str) -> str:
    result = subprocess.run([require_tool("skopeo", "skopeo"), *args], capture_output=True,
                            text=True)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result.stdout


def round_trip(layout: Path, tag: str, registry: str, name: str, back: Path) -> None:
    """Push `layout:tag` with every platform and referrer, then pull it into `back`."""
    remote = f"docker://{registry}/{name}:{tag}"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:{tag}", remote)
    skopeo("copy", "--all", "--src-tls-verify=false", remote, f"oci:{back}:{tag}")


def tagged_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    return entry["digest"]


def manifest_digests(layout: Path, digest: str) -> list[str]:
    """`digest` and every manifest or index below it, in order."""
    document = json.loads(blob(layout, digest))
    found = [digest]
    for child in document.get("manifests", []):
        found += manifest_digests(layout, child["digest"])
    return found


@pytest.fixture(scope="module")
def single(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("single") / "hello"
    packager("build", hello_static, "--output", layout, "--tag", "1.0", "--sbom-package",
             "name=hello version=1.0 license=MIT", "--sbom-library", "name=musl license=MIT",
             "--sbom-supplier", "ACME Inc.", "--sbom-incomplete")
    return layout


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index of an amd64 and an arm64 image, each with its SBOM."""
    out = tmp_path_factory.mktemp("multi")
    sources = []
    for oci in ("amd64", "arm64"):
        platform = cross_compilers()[oci]
        binary = build_static_hello(platform, out)
        layout = out / "layouts" / f"hello-{platform.id}"
        packager("build", binary, "--path", "/hello", "--output", layout, "--tag", "1.0",
                 "--sbom-package", "name=hello version=1.0 license=MIT", "--sbom-supplier",
                 "ACME Inc.")
        sources.append(f"{layout}:1.0")
    packager("index", "--output", out / "hello-multi", "--tag", "1.0", *sources)
    return out / "hello-multi"


def test_single_platform_image_keeps_its_digests_through_a_registry(registry, single, tmp_path):
    round_trip(single, "1.0", registry, "hello", tmp_path / "back")
    digest = tagged_digest(single, "1.0")
    assert tagged_digest(tmp_path / "back", "1.0") == digest
    assert manifest_digests(tmp_path / "back", digest) == manifest_digests(single, digest)


def test_multi_platform_index_keeps_its_digests_through_a_registry(registry, multi, tmp_path):
    round_trip(multi, "1.0", registry, "hello-multi", tmp_path / "back")
    digest = tagged_digest(multi, "1.0")
    assert tagged_digest(tmp_path / "back", "1.0") == digest
    pulled = manifest_digests(tmp_path / "back", digest)
    assert pulled == manifest_digests(multi, digest)
    assert len(pulled) == 5  # the index, two platform images and one SBOM for each


def test_registry_serves_the_index_byte_for_byte(registry, multi, tmp_path):
    round_trip(multi, "1.0", registry, "hello-raw", tmp_path / "back")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry}/hello-raw:1.0")
    assert raw.encode() == blob(multi, tagged_digest(multi, "1.0"))


def test_podman_runs_the_pulled_image(registry, single, podman, tmp_path):
    round_trip(single, "1.0", registry, "hello-run", tmp_path / "back")
    assert podman("run", "--rm", "--net=none", f"oci:{tmp_path / 'back'}").stdout == \
        "Hello container!\n"


def test_podman_runs_the_pulled_multi_platform_image(registry, multi, podman, tmp_path):
    round_trip(multi, "1.0", registry, "hello-multi-run", tmp_path / "back")
    result = podman("run", "--rm", "--net=none", f"oci:{tmp_path / 'back'}:1.0")
    assert result.stdout == "Hello container!\n"


def test_pulled_layout_is_valid_with_its_sboms(registry, multi, hellocontainer, tmp_path):
    round_trip(multi, "1.0", registry, "hello-valid", tmp_path / "back")
    hellocontainer("validate", "--strict", tmp_path / "back")
    report = json.loads(hellocontainer("inspect", "--json", tmp_path / "back").stdout)
    images = report["images"][0]["manifests"]
    assert [len(image["referrers"]) for image in images] == [1, 1]
