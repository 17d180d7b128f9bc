"""What the CLI prints reads the way a user writes it, and exit codes say one thing each."""

from __future__ import annotations

import argparse
import ast
import errno
import json
import shlex
from pathlib import Path

import pytest

from foreign import build_static_hello, cross_compilers
from hellocontainer.cli import COMMANDS


@pytest.fixture
def layout(hellocontainer, hello_static, tmp_path) -> Path:
    out = tmp_path / "o"
    hellocontainer("build", hello_static, "--output", out, "--tag", "1.0 latest",
                   "--entrypoint", "/hello --name 'a b'")
    return out


def test_inspect_prints_shell_words_and_a_dash_for_unset(hellocontainer, layout):
    lines = hellocontainer("inspect", f"{layout}:1.0").stdout.splitlines()
    entrypoint = next(line for line in lines if line.startswith("entrypoint"))
    assert shlex.split(entrypoint.split(None, 1)[1]) == ["/hello", "--name", "a b"]
    assert "cmd       -" in lines
    assert not any("None" in line or "['" in line for line in lines), lines


def test_validate_of_a_missing_tag_is_one_line_naming_the_tags(hellocontainer, layout):
    result = hellocontainer("validate", f"{layout}:nope", check=False)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ") and "'nope'" in line
    assert "tags: 1.0, latest" in line and "not a valid" not in line


def test_diff_exit_codes_follow_diff1(hellocontainer, hello_static, layout, tmp_path):
    assert hellocontainer("diff", layout, layout).returncode == 0
    other = tmp_path / "other"
    hellocontainer("build", hello_static, "--output", other, "--tag", "1.0 latest",
                   "--env", "A=1")
    assert hellocontainer("diff", layout, other, check=False).returncode == 1
    trouble = hellocontainer("diff", layout, tmp_path / "nothere", check=False)
    assert trouble.returncode == 2
    assert trouble.stderr.startswith("hellocontainer: error: ")


@pytest.mark.parametrize("trouble", [OSError(errno.EIO, "Input/output error", "a/index.json"),
                                     MemoryError(), RecursionError()])
@pytest.mark.parametrize(("command", "status"), [("diff", 2), ("inspect", 1)])
def test_trouble_beyond_our_own_errors_exits_with_the_commands_status(monkeypatch, capsys, trouble,
                                                                       command, status):
    """A file system error or too large an input: diff(1)'s 2 for diff, as for its own errors."""
    import hellocontainer.check.diff
    import hellocontainer.check.inspect
    from hellocontainer.cli import main

    def fail(*args: object) -> None:
        raise trouble

    monkeypatch.setattr(hellocontainer.check.diff, "diff_layouts", fail)
    monkeypatch.setattr(hellocontainer.check.inspect, "inspect_layout", fail)
    assert main([command, "a", "b"] if command == "diff" else [command, "a"]) == status
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("hellocontainer: error: ")


def test_diff_names_the_tag_the_same_way_however_it_was_asked(hellocontainer, hello_static,
                                                              layout, tmp_path):
    other = tmp_path / "other"
    hellocontainer("build", hello_static, "--output", other, "--tag", "1.0 latest",
                   "--env", "A=1")
    whole = hellocontainer("diff", layout, other, check=False).stdout.splitlines()
    named = hellocontainer("diff", f"{layout}:latest", f"{other}:latest",
                           check=False).stdout.splitlines()
    assert named and set(named) <= set(whole)
    assert all(line.startswith("tag latest") for line in named)


def test_index_refuses_platforms_that_start_different_programs(hellocontainer, hello_static,
                                                                tmp_path):
    arm = build_static_hello(cross_compilers()["arm64"], tmp_path)  # requires the compiler
    named = tmp_path / "hello-arm64"
    arm.rename(named)
    hellocontainer("build", hello_static, "--output", tmp_path / "amd64")
    hellocontainer("build", named, "--output", tmp_path / "arm64")  # entrypoint /hello-arm64
    refused = hellocontainer("index", "--output", tmp_path / "multi", tmp_path / "amd64",
                             tmp_path / "arm64", check=False)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "start different programs" in refused.stderr and "/hello-arm64" in refused.stderr
    assert not (tmp_path / "multi").exists()
    hellocontainer("index", "--output", tmp_path / "multi", "--allow-different-programs",
                   tmp_path / "amd64", tmp_path / "arm64")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_option_is_parsed_and_then_ignored(name):
    """Each option a command adds is read by its run, or is one of the image flags (build's spec
    keys) or bundle settings (bundle's and build's), whose lists are read from their argument
    groups."""
    command = COMMANDS[name]
    parser = argparse.ArgumentParser()
    command.setup(parser)
    options = {action.dest for action in parser._actions} - {"help"}
    tree = ast.parse(Path(command.__file__).read_text())
    read = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "args"}
    image_flags = set(parser.get_default("image_flags") or ())
    bundle_settings = set(parser.get_default("bundle_settings") or ())
    assert options - read - image_flags - bundle_settings == set()
    if name in ("build", "bundle"):
        assert "network" in bundle_settings
    if name == "build":
        assert {"arch", "tag", "gzip_level", "sbom", "sbom_library"} <= image_flags
        assert "sbom_copy" not in image_flags and "sbom_copy" in read


def test_build_json_names_what_was_published(hellocontainer, hello_static, tmp_path):
    out = tmp_path / "o"
    result = hellocontainer("build", hello_static, "--output", out, "--tag", "1.0 latest",
                            "--json")
    report = json.loads(result.stdout)
    assert list(report) == sorted(report) == ["archive", "bundle", "digest", "layout",
                                              "manifest", "platform", "sbom", "signatures", "tags"]
    assert report["layout"] == str(out) and report["tags"] == ["1.0", "latest"]
    assert report["platform"] == "linux/amd64" and report["digest"] == report["manifest"]
    assert report["sbom"] is report["archive"] is report["bundle"] is None
    assert report["signatures"] == []
    inspected = json.loads(hellocontainer("inspect", f"{out}:1.0", "--json").stdout)
    assert report["manifest"] in json.dumps(inspected)
    assert result.stderr == ""


def test_validate_json_keeps_the_exit_status(hellocontainer, layout):
    report = json.loads(hellocontainer("validate", f"{layout}:1.0", "--json").stdout)
    assert report == {"problems": [], "ref": f"{layout}:1.0", "strict": False, "valid": True,
                      "warnings": []}
    (layout / "blobs" / "sha256" / ("0" * 64)).write_text("no tag reaches it")
    loose = hellocontainer("validate", layout, "--json")
    assert json.loads(loose.stdout)["warnings"] and loose.stderr == ""
    strict = hellocontainer("validate", layout, "--json", "--strict", check=False)
    assert strict.returncode == 1 and strict.stderr == ""
    assert json.loads(strict.stdout)["valid"] is False


def test_diff_json_keeps_diff1s_exit_statuses(hellocontainer, hello_static, layout, tmp_path):
    same = hellocontainer("diff", layout, layout, "--json")
    assert json.loads(same.stdout) == {"a": str(layout), "b": str(layout), "differences": [],
                                       "identical": True}
    other = tmp_path / "other"
    hellocontainer("build", hello_static, "--output", other, "--tag", "1.0 latest", "--env", "A=1")
    differ = hellocontainer("diff", layout, other, "--json", check=False)
    text = hellocontainer("diff", layout, other, check=False)
    assert differ.returncode == text.returncode == 1
    assert json.loads(differ.stdout)["differences"] == text.stdout.splitlines()
    trouble = hellocontainer("diff", layout, tmp_path / "nothere", "--json", check=False)
    assert trouble.returncode == 2 and trouble.stdout == ""
    [line] = trouble.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ")
