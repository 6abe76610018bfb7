"""A whole CAR-T batch across processes: served in one, run in another; then killed and resumed.

``python bench/bench_crash_drill.py [--quick]``, or :func:`run` for ``bench/run.py``.

* **Uninterrupted**: ``cellauto sim serve`` serves the CAR-T line's ten instruments
  (OPC UA, SCPI, TCP, PyLabRobot over TCP), ``cellauto run`` drives a 9.5-day batch from
  another process at ``--speed`` 3,600 and 36,000: wall and CPU seconds of the controller
  and the server.
* **Crash drill**: the same at 7,200 (the line runs on while a controller is down, so
  20 controller lives of 0.2-4.5 s need a slower line), the controller SIGKILLed at 20
  seeded random moments and ``cellauto resume`` started each time: whether the batch completed, how
  many physical actions the instruments carried out twice (repeated), and how many
  they carried out without a journaled intent (lost records); see ``tests/lines/drill.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lines.drill import DrillReport, drill  # noqa: E402


def _row(case: str, report: DrillReport) -> dict[str, Any]:
    return {
        "case": case,
        "final_state": report.final_state,
        "kills": report.kills,
        "controllers": report.controllers,
        "actions": report.actions,
        "repeated": len(report.repeated_actions),
        "redone_in_doubt": len(report.redone_in_doubt),
        "lost": len(report.lost_records),
        "wall_s": report.wall_s,
        "controller_cpu_s": report.controller_cpu_s,
        "server_cpu_s": report.server_cpu_s,
        "problems": report.repeated_actions + report.lost_records,
        "notes": report.redone_in_doubt,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows for ``bench/run.py``."""
    rows = []
    for r in measure(quick=quick):
        killed = r["kills"] > 0
        ok = r["final_state"] == "Complete" and not r["problems"]
        rows.append(
            {
                "case": f"CAR-T across processes: {r['case']}",
                "value": f"{r['wall_s']:.1f} s wall",
                "target": "complete; 0 repeated, 0 lost" if killed else "",
                "ok": ok if killed else None,
                "detail": f"{r['final_state']}; controller CPU {r['controller_cpu_s']:.1f} s, "
                f"server CPU {r['server_cpu_s']:.1f} s; {r['actions']} actions, "
                f"{r['repeated']} repeated, {r['lost']} lost, "
                f"{r['redone_in_doubt']} sample commands redone after their reply was cut",
            }
        )
    return rows


def measure(quick: bool = False) -> list[dict[str, Any]]:
    rows = []
    reference = None
    for speed in [36_000.0] if quick else [3_600.0, 36_000.0]:
        with tempfile.TemporaryDirectory() as work:
            uninterrupted = drill(Path(work), kills=0, speed=speed)
        rows.append(_row(f"uninterrupted, speed {speed:,.0f}", uninterrupted))
        reference = uninterrupted.done
    kills = 5 if quick else 20
    with tempfile.TemporaryDirectory() as work:  # slower: the line runs on while it is down
        report = drill(
            Path(work), kills=kills, speed=7_200.0, reference=reference, mean_kill_after_s=2.35
        )
    rows.append(_row(f"{kills} kills, speed 7,200", report))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = measure(quick=args.quick)
    header = (
        f"{'case':<28} {'state':<9} {'kills':>5} {'ctrl':>4} {'acts':>5} {'rep':>3} "
        f"{'lost':>4} {'wall s':>7} {'ctrl cpu':>8} {'srv cpu':>7}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['case']:<28} {r['final_state']:<9} {r['kills']:>5} {r['controllers']:>4} "
            f"{r['actions']:>5} {r['repeated']:>3} {r['lost']:>4} {r['wall_s']:>7.1f} "
            f"{r['controller_cpu_s']:>8.1f} {r['server_cpu_s']:>7.1f}"
        )
        for problem in r["problems"]:
            print(f"    {problem}")
        for note in r["notes"]:
            print(f"    sample redone after a kill cut its reply: {note}")
    return 0 if all(r["final_state"] == "Complete" and not r["problems"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
