"""Trends and exports for analysis (issue 12, items 5-6), each against a raw baseline.

Run ``python bench/bench_trends.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``.

1. ``trend_tables`` + the trends of every metric over a journal of R finished CAR-T runs
   (the journal's open, which runs ``PRAGMA quick_check`` over the whole file, timed apart)
   (R = 1,000; 100 with ``--quick``), each of full shape (~1,270 records): 12 simulated
   runs (seeds 1-12, one with the 39.9 °C excursion and its deviation), their records
   copied under new run ids until there are R. Against the raw baseline: one ``SELECT
   body FROM records WHERE run_id = ? AND kind = 'batch_value'`` per run, its JSON
   decoded into {name: value}. Median of 3, interleaved. Design target: ≤ 5 s at 1,000.
2. ``trends.csv`` + ``trends.html`` (10 matplotlib SVG plots) of the same, once, and the
   matplotlib import it needs (cold process).
3. The measurements of one CAR-T run to Parquet: ``measurements(journal, run_id)`` +
   ``write_measurements_parquet``, against a raw build: the same run's ``reading`` and
   ``instrument_response`` bodies by SQL, their top-level numbers flattened into
   columns, ``pa.Table.from_pydict`` and ``pq.write_table``. Median of 15, interleaved.

Machine: see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from cellauto.records import Journal

ROOT = Path(__file__).resolve().parents[1]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"
TEMPLATES = 12


def build_journal(path: Path, runs: int) -> list[str]:
    """A journal of ``runs`` finished CAR-T runs: 12 simulated, the rest their copies."""
    from cellauto.sim import simulate
    from cellauto.sim.faults import TemperatureExcursion
    from cellauto.sim.simulate import DEFAULT_SIM_START

    excursion = TemperatureExcursion(at_h=72, delta_c=2.9, duration_h=3)
    templates = []
    for i in range(TEMPLATES):
        run = simulate(
            CAR_T,
            seed=i + 1,
            db=path,
            start=DEFAULT_SIM_START + timedelta(days=14 * i),
            faults={"bioreactor": [excursion]} if i == 9 else None,
            on_hold="restart",
        )
        templates.append(run.outcome.run_id)
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for n in range(TEMPLATES, runs):
            source = templates[n % TEMPLATES]
            offset = 14 * 86400.0 * n
            conn.execute(
                "INSERT INTO records SELECT ?, seq, kind, process_time_s + ?,"
                " wall_time_ns + ?, body, prev_hash, hash FROM records WHERE run_id = ?",
                (uuid.uuid4().hex, offset, int(offset * 1e9), source),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return templates


def ours_trends(path: Path) -> tuple[float, float, int]:
    """(seconds to open the journal, seconds for the trends, batches)."""
    from cellauto.review.trends import trend_tables
    from cellauto.review.trends_out import trends_by_protocol

    t0 = time.perf_counter()
    with Journal(path, create=False) as journal:  # PRAGMA quick_check of the whole file
        t1 = time.perf_counter()
        tables = trend_tables(journal)
        trends = trends_by_protocol(tables)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, sum(len(t[0].points) for t in trends.values())


def raw_batch_values(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        run_ids = [r for (r,) in conn.execute("SELECT DISTINCT run_id FROM records")]
        found = 0
        for run_id in run_ids:
            values = {}
            for (body,) in conn.execute(
                "SELECT body FROM records WHERE run_id = ? AND kind = 'batch_value'", (run_id,)
            ):
                payload = orjson.loads(body)["payload"]
                values[payload["name"]] = payload["value"]
            found += "dose" in values
        return found
    finally:
        conn.close()


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def trend_rows(directory: Path, runs: int, times: int = 3) -> list[dict[str, object]]:
    path = directory / "trends.db"
    t0 = time.perf_counter()
    build_journal(path, runs)
    built_s = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    ours, opens, raw = [], [], []
    for _ in range(times):
        gc.collect()
        open_s, spent, batches = ours_trends(path)
        assert batches == runs, (batches, runs)
        ours.append(spent)
        opens.append(open_s)
        spent, found = _timed(lambda: raw_batch_values(path))
        assert found == runs
        raw.append(spent)
    ours_s, raw_s, open_s = (statistics.median(x) for x in (ours, raw, opens))
    out = directory / "out"
    html_s = _cold_html_s(path, out)
    target_ok = ours_s <= 5.0 if runs >= 1000 else None
    return [
        {
            "case": f"trends: metrics, limits and flags over {runs:,} CAR-T runs",
            "value": f"{ours_s:.2f} s",
            "target": "≤ 5 s at 1,000",
            "detail": f"raw batch-value SELECT per run {raw_s:.2f} s = {ours_s / raw_s:.1f}x"
            f" (median of {times}; journal {size_mb:,.0f} MB, built in {built_s:.0f} s; opening"
            f" it, PRAGMA quick_check, another {open_s:.2f} s)",
            "ok": target_ok,
            "s": ours_s,
            "raw_s": raw_s,
        },
        {
            "case": f"trends: cellauto trends, cold process, {runs:,} runs (csv + html)",
            "value": f"{html_s:.2f} s",
            "target": "",
            "detail": "includes the interpreter, the matplotlib import and 10 SVG plots",
            "ok": None,
        },
    ]


def _cold_html_s(path: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cellauto", "trends", "--out", str(out), "--db", str(path)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def ours_parquet(path: Path, run_id: str, out: Path) -> int:
    from cellauto.review.measurements import measurements
    from cellauto.review.measurements_io import write_measurements_parquet

    with Journal(path, create=False) as journal:
        rows = measurements(journal, run_id)
    write_measurements_parquet(rows, out, run_id)
    return len(rows)


def raw_parquet(path: Path, run_id: str, out: Path) -> int:
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    columns: dict[str, list[object]] = {
        k: [] for k in ("process_time_s", "instrument", "method", "quantity", "value", "seq")
    }
    try:
        for seq, time_s, body in conn.execute(
            "SELECT seq, process_time_s, body FROM records WHERE run_id = ?"
            " AND kind IN ('reading', 'instrument_response') ORDER BY seq",
            (run_id,),
        ):
            payload = orjson.loads(body)["payload"]
            value = payload.get("value", payload.get("result"))
            if not isinstance(value, dict):
                continue
            for key, item in value.items():
                if isinstance(item, int | float) and not isinstance(item, bool):
                    columns["process_time_s"].append(time_s)
                    columns["instrument"].append(payload["instrument"])
                    columns["method"].append(payload["method"])
                    columns["quantity"].append(key)
                    columns["value"].append(float(item))
                    columns["seq"].append(seq)
    finally:
        conn.close()
    pq.write_table(pa.Table.from_pydict(columns), out)
    return len(columns["value"])


def parquet_rows(directory: Path, times: int = 15) -> list[dict[str, object]]:
    from cellauto.sim import simulate

    path = directory / "one.db"
    run_id = simulate(CAR_T, seed=1, db=path).outcome.run_id
    ours_parquet(path, run_id, directory / "warm.parquet")  # imports
    raw_parquet(path, run_id, directory / "warm-raw.parquet")
    ours, raw = [], []
    count = 0
    for _ in range(times):
        spent, count_obj = _timed(lambda: ours_parquet(path, run_id, directory / "m.parquet"))
        count = int(str(count_obj))
        ours.append(spent)
        spent, _ = _timed(lambda: raw_parquet(path, run_id, directory / "raw.parquet"))
        raw.append(spent)
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    return [
        {
            "case": f"export: one CAR-T run's measurements to Parquet ({count:,} rows)",
            "value": f"{ours_s * 1000:.0f} ms",
            "target": "",
            "detail": f"raw SQL + flatten + pyarrow {raw_s * 1000:.0f} ms = {ours_s / raw_s:.1f}x"
            f" (median of {times}, interleaved)",
            "ok": None,
            "s": ours_s,
            "raw_s": raw_s,
        }
    ]


def run(quick: bool = False) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="bench-trends-") as name:
        directory = Path(name)
        rows = parquet_rows(directory, 5 if quick else 15)
        rows += trend_rows(directory, 100 if quick else 1000)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for row in run(quick=args.quick):
        print(f"{row['case']}: {row['value']}  ({row['detail']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
