"""QA's release check (issue 12): what ``cellauto release --check`` costs as a site grows.

A release is evaluated after the run's chain, the whole signed ledger and the whole site
chain (replayed into its projections) were verified, in the same state: those checks are
the raw baseline, measured in the same run; the rules themselves (deviations, QC results,
signatures, tasks, the releaser) are what cellauto adds on top. The journal holds one
simulated CAR-T batch with a deviation, ``runs`` other sealed runs (ledger entries), and a
site chain of ``site_records`` lot receipts (what a year of goods-in writes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench_materials_lots import TODAY, _define, _received, _run_started, _site

from cellauto.records import Journal, verify_run
from cellauto.records.ledger_check import check_ledger
from cellauto.records.signing import default_key_path
from cellauto.records.site_verify import verify_site
from cellauto.review.disposition import release_problems
from cellauto.sim import simulate
from cellauto.sim.faults import TemperatureExcursion
from cellauto.site.replay import replay_problem


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _journal(directory: Path, runs: int, site_records: int) -> tuple[Path, Path, str]:
    path = directory / f"release-{runs}-{site_records}.db"
    key = default_key_path()  # the simulation signs with the default key
    batch = simulate(
        Path(__file__).resolve().parent.parent / "protocols" / "car_t_autologous.py",
        seed=1,
        faults={"bioreactor": [TemperatureExcursion(at_h=72, delta_c=2.9, duration_h=3)]},
        on_hold="restart",
        db=path,
    )
    with Journal(path, signing_key=key) as journal:
        for n in range(runs):
            run = journal.begin_run(f"bench-{n:05d}", time.monotonic)
            run.append(_run_started(f"bench-{n:05d}"))
            run.seal()
    expires = TODAY + timedelta(days=365)
    payloads = [_define("IL-2")] + [
        _received(f"il-2/l{n:06d}", "IL-2", 1000, expires) for n in range(site_records)
    ]
    _site(path, key, payloads)
    return path, key, batch.outcome.run_id


def _case(path: Path, key: Path, run_id: str, repeat: int) -> dict[str, float]:
    with Journal(path, create=False, signing_key=key) as journal:
        conn = journal.read_connection()

        def ours() -> None:
            conn.execute("BEGIN")
            try:
                release_problems(journal, conn, run_id)
            finally:
                conn.execute("COMMIT")

        def raw() -> None:
            conn.execute("BEGIN")
            try:
                ledger = check_ledger(conn, None)
                verify_run(journal, run_id, ledger=ledger)
                verify_site(conn, ledger, site_replay=replay_problem)
            finally:
                conn.execute("COMMIT")

        ours()  # warm: imports, caches
        raw_ms, ours_ms = _median_ms(raw, repeat), _median_ms(ours, repeat)
    return {"ours_ms": ours_ms, "raw_ms": raw_ms}


def run(quick: bool = False) -> list[dict[str, object]]:
    sizes = [(10, 0), (100, 2_000)] if quick else [(10, 0), (1_000, 10_000), (1_000, 50_000)]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-release-") as name:
        for runs, site_records in sizes:
            path, key, run_id = _journal(Path(name), runs, site_records)
            got = _case(path, key, run_id, 3 if quick else 5)
            ratio = got["ours_ms"] / got["raw_ms"]
            rows.append(
                {
                    "case": f"release --check, {runs} runs, {site_records:,} site records",
                    "value": f"{got['ours_ms']:.0f} ms",
                    "ratio_to_raw": ratio,
                    "detail": (
                        f"raw verify (ledger + run + site replay) {got['raw_ms']:.0f} ms;"
                        f" {ratio:.2f}x"
                    ),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row['case']:<60} {row['value']:>10}  {row['detail']}")


if __name__ == "__main__":
    main()
