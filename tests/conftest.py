"""Shared fixtures: the real tools the tests drive, and the rule that CI never skips them.

A test that needs a system tool calls `require_tool`. On a developer machine a missing tool skips
the test with the Debian package that brings it; with HELLOCONTAINER_STRICT_TOOLS=1 (set by
.ci/run) the same absence fails the test, so a CI run can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
HELLO_C = REPO / "examples" / "hello" / "hello.c"
STRICT = os.environ.get("HELLOCONTAINER_STRICT_TOOLS") == "1"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


# Whole modules that boot boards, run foreign binaries under qemu, kill builds at every system
# call, fill file systems, rebuild under reprotest, build autotools projects or make virtual
# environments: minutes on 2 cores. `scripts/test` leaves them out unless given --full (CI).
SLOW_MODULES = {
    "test_board_boot", "test_architectures", "test_fault_injection", "test_full_disk",
    "test_reprotest", "test_fuzz_layouts", "test_example_hello", "test_scripts",
    "test_packaging_oldest", "test_registry", "test_reader_race", "test_multiarch",
    "test_sign_interop",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "space_in_path: runs from a copy of the checkout under a path with a space "
        "(builds there; tens of seconds)")
    config.addinivalue_line(
        "markers", "slow: seconds to minutes each (qemu, fault injection, full disks, deep or "
        "huge inputs); `pytest -m 'not slow'` leaves them out, as `scripts/test` does")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Why tests were skipped, grouped by reason, most frequent first: "90 skipped" alone
    says nothing, and one line per skipped test would bury the few reasons there are."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr  # (file, line, "Skipped: reason") for a skip
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped tests, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            terminalreporter.write_line(f"{count:4d}  {reason}")


def require_tool(name: str, package: str) -> str:
    """Return the path of `name`, or skip (fail under CI) naming the package that installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found; install it with: apt-get install {package}"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_buildroot_path(external: Path) -> None:
    """Skip unless Buildroot could use the br2-external tree at `external`.

    Buildroot takes no BR2_EXTERNAL path with a space: support/scripts/br2-external splits the
    list at spaces and colons, and make's `include` of external.mk splits its file name at
    spaces. A checkout under such a path (".../My Work/...") cannot serve as a tree, for
    Buildroot or for the plain make these tests run in its place; br2-external/README.md says
    so, with the symbolic link that helps. Not a missing tool: no failure under CI either.
    """
    if any(c.isspace() for c in str(external)):
        pytest.skip("Buildroot takes no BR2_EXTERNAL path with a space (make includes "
                    f"external.mk by it): this checkout is at {external.parent}")


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def _run(argv: list[str], check: bool, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def hellocontainer() -> Runner:
    """Run the packager's CLI exactly as a user would (`python -m hellocontainer …`)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.setdefault("SOURCE_DATE_EPOCH", "1700000000")
        if env:
            full_env.update(env)
        return _run([sys.executable, "-m", "hellocontainer", *map(str, args)], check,
                    env=full_env, cwd=cwd)

    return run


@pytest.fixture(scope="session")
def podman_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private podman store per test session: no daemon, no host state touched."""
    require_tool("podman", "podman")
    require_tool("runc", "runc")
    home = tmp_path_factory.mktemp("podman")
    (home / "containers.conf").write_text(CONTAINERS_CONF)
    return home


def podman_command(podman_home: Path) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment that point podman at a private store in `podman_home`.

    vfs storage needs no fuse or overlay support; runc and the ulimits come from our
    containers.conf (crun's defaults need CAP_SYS_RESOURCE, which this environment lacks).
    """
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(podman_home / "containers.conf")
    env["XDG_RUNTIME_DIR"] = str(podman_home / "xdg")
    (podman_home / "xdg").mkdir(exist_ok=True)
    argv = [require_tool("podman", "podman"), "--root", str(podman_home / "root"),
            "--runroot", str(podman_home / "runroot"), "--tmpdir", str(podman_home / "tmp"),
            "--storage-driver", "vfs"]
    return argv, env


@pytest.fixture
def podman(podman_home: Path) -> Runner:
    """Run podman with a private root/runroot/tmpdir and our containers.conf."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv, env = podman_command(podman_home)
        return _run([*argv, *map(str, args)], check, env=env)

    return run


@pytest.fixture(scope="session")
def hello_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello built statically for the host, stripped (musl-gcc when present: smaller)."""
    out = tmp_path_factory.mktemp("hello") / "hello"
    compiler = require_tool("musl-gcc", "musl-tools") if STRICT else (
        shutil.which("musl-gcc") or require_tool("cc", "gcc"))
    _run([compiler, "-static", "-Os", "-s", "-o", str(out), str(HELLO_C)], True)
    return out
