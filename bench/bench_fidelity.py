"""The fidelity table's cost: one seed of each shipped protocol, and the 100-seed table.

Run: ``python bench/bench_fidelity.py [--quick]`` (or ``python bench/run.py``).

* **per seed**: the raw library call, ``simulate()`` keeping every record of the run,
  against ``run_seed()``, which also summarises it (the checks, values, derived
  quantities and patient the table reads), median of a few seeds, drawn patients.
* **table**: ``cellauto sim fidelity``'s work for N seeds of both protocols, in this
  process (``workers=1``) and in two spawned processes, with the table built.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cellauto.sim.fidelity import build_table, rows_for, run_population, run_seed
from cellauto.sim.simulate import simulate

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
SHIPPED = ("car_t_autologous.py", "nk_expansion.py")


def _median_s(action: object, seeds: range) -> float:
    times = []
    for seed in seeds:
        started = time.perf_counter()
        action(seed)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def seed_rows(seeds: range) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name in SHIPPED:
        path = str(PROTOCOLS / name)
        run_seed(path, 0)  # imports and the protocol's module are not a seed's cost
        raw = _median_s(lambda seed, p=path: simulate(p, seed=seed, patient="drawn"), seeds)
        ours = _median_s(lambda seed, p=path: run_seed(p, seed), seeds)
        rows.append(
            {
                "case": f"fidelity: one seed of {name} (median of {len(seeds)})",
                "value": f"{ours * 1000:.0f} ms",
                "target": "",
                "detail": f"simulate() alone {raw * 1000:.0f} ms, {ours / raw:.2f}x",
                "ok": None,
            }
        )
    return rows


def table_rows(count: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    walls: dict[int, float] = {}
    for workers in (1, 2):
        started = time.perf_counter()
        for name in SHIPPED:
            path = PROTOCOLS / name
            summaries = run_population(path, range(count), workers=workers)
            build_table(name, summaries, rows_for(path))
        walls[workers] = time.perf_counter() - started
    rows.append(
        {
            "case": f"fidelity: table of both protocols, {count} seeds each",
            "value": f"{walls[2]:.1f} s on 2 workers",
            "target": "",
            "detail": f"1 worker {walls[1]:.1f} s (speed-up {walls[1] / walls[2]:.2f}x)",
            "ok": None,
        }
    )
    return rows


def run(quick: bool = False) -> list[dict[str, object]]:
    return seed_rows(range(1, 4 if quick else 8)) + table_rows(10 if quick else 100)


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
