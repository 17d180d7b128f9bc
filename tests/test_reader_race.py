"""A reader that resolved a tag can finish reading it while builds replace that tag.

Readers (skopeo, podman, a flashing script) take no lock: they read index.json, then the
manifest, then config and layers. A build that deleted the replaced tag's blobs at once would
pull them from under such a reader; the old blobs must stay until `hellocontainer gc`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from conftest import require_tool
from layouts import blob_path, build, cli_argv, cli_env, digest_of, image_blobs, tags

COPIES = 40  # skopeo copies of the hot tag while it is rebuilt again and again

# Rebuilds tag `hot` (argv[1]: the build command as JSON) with a new 1 MiB file each time, so
# every blob changes, until the file argv[3] exists; prints a line per build, exits 1 on a failure.
REBUILDER = """
import json, os, subprocess, sys
command, payload, stop = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
n = 0
while not os.path.exists(stop):
    n += 1
    with open(payload, "wb") as f:
        f.write(os.urandom(1 << 20))
    result = subprocess.run(command + ["--env", f"N={n}"], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        sys.exit(1)
    print(n, flush=True)
"""


def test_skopeo_copies_never_fail_while_the_tag_is_rebuilt(hello_static, tmp_path):
    skopeo = require_tool("skopeo", "skopeo")
    layout, payload, stop = tmp_path / "L", tmp_path / "payload", tmp_path / "stop"
    payload.write_bytes(os.urandom(1 << 20))
    extra = ("--file", f"{payload}:/payload", "--gzip-level", "1")
    command = cli_argv("build", hello_static, "--output", layout, "--tag", "hot", *extra)
    build(hello_static, layout, "hot", *extra)
    rebuilder = subprocess.Popen([sys.executable, "-c", REBUILDER, json.dumps(command), str(payload),
                                  str(stop)], env=cli_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        rebuilder.stdout.readline()  # the race starts once a rebuild has landed
        for n in range(COPIES):
            copied = subprocess.run([skopeo, "copy", "--quiet", f"oci:{layout}:hot",
                                     f"dir:{tmp_path / 'copy'}"], capture_output=True, text=True,
                                    timeout=60)
            if copied.returncode != 0:
                failures.append(f"copy {n + 1}: {copied.stderr.strip()}")
            shutil.rmtree(tmp_path / "copy", ignore_errors=True)
    finally:
        stop.touch()
        out, err = rebuilder.communicate(timeout=120)
    assert rebuilder.returncode == 0, f"a rebuild failed: {err}"
    assert len(out.split()) >= 2, "the copies finished before the rebuilds raced them"
    assert not failures, f"{len(failures)} of {COPIES} copies failed; first: {failures[0]}"
    assert tags(layout) == ["hot"]


def test_reader_that_resolved_a_tag_can_read_its_blobs_after_a_rebuild(hello_static, tmp_path):
    layout, note = tmp_path / "L", tmp_path / "note"
    note.write_text("one\n")
    build(hello_static, layout, "hot", "--file", f"{note}:/note")
    resolved = image_blobs(layout, "hot")  # index.json and the manifest read: the tag is resolved
    note.write_text("two\n")
    build(hello_static, layout, "hot", "--file", f"{note}:/note")
    assert image_blobs(layout, "hot")["layer"] != resolved["layer"]
    for role in ("config", "layer"):
        path = blob_path(layout, resolved[role]["digest"])
        assert path.is_file(), f"the replaced tag's {role} was deleted by the build"
        assert digest_of(path.read_bytes()) == resolved[role]["digest"]
