#!/usr/bin/env python3
"""CPU time of an image with many extra files: `build --file` against umoci's `insert` of the tree.

The hard part is the command line, not the packaging: 100,000 `SRC:DEST` words do not fit in
one argument (Linux caps one at 128 KiB) and barely fit in all of them (2 MiB), so the words are
short and spread over a few `--file` flags, each holding thousands (a flag's value is shell
words). umoci takes the whole folder in one `insert`. Both start from the same static binary;
CPU time is user + system of the whole process tree, from wait4(2).

    .venv/bin/python bench/many_files.py                 # 10k, 20k and 100k files
    .venv/bin/python bench/many_files.py --counts 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORDS_PER_FLAG = 8000  # at most 120 KiB of words: under the 128 KiB one argument may hold


def cpu_seconds(argv: list[str], cwd: Path) -> float:
    """Run `argv`; user + system CPU seconds of it and its children."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {argv[0]} {argv[1]} failed")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 20_000, 100_000])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="many-files-"))
    try:
        hello = work / "hello"
        subprocess.run(["musl-gcc", "-static", "-Os", "-o", hello, HERE.parent / "examples" /
                        "hello" / "hello.c"], check=True)
        print("| extra files | hellocontainer build --file CPU s | umoci insert CPU s | ratio |")
        print("|---|---|---|---|")
        for count in args.counts:
            here = work / str(count)
            tree = here / "t"
            tree.mkdir(parents=True)
            for i in range(count):
                (tree / str(i)).write_bytes(b"%d\n" % i)
            words = [f"t/{i}:/{i}" for i in range(count)]  # short: 100k of them take 1.5 MiB
            flags = [item for start in range(0, count, WORDS_PER_FLAG)
                     for item in ("--file", " ".join(words[start:start + WORDS_PER_FLAG]))]
            ours = cpu_seconds([sys.executable, "-m", "hellocontainer", "build", str(hello),
                                "--output", str(here / "ours"), *flags], here)
            layout = here / "umoci"
            umoci = sum(cpu_seconds(argv, here) for argv in (
                ["umoci", "init", "--layout", str(layout)],
                ["umoci", "new", "--image", f"{layout}:latest"],
                ["umoci", "insert", "--image", f"{layout}:latest", str(hello), "/hello"],
                ["umoci", "insert", "--image", f"{layout}:latest", str(tree), "/"]))
            print(f"| {count:,} | {ours:.2f} | {umoci:.2f} | {ours / umoci:.2f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
