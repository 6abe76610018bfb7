"""Benchmark: journal append on PostgreSQL, real shape, vs raw psycopg COPY and executemany.

Run ``python bench/bench_journal_pg.py [--quick] [--url postgresql://…]``; or import and call
:func:`run`. Without ``--url`` (or ``$CELLAUTO_TEST_PG_URL``) it starts a server of its own
as the test suite does (Debian's PostgreSQL binaries, ``fsync=off``; None without them).

Cases (every figure from the same process, server and run as its baselines)
    real shape, R runs x T   R runs each append one typical reading per event-loop tick
                             (``await asyncio.sleep(0)`` between ticks) through a real
                             :class:`~cellauto.records.Journal` on PostgreSQL (writer thread,
                             group commit, fence, ledger, binary ``COPY``, ``NOTIFY``), timed
                             from the first append to the flush that commits the last
                             (``begin_run`` of the R runs and ``close`` are reported apart).
                             CPU: this process's (all threads) and, when the benchmark
                             started the server, the server's processes' (``/proc``).
    raw COPY                 the very same rows, read back in append order, into the same
                             table of a fresh schema by psycopg binary ``COPY``, one
                             transaction per 1,000 rows.
    raw executemany          the same with ``executemany`` of an ``INSERT``.

The target (issue 15): the journal ≥ 0.5x raw binary ``COPY`` (the lead's answer 3: both
ratios reported, ``COPY`` is the target).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    from cellauto.records import Journal
except ModuleNotFoundError:  # run as a script from a source checkout
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cellauto.records import Journal

from cellauto.records.payloads import Reading

FIELDS: dict[str, Any] = {
    "instrument": "bioreactor",
    "method": "read_process_values",
    "arguments": {},
    "step": "expand",
}
VALUE = {"temperature_c": 37.02, "ph": 7.11, "dissolved_oxygen_pct": 40.2}
BATCH = 1000
COLUMNS = "run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
TYPES = ["text", "int8", "text", "float8", "int8", "text", "text", "text"]
TARGET = 0.5


def _clock() -> Any:
    now = [1_767_225_600.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    return clock


_POSTMASTER: list[int] = []  # the pid of the server this benchmark started, if it did


def _server_cpu_s() -> float:
    """CPU seconds (user + system) of the processes of the server this benchmark started,
    so far (0 when it uses a server of another's: its processes are not ours to read)."""
    if not _POSTMASTER:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        if pid == _POSTMASTER[0] or int(fields[1]) == _POSTMASTER[0]:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str | None]:
    """The URL of a database to use (schemas are made and dropped in it)."""
    if url:
        yield url
        return
    from cellauto.testing_pg import start_server

    server = start_server()
    if server is None:
        yield None
        return
    if server.data_dir is not None:
        _POSTMASTER[:] = [int((server.data_dir / "postmaster.pid").read_text().split()[0])]
    try:
        yield server.url
    finally:
        _POSTMASTER.clear()
        from cellauto.records.backend.pg import close_pools

        close_pools()
        server.stop()


def _connect(url: str, schema: str | None = None) -> Any:
    import psycopg

    options = f"-c search_path={schema}" if schema else ""
    return psycopg.connect(url, autocommit=True, options=options)


def _drop(url: str, schema: str) -> None:
    from cellauto.records.backend.pg import close_pools, forget_created

    close_pools()
    forget_created(*_split(url, schema))
    with _connect(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _split(url: str, schema: str) -> tuple[str, str]:
    from cellauto.records.backend.pg import split_url

    return split_url(f"{url}#{schema}")


def _real_shape(url: str, schema: str, runs: int, ticks: int, key: Path) -> dict[str, Any]:
    _drop(url, schema)
    journal = Journal(f"{url}#{schema}", signing_key=key)
    times: dict[str, float] = {}

    async def appending() -> None:
        start = time.perf_counter()
        open_runs = [
            journal.begin_run(f"20260101T000000-car-t-{i:04d}", _clock()) for i in range(runs)
        ]
        journal.flush()
        times["begin"] = time.perf_counter() - start
        writer = journal._writer
        before = writer.commits if writer is not None else 0
        cpu = time.process_time()
        server_cpu = _server_cpu_s()
        start = time.perf_counter()
        for _ in range(ticks):
            for run in open_runs:
                run.append(Reading(**FIELDS, value=VALUE))
            await asyncio.sleep(0)
        journal.flush()
        times["append"] = time.perf_counter() - start
        times["cpu"] = time.process_time() - cpu
        times["server_cpu"] = _server_cpu_s() - server_cpu
        times["commits"] = writer.commits - before if writer is not None else -1

    asyncio.run(appending())
    start = time.perf_counter()
    journal.close()
    return {
        "seconds": times["append"],
        "records": runs * ticks,
        "commits": int(times["commits"]),
        "cpu_s": times["cpu"],
        "server_cpu_s": times["server_cpu"],
        "begin_s": times["begin"],
        "close_s": time.perf_counter() - start,
    }


def _rows(url: str, schema: str) -> list[tuple[Any, ...]]:
    """The journal's readings in append order (the rows the raw baselines write)."""
    with _connect(url, schema) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(
            f"SELECT {COLUMNS} FROM records WHERE kind = 'reading' ORDER BY id"
        ).fetchall()
    return rows


def _raw(url: str, schema: str, rows: list[tuple[Any, ...]], how: str, key: Path) -> dict[str, Any]:
    _drop(url, schema)
    Journal(f"{url}#{schema}", signing_key=key).close()  # the same tables and indexes
    with _connect(url, schema) as conn:
        cpu = time.process_time()
        server_cpu = _server_cpu_s()
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with conn.transaction(), conn.cursor() as cursor:
                if how == "copy":
                    copy_sql = f"COPY records ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
                    with cursor.copy(copy_sql) as copy:
                        copy.set_types(TYPES)
                        for row in rows[i : i + BATCH]:
                            copy.write_row(row)
                else:
                    cursor.executemany(
                        f"INSERT INTO records ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        rows[i : i + BATCH],
                    )
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server_cpu = _server_cpu_s() - server_cpu
    return {
        "seconds": seconds,
        "records": len(rows),
        "commits": -(-len(rows) // BATCH),
        "cpu_s": cpu,
        "server_cpu_s": server_cpu,
    }


def run(
    quick: bool = False, url: str | None = None, repetitions: int | None = None
) -> list[dict[str, Any]]:
    """Every case, best of ``repetitions`` by time; one dict per case ([] without a server)."""
    shapes = [(100, 20), (100, 100)] if quick else [(100, 100), (100, 1_000)]
    repetitions = repetitions or (1 if quick else 3)
    results: list[dict[str, Any]] = []
    url = url or os.environ.get("CELLAUTO_TEST_PG_URL")
    try:
        import psycopg  # noqa: F401  (the [postgres] extra)
    except ImportError:
        return []
    with _server(url) as base, tempfile.TemporaryDirectory(prefix="bench-journal-pg-") as tmp:
        if base is None:
            return []
        key = Path(tmp) / "signing.key"
        for runs, ticks in shapes:
            best: dict[str, dict[str, Any]] = {}
            for rep in range(repetitions):
                schema = f"bench_j_{runs}x{ticks}_{rep}"
                mine = _real_shape(base, schema, runs, ticks, key)
                rows = _rows(base, schema)
                copy = _raw(base, "bench_raw_copy", rows, "copy", key)
                many = _raw(base, "bench_raw_many", rows, "executemany", key)
                for name, result in (("cellauto", mine), ("copy", copy), ("many", many)):
                    if name not in best or result["seconds"] < best[name]["seconds"]:
                        best[name] = result
                for schema_used in (schema, "bench_raw_copy", "bench_raw_many"):
                    _drop(base, schema_used)
            shape = f"{runs} runs x {ticks}"
            results.append({"case": f"{shape}: raw COPY binary", **best["copy"]})
            results.append({"case": f"{shape}: raw executemany", **best["many"]})
            results.append(
                {
                    "case": f"{shape}: cellauto journal",
                    **best["cellauto"],
                    "ratio_copy": best["copy"]["seconds"] / best["cellauto"]["seconds"],
                    "ratio_many": best["many"]["seconds"] / best["cellauto"]["seconds"],
                }
            )
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    if not results:
        return (
            "no PostgreSQL: install the [postgres] extra and Debian's postgresql package, or"
            " give --url postgresql://…"
        )
    head = (
        f"{'case':<40} {'records':>8} {'seconds':>8} {'rec/s':>9} {'commits':>8} "
        f"{'CPU s':>6} {'srv s':>6} {'/COPY':>6} {'/many':>6}"
    )
    lines = [head]
    for r in results:
        ratios = f" {r['ratio_copy']:>6.2f} {r['ratio_many']:>6.2f}" if "ratio_copy" in r else ""
        lines.append(
            f"{r['case']:<40} {r['records']:>8} {r['seconds']:>8.3f} "
            f"{r['records'] / r['seconds']:>9,.0f} {r['commits']:>8} {r['cpu_s']:>6.2f} "
            f"{r['server_cpu_s']:>6.2f}" + ratios
        )
        if "begin_s" in r:
            lines.append(
                f"{'':<40} begin_run of the runs {r['begin_s']:.2f} s, close {r['close_s']:.2f} s"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, one repetition")
    parser.add_argument(
        "--url", help="postgresql://… of a database to use (else a server of its own)"
    )
    parser.add_argument("--repetitions", type=int, help="best of N (default 3, quick 1)")
    args = parser.parse_args()
    print(format_table(run(quick=args.quick, url=args.url, repetitions=args.repetitions)))


if __name__ == "__main__":
    main()
