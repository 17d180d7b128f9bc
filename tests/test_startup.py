"""A hello build loads only what it uses: the modules it imports are its start-up time.

A small build spends most of its CPU importing Python modules (bench/results.md has the
numbers); each module below once cost more start-up time than the build's own work. These
tests read which modules a real build imported (`python -X importtime` lists every one, so
the answer does not depend on timing) and name what came back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Module → why a build without the options that need it must not import it.
NOT_ON_THE_BUILD_PATH = {
    # `dataclasses` imports `inspect` (with ast, dis, tokenize) and compiles each class's
    # methods from source at every start: the value types are NamedTuples or plain classes.
    "dataclasses": "a dataclass on the build path",
    "inspect": "`inspect`, through dataclasses or directly",
    # jsonschema (with referencing, rpds, attrs) only words a failing document's problems.
    "jsonschema": "jsonschema for a valid document",
    # pyelftools only reads ARM attributes; construct imports pdb.
    "elftools": "pyelftools for an x86 binary",
    # The signing code with `cryptography` is for --sign-key; every --help only names the
    # passphrase variable (provenance/passphrase.py).
    "hellocontainer.provenance.signing": "the signing code without --sign-key",
    "hellocontainer.provenance.sbom": "the SBOM code without --sbom",
    # A second compression thread only for a layer of more than one block.
    "concurrent.futures": "a thread pool for a one-block layer",
}


def imported_modules(argv: list[str], cwd: Path) -> set[str]:
    """Every module `python -m hellocontainer ARGV` imports, as `-X importtime` lists them."""
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hellocontainer", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # "import time: self [us] | cumulative | imported package", the name indented by depth.
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and not line.rstrip().endswith("imported package")
    }


@pytest.fixture(scope="module")
def build_modules(hello_static: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    work = tmp_path_factory.mktemp("startup")
    modules = imported_modules(["build", str(hello_static), "--output", "layout"], work)
    assert (work / "layout" / "index.json").is_file()
    return modules


def test_the_build_really_ran_through_the_packager(build_modules):
    """The list below is only worth something if the build's own modules are in it."""
    assert {"hellocontainer.image.build", "hellocontainer.check.validate", "argparse"} <= build_modules


@pytest.mark.parametrize("module", sorted(NOT_ON_THE_BUILD_PATH))
def test_a_hello_build_does_not_import(build_modules, module):
    assert module not in build_modules, f"a hello build imports {NOT_ON_THE_BUILD_PATH[module]}"


def test_the_help_of_build_loads_neither_the_build_nor_the_signing_code(tmp_path):
    modules = imported_modules(["build", "--help"], tmp_path)
    assert "hellocontainer.image.build" not in modules
    assert "hellocontainer.provenance.signing" not in modules
    assert "dataclasses" not in modules
