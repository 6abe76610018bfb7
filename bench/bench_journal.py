"""Benchmark: run-journal append throughput against raw sqlite3 inserts of the same rows.

Run ``python bench/bench_journal.py [--quick]``; or import and call :func:`run`,
which returns one dict per case (``case, records, seconds, records_per_s,
ratio_to_raw``) for aggregation. Every case takes the best of 3 repetitions, each
in a fresh database file (WAL, synchronous=NORMAL) in a temporary directory.

Cases
    cellauto append            ``RunJournal.append`` of typical reading records, no
                               event loop: group commit every 1,000 records
                               (executemany) and a final flush - included.
    raw executemany            the same rows (bodies and hashes precomputed), same
                               schema and settings, one executemany + commit per
                               1,000 rows: the baseline (ratio 1.0).
    raw execute per row        as above, one execute per row.
    cellauto append, asyncio   appends inside a running loop, ``await sleep(0)``
                               every 100 records: a flush at the end of each tick.
    cellauto durable append    ``append(..., durable=True)``: one fsync'd commit each.
    raw FULL commit per row    raw sqlite3, synchronous=FULL, one commit per row: the
                               baseline of the durable case.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from cellauto.records import Journal
    from cellauto.records._sqlite import INSERT_RECORD
    from cellauto.records.payloads import InstrumentCommand, Reading
except ModuleNotFoundError:  # run as a script from a source checkout
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cellauto.records import Journal
    from cellauto.records._sqlite import INSERT_RECORD
    from cellauto.records.payloads import InstrumentCommand, Reading

FIELDS: dict[str, Any] = {
    "instrument": "bioreactor",
    "method": "read_temperature",
    "arguments": {},
    "step": "expand",
}
VALUE = {"temperature_c": 37.02}
RUN_ID = "20260101T000000-car-t-0001"
BATCH = 1000
REPETITIONS = 5
Row = tuple[str, int, str, float, int, str, str, str]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def _cellauto_append(n: int) -> Callable[[Path], float]:
    def once(path: Path) -> float:
        with Journal(path) as journal:
            start = time.perf_counter()
            run = journal.begin_run(RUN_ID, _Clock())
            append = run.append
            for _ in range(n):  # a payload model per record, as the runner builds them
                append(Reading(**FIELDS, value=VALUE))
            journal.flush()
            return time.perf_counter() - start

    return once


def _cellauto_asyncio(n: int, per_tick: int = 100) -> Callable[[Path], float]:
    async def appends(journal: Journal) -> float:
        start = time.perf_counter()
        run = journal.begin_run(RUN_ID, _Clock())
        for i in range(n):
            run.append(Reading(**FIELDS, value=VALUE))
            if i % per_tick == per_tick - 1:
                await asyncio.sleep(0)
        journal.flush()
        return time.perf_counter() - start

    def once(path: Path) -> float:
        with Journal(path) as journal:
            return asyncio.run(appends(journal))

    return once


def _cellauto_durable(n: int) -> Callable[[Path], float]:
    def once(path: Path) -> float:
        with Journal(path) as journal:
            start = time.perf_counter()
            run = journal.begin_run(RUN_ID, _Clock())
            for _ in range(n):
                run.append(InstrumentCommand(**FIELDS), durable=True)
            return time.perf_counter() - start

    return once


def _rows_from_journal(n: int, workdir: Path) -> list[Row]:
    """The exact rows cellauto writes (bodies and hashes), for the raw baselines."""
    path = workdir / "rows.db"
    _cellauto_append(n)(path)
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
            " FROM records ORDER BY seq"
        ).fetchall()


def _raw_connection(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    Journal(path).close()  # the same schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def _raw(rows: list[Row], *, per_row: bool) -> Callable[[Path], float]:
    def once(path: Path) -> float:
        conn = _raw_connection(path)
        try:
            start = time.perf_counter()
            for i in range(0, len(rows), BATCH):
                conn.execute("BEGIN")
                if per_row:
                    for row in rows[i : i + BATCH]:
                        conn.execute(INSERT_RECORD, row)
                else:
                    conn.executemany(INSERT_RECORD, rows[i : i + BATCH])
                conn.execute("COMMIT")
            return time.perf_counter() - start
        finally:
            conn.close()

    return once


def _raw_full_per_row(rows: list[Row]) -> Callable[[Path], float]:
    def once(path: Path) -> float:
        conn = _raw_connection(path, "FULL")
        try:
            start = time.perf_counter()
            for row in rows:
                conn.execute("BEGIN")
                conn.execute(INSERT_RECORD, row)
                conn.execute("COMMIT")
            return time.perf_counter() - start
        finally:
            conn.close()

    return once


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Run every case; return rows of case, records, seconds, records_per_s, ratio_to_raw."""
    n = 20_000 if quick else 100_000
    n_durable = 20 if quick else 200
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        workdir = Path(tmp)
        rows = _rows_from_journal(n, workdir)
        # (case, records, timed function, the raw case it is compared with)
        cases: list[tuple[str, int, Callable[[Path], float], str]] = [
            ("raw executemany", n, _raw(rows, per_row=False), "raw executemany"),
            ("cellauto append", n, _cellauto_append(n), "raw executemany"),
            ("raw execute per row", n, _raw(rows, per_row=True), "raw executemany"),
            ("cellauto append, asyncio", n, _cellauto_asyncio(n), "raw executemany"),
            ("raw FULL commit per row", n_durable, _raw_full_per_row(rows[:n_durable]), ""),
            ("cellauto durable append", n_durable, _cellauto_durable(n_durable), ""),
        ]
        # Interleave the repetitions of all cases, so that a busy moment on the machine
        # hits every case alike, and keep each case's best.
        best = [float("inf")] * len(cases)
        for repetition in range(REPETITIONS):
            for index, (_case, _count, once, _baseline) in enumerate(cases):
                path = workdir / f"case{index}-{repetition}.db"
                best[index] = min(best[index], once(path))
        for index, (case, count, _once, baseline) in enumerate(cases):
            seconds = best[index]
            results.append(
                {
                    "case": case,
                    "records": count,
                    "seconds": seconds,
                    "records_per_s": count / seconds,
                    "baseline": baseline or "raw FULL commit per row",
                }
            )
    speed = {r["case"]: r["records_per_s"] for r in results}
    for result in results:
        result["ratio_to_raw"] = result["records_per_s"] / speed[result.pop("baseline")]
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'case':<28} {'records':>8} {'seconds':>9} {'records/s':>11} {'ratio':>6}"]
    for r in results:
        lines.append(
            f"{r['case']:<28} {r['records']:>8} {r['seconds']:>9.4f} "
            f"{r['records_per_s']:>11,.0f} {r['ratio_to_raw']:>6.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records")
    args = parser.parse_args()
    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
