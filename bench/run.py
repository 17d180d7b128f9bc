#!/usr/bin/env python3
"""Package the same binaries with hellocontainer, with umoci and with a bare tar|gzip floor.

The hard part is measuring fairly. Every run starts from an empty output directory, is timed
from fork to exit, and its peak RSS comes from wait4(2) on the run's top process: Linux folds
the peak of every waited-for descendant into that number, so a shell script that calls umoci
seven times reports the largest of those processes (peaks of a pipeline's stages are not
summed; each stage is counted at its own peak). Each (input, tool) pair runs --repeat times;
the table shows the median wall time, the largest peak RSS, the layout size of the last run
and whether every run produced byte-identical files.

Inputs are made deterministically from the repository: examples/hello/hello.c built static
with musl and with glibc, and 1/16/64/256 MiB binaries made of the glibc hello repeated (real
machine code, so gzip sees realistic redundancy; the copies lie further apart than deflate's
32 KiB window, so the repetition itself gives gzip no advantage). The large files keep the ELF
header of the first copy, so they are valid static executables for the packager's checks.
"half random" inputs (--random-sizes) take turns of 1 MiB of that code and 1 MiB of seeded
pseudo-random bytes, as a program with compressed assets or firmware blobs appended.

Unpacking (--unpack) is measured on the layout hellocontainer built from each input, made
before the clock starts: `hellocontainer bundle` against `umoci unpack --rootless`.

Writes results.md (markdown table) and results.png (needs matplotlib, optional) next to this
script unless --out-dir says otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELLO_C = HERE.parent / "examples" / "hello" / "hello.c"
MIB = 1024 * 1024
# Any fixed value: the packager's `created` comes from it, so repeated runs can be compared.
SOURCE_DATE_EPOCH = "1700000000"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`), not the shell keyword
# `--gzip-level max` (zopfli) costs seconds of CPU per MiB: it runs on inputs up to this size
# only, or the 256 MiB input alone would take most of an hour.
MAX_LEVEL_INPUT_BYTES = 1 * MIB

# The sequence meta-virtualization's image-oci-umoci class runs for one image, minus the
# optional label/env/port/author steps; `umoci gc` is added so the intermediate config and
# manifest blobs each `umoci config` leaves behind do not count against umoci's size.
UMOCI_SCRIPT = """\
set -eu
umoci init --layout layout
umoci new --image layout:latest
umoci unpack --rootless --image layout:latest bundle
cp -r rootfs/* bundle/rootfs
umoci repack --image layout:latest bundle
umoci config --image layout:latest --architecture amd64
umoci config --image layout:latest --config.entrypoint /hello
umoci gc --layout layout
rm -rf bundle
"""

# The least work any packager must do: one deterministic tar of the file, gzip at our default
# level, and the layer digest. No config, manifest or index.
FLOOR_SCRIPT = """\
set -eu -o pipefail
mkdir layout
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C rootfs -cf - hello \\
    | gzip -n -9 | tee layout/layer.tar.gz | sha256sum > layout/layer.sha256
"""


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    peak_rss_kib: int
    cpu: float  # user + system seconds of the whole tree
    layout_bytes: int
    tree_digest: str  # hash over every file's relative path and bytes


@dataclass(frozen=True)
class Row:
    input_name: str
    input_bytes: int
    tool: str
    wall: float
    peak_rss_kib: int
    cpu: float
    layout_bytes: int
    reproducible: bool | None  # None: only one run, nothing to compare


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds of the process tree started by argv."""
    # GNU time forks the command from its own small process and reports wait4's ru_maxrss,
    # which Linux raises to the peak of every waited-for descendant. Forking from this Python
    # process instead would count this process's own RSS: exec records the pre-exec peak.
    # CPU time comes from this process's own wait4 on GNU time, in microseconds: GNU time
    # prints it in hundredths, too coarse for a hello build's few hundredths of a second. It
    # counts GNU time's own fork and wait too (well under a millisecond, the same for every
    # tool).
    report = cwd / ".time"
    start = time.perf_counter()
    proc = subprocess.Popen([TIME, "-f", "%M", "-o", str(report), *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # waited for here, not by Popen
    if proc.returncode != 0:
        raise SystemExit(f"bench: error: {' '.join(argv)} exited {proc.returncode}:\n"
                         f"{errors.decode(errors='replace')}")
    # The last line: GNU time puts notes such as "Command exited…" before it.
    peak = report.read_text().splitlines()[-1]
    report.unlink()
    return wall, int(peak), usage.ru_utime + usage.ru_stime


def tree(layout: Path) -> tuple[int, str]:
    """Total bytes of the regular files under `layout` and a digest of its whole content."""
    total = 0
    digest = hashlib.sha256()
    for path in sorted(p for p in layout.rglob("*") if p.is_file()):
        data_hash = hashlib.sha256()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(MIB), b""):
                data_hash.update(chunk)
        total += path.stat().st_size
        digest.update(f"{path.relative_to(layout)}\0{data_hash.hexdigest()}\n".encode())
    return total, digest.hexdigest()


def build_example(workdir: Path, compiler: str) -> Path:
    """examples/hello built the way its users build it: bootstrap, configure, make install-strip.

    The configure flags (static, prefix maps, size flags) are the example's own, so the bench
    measures the binary the product ships rather than one compiled here by other rules.
    """
    source = workdir / "example-src"
    if not source.exists():
        shutil.copytree(HELLO_C.parent, source)
        subprocess.run(["./bootstrap"], cwd=source, check=True, capture_output=True)
    build = workdir / f"example-{compiler}"
    build.mkdir()
    quiet = {"check": True, "capture_output": True, "cwd": build}
    subprocess.run([str(source / "configure"), f"CC={compiler}", "--prefix=/usr",
                    "--disable-container"], **quiet)
    subprocess.run(["make", "install-strip", f"DESTDIR={build / 'root'}"], **quiet)
    return build / "root" / "usr" / "bin" / "hello"


def half_random(unit: bytes, size: int) -> bytes:
    """`size` bytes: 1 MiB runs of `unit` repeated, then 1 MiB of seeded random bytes, in turn."""
    import random

    noise = random.Random(size)  # seeded: the same bytes on every run and machine
    out = bytearray()
    while len(out) < size:
        code = (unit * (MIB // len(unit) + 1))[:MIB]
        out += code if len(out) // MIB % 2 == 0 else noise.randbytes(MIB)
    return bytes(out[:size])


def make_inputs(workdir: Path, sizes_mib: list[int], random_sizes_mib: list[int] = ()
                ) -> dict[str, Path]:
    """Build the hello binaries and the large test binaries; return name -> path."""
    inputs: dict[str, Path] = {}
    for name, compiler in (("hello (musl)", "musl-gcc"), ("hello (glibc)", "cc")):
        if shutil.which(compiler) is None:
            print(f"bench: skipping {name}: {compiler} not found (apt-get install "
                  f"{'musl-tools' if compiler == 'musl-gcc' else 'gcc'})", file=sys.stderr)
            continue
        out = workdir / name.replace(" ", "-").replace("(", "").replace(")", "")
        shutil.copy(build_example(workdir, compiler), out)
        inputs[name] = out
    glibc = inputs.get("hello (glibc)")
    if glibc is None:
        raise SystemExit("bench: error: the large inputs are built from the glibc hello; "
                         "install gcc and libc6-dev")
    unit = glibc.read_bytes()
    for size in sizes_mib:
        out = workdir / f"bin-{size}MiB"
        with out.open("wb") as stream:
            left = size * MIB
            while left:
                piece = unit[:left]
                stream.write(piece)
                left -= len(piece)
        out.chmod(0o755)
        inputs[f"{size} MiB"] = out
    for size in random_sizes_mib:
        out = workdir / f"bin-{size}MiB-half-random"
        out.write_bytes(half_random(unit, size * MIB))
        out.chmod(0o755)
        inputs[f"{size} MiB half random"] = out
    return inputs


@dataclass(frozen=True)
class Tool:
    name: str
    script: str = ""  # a bash script run in the scratch directory, or
    packager: tuple[str, ...] = ()  # hellocontainer argv prefix; `build …` options follow
    max_input_bytes: int | None = None  # skip larger inputs
    prepare: str = ""  # a bash script run in the scratch directory before the clock starts

    def argv(self, scratch: Path) -> list[str]:
        if self.script:
            return ["bash", "-c", self.script]
        executable, *options = self.packager
        return [executable, "build", str(scratch / "rootfs" / "hello"),
                "--output", str(scratch / "layout"), *options]


def run_once(tool: Tool, binary: Path, workdir: Path) -> Run:
    scratch = Path(tempfile.mkdtemp(dir=workdir, prefix="run-"))
    (scratch / "rootfs").mkdir()
    # Staging the file is the build system's job (Yocto's IMAGE_ROOTFS exists before umoci
    # runs), so it happens before the clock starts, for every tool alike.
    shutil.copy2(binary, scratch / "rootfs" / "hello")
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    if tool.prepare:
        subprocess.run(["bash", "-c", tool.prepare], cwd=scratch, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    wall, rss, cpu = measure(tool.argv(scratch), scratch, env)
    output = scratch / ("bundle" if tool.prepare else "layout")
    size, digest = tree(output / "rootfs") if tool.prepare else tree(output)
    shutil.rmtree(scratch)
    print(f"  {tool.name:<30} {wall:8.3f} s {cpu:8.3f} CPU s {rss / 1024:6.1f} MiB "
          f"{size:>12,} B", file=sys.stderr)
    return Run(wall, rss, cpu, size, digest)


def run_input(tools: list[Tool], binary: Path, workdir: Path, repeat: int) -> dict[str, list[Run]]:
    """Every tool `repeat` times on one input, round-robin: load from other processes on the
    machine then slows all tools alike instead of whichever happened to run at the time."""
    size = binary.stat().st_size
    tools = [t for t in tools if t.max_input_bytes is None or size <= t.max_input_bytes]
    runs: dict[str, list[Run]] = {tool.name: [] for tool in tools}
    for _ in range(repeat):
        for tool in tools:
            runs[tool.name].append(run_once(tool, binary, workdir))
    return runs


YES_NO = {True: "yes", False: "no", None: "n/a (1 run)"}


def cell(text: str) -> str:
    """Escape a markdown table cell: the floor's name contains pipes."""
    return text.replace("|", "\\|")


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def write_markdown(rows: list[Row], path: Path, facts: dict[str, str], repeat: int) -> None:
    lines = [
        "# Benchmark: hellocontainer vs umoci vs tar|gzip",
        "",
        "Generated by `bench/run.py`; see bench/README.md for the method.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "",
        (f"Wall time and CPU time (user + system, whole process tree): median of {repeat} "
         "runs, the tools taking turns. Peak RSS: largest single process of the run's "
         "process tree, largest over the runs. Layout: sum of the sizes of every file written. "
         "Ratios are to umoci on the same input in the same run. Reproducible: every run wrote "
         "byte-identical files."),
        "",
        ("| input | input bytes | tool | wall s | CPU s | peak RSS MiB | layout bytes "
         "| wall/umoci | CPU/umoci | RSS/umoci | bytes/umoci | reproducible |"),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    # Unpack rows compare with umoci's unpack (their bytes: the rootfs written), the others
    # with umoci's build.
    umoci = {(row.input_name, row.tool.startswith("unpack:")): row for row in rows
             if row.tool in ("umoci", "unpack: umoci unpack")}
    for row in rows:
        base = umoci.get((row.input_name, row.tool.startswith("unpack:")))
        lines.append(
            f"| {row.input_name} | {row.input_bytes:,} | {cell(row.tool)} | {row.wall:.3f} | {row.cpu:.3f} "
            f"| {row.peak_rss_kib / 1024:.1f} | {row.layout_bytes:,} "
            f"| {ratio(row.wall, base.wall if base else None)} "
            f"| {ratio(row.cpu, base.cpu if base else None)} "
            f"| {ratio(row.peak_rss_kib, base.peak_rss_kib if base else None)} "
            f"| {ratio(row.layout_bytes, base.layout_bytes if base else None)} "
            f"| {YES_NO[row.reproducible]} |"
        )
    path.write_text("\n".join(lines) + "\n")


def write_plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib not installed; no plot (pip install matplotlib)",
              file=sys.stderr)
        return False
    # CPU time beside wall time: on a busy machine it is the steadier of the two.
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for tool in dict.fromkeys(row.tool for row in rows):
        mine = sorted((r for r in rows if r.tool == tool), key=lambda r: r.input_bytes)
        x = [r.input_bytes / MIB for r in mine]
        left.plot(x, [r.wall for r in mine], marker="o", label=tool)
        middle.plot(x, [r.cpu for r in mine], marker="o", label=tool)
        right.plot(x, [r.peak_rss_kib / 1024 for r in mine], marker="o", label=tool)
    for axes, label in ((left, "wall time (s)"), (middle, "CPU time, user + system (s)"),
                        (right, "peak RSS (MiB)")):
        axes.set_xscale("log")
        axes.set_xlabel("input binary (MiB)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    middle.set_yscale("log")
    right.legend()
    figure.tight_layout()
    # Fixed metadata: keep the PNG free of the matplotlib version and creation time.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    return True


def version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "unknown"


def default_packager() -> str:
    beside = Path(sys.executable).parent / "hellocontainer"
    return str(beside) if beside.exists() else "hellocontainer"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packager", default=default_packager(),
                        help="hellocontainer executable (default: the one beside this Python)")
    parser.add_argument("--sizes", default="1,16,64,256",
                        help="comma-separated sizes in MiB of the large inputs")
    parser.add_argument("--random-sizes", default="",
                        help="comma-separated sizes in MiB of half-random inputs, e.g. 64,256")
    parser.add_argument("--unpack", action="store_true",
                        help="also time unpacking each layout: hellocontainer bundle against "
                        "umoci unpack")
    parser.add_argument("--levels", default="",
                        help="extra --gzip-level values to run hellocontainer with, e.g. 4,6,max "
                        f"(max: inputs up to {MAX_LEVEL_INPUT_BYTES // MIB} MiB only)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch directory (default: a new temporary directory)")
    args = parser.parse_args()
    if not Path(TIME).exists():
        raise SystemExit(f"bench: error: {TIME} not found; install it with: apt-get install time")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    random_sizes = [int(s) for s in args.random_sizes.split(",") if s]
    levels = [s for s in args.levels.split(",") if s]
    bad = [s for s in levels if s != "max" and not (s.isdigit() and 1 <= int(s) <= 9)]
    if bad:
        raise SystemExit(f"bench: error: --levels {bad[0]!r} is not a gzip level; use 1 to 9 or max")
    if "max" in levels and importlib.util.find_spec("zopfli") is None:
        raise SystemExit("bench: error: --levels max needs the Python module zopfli; "
                         "install it with: pip install zopfli")

    tools: list[Tool] = []
    packager = shutil.which(args.packager)
    if packager and subprocess.run([packager, "--help"], capture_output=True, check=False).returncode == 0:
        tools.append(Tool("hellocontainer", packager=(packager,)))
        tools += [Tool(f"hellocontainer --gzip-level {lvl}",
                       packager=(packager, "--gzip-level", lvl),
                       max_input_bytes=MAX_LEVEL_INPUT_BYTES if lvl == "max" else None)
                  for lvl in levels]
    else:
        print(f"bench: {args.packager} does not run; benchmarking the others only",
              file=sys.stderr)
    if shutil.which("umoci"):
        tools.append(Tool("umoci", script=UMOCI_SCRIPT))
    if args.unpack and packager and shutil.which("umoci"):
        build = f"{shlex.quote(packager)} build rootfs/hello --output layout --quiet\n"
        tools += [Tool("unpack: hellocontainer bundle", prepare=build,
                       script=f"{shlex.quote(packager)} bundle layout:latest --output bundle "
                       "--quiet\n"),
                  Tool("unpack: umoci unpack", prepare=build,
                       script="umoci unpack --rootless --image layout:latest bundle\n")]
    else:
        print("bench: umoci not found (apt-get install umoci)", file=sys.stderr)
    tools.append(Tool("tar | gzip -n -9 | sha256sum", script=FLOOR_SCRIPT))

    facts = {
        "Options": f"--sizes {args.sizes} --random-sizes {args.random_sizes or '(none)'} "
                   f"--levels {args.levels or '(none)'}{' --unpack' if args.unpack else ''} "
                   f"--repeat {args.repeat}",
        "CPUs available": str(len(os.sched_getaffinity(0))),
        "Python": sys.version.split()[0],
        "zlib (Python's)": zlib.ZLIB_RUNTIME_VERSION,
        "umoci": version(["umoci", "--version"]),
        "gzip": version(["gzip", "--version"]),
        # Other processes skew wall time (not so much CPU time): note how busy the machine was.
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
    }
    if "max" in levels:
        facts["zopfli (for --gzip-level max)"] = version(
            [sys.executable, "-c", "import zopfli; print(zopfli.__version__)"])
        facts["--gzip-level max runs on"] = f"inputs up to {MAX_LEVEL_INPUT_BYTES // MIB} MiB"
    workdir = Path(tempfile.mkdtemp(prefix="hellocontainer-bench-", dir=args.workdir))
    rows: list[Row] = []
    try:
        inputs = make_inputs(workdir, sizes, random_sizes)
        for name, binary in inputs.items():
            print(f"{name} ({binary.stat().st_size:,} bytes)", file=sys.stderr)
            for tool_name, runs in run_input(tools, binary, workdir, args.repeat).items():
                rows.append(Row(
                    input_name=name,
                    input_bytes=binary.stat().st_size,
                    tool=tool_name,
                    wall=statistics.median(r.wall for r in runs),
                    peak_rss_kib=max(r.peak_rss_kib for r in runs),
                    cpu=statistics.median(r.cpu for r in runs),
                    layout_bytes=runs[-1].layout_bytes,
                    reproducible=(len({r.tree_digest for r in runs}) == 1
                                  if len(runs) > 1 else None),
                ))
    finally:
        shutil.rmtree(workdir)
    facts["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_markdown(rows, args.out_dir / "results.md", facts, args.repeat)
    plotted = write_plot(rows, args.out_dir / "results.png")
    print(json.dumps({"results": str(args.out_dir / "results.md"), "plot": plotted}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
