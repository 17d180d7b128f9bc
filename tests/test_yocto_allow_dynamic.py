"""HELLOCONTAINER_ALLOW_DYNAMIC: a dynamically linked program through the Yocto class.

The class's own functions run on a dict datastore (tests/yocto_class.py) with the real packager.
A dynamic program packages only when the recipe asks for it, with a warning, because the image
holds no loader: `podman run` would fail with "exec /hello: no such file". When refused, the
error names the class variable a recipe sets, not the packager's flag.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import yocto_class
from conftest import REPO, require_tool
from yocto_class import BBFatal, call, datastore, recipe_values, yocto_oci_files

LAYOUT = "usr/share/hellocontainer/hello-prebuilt/index.json"


@pytest.fixture
def dynamic_hello(tmp_path: Path) -> Path:
    """examples/hello linked dynamically against the C library (gcc's default)."""
    compiler = require_tool("cc", "gcc")
    program = tmp_path / "hello-dynamic"
    subprocess.run([compiler, "-o", str(program), str(REPO / "examples" / "hello" / "hello.c")],
                   check=True, capture_output=True)
    return program


def test_dynamic_program_is_refused_naming_the_class_variable(
        tmp_path: Path, dynamic_hello: Path) -> None:
    with pytest.raises(BBFatal) as raised:
        yocto_oci_files(tmp_path, dynamic_hello, "x86_64", HELLOCONTAINER_AUTOSTART="")
    message = str(raised.value)
    assert "is dynamically linked" in message
    assert 'set HELLOCONTAINER_ALLOW_DYNAMIC = "1"' in message
    assert "--allow-dynamic" not in message


def test_allow_dynamic_packages_it_and_warns(tmp_path: Path, dynamic_hello: Path) -> None:
    yocto_class.warnings.clear()
    image = yocto_oci_files(tmp_path, dynamic_hello, "x86_64", HELLOCONTAINER_AUTOSTART="",
                            HELLOCONTAINER_ALLOW_DYNAMIC="1")
    assert (image / LAYOUT).is_file()
    (warning,) = yocto_class.warnings
    assert warning.startswith('HELLOCONTAINER_ALLOW_DYNAMIC = "1": /usr/bin/hello may be '
                              "dynamically linked")


def test_default_refuses_dynamic_programs_quietly(tmp_path: Path) -> None:
    d = datastore(recipe_values(tmp_path, tmp_path / "hello", "x86_64"))
    assert d.getVar("HELLOCONTAINER_ALLOW_DYNAMIC") == "0"
    assert "--allow-dynamic" not in call("build_argv", d, "/p", "/layout")


def test_static_program_gives_no_warning(tmp_path: Path, hello_static: Path) -> None:
    yocto_class.warnings.clear()
    image = yocto_oci_files(tmp_path, hello_static, "x86_64", HELLOCONTAINER_AUTOSTART="")
    assert (image / LAYOUT).is_file()
    assert yocto_class.warnings == []
