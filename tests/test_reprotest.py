"""The hello image is bit-for-bit reproducible under Debian's reprotest, and reprotest would notice.

reprotest builds twice: a control build, and an experiment build with the variations below
applied; then diffoscope compares the image layout and the oci-archive (looking inside gzip,
tar and JSON). Each build compiles examples/hello/hello.c statically and packages it, so the
whole user-visible path is covered. SOURCE_DATE_EPOCH is left unset on purpose: the packager
must then pin `created` to 0 instead of reading the (faked, varied) clock.

Variations (all of reprotest 0.7.23's), and what each would catch in the packager:
  environment   an extra variable (REPROTEST_CAPTURE_ENVIRONMENT) leaking into the config
  build_path    the absolute build directory leaking into a path, tar name or annotation
  kernel        `setarch` personality: uname -m/-r leaking (arch must come from the ELF)
  aslr          ASLR on vs off: object addresses or hash seeds reaching the output
  num_cpus      1 CPU vs 2 (taskset): gzip threads follow the CPU count and must not matter
  time          faketime: the wall clock leaking into `created`, mtimes or gzip MTIME
  user_group    build as nobody:nogroup: owner uid/gid/names leaking into tar headers
  fileordering  disorderfs shuffles directory entries: listing order reaching tar or JSON
  domain_host   another host/domain name (UTS namespace)
  home          HOME=/nonexistent/second-build
  locales       et_EE.UTF-8 (unusual collation) leaking into sort orders
  exec_path     an extra PATH entry
  timezone      GMT+12 vs GMT-14: local-time formatting of `created`
  umask         0022 vs 0002: file modes must be pinned, not inherited
None is disabled. user_group runs in a reprotest of its own, with every other variation but
fileordering: disorderfs then mounts as that user, and /dev/fuse is root-only in many
containers (fileordering is covered by the first run). It needs root, sudo and a packager the
other user may execute (see `python_for_nobody`); where they are missing its test is skipped,
and fails under HELLOCONTAINER_STRICT_TOOLS (CI): a green CI run has run every variation.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HELLO_C, REPO, STRICT, require_tool

# Generous: the two builds and diffoscope take a few seconds.
REPROTEST_TIMEOUT = 600

ALWAYS = ["environment", "build_path", "kernel", "aslr", "num_cpus", "time", "fileordering",
          "domain_host", "home", "locales", "exec_path", "timezone", "umask"]
AS_ANOTHER_USER = [v for v in ALWAYS if v != "fileordering"] + ["user_group"]

VARIATION_USER = "nobody:nogroup"
# The interpreter the other user runs the packager with: the distribution's, which every user
# may execute (a venv's may point into root's home, mode 0700, as pyenv's does).
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGE = REPO / "python" / "src" / "hellocontainer"

# reprotest 0.7.23 runs `sudo -h localhost …`; since sudo 1.9 `-h HOST` means "list
# privileges on a remote host" and every such call fails. This stand-in drops the two words
# and runs the real sudo, so the user_group variation (which needs sudo) can work.
SUDO_SHIM = """#!/bin/sh
set -eu
if [ "$#" -ge 2 ] && [ "$1" = "-h" ] && [ "$2" = "localhost" ]; then shift 2; fi
exec {sudo} "$@"
"""


def _compiler() -> str:
    # The same choice as the hello_static fixture: musl gives the smallest static binary.
    if STRICT:
        return require_tool("musl-gcc", "musl-tools")
    return shutil.which("musl-gcc") or require_tool("cc", "gcc")


def _quietly(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-2000:]}")


def _venv_for_everyone(root: Path) -> str:
    """A venv made from the system Python in `root`, holding a copy of the packager (so no path
    into the checkout is needed) and its runtime dependencies; returns its interpreter."""
    venv = root / "venv"
    _quietly([SYSTEM_PYTHON, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    # The packager's own requirements, as the installed packager declares them, extras left out.
    requirements = [r for r in importlib.metadata.requires("hellocontainer") or []
                    if "extra ==" not in r]
    _quietly([python, "-m", "pip", "install", "--disable-pip-version-check", *requirements])
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    shutil.copytree(PACKAGE, Path(purelib) / "hellocontainer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return python


def _unavailable(message: str) -> None:
    if STRICT:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def python_for_nobody() -> Iterator[str]:
    """A Python with the packager that the user_group variation's user may run.

    That variation builds as nobody through sudo, so nobody must be able to execute the
    interpreter and read the packager. This test's own interpreter may live where nobody cannot
    (a checkout or a pyenv under root's home), so a venv from the system Python is made in a
    world-readable temporary folder.
    """
    sudo = require_tool("sudo", "sudo")
    if os.geteuid() != 0:
        _unavailable("the user_group variation runs sudo as root; run the tests as root")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        _unavailable(f"{SYSTEM_PYTHON} not found; install it with: apt-get install python3")
    # Not tmp_path: pytest makes its temporary folders 0700, and nobody must enter this one.
    root = Path(tempfile.mkdtemp(prefix="hellocontainer-reprotest-"))
    try:
        root.chmod(0o755)
        user = VARIATION_USER.split(":")[0]
        try:
            python = _venv_for_everyone(root)
            _quietly([sudo, "-u", user, python, "-c", "import hellocontainer.cli"])
        except (RuntimeError, OSError, importlib.metadata.PackageNotFoundError) as error:
            _unavailable(f"user {user} cannot run the packager: {error}")
        yield python
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _require_fuse() -> None:
    # disorderfs (the fileordering variation) is a FUSE file system. In a container, pass
    # --device /dev/fuse --cap-add SYS_ADMIN (or --privileged).
    if not Path("/dev/fuse").exists():
        _unavailable("/dev/fuse is missing: the fileordering variation (disorderfs) needs FUSE")


def reprotest(tmp_path: Path, variations: list[str], python: str = sys.executable,
              extra_build_steps: str = "",
              extra_packager_args: str = "") -> subprocess.CompletedProcess[str]:
    """Run reprotest with `variations` over compile + package of hello.c; return its result."""
    require_tool("reprotest", "reprotest")
    require_tool("diffoscope", "diffoscope-minimal")
    require_tool("faketime", "faketime")
    if "fileordering" in variations:
        require_tool("disorderfs", "disorderfs")
        require_tool("fusermount", "fuse3")
        _require_fuse()
    compiler = _compiler()

    source = tmp_path / "src"
    source.mkdir()
    shutil.copyfile(HELLO_C, source / "hello.c")
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    settings = list(variations)
    if "user_group" in variations:
        sudo = require_tool("sudo", "sudo")
        (shim_dir / "sudo").write_text(SUDO_SHIM.format(sudo=shlex.quote(sudo)))
        (shim_dir / "sudo").chmod(0o755)
        # domain_host must then switch namespaces through sudo too: reprotest refuses its
        # `unshare -r` fallback together with user_group.
        settings += [f"user_group.available+={VARIATION_USER}", "domain_host.use_sudo=1"]

    build = " && ".join(filter(None, [
        f"{shlex.quote(compiler)} -static -Os -s -o hello hello.c",
        extra_build_steps,
        (f"{shlex.quote(python)} -m hellocontainer build hello --output image "
         f"--archive image.tar {extra_packager_args}"),
    ]))
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)  # see the module docstring
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["reprotest", "--min-cpus", "1", "--variations", ",".join(settings),
         "--source-root", str(source), build, "image image.tar"],
        capture_output=True, text=True, env=env, timeout=REPROTEST_TIMEOUT, check=False)


def _assert_reproduced(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0 and "Reproduction successful" in result.stdout, (
        f"reprotest exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")


def test_hello_image_reproduces_under_every_reprotest_variation(tmp_path: Path) -> None:
    _assert_reproduced(reprotest(tmp_path, ALWAYS))


def test_hello_image_reproduces_when_another_user_builds_it(tmp_path: Path,
                                                            python_for_nobody: str) -> None:
    result = reprotest(tmp_path, AS_ANOTHER_USER, python=python_for_nobody)
    _assert_reproduced(result)
    # reprotest drops user_group with only a warning when it cannot switch users (the test
    # below proves the switch happens).
    assert "IGNORING user_group variation" not in result.stderr


def test_reprotest_catches_the_builders_uid_in_the_image(tmp_path: Path,
                                                        python_for_nobody: str) -> None:
    # Negative control for user_group: the uid that ran the build, written into the layer,
    # differs only if the experiment build really ran as the other user.
    result = reprotest(tmp_path, AS_ANOTHER_USER, python=python_for_nobody,
                       extra_build_steps="id -u > builder",
                       extra_packager_args="--file builder:/etc/builder")
    assert result.returncode == 1, (
        f"reprotest exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")
    assert "image/index.json" in result.stdout


def test_reprotest_catches_wall_clock_time_in_the_image(tmp_path: Path) -> None:
    # Negative control: the same harness with the build time written into a file that goes
    # into the layer. If this passed, the tests above could not fail either.
    result = reprotest(tmp_path, ALWAYS, extra_build_steps="date +%s.%N > build-time",
                       extra_packager_args="--file build-time:/etc/build-time")
    # 1 = "artifacts differ"; a build failure would be 125 and prove nothing.
    assert result.returncode == 1, (
        f"reprotest exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")
    assert "Reproduction successful" not in result.stdout
    # The difference diffoscope reports is in the image itself. (It cannot pair blobs whose
    # names are their digests, so it stops at the changed blob list and index.json.)
    assert "image/index.json" in result.stdout
