"""`yocto-check-layer`, the Yocto Project's own compatibility check, on this layer (env-gated).

It adds the layer to a build directory that has only oe-core, then parses, shows the
environment, computes the signatures of `bitbake world` with and without the layer (a software
layer must change no other recipe's signature) and inherits its checking class into every
recipe. The build directory is a user's plain one (no network, no sanity class, which refuses
root): none of the cuts the other BitBake tests make, since nothing is built.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from yocto_build import LAYER, OECORE_DIR, build_directory, needs_bitbake, start_build


@needs_bitbake
def test_yocto_check_layer_passes_with_the_software_signature_check() -> None:
    top = build_directory("check-layer")
    build = start_build(top, [Path(OECORE_DIR) / "meta"], 'MACHINE ??= "qemux86-64"\n', cut=False)
    script = Path(OECORE_DIR) / "scripts" / "yocto-check-layer"
    env = {**build.env, "BUILDDIR": str(top),
           "PATH": os.pathsep.join([str(script.parent), build.env["PATH"]])}
    started = time.monotonic()
    result = subprocess.run(
        [str(script), "--no-auto", "--with-software-layer-signature-check",
         "--output-log", str(top / "yocto-check-layer.log"), str(LAYER)],
        cwd=top, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    print(f"yocto-check-layer in {seconds:.0f} s\n{output[-3000:]}")
    assert result.returncode == 0, output[-6000:]
    # The summary names the layer as passed (a skipped layer also exits 0), and the checks
    # that matter for a software layer ran and passed rather than being skipped.
    assert re.search(r"^INFO: meta-hellocontainer \.\.\. PASS$", output, re.MULTILINE), \
        output[-3000:]
    outcomes = dict(re.findall(r"^INFO: (test_\w+) \(.*\)\nINFO:  \.\.\. (\w+)", output,
                               re.MULTILINE))
    assert {name: outcomes.get(name) for name in ("test_parse", "test_world", "test_signatures")} \
        == dict.fromkeys(("test_parse", "test_world", "test_signatures"), "ok"), outcomes
