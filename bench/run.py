"""Every benchmark in one command; prints one table. ``python bench/run.py [--quick]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_answer_latency
import bench_batches
import bench_crash_drill
import bench_failover
import bench_fidelity
import bench_journal
import bench_journal_load
import bench_journal_pg
import bench_materials
import bench_opcua
import bench_people
import bench_plr_wire
import bench_release
import bench_report
import bench_runner
import bench_scpi
import bench_shared_instruments
import bench_sim_serve
import bench_site
import bench_startup
import bench_trends
import bench_web


def _met(ok: object) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for row in bench_journal.run(quick=args.quick):
        target, ok = "", None
        if row["case"] == "cellauto append":
            target = "≥ 0.5x raw, ≥ 50k/s"
            ok = row["ratio_to_raw"] >= 0.5 and row["records_per_s"] >= 50_000
        rows.append(
            {
                "case": f"journal: {row['case']} ({row['records']:,} records)",
                "value": f"{row['records_per_s']:,.0f} rec/s",
                "target": target,
                "detail": f"{row['ratio_to_raw']:.2f}x raw",
                "ok": ok,
            }
        )
    for row in bench_journal_load.run(quick=args.quick):
        target, ok, detail = "", None, f"{row.get('ratio', 1.0):.2f}x raw"
        if row["case"].startswith("real shape") and "cellauto" in row["case"]:
            target, ok = "≥ 0.5x raw", row["ratio"] >= 0.5
        if row["case"].startswith("durable") and "cellauto" in row["case"]:
            target, ok = "≥ 5x raw", row["ratio"] >= 5
            detail += f", {row['fsyncs']} fsyncs"
        if "amplification" in row:
            detail += (
                f", {row['commits']} commits, {row['bytes_per_record']:,.0f} B written/rec,"
                f" amplification {row['amplification']:.2f}x"
            )
        rows.append(
            {
                "case": f"journal load: {row['case']} ({row['records']:,} records)",
                "value": f"{row['records'] / row['seconds']:,.0f} rec/s",
                "target": target,
                "detail": detail,
                "ok": ok,
            }
        )
    for row in bench_journal_pg.run(quick=args.quick):  # [] without PostgreSQL
        target, ok, detail = "", None, f"{row['commits']} commits"
        if "ratio_copy" in row:
            target, ok = "≥ 0.5x raw COPY", row["ratio_copy"] >= 0.5
            detail = f"{row['ratio_copy']:.2f}x COPY, {row['ratio_many']:.2f}x executemany"
        rows.append(
            {
                "case": f"journal on PostgreSQL: {row['case']}",
                "value": f"{row['records'] / row['seconds']:,.0f} rec/s",
                "target": target,
                "detail": detail,
                "ok": ok,
            }
        )
    rows.extend(bench_runner.run(quick=args.quick))
    rows.extend(bench_batches.run(quick=args.quick))
    rows.extend(bench_scpi.run(quick=args.quick))
    rows.extend(bench_opcua.run(quick=args.quick))
    rows.extend(bench_startup.run(quick=args.quick))
    rows.extend(bench_sim_serve.run(quick=args.quick))
    rows.extend(bench_plr_wire.run(quick=args.quick))
    rows.extend(bench_crash_drill.run(quick=args.quick))
    rows.extend(bench_people.run(quick=args.quick))
    rows.extend(bench_answer_latency.run(quick=args.quick))
    rows.extend(bench_materials.run(quick=args.quick))
    rows.extend(bench_trends.run(quick=args.quick))
    rows.extend(bench_report.run(quick=args.quick))
    rows.extend(bench_release.run(quick=args.quick))
    rows.extend(bench_web.run(quick=args.quick))
    rows.extend(bench_fidelity.run(quick=args.quick))
    rows.extend(bench_shared_instruments.run(quick=args.quick))
    rows.extend(bench_failover.run(quick=args.quick))  # PostgreSQL binaries: else skipped
    rows.extend(bench_site.run(quick=args.quick))
    width = max(len(str(r.get("case", ""))) for r in rows)
    print(f"{'benchmark':<{width}}  {'result':>16}  {'target':<20} met  detail")
    print("-" * (width + 60))
    for row in rows:
        print(
            f"{row.get('case', ''):<{width}}  {row.get('value', ''):>16}  "
            f"{row.get('target', ''):<20} {_met(row.get('ok')):<4} {row.get('detail', '')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
