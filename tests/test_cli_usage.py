"""The command line as people expect it: a mistyped flag is named with the one meant, podman's
`oci:` spelling is explained, and every command's help says what it does."""

from __future__ import annotations

import pytest

from hellocontainer.cli import COMMANDS


def usage_error(result) -> str:
    """The one line of a usage error (exit 2, nothing on stdout)."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("hellocontainer: error: ") and "Traceback" not in line
    return line


@pytest.mark.parametrize(("args", "unknown", "meant", "command"), [
    (["build", "greet", "--ouput", "out/x"], "--ouput", "--output", "build"),
    (["build", "greet", "-o", "out", "--tags", "1.0"], "--tags", "--tag", "build"),
    (["build", "greet", "--entry", "/x", "-o", "out"], "--entry", "--entrypoint", "build"),
    (["inspect", "--jso", "out"], "--jso", "--json", "inspect"),
    (["validate", "out", "--strictly"], "--strictly", "--strict", "validate"),
    (["bundle", "out", "-o", "b", "--netwrk=host"], "--netwrk", "--network", "bundle"),
], ids=["ouput", "tags", "abbreviation", "jso", "strictly", "with-equals"])
def test_a_mistyped_flag_is_named_with_the_one_meant(hellocontainer, args, unknown, meant,
                                                      command):
    line = usage_error(hellocontainer(*args, check=False))
    assert f"unknown option {unknown} (did you mean {meant}?)" in line
    assert line.endswith(f"see 'hellocontainer {command} --help'")
    assert "required" not in line


def test_an_unknown_flag_like_nothing_known_gets_no_guess(hellocontainer):
    line = usage_error(hellocontainer("gc", "out", "--zzz", check=False))
    assert "unknown option --zzz;" in line and "did you mean" not in line
    assert line.endswith("see 'hellocontainer gc --help'")


def test_abbreviations_stay_refused(hellocontainer, tmp_path):
    line = usage_error(hellocontainer("validate", tmp_path, "--str", check=False))
    assert "unknown option --str (did you mean --strict?)" in line


def test_values_and_words_after_double_dash_are_not_flags(hellocontainer, hello_static, tmp_path):
    out = tmp_path / "o"
    hellocontainer("build", "--cmd=--loud -v", "--output", out, "--", hello_static)
    assert '"--loud"' in hellocontainer("inspect", out, "--json").stdout


def test_a_value_that_looks_like_a_flag_is_explained(hellocontainer, tmp_path):
    line = usage_error(hellocontainer("build", "hello", "--cmd", "--loud", "-o", tmp_path,
                                      check=False))
    assert "--cmd needs a value; write one that starts with '-' as --cmd=--loud" in line


def test_a_stray_argument_points_at_the_commands_help(hellocontainer):
    line = usage_error(hellocontainer("inspect", "a", "b", check=False))
    assert "unexpected argument: b" in line and line.endswith("see 'hellocontainer inspect --help'")


@pytest.mark.parametrize("args", [
    ["inspect", "oci:{out}:1.0"], ["validate", "oci:{out}"], ["diff", "{out}", "oci:{out}:1.0"],
    ["bundle", "oci:{out}:1.0", "-o", "{tmp}/b"], ["index", "oci:{out}", "-o", "{tmp}/m"],
    ["gc", "oci:{out}"],
], ids=["inspect", "validate", "diff", "bundle", "index", "gc"])
def test_podmans_oci_prefix_is_explained(hellocontainer, tmp_path, args):
    out = tmp_path / "out"
    argv = [a.format(out=out, tmp=tmp_path) for a in args]
    result = hellocontainer(*argv, check=False)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "drop it" in line and "'oci:'" in line and str(out) in line
    assert "No such file" not in line


def test_a_folder_really_named_oci_colon_is_a_layout(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "oci:x", "--tag", "1.0",
                   cwd=tmp_path)
    assert "1.0" in hellocontainer("inspect", "oci:x:1.0", cwd=tmp_path).stdout
    missing = hellocontainer("inspect", "oci:x:2.0", cwd=tmp_path, check=False)
    assert missing.returncode == 1 and "'2.0'" in missing.stderr and "drop it" not in missing.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_commands_help_starts_with_what_it_does(hellocontainer, name):
    usage, description = hellocontainer(name, "--help").stdout.split("\n\n")[:2]
    assert usage.startswith(f"usage: hellocontainer {name}")
    assert description[:1].isupper() and not description.endswith(":"), description


def test_podmans_oci_prefix_in_autostart_layout_is_explained(hellocontainer, tmp_path):
    result = hellocontainer("autostart", "--runtime", "podman", "--name", "hello", "--layout",
                            "oci:/var/lib/hello:1.0", "--sysv", tmp_path / "S90hello",
                            check=False)
    [line] = result.stderr.splitlines()
    assert result.returncode == 1 and "drop it: --layout /var/lib/hello:1.0" in line
    assert not (tmp_path / "S90hello").exists()
