"""The image the README's main command builds runs in every runtime users have."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, require_tool
from oci import image_config


@pytest.fixture(scope="module")
def readme_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The layout scripts/hello writes (the README's first command), in a temp deploy dir."""
    deploy = tmp_path_factory.mktemp("deploy")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    result = subprocess.run([str(REPO / "scripts" / "hello"), "--deploy-dir", str(deploy)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "podman run" in result.stdout and "sha256:" in result.stdout
    return deploy / "hello-oci", "latest"


def test_podman_runs_the_readme_image(podman, readme_image):
    layout, tag = readme_image
    result = podman("run", "--rm", "--net=none", f"oci:{layout}:{tag}")
    assert result.stdout == "Hello container!\n"


def test_our_validate_accepts_the_readme_image(hellocontainer, readme_image):
    layout, tag = readme_image
    assert hellocontainer("validate", f"{layout}:{tag}").stdout == \
        f"{layout}:{tag}: valid OCI image layout\n"


def test_oci_image_tool_validates_the_readme_image(readme_image):
    tool = require_tool("oci-image-tool", "oci-image-tool")
    layout, tag = readme_image
    result = subprocess.run([tool, "validate", "--type", "image", "--ref", f"name={tag}",
                             str(layout)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation succeeded" in result.stdout


def test_skopeo_inspects_and_copies_to_docker_archive(readme_image, tmp_path):
    skopeo = require_tool("skopeo", "skopeo")
    layout, tag = readme_image
    inspected = subprocess.run([skopeo, "inspect", f"oci:{layout}:{tag}"], capture_output=True,
                               text=True, check=True)
    info = json.loads(inspected.stdout)
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH=1700000000
    archive = tmp_path / "hello.tar"
    subprocess.run([skopeo, "copy", f"oci:{layout}:{tag}", f"docker-archive:{archive}:hello:latest"],
                   capture_output=True, text=True, check=True)
    copied = json.loads(subprocess.run([skopeo, "inspect", f"docker-archive:{archive}"],
                                       capture_output=True, text=True, check=True).stdout)
    # docker-archive keeps layers uncompressed: its layer digest is our config's diff_id.
    assert copied["Architecture"] == "amd64"
    assert copied["Layers"] == image_config(layout, tag)["rootfs"]["diff_ids"]


def test_umoci_unpack_and_runc_run_print_the_greeting(readme_image, tmp_path):
    umoci = require_tool("umoci", "umoci")
    runc = require_tool("runc", "runc")
    layout, tag = readme_image
    bundle = tmp_path / "bundle"
    subprocess.run([umoci, "unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle)],
                   capture_output=True, text=True, check=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False  # no TTY here; umoci's bundle asks for one
    config_path.write_text(json.dumps(config))
    result = subprocess.run([runc, "--root", str(tmp_path / "runc"), "run", "hello-test"],
                            cwd=bundle, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello container!\n"


def test_buildah_takes_the_image_as_a_base(readme_image, tmp_path):
    buildah = require_tool("buildah", "buildah")
    layout, tag = readme_image
    storage = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "runroot"),
               "--storage-driver", "vfs"]
    result = subprocess.run([buildah, *storage, "from", "--name", "hello-work",
                             f"oci:{layout}:{tag}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello-work"
    listed = subprocess.run([buildah, *storage, "containers", "--json"], capture_output=True,
                            text=True, check=True)
    assert [c["containername"] for c in json.loads(listed.stdout)] == ["hello-work"]


def test_podman_loads_the_oci_archive(hellocontainer, hello_static, podman, tmp_path):
    archive = tmp_path / "hello.oci.tar"
    hellocontainer("build", hello_static, "--output", tmp_path / "layout", "--tag", "1.0",
                   "--archive", archive)
    result = podman("run", "--rm", "--net=none", f"oci-archive:{archive}:1.0")
    assert result.stdout == "Hello container!\n"


def test_podman_sees_entrypoint_cmd_env_with_spaces(hellocontainer, podman, tmp_path):
    """Values with spaces survive from the command line into the running container."""
    require_tool("musl-gcc", "musl-tools")
    source = tmp_path / "args.c"
    source.write_text('#include <stdio.h>\n#include <stdlib.h>\n'
                      'int main(int c, char **v) { for (int i = 1; i < c; i++) printf("[%s]", v[i]);'
                      ' printf(" %s\\n", getenv("GREETING")); return 0; }\n')
    binary = tmp_path / "args"
    subprocess.run(["musl-gcc", "-static", "-Os", "-s", "-o", str(binary), str(source)], check=True)
    layout = tmp_path / "layout"
    hellocontainer("build", binary, "--output", layout, "--path", "/usr/bin/args",
                   "--entrypoint", "/usr/bin/args 'first word'", "--cmd", "second 'third word'",
                   "--env", "GREETING='hello world' OTHER=1", "--workdir", "/usr")
    result = podman("run", "--rm", "--net=none", f"oci:{layout}:latest")
    assert result.stdout == "[first word][second][third word] hello world\n"


def test_podman_load_names_an_archive_after_its_name_version_tag(hellocontainer, hello_static,
                                                                   podman, tmp_path):
    """The README's table: a `NAME:VERSION` tag is what `podman load` names the image."""
    archive = tmp_path / "hello.tar"
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--tag", "hello:1.0",
                   "--archive", archive)
    assert "localhost/hello:1.0" in podman("load", "-i", archive).stdout
    assert podman("run", "--rm", "--net=none", "localhost/hello:1.0").stdout == "Hello container!\n"
