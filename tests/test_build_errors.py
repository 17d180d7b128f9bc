"""Every mistake a user can make gets one line naming the thing and the fix, and leaves no output."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import HELLO_C, require_tool
from oci import image_config


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


@pytest.fixture
def dynamic_hello(tmp_path: Path) -> Path:
    """examples/hello linked dynamically against the C library (gcc's default)."""
    compiler = require_tool("cc", "gcc")
    dynamic = tmp_path / "hello dynamic"  # a space: the path reaches the compiler as one word
    subprocess.run([compiler, "-o", str(dynamic), str(HELLO_C)], check=True, capture_output=True)
    return dynamic


def test_dynamically_linked_binary_lists_what_it_needs(hellocontainer, out, dynamic_hello):
    result = hellocontainer("build", dynamic_hello, "--output", out, check=False)
    assert_one_line_error(result, "dynamically linked", "libc.so", "-static", "--allow-dynamic",
                          status=3)
    nothing_written(out.parent, set())


def test_allow_dynamic_packages_a_dynamic_binary(hellocontainer, out, dynamic_hello):
    hellocontainer("build", dynamic_hello, "--allow-dynamic", "--output", out)
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
    assert_one_line_error(result, "SOURCE_DATE_EPOCH", value, "not a non-negative integer")
    nothing_written(out.parent, set())


@pytest.mark.parametrize("value", ["253402300800", "99999999999999", "9" * 5000],
                         ids=["year-10000", "far-future", "5000-digits"])
def test_source_date_epoch_after_year_9999_is_refused(hellocontainer, hello_static, out, value):
    """RFC 3339 (the image's `created`) has four-digit years: 9999-12-31T23:59:59Z is the end."""
    result = hellocontainer("build", hello_static, "--output", out,
                            env={"SOURCE_DATE_EPOCH": value}, check=False)
    assert_one_line_error(result, "SOURCE_DATE_EPOCH", "after 9999-12-31T23:59:59Z")
    nothing_written(out.parent, set())


@pytest.mark.parametrize("value", ["253402300799", "000253402300799"])
def test_source_date_epoch_at_the_end_of_year_9999_is_accepted(hellocontainer, hello_static, out,
                                                               value):
    hellocontainer("build", hello_static, "--output", out, env={"SOURCE_DATE_EPOCH": value})
    assert image_config(out)["created"] == "9999-12-31T23:59:59Z"


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


@pytest.mark.parametrize(("files", "fragments"), [
    (["motd:/../etc/motd"], ("'/../etc/motd'", "contains '..'")),
    (["motd:/etc/../../motd"], ("'/etc/../../motd'", "contains '..'")),
    (["motd:/"], ("'/'", "root directory")),
    (["motd://"], ("'//'", "root directory")),
    (["motd:etc/motd"], ("'etc/motd'", "absolute path")),
    (["motd:/etc/motd", "other:/etc//motd/"], ("two files go to /etc/motd",)),
    (["motd:/hello"], ("two files go to /hello",)),
    (["motd:/etc", "other:/etc/motd"], ("/etc is both a file and the folder of another file",)),
    (["motd:/etc/motd/x", "other:/etc/motd"], ("/etc/motd is both a file and the folder",)),
], ids=["dot-dot-at-root", "dot-dot-climbing", "root", "double-slash-root", "relative",
        "same-destination", "the-binarys-path", "file-over-folder", "folder-over-file"])
def test_file_destination_that_cannot_be_a_file_in_the_image_is_refused(
        hellocontainer, hello_static, out, tmp_path, files, fragments):
    (tmp_path / "motd").write_text("hi\n")
    (tmp_path / "other").write_text("other\n")
    result = hellocontainer("build", hello_static, "--path", "/hello", "--output", out,
                            *[arg for f in files for arg in ("--file", f)], cwd=tmp_path,
                            check=False)
    assert_one_line_error(result, *fragments)
    nothing_written(out.parent, set())


def test_spec_file_destination_with_dot_dot_is_refused(hellocontainer, hello_static, out,
                                                       tmp_path):
    (tmp_path / "motd").write_text("hi\n")
    spec = tmp_path / "image.yaml"
    spec.write_text("files: [{src: motd, dest: /etc/../../root/motd}]\n")
    result = hellocontainer("build", hello_static, "--spec", spec, "--output", out, check=False)
    assert_one_line_error(result, "'/etc/../../root/motd'", "contains '..'")
    nothing_written(out.parent, set())


def test_missing_extra_file_is_named(hellocontainer, hello_static, out, tmp_path):
    result = hellocontainer("build", hello_static, "--file", f"{tmp_path}/motd:/etc/motd",
                            "--output", out, check=False)
    assert_one_line_error(result, f"{tmp_path}/motd does not exist",
                          f"fix --file {tmp_path}/motd:/etc/motd")
    nothing_written(out.parent, set())


def test_missing_extra_file_of_the_spec_file_names_its_key(hellocontainer, hello_static, out,
                                                            tmp_path):
    """The user wrote no --file: the line names the spec key, counted from 0 as in every
    other spec error."""
    (tmp_path / "motd").write_text("hi\n")
    (tmp_path / "image.yaml").write_text(
        "files:\n  - {src: motd, dest: /etc/motd}\n  - {src: nope, dest: /etc/nope}\n")
    result = hellocontainer("build", hello_static, "--spec", "image.yaml", "--output", out,
                            cwd=tmp_path, check=False)
    assert_one_line_error(result, "nope does not exist", "fix files[1].src in image.yaml")
    assert "--file" not in result.stderr
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


def test_output_under_a_file_is_one_line_naming_the_output(hellocontainer, hello_static, tmp_path):
    (tmp_path / "blocker").write_text("")
    output = tmp_path / "blocker" / "hello-oci"
    result = hellocontainer("build", hello_static, "--output", output, check=False)
    # The output and the cause, never a temporary name the user did not choose.
    assert_one_line_error(result, f"cannot write --output {output}: Not a directory")
    assert ".hellocontainer-" not in result.stderr
    nothing_written(tmp_path, {"blocker"})


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


# --- the settings themselves: spec file and flags, read in-process (milliseconds each) -------

def settings(spec_text: str | None = None, tmp_path: Path | None = None, **flags: object):
    """The ImageSpec a build would use: a spec file (if given) overridden by flags."""
    from hellocontainer.image.spec import flags_document, load_spec_file, merge

    document = {}
    if spec_text is not None:
        assert tmp_path is not None
        (tmp_path / "image.yaml").write_text(spec_text)
        document = load_spec_file(tmp_path / "image.yaml")
    return merge(document, flags_document({k.replace("_", "-"): v for k, v in flags.items()}))


def test_flags_override_the_spec_file_and_maps_merge_key_by_key(tmp_path):
    spec = settings("env: {A: '1', B: '2'}\nlabels: {x: y}\ntags: [a, b]\ncmd: [serve]\n"
                    "files: [{src: motd, dest: /etc//motd/, mode: '0600'}]\n", tmp_path,
                    env=["B=3 C='four five'"], tag=["c"], port=["80 80/tcp 53/udp 80"])
    assert spec.env == (("A", "1"), ("B", "3"), ("C", "four five"))
    assert spec.labels == (("x", "y"),)
    assert spec.tags == ("c",)
    assert spec.cmd == ("serve",)
    assert spec.ports == ("80", "80/tcp", "53/udp")  # each once, in the order given
    (extra,) = spec.files
    assert (extra.src, extra.dest, extra.mode, extra.base) == ("motd", "/etc/motd", 0o600, tmp_path)


def test_defaults_when_nothing_is_set():
    spec = settings()
    assert (spec.tags, spec.entrypoint, spec.cmd, spec.compression, spec.gzip_level,
            spec.allow_dynamic, spec.files) == (("latest",), None, None, "gzip", None, False, ())


def test_repeated_tags_are_kept_once_in_order():
    assert settings(tag=["b a", "b c"]).tags == ("b", "a", "c")


def test_empty_entrypoint_is_not_the_default():
    """`--entrypoint ''` clears it (an explicit empty list), unlike leaving it out."""
    assert settings(entrypoint=[""]).entrypoint == ()


@pytest.mark.parametrize(("flags", "fragments"), [
    ({"env": ["=x"]}, ("--env word '=x' is not KEY=VALUE",)),
    ({"label": ["novalue"]}, ("--label word 'novalue'",)),
    ({"file": ["motd"]}, ("--file 'motd' is not SRC:DEST[:MODE]",)),
    ({"file": ["motd::0644"]}, ("--file 'motd::0644' is not SRC:DEST[:MODE]",)),
    ({"file": ["a:/b:0644:x"]}, ("is not SRC:DEST[:MODE]",)),
    ({"port": ["http"]}, ("--port",)),
    ({"cmd": ["'open"]}, ("--cmd", "balance the quotes")),
    ({"path": "/" + "p" * 256}, ("path has a component of 256 bytes", "at most 255")),
    ({"workdir": "/a/../b"}, ("workdir '/a/../b' contains '..'",)),
], ids=["env-no-key", "label-no-equals", "file-one-part", "file-empty-dest", "file-four-parts",
        "port-name", "unbalanced-quote", "long-name", "workdir-dot-dot"])
def test_flag_mistakes_name_the_flag(flags, fragments):
    from hellocontainer.errors import SpecError

    with pytest.raises(SpecError) as caught:
        settings(**flags)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_workdir_may_be_the_root_and_a_255_byte_name_is_allowed():
    spec = settings(workdir="//", path="/" + "p" * 255)
    assert spec.workdir == "/" and spec.path == "/" + "p" * 255


@pytest.mark.parametrize(("text", "fragment"), [
    ("a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "expands to more than 100000 values"),
    ("x: " + "[" * 70 + "]" * 70 + "\n", "nests deeper than 64 levels"),
    ("- just\n- a list\n", "must be a mapping of settings, not a list"),
    ("tags: [latest]\n1: x\n", "line 2: key '1' is not a string"),
    ("tags: [a]\ntags: [b]\n", "line 2: key 'tags' is given twice"),
    ("tags: [a\n", "line 2"),
], ids=["billion-laughs", "too-deep", "not-a-mapping", "number-key", "twice", "syntax"])
def test_spec_file_mistakes_are_named(tmp_path, text, fragment):
    from hellocontainer.errors import SpecError

    with pytest.raises(SpecError, match=re.escape(fragment)):
        settings(text, tmp_path)


@pytest.mark.parametrize(("lists", "too_deep"), [(63, False), (64, True)])
def test_spec_file_nesting_limit_is_64_levels(tmp_path, lists, too_deep):
    """The top mapping and 63 nested lists are 64 levels: read (and then refused for its
    unknown key); one list more is refused for its depth, before anything is built from it."""
    from hellocontainer.errors import SpecError

    with pytest.raises(SpecError) as caught:
        settings("x: " + "[" * lists + "]" * lists + "\n", tmp_path)
    assert ("nests deeper than 64 levels" in str(caught.value)) == too_deep, str(caught.value)


def test_yaml_merge_keys_are_allowed(tmp_path):
    spec = settings("labels: &base {A: '1'}\nenv: {<<: *base, B: '2'}\n", tmp_path)
    assert dict(spec.env) == {"A": "1", "B": "2"}


def test_spec_file_that_is_not_utf8_is_refused(tmp_path):
    from hellocontainer.errors import SpecError

    (tmp_path / "image.yaml").write_bytes(b"tags: [caf\xe9]\n")
    from hellocontainer.image.spec import load_spec_file

    with pytest.raises(SpecError, match=r"is not UTF-8 text .* at byte 10"):
        load_spec_file(tmp_path / "image.yaml")


def test_spec_file_larger_than_a_mebibyte_is_refused(tmp_path):
    from hellocontainer.errors import SpecError
    from hellocontainer.image.spec import load_spec_file

    (tmp_path / "image.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(SpecError, match=r"larger than 1 MiB.*check --spec"):
        load_spec_file(tmp_path / "image.yaml")


def test_empty_spec_file_means_the_defaults(tmp_path):
    assert settings("", tmp_path) == settings()
