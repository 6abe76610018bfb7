"""Benchmark: the journal at a site's load - many runs appending at once.

Run ``python bench/bench_journal_load.py [--quick]``; or import and call :func:`run`.
Every figure comes from the same process and run as its raw-``sqlite3`` baseline.

Cases
    real shape, R runs     R runs each append one typical reading per event-loop tick
                           (``await asyncio.sleep(0)`` between ticks), then the journal
                           is closed - included. Compared with raw sqlite3
                           ``executemany`` of the very same rows (read back from the
                           journal, in append order), same schema, WAL/NORMAL, one
                           commit per 1,000 rows. Also reported: commits made, bytes
                           written per record (``/proc/self/io`` write_bytes of this
                           process, all threads, including the checkpoint into the
                           database file) and write amplification = bytes written /
                           the database's final size.
    group fsync            100 runs, each awaiting ``append_durable`` of an instrument
                           intent in turn (the shape of 100 batches sending commands),
                           against raw sqlite3 with one FULL (fsync'd) commit per row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
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
    "method": "read_process_values",
    "arguments": {},
    "step": "expand",
}
VALUE = {"temperature_c": 37.02, "ph": 7.11, "dissolved_oxygen_pct": 40.2}
BATCH = 1000


def _write_bytes() -> int:
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes"):
                return int(line.split()[1])
    return 0


def _clock() -> Any:
    now = [1_767_225_600.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    return clock


def _writer_counts(journal: Journal) -> tuple[int, int]:
    writer = getattr(journal, "_writer", None)
    return (writer.commits, writer.fsyncs) if writer is not None else (-1, -1)


def _real_shape(path: Path, runs: int, ticks: int) -> dict[str, Any]:
    os.sync()
    written = _write_bytes()
    commits: list[tuple[int, int]] = []
    journal = Journal(path)
    start = time.perf_counter()

    async def appending() -> None:
        open_runs = [
            journal.begin_run(f"20260101T000000-car-t-{i:04d}", _clock()) for i in range(runs)
        ]
        for _ in range(ticks):
            for run in open_runs:
                run.append(Reading(**FIELDS, value=VALUE))
            await asyncio.sleep(0)
        journal.flush()
        commits.append(_writer_counts(journal))

    asyncio.run(appending())
    journal.close()
    seconds = time.perf_counter() - start
    os.sync()
    written = _write_bytes() - written
    n = runs * ticks
    size = path.stat().st_size
    return {
        "seconds": seconds,
        "records": n,
        "commits": commits[0][0],
        "bytes_per_record": written / n,
        "db_bytes_per_record": size / n,
        "amplification": written / size,
    }


def _raw_executemany(source: Path, path: Path) -> dict[str, Any]:
    with sqlite3.connect(source) as conn:
        rows = conn.execute(
            "SELECT run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
            " FROM records ORDER BY wall_time_ns, run_id"
        ).fetchall()
    Journal(path).close()  # the same schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    os.sync()
    written = _write_bytes()
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany(INSERT_RECORD, rows[i : i + BATCH])
        conn.execute("COMMIT")
    conn.close()
    seconds = time.perf_counter() - start
    os.sync()
    written = _write_bytes() - written
    size = path.stat().st_size
    return {
        "seconds": seconds,
        "records": len(rows),
        "commits": -(-len(rows) // BATCH),
        "bytes_per_record": written / len(rows),
        "db_bytes_per_record": size / len(rows),
        "amplification": written / size,
    }


def _group_fsync(path: Path, runs: int, per_run: int) -> dict[str, Any]:
    with Journal(path) as journal:
        open_runs = [journal.begin_run(f"run-{i:04d}", _clock()) for i in range(runs)]
        journal.flush()
        before = _writer_counts(journal)

        async def batch(run: Any) -> None:
            for _ in range(per_run):
                if hasattr(run, "append_durable"):
                    await run.append_durable(InstrumentCommand(**FIELDS))
                else:  # an earlier release: a blocking fsync'd commit each
                    run.append(InstrumentCommand(**FIELDS), durable=True)
                    await asyncio.sleep(0)

        async def main() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(batch(run) for run in open_runs))
            return time.perf_counter() - start

        seconds = asyncio.run(main())
        after = _writer_counts(journal)
    return {"seconds": seconds, "records": runs * per_run, "fsyncs": after[1] - before[1]}


def _raw_full_per_row(path: Path, n: int) -> dict[str, Any]:
    rows = [
        ("r", i, "instrument_command", float(i), i, '{"x":"' + "y" * 400 + '"}', "0" * 64, "1" * 64)
        for i in range(n)
    ]
    Journal(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN")
        conn.execute(INSERT_RECORD, row)
        conn.execute("COMMIT")
    conn.close()
    return {"seconds": time.perf_counter() - start, "records": n, "fsyncs": n}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every case, best of ``repetitions`` by time; one dict per case."""
    shapes = (
        [(1, 2_000), (100, 100), (1000, 20)] if quick else [(1, 20_000), (100, 1_000), (1000, 200)]
    )
    repetitions = 1 if quick else 3
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-journal-load-", dir=Path.cwd()) as tmp:
        workdir = Path(tmp)
        for runs, ticks in shapes:
            best: dict[str, dict[str, Any]] = {}
            for rep in range(repetitions):
                mine = _real_shape(workdir / f"c{runs}-{rep}.db", runs, ticks)
                raw = _raw_executemany(workdir / f"c{runs}-{rep}.db", workdir / f"r{runs}-{rep}.db")
                for name, result in (("cellauto", mine), ("raw", raw)):
                    if name not in best or result["seconds"] < best[name]["seconds"]:
                        best[name] = result
            ratio = best["raw"]["seconds"] / best["cellauto"]["seconds"]
            results.append({"case": f"real shape, {runs} runs: raw executemany", **best["raw"]})
            results.append(
                {"case": f"real shape, {runs} runs: cellauto", **best["cellauto"], "ratio": ratio}
            )
        per_run = 5 if quick else 20
        mine_g = min(
            (_group_fsync(workdir / f"g{rep}.db", 100, per_run) for rep in range(repetitions)),
            key=lambda r: r["seconds"],
        )
        raw_g = min(
            (
                _raw_full_per_row(workdir / f"gr{rep}.db", 100 * per_run)
                for rep in range(repetitions)
            ),
            key=lambda r: r["seconds"],
        )
        results.append({"case": "durable, 100 runs: raw FULL commit per row", **raw_g})
        results.append(
            {
                "case": "durable, 100 runs: cellauto append_durable",
                **mine_g,
                "ratio": raw_g["seconds"] / mine_g["seconds"],
            }
        )
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    head = f"{'case':<46} {'records':>8} {'seconds':>8} {'rec/s':>9} {'ratio':>6} {'commits':>8}"
    lines = [head + f" {'fsyncs':>6} {'B/rec':>7} {'db B/rec':>8} {'amp':>6}"]
    for r in results:
        lines.append(
            f"{r['case']:<46} {r['records']:>8} {r['seconds']:>8.3f} "
            f"{r['records'] / r['seconds']:>9,.0f} {r.get('ratio', 1.0):>6.2f} "
            f"{r.get('commits', ''):>8} {r.get('fsyncs', ''):>6} "
            + (
                f"{r['bytes_per_record']:>7,.0f} {r['db_bytes_per_record']:>8,.0f} "
                f"{r['amplification']:>6.2f}"
                if "amplification" in r
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records")
    args = parser.parse_args()
    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
