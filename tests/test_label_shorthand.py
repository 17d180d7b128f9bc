"""`.KEY` in labels and annotations means `org.opencontainers.image.KEY`, as in Buildroot's fs/oci."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_errors import assert_one_line_error, nothing_written

from oci import image_config, manifest


def test_dot_keys_are_spelled_out_in_labels_and_annotations(hellocontainer, hello_static,
                                                            tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o",
                   "--label", ".vendor='ACME Inc' .url=https://example.com tier=demo",
                   "--annotation", ".licenses=MIT")
    assert image_config(tmp_path / "o")["config"]["Labels"] == {
        "org.opencontainers.image.vendor": "ACME Inc",
        "org.opencontainers.image.url": "https://example.com",
        "tier": "demo",
    }
    assert manifest(tmp_path / "o")["annotations"] == {"org.opencontainers.image.licenses": "MIT"}


def test_a_flag_short_key_overrides_the_spec_files_long_one(hellocontainer, hello_static,
                                                            tmp_path):
    (tmp_path / "image.yaml").write_text("labels: {.title: hello, org.opencontainers.image.vendor: "
                                         "old, x: y}\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "o",
                   "--spec", tmp_path / "image.yaml", "--label", ".vendor=new")
    assert image_config(tmp_path / "o")["config"]["Labels"] == {
        "org.opencontainers.image.title": "hello",
        "org.opencontainers.image.vendor": "new",
        "x": "y",
    }


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "deploy").mkdir()
    return tmp_path / "deploy" / "hello-oci"


@pytest.mark.parametrize(("args", "fragments"), [
    (["--label", ".=x"], ("--label key '.'", ".KEY=VALUE")),
    (["--annotation", "a=1 .="], ("--annotation key '.'",)),
    (["--label", "."], ("--label word '.' is not KEY=VALUE",)),
], ids=["label-dot", "annotation-dot", "label-bare-dot"])
def test_a_dot_alone_is_refused(hellocontainer, hello_static, out, args, fragments):
    result = hellocontainer("build", hello_static, "--output", out, *args, check=False)
    assert_one_line_error(result, *fragments)
    nothing_written(out.parent, set())


def test_a_dot_alone_in_the_spec_file_is_refused(hellocontainer, hello_static, out, tmp_path):
    (tmp_path / "image.yaml").write_text("labels: ['.=x']\n")
    result = hellocontainer("build", hello_static, "--output", out,
                            "--spec", tmp_path / "image.yaml", check=False)
    assert_one_line_error(result, "image.yaml: labels key '.'")
    nothing_written(out.parent, set())
