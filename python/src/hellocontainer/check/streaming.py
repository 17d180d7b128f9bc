"""Reports of any size in bounded memory: lists that spill to a temporary file, sorting that merges.

A layer may hold a million entries, and `inspect` lists each one while `diff` pairs them with
another layer's; held as Python dicts, a million entries take over half a gigabyte. Entries are
therefore kept as JSON lines in an unnamed temporary file once there are more than a few
thousand, sorted in runs that are merged from their files, and printed as they are read back.
Whatever is wrong with a layer is still found before anything is printed: the report is complete
(on disk) before the CLI writes its first line.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

IN_MEMORY = 1024  # items kept as objects before the rest go to the file: a small layer stays fast
RUN = 8192  # items sorted in memory at once while sorting (a few MiB)
MAX_RUNS = 64  # run files merged at once: far below any limit on open files


class Spill:
    """An append-only list of JSON values, iterated in order as often as asked."""

    def __init__(self) -> None:
        self._head: list[Any] = []
        self._file: IO[str] | None = None
        self._length = 0

    def append(self, item: Any) -> None:
        self._length += 1
        if len(self._head) < IN_MEMORY:
            self._head.append(item)
            return
        if self._file is None:
            # Unnamed (O_TMPFILE or unlinked at once): nothing is left behind, however we end.
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (lives as long as the Spill)
        self._file.write(json.dumps(item, separators=(",", ":")) + "\n")

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def __iadd__(self, items: Iterable[Any]) -> Spill:
        self.extend(items)
        return self

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __iter__(self) -> Iterator[Any]:
        yield from self._head
        if self._file is not None:
            self._file.flush()
            yield from _lines(self._file)


def _lines(stream: IO[str]) -> Iterator[Any]:
    position = 0
    while True:
        stream.seek(position)  # another iteration of the same file may have moved it
        line = stream.readline()
        if not line:
            return
        position = stream.tell()
        yield json.loads(line)


def sorted_stream(items: Iterable[Any], key: Callable[[Any], Any]) -> Iterator[Any]:
    """`items` sorted by `key` (stably), holding at most RUN of them in memory at once."""
    source = iter(items)
    first = sorted(itertools.islice(source, RUN), key=key)
    if len(first) < RUN:
        yield from first  # everything fitted in one run: no file needed
        return
    with contextlib.ExitStack() as files:
        runs: list[IO[str]] = []
        run = first
        while run:
            runs.append(_write_run(files, run))
            run = sorted(itertools.islice(source, RUN), key=key)
        while len(runs) > MAX_RUNS:
            # Merge the earliest runs into one, first in line, so order stays stable and no
            # more than MAX_RUNS files are ever open at once, whatever the count.
            runs = [_write_run(files, heapq.merge(*(_lines(r) for r in runs[:MAX_RUNS]), key=key)),
                    *runs[MAX_RUNS:]]
        # heapq.merge is stable across its inputs in the order given, which is the items' order.
        yield from heapq.merge(*(_lines(run) for run in runs), key=key)


def _write_run(files: contextlib.ExitStack, items: Iterable[Any]) -> IO[str]:
    # Closed by `files` when the merge is done (ruff cannot see that through enter_context).
    stream = files.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))  # noqa: SIM115
    stream.writelines(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
    return stream


def json_chunks(value: Any, level: int = 0) -> Iterator[str]:
    """`json.dumps(value, indent=2, sort_keys=True)`, piece by piece; a Spill is a list."""
    indent = "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            yield "{}"
            return
        yield "{"
        for i, key in enumerate(sorted(value)):
            yield ("," if i else "") + "\n" + indent + json.dumps(key) + ": "
            yield from json_chunks(value[key], level + 1)
        yield "\n" + "  " * level + "}"
    elif isinstance(value, (list, tuple, Spill)):
        if not value:
            yield "[]"
            return
        yield "["
        for i, item in enumerate(value):
            yield ("," if i else "") + "\n" + indent
            yield from json_chunks(item, level + 1)
        yield "\n" + "  " * level + "]"
    else:
        yield json.dumps(value)
