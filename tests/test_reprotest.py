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
                (see `_user_group_variation` for when it can run)
  fileordering  disorderfs shuffles directory entries: listing order reaching tar or JSON
  domain_host   another host/domain name (UTS namespace)
  home          HOME=/nonexistent/second-build
  locales       et_EE.UTF-8 (unusual collation) leaking into sort orders
  exec_path     an extra PATH entry
  timezone      GMT+12 vs GMT-14: local-time formatting of `created`
  umask         0022 vs 0002: file modes must be pinned, not inherited
None is disabled unconditionally; user_group needs a second user who can run this Python.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import HELLO_C, STRICT, require_tool

# Generous: the two builds and diffoscope take a few seconds.
REPROTEST_TIMEOUT = 600

ALWAYS = ["environment", "build_path", "kernel", "aslr", "num_cpus", "time", "fileordering",
          "domain_host", "home", "locales", "exec_path", "timezone", "umask"]

VARIATION_USER = "nobody:nogroup"

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


def _user_group_variation(shim_dir: Path) -> list[str]:
    """The user_group variation's settings, or [] (with a warning) when it cannot run here.

    It builds as another user via sudo, so it needs root and a Python that user may execute:
    an interpreter installed under root's home (mode 0700), as pyenv does, is not.
    """
    sudo = shutil.which("sudo")
    user = VARIATION_USER.split(":")[0]
    reason = ""
    if sudo is None:
        reason = "sudo is not installed (apt-get install sudo)"
    elif os.geteuid() != 0:
        reason = "the tests do not run as root"
    else:
        probe = subprocess.run(
            [sudo, "-u", user, sys.executable, "-c", "import hellocontainer"],
            capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            reason = (f"user {user} cannot run {sys.executable} -m hellocontainer "
                      f"({probe.stderr.strip().splitlines()[-1] if probe.stderr else 'failed'})")
    if reason:
        warnings.warn(f"reprotest user_group variation disabled: {reason}", stacklevel=2)
        return []
    (shim_dir / "sudo").write_text(SUDO_SHIM.format(sudo=shlex.quote(str(sudo))))
    (shim_dir / "sudo").chmod(0o755)
    # domain_host must then switch namespaces through sudo too: reprotest refuses its
    # `unshare -r` fallback together with user_group.
    return ["user_group", f"user_group.available+={VARIATION_USER}", "domain_host.use_sudo=1"]


def _require_fuse() -> None:
    # disorderfs (the fileordering variation) is a FUSE file system. In a container, pass
    # --device /dev/fuse --cap-add SYS_ADMIN (or --privileged).
    if not Path("/dev/fuse").exists():
        message = "/dev/fuse is missing: the fileordering variation (disorderfs) needs FUSE"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)


def reprotest(tmp_path: Path, extra_build_steps: str = "",
              extra_packager_args: str = "") -> subprocess.CompletedProcess[str]:
    """Run reprotest over compile + package of hello.c; return its result."""
    require_tool("reprotest", "reprotest")
    require_tool("diffoscope", "diffoscope-minimal")
    require_tool("faketime", "faketime")
    require_tool("disorderfs", "disorderfs")
    require_tool("fusermount", "fuse3")
    _require_fuse()
    compiler = _compiler()

    source = tmp_path / "src"
    source.mkdir()
    shutil.copyfile(HELLO_C, source / "hello.c")
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    variations = [*ALWAYS, *_user_group_variation(shim_dir)]

    build = " && ".join(filter(None, [
        f"{shlex.quote(compiler)} -static -Os -s -o hello hello.c",
        extra_build_steps,
        (f"{shlex.quote(sys.executable)} -m hellocontainer build hello --output image "
         f"--archive image.tar {extra_packager_args}"),
    ]))
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)  # see the module docstring
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["reprotest", "--min-cpus", "1", "--variations", ",".join(variations),
         "--source-root", str(source), build, "image image.tar"],
        capture_output=True, text=True, env=env, timeout=REPROTEST_TIMEOUT, check=False)


def test_hello_image_reproduces_under_every_reprotest_variation(tmp_path: Path) -> None:
    result = reprotest(tmp_path)
    assert result.returncode == 0 and "Reproduction successful" in result.stdout, (
        f"reprotest exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")


def test_reprotest_catches_wall_clock_time_in_the_image(tmp_path: Path) -> None:
    # Negative control: the same harness with the build time written into a file that goes
    # into the layer. If this passed, the test above could not fail either.
    result = reprotest(tmp_path, extra_build_steps="date +%s.%N > build-time",
                       extra_packager_args="--file build-time:/etc/build-time")
    # 1 = "artifacts differ"; a build failure would be 125 and prove nothing.
    assert result.returncode == 1, (
        f"reprotest exited {result.returncode}\n{result.stdout}\n{result.stderr[-5000:]}")
    assert "Reproduction successful" not in result.stdout
    # The difference diffoscope reports is in the image itself. (It cannot pair blobs whose
    # names are their digests, so it stops at the changed blob list and index.json.)
    assert "image/index.json" in result.stdout
