"""The packager's wheel builds with the build tools of the releases that package it, the oldest
included, and the wheel so built works with that release's versions of its dependencies.

Each tests/build-tools/NAME.txt pins one release's versions. A venv holding exactly those builds a
copy of python/ the way Yocto's python_pep517 class and Buildroot's setuptools packages do:
`python -m build --no-isolation --wheel`, no network, no isolation, no newer setuptools fetched.
For the two oldest sets (Yocto scarthgap, Buildroot 2026.02) the wheel is then installed with
`installer`, as both build systems install it (not editable: no path into the checkout), and the
installed console script builds and validates an image, and a subset of the tests runs against
the installed package.

The interpreter is the one running these tests (3.11 in CI); scarthgap builds with Python 3.12
and Buildroot 2026.02 with 3.14. Each set costs a venv and a pip install (about 30 s).
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO

BUILD_TOOLS = Path(__file__).resolve().parent / "build-tools"
SOURCE = REPO / "python"
PACKAGE = SOURCE / "src" / "hellocontainer"
PYPROJECT = (SOURCE / "pyproject.toml").read_text()
VERSION = re.search(r'^version = "([^"]+)"', PYPROJECT, re.MULTILINE).group(1)

# The sets that also hold the runtime dependencies, whose installed wheel is tested.
OLDEST = ["scarthgap", "buildroot-2026.02"]
# Tests that exercise what differs between releases: pyelftools reading ELF files and ARM
# attributes (test_elfcheck), jsonschema and referencing loading the OCI schemas from the installed
# package data and naming a violation (test_validate), the platform table (test_platforms).
# Chosen to take seconds.
SUBSET = ["tests/test_platforms.py", "tests/test_elfcheck.py", "tests/test_validate.py",
          "-k", "test_platforms or every_tag_cpu_arch or damaged_elf or non_elf or static_pie"
          " or arm_level_decides or valid_layout_says_valid or schema or umoci or nest_32"]


def run(argv: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` without PYTHONPATH (only the venv's own packages count); fail if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                            cwd=cwd, check=False)
    assert result.returncode == 0, \
        f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


@dataclass
class Built:
    venv: Path
    python: Path
    wheel: Path
    log: str  # what the wheel build printed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """The venv of one set of build tools and the wheel it built; made once per set."""
    made: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            venv = root / "venv"
            run([sys.executable, "-m", "venv", venv])
            python = venv / "bin" / "python"
            # Wheels only: nothing compiled here, and a pin that has no wheel for this Python
            # says so at once.
            run([python, "-m", "pip", "install", "--disable-pip-version-check",
                 "--only-binary=:all:", "-r", BUILD_TOOLS / f"{name}.txt"])
            # Both build systems build in a copy of python/; a developer's leftovers stay behind.
            source = root / "python"
            shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "build", "dist", ".ruff_cache"))
            dist = root / "dist"
            build = run([python, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist,
                         source], cwd=source)
            (wheel,) = dist.glob("*.whl")
            made[name] = Built(venv, python, wheel, build.stdout + build.stderr)
        return made[name]

    return get


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        return email.parser.Parser().parsestr(
            archive.read(f"hellocontainer-{VERSION}.dist-info/METADATA").decode())


@pytest.mark.parametrize("tools", [*OLDEST, "oe-core-master"])
def test_wheel_builds_without_warnings_and_holds_the_whole_package(built, tools: str) -> None:
    result = built(tools)
    assert result.wheel.name == f"hellocontainer-{VERSION}-py3-none-any.whl"
    # setuptools' deprecations become errors a few releases later: none may be pending.
    assert not re.search(r"deprecat", result.log, re.IGNORECASE), result.log
    with zipfile.ZipFile(result.wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"hellocontainer-{VERSION}.dist-info/entry_points.txt").decode()
    # Every module and every OCI schema (package data) of the source is in the wheel.
    expected = {f"hellocontainer/{path.relative_to(PACKAGE).as_posix()}"
                for path in PACKAGE.rglob("*") if path.suffix in (".py", ".json")}
    assert any(name.startswith("hellocontainer/oci/schemas/") for name in expected)
    assert expected <= names, sorted(expected - names)
    assert "hellocontainer = hellocontainer.cli:run_and_exit" in entry_points

    meta = metadata(result.wheel)
    assert meta["Requires-Python"] == ">=3.9"
    declared = re.search(r"^dependencies = \[(.*?)\]", PYPROJECT, re.MULTILINE).group(1)
    # setuptools 69 writes "jsonschema >=4.18".
    runtime = [r.replace(" ", "") for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(runtime) == sorted(re.findall(r'"([^"]+)"', declared))
    # MIT either way: an SPDX expression from setuptools 77 on, the older field before it.
    assert "MIT" in (meta["License-Expression"], meta["License"])
    assert meta["License-File"] == "LICENSE"


@pytest.mark.parametrize("tools", OLDEST)
def test_installed_wheel_works_with_the_releases_dependencies(
        built, tools: str, hellocontainer, hello_static: Path, tmp_path: Path) -> None:
    result = built(tools)
    python, scripts = result.python, result.venv / "bin"
    run([python, "-m", "installer", result.wheel])
    # The release's jsonschema, referencing, pyyaml and pyelftools satisfy what the wheel requires.
    run([python, "-m", "pip", "check", "--disable-pip-version-check"])
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    installed = Path(purelib) / "hellocontainer" / "__init__.py"
    where = run([python, "-c", "import hellocontainer; print(hellocontainer.__file__)"], cwd=REPO).stdout
    assert where.strip() == str(installed)

    # The console script installer wrote: an image from a static binary, validated; its digest is
    # the one the packager in the checkout gives.
    printed = run([scripts / "hellocontainer", "build", hello_static,
                   "--output", tmp_path / "layout", "--tag", "1.0"]).stdout
    run([scripts / "hellocontainer", "validate", f"{tmp_path / 'layout'}:1.0", "--strict"])
    reference = hellocontainer("build", hello_static, "--output", tmp_path / "reference",
                               "--tag", "1.0").stdout
    assert printed.split()[1:] == reference.split()[1:]

    # The tests import the installed package (pytest puts tests/, not python/src, on sys.path),
    # and so does every `python -m hellocontainer` they start with this interpreter.
    check = ("import sys, pytest; status = pytest.main(sys.argv[1:]); import hellocontainer; "
             "print('imported from', hellocontainer.__file__); sys.exit(status)")
    output = run([python, "-c", check, "-q", "-p", "no:cacheprovider", *SUBSET], cwd=REPO).stdout
    assert f"imported from {installed}" in output
    assert re.search(r"\d+ passed", output), output
