"""Whole batches in simulation: one CAR-T batch, and 1 / 10 / 50 concurrent batches.

Run: ``python bench/bench_batches.py`` (or ``python bench/run.py`` for every table).
Each concurrency level runs in a fresh subprocess so that its peak memory (max RSS)
is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.protocols import Runner, load_protocol
from cellauto.records import Journal
from cellauto.sim import sim_line_for_protocol
from cellauto.sim.simulate import DEFAULT_SIM_START

CAR_T = Path(__file__).resolve().parent.parent / "protocols" / "car_t_autologous.py"


async def _batches(count: int, db: Path) -> tuple[int, list[str]]:
    protocol = load_protocol(CAR_T)
    params = protocol.params()
    statuses: list[str] = []
    records = 0
    with Journal(db) as journal:
        runner = Runner(journal, clock_origin=DEFAULT_SIM_START, reproducible=True)

        async def one(seed: int) -> None:
            nonlocal records
            sim = sim_line_for_protocol(
                protocol, params, clock=Clock(DEFAULT_SIM_START), seed=seed, name=f"line-{seed}"
            )
            assert sim.line is not None
            execution = runner.prepare(protocol, sim.line, params, seed=seed)
            outcome = await execution.execute()
            execution.close()
            statuses.append(outcome.exit_status)
            records += outcome.records

        async with anyio.create_task_group() as tg:
            for seed in range(count):
                tg.start_soon(one, seed)
    return records, statuses


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss can carry a parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(count: int) -> dict[str, object]:
    """Run ``count`` concurrent CAR-T batches in this process; wall time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        records, statuses = anyio.run(
            _batches,
            count,
            Path(tmp) / "j.db",
            backend_options={"loop_factory": virtual_loop_factory},
        )
        wall = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    return {
        "batches": count,
        "wall_s": wall,
        "records": records,
        "peak_rss_mb": peak_mb,
        "complete": statuses.count("complete"),
    }


def _child(count: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _over_the_wire() -> dict[str, object]:
    """The CAR-T protocol with counter and freezer over SCPI/pyvisa (lines/sim-wire.toml)."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cellauto",
                "run",
                str(CAR_T),
                "--line",
                str(root / "lines" / "sim-wire.toml"),
                "--db",
                str(Path(tmp) / "w.db"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    return {
        "case": "CAR-T batch over the wire (counter, freezer via SCPI/pyvisa)",
        "value": f"{wall:.2f} s wall",
        "target": "≤ 60 s",
        "detail": f"whole CLI command; {last[:70]}",
        "ok": wall <= 60 and done.returncode == 0,
    }


def _with_crashes(repetitions: int) -> dict[str, object]:
    """One CAR-T batch whose controller dies three times (transduction, expansion, freeze)."""
    from cellauto.sim import simulate

    crashes = [15.0, 100.0, 225.0]
    timings = {}
    for case, crashed in (("none", []), ("three", crashes)):
        best = float("inf")
        for _ in range(repetitions):
            started = time.perf_counter()
            outcome = simulate(CAR_T, seed=3, crashes=crashed, downtime_h=2, on_hold="restart")
            best = min(best, time.perf_counter() - started)
        timings[case] = (best, outcome.exit_status)
    (plain, _), (crashed_s, status) = timings["none"], timings["three"]
    return {
        "case": "CAR-T batch, controller killed 3 times and resumed (simulate(crashes=...))",
        "value": f"{crashed_s:.2f} s wall",
        "target": "",
        "detail": f"ended {status}; the same batch without crashes {plain:.2f} s "
        f"({crashed_s / plain:.2f}x)",
        "ok": None,
    }


def run(quick: bool = False) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    single = min((_child(1) for _ in range(1 if quick else 3)), key=lambda r: r["wall_s"])
    rows.append(
        {
            "case": "CAR-T batch in simulation (9.5 simulated days)",
            "value": f"{single['wall_s']:.2f} s wall",
            "target": "≤ 2 s",
            "detail": f"{single['records']} records, {single['records'] / single['wall_s']:,.0f} "
            f"records/s, peak RSS {single['peak_rss_mb']:.0f} MB",
            "ok": single["wall_s"] <= 2.0 and single["complete"] == 1,
        }
    )
    for count in (10,) if quick else (10, 50):
        result = _child(count)
        target = "≤ 30 s, ≤ 500 MB" if count == 50 else ""
        rows.append(
            {
                "case": f"{count} concurrent CAR-T batches, one process",
                "value": f"{result['wall_s']:.2f} s wall",
                "target": target,
                "detail": f"{result['records']:,} records, {result['complete']}/{count} complete, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB, "
                f"{result['wall_s'] / single['wall_s']:.1f}x one batch",
                "ok": (result["wall_s"] <= 30 and result["peak_rss_mb"] <= 500)
                if count == 50
                else None,
            }
        )
    rows.append(_with_crashes(1 if quick else 3))
    rows.append(_over_the_wire())
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(int(sys.argv[2]))))
    else:
        for row in run():
            print(f"{row['case']:<50} {row['value']:>14}  {row['target']:<18} {row['detail']}")
