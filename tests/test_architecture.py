"""The package's rooms and the one way imports may run between them, read from the source with ast.

Each room's `__init__` docstring says what it may import; this test holds the code to it, lazy
imports inside functions included, so an arrow pointing the wrong way fails here before it grows
into a circle.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "src" / "hellocontainer"

# room → the rooms its modules may import (besides its own and the package's `__init__`, "",
# which holds only the version). A top-level module is a room of its own, by name.
ALLOWED = {
    "": set(),
    "errors": set(),
    "sourcedate": {"errors"},
    "oci": {"errors"},
    "store": {"errors", "oci"},
    "check": {"errors", "oci"},
    "provenance": {"errors", "sourcedate", "oci"},
    "image": {"errors", "sourcedate", "oci", "store", "check", "provenance"},
    "board": {"errors", "oci", "store", "provenance"},
}
# The command line: it may import every room, and it is the only package that prints or exits.
CLI = "cli"
ALLOWED[CLI] = set(ALLOWED) - {""}
ALLOWED["__main__"] = {CLI}  # `python -m hellocontainer`: it only hands over to the cli


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """Every module of ours that `name` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hellocontainer")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "hellocontainer":
                target = node.module or ""
            else:
                continue
            # `from . import model` imports the module `model`; `from .model import X` imports `.model`
            known = modules()
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            found.update(subs or [target])
    return found - {name}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@functools.cache
def graph() -> dict[str, set[str]]:
    return {name: imported(name, path) for name, path in modules().items()}


def test_the_package_is_a_handful_of_rooms_with_a_few_top_level_modules():
    rooms = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert rooms == ["board", "check", "cli", "image", "oci", "provenance", "store"]
    assert top == ["__init__", "__main__", "errors", "sourcedate"]
    assert sorted(ALLOWED) == sorted(["", *rooms, *top[1:]])


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_only_down_to_allowed_rooms(name):
    own = room(name)
    wrong = sorted(m for m in graph()[name] if room(m) not in ALLOWED[own] | {own, ""})
    assert not wrong, f"{name} ({own}) may import only {sorted(ALLOWED[own])}, yet imports {wrong}"


def test_no_module_imports_itself_back_through_others():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " → ".join(cycle))
            if nxt in edges and state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if state.get(start) is None:
            visit(start, [start])


def test_check_never_imports_a_module_that_writes_or_deletes():
    writers = {m for m in modules() if room(m) == "store"}
    for name, targets in graph().items():
        if room(name) == "check":
            assert not targets & writers, f"{name} imports {sorted(targets & writers)}"


@pytest.mark.parametrize("name", sorted(n for n in modules() if room(n) != CLI))
def test_only_the_cli_prints_or_exits(name):
    """Outside the CLI, modules raise typed errors and return values: no print, exit or std streams."""
    tree = ast.parse(modules()[name].read_text())
    offending = []
    for node in ast.walk(tree):
        called = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if called in {"print", "exit", "SystemExit"}:
            offending.append(f"line {node.lineno}: {called}()")
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Name) and node.exc.id == "SystemExit":
            offending.append(f"line {node.lineno}: raise SystemExit")
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys"
                and node.attr in {"exit", "stdout", "stderr"}):
            offending.append(f"line {node.lineno}: sys.{node.attr}")
    assert not offending, f"{name}: {offending}"


@pytest.mark.parametrize("name", sorted(n for n in modules() if not n.endswith("__main__")))
def test_every_module_imports(name):
    """The ast reading above sees import lines, not whether their names exist: import each
    (all but __main__, which runs the CLI when imported)."""
    importlib.import_module(name)


def test_each_module_of_the_cli_is_one_command_registered_once():
    """Besides its `__init__` (main, the registry) and the options several commands share."""
    from hellocontainer.cli import COMMANDS

    files = sorted(p.stem for p in (PACKAGE / CLI).glob("*.py") if p.stem not in {"__init__", "options"})
    assert sorted(COMMANDS) == files
    for name, command in COMMANDS.items():
        assert command.__name__ == f"hellocontainer.{CLI}.{name}"
        assert isinstance(command.DESCRIPTION, str), f"{name}: its --help starts with it"
        assert isinstance(command.HELP, str) and callable(command.setup) and callable(command.run), name
