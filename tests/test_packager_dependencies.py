"""Every module the packager imports is declared wherever the packager is installed from source.

An undeclared import works in a developer's environment, where something else pulled it in, and
breaks a build that installs exactly what is declared: python/pyproject.toml, Buildroot's
HOST_HELLOCONTAINER_DEPENDENCIES and the Yocto native recipe's DEPENDS.
"""

from __future__ import annotations

import ast
import re
import sys

from conftest import REPO

SOURCE = REPO / "python" / "src" / "hellocontainer"
PYPROJECT = REPO / "python" / "pyproject.toml"
BUILDROOT_MK = REPO / "br2-external" / "package" / "hellocontainer" / "hellocontainer.mk"
NATIVE_RECIPES = (REPO / "meta-hellocontainer" / "recipes-devtools" / "hellocontainer").glob(
    "hellocontainer-native_*.bb")

# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"yaml": "pyyaml", "elftools": "pyelftools"}


def imported_distributions() -> set[str]:
    """The third-party distributions the packager's modules import, at any depth."""
    names = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    third_party = names - set(sys.stdlib_module_names) - {"hellocontainer"}
    return {DISTRIBUTIONS.get(name, name) for name in third_party}


def pyproject_list(key: str, text: str) -> set[str]:
    """Distribution names of one `key = [...]` list of pyproject.toml, versions dropped."""
    body = re.search(rf"^{key} = \[(.*?)\]", text, re.MULTILINE | re.DOTALL).group(1)
    return {re.split(r"[<>=!~ ;\[]", item)[0].lower() for item in re.findall(r'"([^"]+)"', body)}


def required() -> set[str]:
    return pyproject_list("dependencies", PYPROJECT.read_text())


def test_every_import_is_a_declared_dependency_or_extra() -> None:
    text = PYPROJECT.read_text()
    optional = (pyproject_list("zstd", text) | pyproject_list("zopfli", text)
                | pyproject_list("sign", text))
    assert imported_distributions() - required() - optional == set()


def test_buildroot_host_package_depends_on_every_required_dependency() -> None:
    text = BUILDROOT_MK.read_text().replace("\\\n", " ")
    (line,) = re.findall(r"^HOST_HELLOCONTAINER_DEPENDENCIES = (.*)$", text, re.MULTILINE)
    assert {f"host-python-{name}" for name in required()} <= set(line.split())


def test_yocto_native_recipe_depends_on_every_required_dependency() -> None:
    (recipe,) = NATIVE_RECIPES
    text = recipe.read_text().replace("\\\n", " ")
    (line,) = re.findall(r'^DEPENDS = "(.*)"$', text, re.MULTILINE)
    assert {f"python3-{name}-native" for name in required()} <= set(line.split())
