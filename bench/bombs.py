#!/usr/bin/env python3
"""Peak memory and time of validate, inspect and diff on layouts built to exhaust them.

The hard part is making the bombs without becoming one: a 2 GiB (or 20 GiB) layer is streamed
through zlib a megabyte at a time while its two digests (of the gzip bytes, and of the tar for
the config's diff_id) are computed, so this script's own memory stays small and every layout is
honest: its digests, sizes and diff_ids are right, and a reader should judge it valid.

Layouts, each in two versions that differ only in one tar header's mtime, so `diff` has to
read both layers to the end:

- `zeros-2GiB`: one file of 2 GiB of zeros in one tar member (gzip about 1000:1, 2 MiB blob);
  `--huge` adds `zeros-20GiB`.
- `entries-500k` and `entries-1000k`: 500,000 and 1,000,000 empty files (a wide tar:
  header-bound, not data-bound).

Each command runs as its own process; its peak RSS is wait4's ru_maxrss and its wall time is
fork to exit. A command is capped at --memory-cap of address space so a runaway reader cannot
take the machine down (it then shows as a failure, not as a number). Prints a markdown table.

    .venv/bin/python bench/bombs.py                 # 2 GiB, 500k and 1M entries
    .venv/bin/python bench/bombs.py --huge          # adds 20 GiB (minutes of zlib time)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, mtime
    # PAX: sizes of 8 GiB and more do not fit ustar's 11 octal digits.
    return info.tobuf(format=tarfile.PAX_FORMAT)


def zeros_tar(size: int, mtime: int) -> Iterator[bytes]:
    """A tar of one file of `size` zero bytes, a megabyte at a time."""
    yield header("zeros", size, mtime)
    zeros = bytes(MIB)
    for offset in range(0, size, MIB):
        yield zeros[: min(MIB, size - offset)]
    yield bytes(-size % 512 + 1024)  # block padding, then the end-of-archive blocks


def entries_tar(count: int, mtime: int) -> Iterator[bytes]:
    """A tar of `count` empty files in folders of 1000."""
    batch = []
    for i in range(count):
        batch.append(header(f"d{i // 1000:04d}/f{i % 1000:03d}", 0, mtime))
        if len(batch) == 1000:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch) + bytes(1024)


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str
    size: int
    diff_id: str
    raw_size: int


def write_layer(chunks: Iterator[bytes], scratch: Path, level: int) -> Layer:
    """gzip `chunks` into a file, hashing both sides on the way."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    raw, packed = hashlib.sha256(), hashlib.sha256()
    raw_size = size = 0
    path = scratch / "layer.tmp"
    with path.open("wb") as out:
        for chunk in chunks:
            raw.update(chunk)
            raw_size += len(chunk)
            data = compressor.compress(chunk)
            packed.update(data)
            size += out.write(data)
        data = compressor.flush()
        packed.update(data)
        size += out.write(data)
    return Layer(path, "sha256:" + packed.hexdigest(), size, "sha256:" + raw.hexdigest(), raw_size)


def put_blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def make_layout(layout: Path, layer: Layer) -> None:
    """An image layout holding `layer` under tag latest, with honest config and manifest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    os.replace(layer.path, blobs / layer.digest.split(":")[1])
    # An entrypoint, so that `bundle` has something to run; nothing ever runs it here.
    config = put_blob(layout, canonical({"architecture": "amd64", "os": "linux",
                                         "config": {"Entrypoint": ["/zeros"]},
                                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}),
                      MEDIA_CONFIG)
    manifest = put_blob(layout, canonical({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config,
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer.digest, "size": layer.size}],
    }), MEDIA_MANIFEST)
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_bytes(canonical({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                                   "manifests": [manifest]}))
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))


@dataclass(frozen=True)
class Result:
    status: str
    wall: float
    rss_mib: float
    note: str


def measure(argv: list[str], memory_cap: int, timeout: float) -> Result:
    """Run `argv` alone; wall time from fork to exit, peak RSS from wait4."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=cap)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        timer.cancel()
        process.returncode = exit_code = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    if wall >= timeout and exit_code < 0:
        note = f"killed after {timeout:g} s"
    elif any(line.startswith("Traceback") for line in lines):
        note = "traceback: " + next(line for line in reversed(lines) if line and not line[0].isspace())
    else:
        note = lines[-1] if lines else ""
    return Result(str(exit_code), wall, usage.ru_maxrss / 1024, note[:100])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--huge", action="store_true", help="also build and read a 20 GiB layer")
    parser.add_argument("--zeros-gib", type=float, default=2.0, help="size of the zeros file (GiB)")
    parser.add_argument("--entries", type=int, nargs="+", default=[500_000, 1_000_000],
                        help="files in each wide layer")
    parser.add_argument("--memory-cap", type=int, default=8192, help="MiB of address space per command")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--scratch", type=Path, help="folder for the layouts (default: a temp dir)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bombs-", dir=args.scratch))
    cases: list[tuple[str, object]] = [
        (f"zeros-{args.zeros_gib:g}GiB", lambda m: zeros_tar(int(args.zeros_gib * GIB), m)),
        *((f"entries-{n // 1000}k", lambda m, n=n: entries_tar(n, m)) for n in args.entries),
    ]
    if args.huge:
        cases.insert(1, ("zeros-20GiB", lambda m: zeros_tar(20 * GIB, m)))
    packager = [sys.executable, "-m", "hellocontainer"]
    rows = []
    try:
        for name, make in cases:
            layouts = []
            for version, mtime in (("a", 0), ("b", 1)):
                started = time.monotonic()
                layer = write_layer(make(mtime), scratch, 9 if name.startswith("zeros") else 6)
                layout = scratch / f"{name}-{version}"
                make_layout(layout, layer)
                layouts.append(layout)
                print(f"made {layout.name}: {layer.raw_size / MIB:,.0f} MiB tar in a "
                      f"{layer.size / MIB:,.1f} MiB gzip blob ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr)
            a, b = layouts
            bundle = scratch / "bundle"
            for command in (["validate", str(a)], ["inspect", str(a)], ["diff", str(a), str(b)],
                            ["bundle", str(a), "--output", str(bundle)]):
                result = measure([*packager, *command], args.memory_cap * MIB, args.timeout)
                rows.append((name, command[0], result))
                print(f"{name} {command[0]}: exit {result.status}, {result.wall:.1f} s, "
                      f"{result.rss_mib:.0f} MiB", file=sys.stderr)
            for layout in [*layouts, bundle]:
                shutil.rmtree(layout, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print("| layout | command | exit | wall s | peak RSS MiB | last stderr line |")
    print("|---|---|---|---|---|---|")
    for name, command, r in rows:
        print(f"| {name} | {command} | {r.status} | {r.wall:.1f} | {r.rss_mib:.0f} | "
              f"{r.note.replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
