"""Every mistake a user can make gets one line naming the thing and the fix, and leaves no output."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from conftest import HELLO_C, require_tool


def assert_one_line_error(result, *fragments: str, status: int = 1) -> None:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("hellocontainer: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


def nothing_written(parent: Path, names: set[str]) -> None:
    """The output folder's parent holds exactly what it held before: no layout, no staging."""
    assert {p.name for p in parent.iterdir()} == names


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "deploy").mkdir()
    return tmp_path / "deploy" / "hello-oci"


def test_missing_binary_is_named(hellocontainer, out):
    result = hellocontainer("build", out.parent / "nope", "--output", out, check=False)
    assert_one_line_error(result, "nope", "does not exist")
    nothing_written(out.parent, set())


def test_directory_given_as_binary_is_refused(hellocontainer, out, tmp_path):
    result = hellocontainer("build", tmp_path, "--output", out, check=False)
    assert_one_line_error(result, "is a directory")
    nothing_written(out.parent, set())


def test_script_is_not_an_elf_binary(hellocontainer, out, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = hellocontainer("build", script, "--output", out, check=False)
    assert_one_line_error(result, "hello.sh", "not an ELF")
    nothing_written(out.parent, set())


def test_host_binary_declared_for_arm64_names_both_architectures(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--arch", "aarch64", "--output", out, check=False)
    assert_one_line_error(result, "X86_64", "linux/arm64", "--arch")
    nothing_written(out.parent, set())


def test_dynamically_linked_binary_lists_what_it_needs(hellocontainer, out, tmp_path):
    compiler = require_tool("cc", "gcc")
    dynamic = tmp_path / "hello-dynamic"
    os.system(f"{compiler} -o {dynamic} {HELLO_C}")
    result = hellocontainer("build", dynamic, "--output", out, check=False)
    assert_one_line_error(result, "dynamically linked", "libc.so", "-static", "--allow-dynamic")
    nothing_written(out.parent, set())


def test_allow_dynamic_packages_a_dynamic_binary(hellocontainer, out, tmp_path):
    compiler = require_tool("cc", "gcc")
    dynamic = tmp_path / "hello-dynamic"
    os.system(f"{compiler} -o {dynamic} {HELLO_C}")
    hellocontainer("build", dynamic, "--allow-dynamic", "--output", out)
    hellocontainer("validate", out)


def test_invalid_yaml_names_the_line(hellocontainer, hello_static, out, tmp_path):
    spec = tmp_path / "image.yaml"
    spec.write_text("tags: [latest\nuser: 1\n")
    result = hellocontainer("build", hello_static, "--spec", spec, "--output", out, check=False)
    assert_one_line_error(result, "image.yaml", "line")
    nothing_written(out.parent, set())


def test_unknown_spec_key_is_named(hellocontainer, hello_static, out, tmp_path):
    spec = tmp_path / "image.yaml"
    spec.write_text("entrypont: [/hello]\n")
    result = hellocontainer("build", hello_static, "--spec", spec, "--output", out, check=False)
    assert_one_line_error(result, "'entrypont'", "valid keys", "entrypoint")
    nothing_written(out.parent, set())


def test_bad_tag_is_refused(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--tag", "v1..0!", "--output", out, check=False)
    assert_one_line_error(result, "v1..0!", "tag")
    nothing_written(out.parent, set())


@pytest.mark.parametrize("value", ["yesterday", "-5", "1.5", "\u00b2", "\u0661\u0662"])
def test_bad_source_date_epoch_is_refused(hellocontainer, hello_static, out, value):
    result = hellocontainer("build", hello_static, "--output", out,
                            env={"SOURCE_DATE_EPOCH": value}, check=False)
    assert_one_line_error(result, "SOURCE_DATE_EPOCH", value)
    nothing_written(out.parent, set())


def test_unwritable_output_is_refused(hellocontainer, hello_static, tmp_path):
    blocker = tmp_path / "deploy"
    blocker.write_text("a file where the deploy folder should be")
    result = hellocontainer("build", hello_static, "--output", blocker / "images" / "hello-oci",
                            check=False)
    assert_one_line_error(result, "hello-oci", "--output")
    assert blocker.read_text() == "a file where the deploy folder should be"


def test_read_only_output_folder_is_refused(hellocontainer, hello_static, tmp_path):
    # Root ignores permission bits, so a read-only bind mount would be needed; a file system
    # mounted read-only is what users hit: /proc/sys is one on every Linux machine.
    result = hellocontainer("build", hello_static, "--output", "/proc/sys/hello-oci", check=False)
    assert_one_line_error(result, "/proc/sys/hello-oci", "--output")


def test_unknown_option_is_a_usage_error(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--output", out, "--entry", "x", check=False)
    assert_one_line_error(result, "--entry", "--help", status=2)
    nothing_written(out.parent, set())


def test_unknown_architecture_lists_known_ones(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--arch", "z80", "--output", out, check=False)
    assert_one_line_error(result, "z80", "amd64", "arm64")


def test_bad_port_is_named(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--port", "99999", "--output", out, check=False)
    assert_one_line_error(result, "99999", "port")
    nothing_written(out.parent, set())


def test_unbalanced_quotes_in_a_word_flag_are_named(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--env", "A='open", "--output", out, check=False)
    assert_one_line_error(result, "--env", "quotes")


def test_existing_non_layout_folder_is_not_touched(hellocontainer, hello_static, tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"meow")
    result = hellocontainer("build", hello_static, "--output", target, check=False)
    assert_one_line_error(result, "not an OCI image layout")
    assert sorted(p.name for p in target.iterdir()) == ["cat.jpg"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_spec_file_is_named(hellocontainer, hello_static, out, tmp_path):
    result = hellocontainer("build", hello_static, "--spec", tmp_path / "nope.yaml",
                            "--output", out, check=False)
    assert_one_line_error(result, "nope.yaml", "--spec")


def test_missing_extra_file_is_named(hellocontainer, hello_static, out, tmp_path):
    result = hellocontainer("build", hello_static, "--file", f"{tmp_path}/motd:/etc/motd",
                            "--output", out, check=False)
    assert_one_line_error(result, "motd")
    nothing_written(out.parent, set())


def test_build_is_not_confused_by_a_read_only_binary(hellocontainer, hello_static, out, tmp_path):
    copy = tmp_path / "hello"
    shutil.copy(hello_static, copy)
    copy.chmod(stat.S_IRUSR)
    hellocontainer("build", copy, "--output", out)
    hellocontainer("validate", out)


def test_env_word_without_equals_sign_is_named(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--env", "GREETING hello", "--output", out,
                            check=False)
    assert_one_line_error(result, "--env", "'GREETING'", "KEY=VALUE")
    nothing_written(out.parent, set())


def test_archive_under_a_file_is_refused_before_anything_is_written(hellocontainer, hello_static,
                                                                    out, tmp_path):
    (tmp_path / "blocker").write_text("")
    result = hellocontainer("build", hello_static, "--output", out,
                            "--archive", tmp_path / "blocker" / "hello.tar", check=False)
    assert_one_line_error(result, "--archive", "blocker")
    nothing_written(out.parent, set())


@pytest.mark.parametrize(("yaml_text", "fragment"), [
    ("path: /a\npath: /b\n", "given twice"),
    ("env: {yes: '1'}\n", "not a string"),
    ("files: [{src: motd, dest: /etc/motd, mode: 644}]\n", "in quotes"),
])
def test_yaml_that_would_silently_change_the_image_is_refused(hellocontainer, hello_static, out,
                                                              tmp_path, yaml_text, fragment):
    spec = tmp_path / "image.yaml"
    spec.write_text(yaml_text)
    (tmp_path / "motd").write_text("hi\n")
    result = hellocontainer("build", hello_static, "--spec", spec, "--output", out, check=False)
    assert_one_line_error(result, "image.yaml", fragment)
    nothing_written(out.parent, set())


def test_file_name_longer_than_a_file_system_allows_is_refused(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--path", "/" + "c" * 256, "--output", out,
                            check=False)
    assert_one_line_error(result, "256 bytes", "255")
    nothing_written(out.parent, set())


def test_unwritable_archive_leaves_no_layout(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--output", out,
                            "--archive", "/proc/sys/hello.tar", check=False)
    assert_one_line_error(result, "/proc/sys/hello.tar", "--archive")
    nothing_written(out.parent, set())


def test_archive_inside_the_layout_is_refused(hellocontainer, hello_static, out):
    result = hellocontainer("build", hello_static, "--output", out,
                            "--archive", out / "hello.tar", check=False)
    assert_one_line_error(result, "inside the layout")
    nothing_written(out.parent, set())


def test_output_dot_builds_into_the_current_empty_folder(hellocontainer, hello_static, out):
    out.mkdir()
    hellocontainer("build", hello_static, "--output", ".", cwd=out)
    assert sorted(p.name for p in out.iterdir()) == ["blobs", "index.json", "oci-layout"]
