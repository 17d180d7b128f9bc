"""Shell completion and the manual page, as a user's shell and man(1) see them.

The bash script is sourced into a real bash and its function called with COMP_WORDS set, as bash
does on Tab; the zsh script is loaded by a real zsh's compinit both ways users install it; the
page is rendered by groff and man. Every command and option of the parser must reach all three.
Nothing generated is checked into the tree: the packages' builds and users generate them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool
from hellocontainer.cli import command_parsers

TOP, COMMANDS = command_parsers()


def generate(*args: str, **env: str) -> str:
    """What `hellocontainer ARGS` prints, run as a user runs it."""
    return subprocess.run([sys.executable, "-m", "hellocontainer", *args], check=True,
                          capture_output=True, text=True, env={**os.environ, **env}).stdout


def _options(name: str) -> set[str]:
    return {o for a in COMMANDS[name]._actions for o in a.option_strings}


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "hellocontainer.bash"
    path.write_text(generate("completion", "bash"))
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers on Tab at the end of `line` (a trailing space: a new word)."""
    bash = require_tool("bash", "bash")
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    # bash splits `--flag=value` into three words at the '=' (COMP_WORDBREAKS).
    words = [part for word in words for part in
             ([word.split("=", 1)[0], "=", word.split("=", 1)[1]]
              if word.startswith("--") and "=" in word else [word])]
    program = (f"source {shlex.quote(str(script))}\n"
               f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
               f"COMP_CWORD={len(words) - 1}\n"
               "_hellocontainer\n"
               "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", program], capture_output=True,
                            text=True, cwd=cwd)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return sorted(filter(None, result.stdout.splitlines()))


def test_bash_completes_command_names(bash_script):
    assert complete(bash_script, "hellocontainer b") == ["build", "bundle"]
    assert set(complete(bash_script, "hellocontainer ")) >= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bash_offers_every_option_of_each_command(bash_script, name):
    assert set(complete(bash_script, f"hellocontainer {name} -")) == _options(name)


def test_bash_completes_a_mistyped_flag_to_the_real_one(bash_script):
    assert complete(bash_script, "hellocontainer build x --ou") == ["--output"]
    assert complete(bash_script, "hellocontainer inspect --js") == ["--json"]


def test_bash_offers_the_choices_of_an_option(bash_script):
    assert complete(bash_script, "hellocontainer build x --compression ") == ["gzip", "none",
                                                                              "zstd"]
    assert complete(bash_script, "hellocontainer autostart --restart=") == ["always", "no",
                                                                           "on-failure"]
    assert complete(bash_script, "hellocontainer completion ") == ["bash", "zsh"]


def test_bash_completes_folders_for_layouts_and_files_for_binaries(bash_script, tmp_path):
    (tmp_path / "layout").mkdir()
    (tmp_path / "lamp").write_text("")
    assert complete(bash_script, "hellocontainer build x --output la", tmp_path) == ["layout"]
    assert complete(bash_script, "hellocontainer inspect la", tmp_path) == ["layout"]
    assert complete(bash_script, "hellocontainer build la", tmp_path) == ["lamp", "layout"]
    assert complete(bash_script, "hellocontainer build x --spec la", tmp_path) == ["lamp",
                                                                                   "layout"]
    # A value Tab cannot guess is not replaced by file names.
    assert complete(bash_script, "hellocontainer build x --jobs ", tmp_path) == []


def test_bash_registers_the_function_for_the_command(bash_script):
    bash = require_tool("bash", "bash")
    result = subprocess.run([bash, "--norc", "--noprofile", "-i", "-c",
                             f"source {shlex.quote(str(bash_script))}; complete -p hellocontainer"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.stdout.strip().endswith("-F _hellocontainer hellocontainer"), result.stderr


def _zsh(program: str, **kwargs) -> subprocess.CompletedProcess[str]:
    zsh = require_tool("zsh", "zsh")
    return subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, **kwargs)


def test_zsh_loads_the_function_from_fpath_and_when_sourced(tmp_path):
    functions = tmp_path / "site-functions"
    functions.mkdir()
    script = functions / "_hellocontainer"
    script.write_text(generate("completion", "zsh"))
    assert _zsh(f"zcompile -U {shlex.quote(str(tmp_path / 'x.zwc'))} "
                f"{shlex.quote(str(script))}").returncode == 0
    home = {"HOME": str(tmp_path), "ZDOTDIR": str(tmp_path)}
    autoloaded = _zsh(f"fpath=({shlex.quote(str(functions))} $fpath); autoload -U compinit; "
                      "compinit -u -D; print -r -- $_comps[hellocontainer]; "
                      "autoload +X _hellocontainer && print -r -- ${+functions[_hellocontainer]}",
                      env=home)
    assert autoloaded.stdout.split() == ["_hellocontainer", "1"], autoloaded.stderr
    sourced = _zsh(f"autoload -U compinit; compinit -u -D; source {shlex.quote(str(script))}; "
                   "print -r -- $_comps[hellocontainer]", env=home)
    assert sourced.stdout.split() == ["_hellocontainer"], sourced.stderr


def test_zsh_script_describes_every_option_of_each_command():
    script = generate("completion", "zsh")
    for name in COMMANDS:
        assert f"'{name}:" in script
        for option in _options(name):
            assert option in script, (name, option)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("man") / "hellocontainer.1"
    path.write_text(generate("manpage"))
    return path


def test_manual_page_renders_without_a_warning(page):
    groff = require_tool("groff", "groff")
    result = subprocess.run([groff, "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


def test_manual_page_shows_every_command_and_option(page):
    man = require_tool("man", "man-db")
    result = subprocess.run([man, "-l", str(page)], capture_output=True, text=True,
                            env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("HELLOCONTAINER(1)")
    for name in COMMANDS:
        assert f"hellocontainer {name}" in text
        for option in _options(name):
            assert option in text, (name, option)


def test_manual_page_is_the_same_whatever_the_terminal(page):
    """No terminal width or date in it: a package build gives the same bytes everywhere."""
    narrow = generate("manpage", COLUMNS="40", SOURCE_DATE_EPOCH="1")
    assert narrow == page.read_text()
