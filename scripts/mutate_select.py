"""Run, for each mutant, only the tests that execute the mutated line (used by scripts/mutate).

A test that never executes a line behaves the same whatever that line says, so running only the
tests that reach it gives the same verdict as the whole subset, in a fraction of the time: the
subsets of the big modules take minutes, and a module has hundreds of mutants.

    mutate_select.py map MODULE_FILE MAP.json -- PYTEST_ARGS...
        run the subset once under coverage, every test in its own coverage context (its child
        processes too), and write which tests execute each line of MODULE_FILE
    mutate_select.py run MODULE_FILE PRISTINE MAP.json -- PYTEST_ARGS...
        the test command of a mutant: find the lines that differ from PRISTINE, run the tests
        that execute them; with no mutant in place, run the whole subset (cosmic-ray's baseline)

Four rules keep the choice sound:
- A mutated line outside every function body (a module constant, a default argument, a class
  attribute) runs at import, before any test's context: the whole subset runs.
- Lines executed while a fixture beyond function scope was set up count for every test that
  uses that fixture (a layout built once per module serves many tests).
- A test that fails under coverage (one that traces every file a process writes sees
  coverage's data files too) cannot be measured: it runs for every mutant.
- A mutated line that no test executes is reported as such and survives: no test can see it.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CONTEXT_ENV = "HELLOCONTAINER_MUTATE_CONTEXT"

# Started by every Python process whose PYTHONPATH holds the hook folder (the pytest process
# and each `python -m hellocontainer` it starts): coverage with the test's context.
SITECUSTOMIZE = f"""\
import os
if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage
    coverage.process_startup()  # may have run already, from the .pth file coverage installs
    _cov = coverage.Coverage.current()
    if _cov is not None and os.environ.get("{CONTEXT_ENV}"):
        _cov.switch_context(os.environ["{CONTEXT_ENV}"])
"""

# Loaded into the pytest process with -p: names each test's context, in the process and in the
# environment its children inherit, and records the fixtures it shares with other tests.
PLUGIN = f"""\
import json, os
import coverage
import pytest

shared = {{}}
failed = []
seconds = {{}}

def _switch(context):
    os.environ["{CONTEXT_ENV}"] = context
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(context)

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    defs = getattr(item, "_fixtureinfo", None)
    names = []
    if defs is not None:
        for name, fixturedefs in defs.name2fixturedefs.items():
            if any(getattr(f, "scope", "function") != "function" for f in fixturedefs):
                names.append(name)
    shared[item.nodeid] = sorted(names)
    _switch("setup|" + item.nodeid)

@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    # What a fixture shared beyond one test does belongs to every test that uses it.
    if fixturedef.scope == "function":
        yield
        return
    before = os.environ.get("{CONTEXT_ENV}", "")
    _switch("fixture|" + fixturedef.argname)
    try:
        yield
    finally:
        _switch(before)

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    _switch("call|" + item.nodeid)

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    _switch("teardown|" + item.nodeid)

def pytest_runtest_logreport(report):
    seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration
    if report.failed and report.nodeid not in failed:
        failed.append(report.nodeid)

def pytest_sessionfinish(session):
    with open(os.environ["HELLOCONTAINER_MUTATE_SHARED"], "w") as stream:
        json.dump({{"shared": shared, "failed": failed, "seconds": seconds}}, stream)
"""


def map_lines(module_file: Path, map_path: Path, pytest_args: list[str]) -> int:
    """Run the subset under coverage and write {line: [test ids]} and the tests' order."""
    with tempfile.TemporaryDirectory(prefix="mutate-map-") as scratch:
        work = Path(scratch)
        (work / "hook").mkdir()
        (work / "hook" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        (work / "mutate_context_plugin.py").write_text(PLUGIN)
        rc = work / "coveragerc"
        # patch = _exit: the CLI ends with os._exit, which coverage must save its data before.
        rc.write_text(f"[run]\ndata_file = {work}/data/coverage\nparallel = true\n"
                      f"patch = _exit\ninclude = {module_file.resolve()}\n")
        path = [str(work / "hook"), str(work), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "COVERAGE_PROCESS_START": str(rc),
               "HELLOCONTAINER_MUTATE_SHARED": str(work / "shared.json"),
               "PYTHONPATH": os.pathsep.join(filter(None, path))}
        # Tests run as another user (nobody) read the configuration and write their data here.
        work.chmod(0o755)
        (work / "data").mkdir(mode=0o1777)
        (work / "data").chmod(0o1777)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "mutate_context_plugin", *pytest_args], env=env, check=False)
        # 1: some tests failed, which happens to tests that watch every file a process writes
        # (coverage writes its data too); they run for every mutant instead. Anything else is
        # a subset that cannot run.
        if result.returncode not in (0, 1):
            print("the subset does not run under coverage; fix it first", file=sys.stderr)
            return 1
        import coverage  # only the map step needs it

        combined = coverage.Coverage(config_file=str(rc))
        combined.combine()
        combined.save()
        data = combined.get_data()
        measured = [name for name in data.measured_files()
                    if Path(name).resolve() == module_file.resolve()]
        lines: dict[str, list[str]] = {}
        for name in measured:
            for line, contexts in data.contexts_by_lineno(name).items():
                lines.setdefault(str(line), [])
                lines[str(line)] += [c for c in contexts if c]
        recorded = json.loads((work / "shared.json").read_text())
    map_path.write_text(json.dumps({"lines": lines, **recorded}))
    return 0


def changed_lines(pristine: list[str], mutated: list[str]) -> set[int]:
    """Line numbers (1-based) of `pristine` that the mutant changed."""
    changed: set[int] = set()
    matcher = difflib.SequenceMatcher(a=pristine, b=mutated, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag != "equal":
            changed.update(range(start + 1, max(end, start + 1) + 1))
    return changed


def statement_spans(source: str, lines: set[int]) -> list[tuple[int, int]] | None:
    """The lines of the innermost statement holding each changed line (a compound statement's
    or an except clause's header only), or None when one of them lies outside every function
    body."""
    tree = ast.parse(source)
    spans = []
    for line in sorted(lines):
        inner: ast.AST | None = None
        in_function = False
        node: ast.AST = tree
        in_body = False
        while True:
            holder = next((child for child in ast.iter_child_nodes(node)
                           if isinstance(child, (ast.stmt, ast.excepthandler))
                           and child.lineno <= line <= (child.end_lineno or child.lineno)),
                          None)
            if holder is None:
                break
            inner, in_function = holder, in_body
            body_start = _body_start(holder)
            if body_start is None or line < body_start:
                break
            in_body = in_body or isinstance(holder, (ast.FunctionDef, ast.AsyncFunctionDef))
            node = holder
        if inner is None or not in_function:
            return None
        start = inner.lineno
        body_start = _body_start(inner)
        end = (body_start - 1) if body_start is not None else (inner.end_lineno or start)
        spans.append((start, max(start, end)))
    return spans


def _body_start(node: ast.AST) -> int | None:
    """First line of a compound statement's nested statements (None for a simple one)."""
    firsts = [getattr(node, field)[0].lineno for field in ("body", "orelse", "finalbody",
                                                           "handlers")
              if isinstance(getattr(node, field, None), list) and getattr(node, field)]
    return min(firsts) if firsts else None


def run_mutant(module_file: Path, pristine_file: Path, map_path: Path,
               pytest_args: list[str]) -> int:
    pristine = pristine_file.read_text()
    mutated = module_file.read_text()
    base = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    if mutated == pristine:
        return subprocess.run([*base, *pytest_args], check=False).returncode
    lines = changed_lines(pristine.splitlines(), mutated.splitlines())
    spans = statement_spans(pristine, lines)
    if spans is None:
        print(f"lines {sorted(lines)} run at import: the whole subset", flush=True)
        return subprocess.run([*base, *pytest_args], check=False).returncode
    recorded = json.loads(map_path.read_text())
    by_line: dict[str, list[str]] = recorded["lines"]
    shared: dict[str, list[str]] = recorded["shared"]
    tests: set[str] = set(recorded["failed"])  # could not be measured: always run
    for start, end in spans:
        for line in range(start, end + 1):
            for context in by_line.get(str(line), []):
                phase, _, name = context.partition("|")
                if phase == "fixture":  # a fixture beyond function scope: each test using it
                    tests.update(test for test, names in shared.items() if name in names)
                else:
                    tests.add(name)
    if not tests:
        print(f"no test executes lines {spans}: survives", flush=True)
        return 0
    # Quickest first: with -x the first failing test ends the run, and most mutants are
    # killed, so a mutant costs about its quickest killing test rather than the subset.
    seconds: dict[str, float] = recorded.get("seconds", {})
    chosen = sorted(tests, key=lambda test: (seconds.get(test, float("inf")), test))
    print(f"lines {spans}: {len(chosen)} of {len(shared)} tests", flush=True)
    return subprocess.run([*base, *chosen], check=False).returncode


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    head, pytest_args = argv[:split], argv[split + 1:]
    if head[:1] == ["map"] and len(head) == 3:
        return map_lines(Path(head[1]), Path(head[2]), pytest_args)
    if head[:1] == ["run"] and len(head) == 4:
        return run_mutant(Path(head[1]), Path(head[2]), Path(head[3]), pytest_args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
