"""The bookkeeping of a mutation session (cosmic-ray's SQLite work database), for scripts/mutate.

    mutate_session.py skip-annotations SESSION MODULE_FILE
        mark as skipped the mutants that only touch type hints, which are never evaluated
        (`from __future__ import annotations` in every module)
    mutate_session.py requeue SESSION
        forget the verdicts of the surviving mutants, so that the next exec runs them again
        (after tests were added for them)
    mutate_session.py split SESSION N
        copy the session N times (SESSION.0 … SESSION.N-1), each with a share of the pending
        mutants, for N cosmic-ray processes side by side (cosmic-ray's local distributor runs
        one mutant at a time; a module's run takes hours on one core)
    mutate_session.py merge SESSION N
        take the verdicts back from the copies into SESSION and remove the copies
    mutate_session.py score SESSION MODULE SECONDS
        one line: killed/run, the score, the time taken, and how many mutants could not run

Resuming is the plain case: cosmic-ray's exec runs only the mutants without a verdict.
"""

from __future__ import annotations

import ast
import shutil
import sqlite3
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

SPLIT = "left to another copy of the session"  # the output of a mutant another copy runs


def skip_annotations(session: str, module: str) -> None:
    tree = ast.parse(Path(module).read_text())
    spans = []
    for node in ast.walk(tree):
        found = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(node.returns)
            arguments = node.args
            for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             arguments.vararg, arguments.kwarg]:
                found.append(argument and argument.annotation)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in found if a]
    with use_db(session, WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            if all(any(start <= tuple(m.start_pos) < end for start, end in spans)
                   for m in item.mutations):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def requeue(session: str) -> None:
    with sqlite3.connect(session) as db:
        count = db.execute("delete from work_results where test_outcome = 'SURVIVED'").rowcount
    print(f"{count} surviving mutants queued again", file=sys.stderr)


def _pending(session: str) -> list[str]:
    with use_db(session, WorkDB.Mode.open) as db:
        return sorted(item.job_id for item in db.pending_work_items)


def split(session: str, copies: int) -> None:
    pending = _pending(session)
    for k in range(copies):
        copy = f"{session}.{k}"
        shutil.copyfile(session, copy)
        with use_db(copy, WorkDB.Mode.open) as db:
            db.set_multiple_results([job for i, job in enumerate(pending) if i % copies != k],
                                    WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=SPLIT))
    print(f"{len(pending)} mutants to run, in {copies} processes", file=sys.stderr)


def merge(session: str, copies: int) -> None:
    pending = set(_pending(session))
    with use_db(session, WorkDB.Mode.open) as db:
        for k in range(copies):
            copy = f"{session}.{k}"
            with use_db(copy, WorkDB.Mode.open) as part:
                for job, result in part.results:
                    if job in pending and result.output != SPLIT:
                        db.set_result(job, result)
            Path(copy).unlink()


def score(session: str, module: str, seconds: str) -> None:
    with sqlite3.connect(session) as db:
        rows = [(str(w).lower(), str(t).lower()) for w, t in db.execute(
            "select worker_outcome, test_outcome from work_results")]
    done = [r for r in rows if r[0] == "normal"]  # not the mutants the filters skipped
    killed = sum(1 for _, outcome in done if outcome != "survived")
    result = 100 * killed / len(done) if done else 100.0
    errors = sum(1 for worker, _ in rows if worker not in ("normal", "skipped"))
    print(f"{module}: {killed}/{len(done)} killed ({result:.1f} %) in {seconds} s"
          + (f", {errors} mutants could not run" if errors else ""))


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "skip-annotations":
        skip_annotations(*args)
    elif command == "requeue":
        requeue(*args)
    elif command == "split":
        split(args[0], int(args[1]))
    elif command == "merge":
        merge(args[0], int(args[1]))
    elif command == "score":
        score(*args)
    else:
        sys.exit(f"mutate_session.py: unknown command {command!r}; see its docstring")


if __name__ == "__main__":
    main(sys.argv[1:])
