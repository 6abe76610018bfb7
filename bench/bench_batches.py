"""Whole batches in simulation: one CAR-T batch, and 10 / 100 / 1,000 concurrent batches.

Run: ``python bench/bench_batches.py [--sizes 10,100,1000] [--on-hold stop]`` (or
``python bench/run.py`` for every table). Each concurrency level runs in a fresh
subprocess so that its peak memory, CPU time and bytes written are its own. Held
batches are answered by the declared on-hold policy (``--on-hold``, default stop;
see :mod:`cellauto.sim.batches`), so a run of many batches always returns.

``python bench/bench_batches.py --child N [--on-hold P] [--profile OUT.prof]`` runs one
level in this process and prints its figures as JSON (with ``--profile``, under cProfile).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cellauto.sim.batches import simulate_batches

CAR_T = Path(__file__).resolve().parent.parent / "protocols" / "car_t_autologous.py"
SIZES = (10, 100, 1000)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss can carry a parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _io() -> dict[str, int]:
    """This process's I/O counters (``write_bytes``: what reached the block layer)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of every thread of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def measure(count: int, on_hold: str = "stop", profile: str | None = None) -> dict[str, object]:
    """Run ``count`` concurrent CAR-T batches in this process: wall, CPU, RSS, bytes written."""
    # One-time imports are not the batches' cost: every simulator (PyLabRobot's too) and
    # the protocol are imported before the clock starts, whatever the code under test
    # would import lazily.
    from cellauto.protocols import load_protocol
    from cellauto.sim.line import simulators

    simulators()
    load_protocol(CAR_T)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "j.db"
        io_before, (user_before, sys_before) = _io(), _cpu()
        started = time.perf_counter()
        if profile:
            import cProfile

            with cProfile.Profile() as prof:
                batches = simulate_batches(CAR_T, range(count), db=db, on_hold=on_hold)
            prof.dump_stats(profile)
        else:
            batches = simulate_batches(CAR_T, range(count), db=db, on_hold=on_hold)
        wall = time.perf_counter() - started
        user_after, sys_after = _cpu()
        user, system = user_after - user_before, sys_after - sys_before
        cpu = user + system
        io_after = _io()
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
    written = io_after.get("write_bytes", 0) - io_before.get("write_bytes", 0)
    wchar = io_after.get("wchar", 0) - io_before.get("wchar", 0)
    records = batches.records
    return {
        "batches": count,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_per_batch_s": cpu / count,
        "user_s": user,
        "sys_s": system,
        "records": records,
        "peak_rss_mb": _peak_rss_mb(),
        "statuses": batches.statuses,
        "complete": batches.statuses.get("complete", 0),
        "held_runs": len(batches.held),
        "holds": sum(batches.held.values()),
        "answers": [a.command for a in batches.answers if a.applied],
        "answered_by": batches.by,
        "summary": batches.summary(),
        "write_bytes": written,
        "wchar": wchar,
        "db_bytes": db_bytes,
        "written_per_record": written / records if records else 0.0,
    }


def _child(count: int, on_hold: str = "stop") -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(count), "--on-hold", on_hold],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _level(count: int, on_hold: str = "stop") -> dict[str, object]:
    """One concurrency level; the small ones (under a second or a few) three times, the
    median CPU per batch kept, so that the 1,000 : 10 ratio is not one noisy sample's."""
    results = [_child(count, on_hold) for _ in range(3 if count <= 100 else 1)]
    results.sort(key=lambda r: float(r["cpu_per_batch_s"]))  # type: ignore[arg-type]
    return results[len(results) // 2]


def _row(result: dict[str, object], per_batch_at_10: float | None) -> dict[str, object]:
    count = int(result["batches"])  # type: ignore[call-overload]
    cpu_per = float(result["cpu_per_batch_s"])  # type: ignore[arg-type]
    wall = float(result["wall_s"])  # type: ignore[arg-type]
    rss = float(result["peak_rss_mb"])  # type: ignore[arg-type]
    ratio = cpu_per / per_batch_at_10 if per_batch_at_10 else 1.0
    db_bytes = float(result["db_bytes"])  # type: ignore[arg-type]
    amplification = float(result["write_bytes"]) / db_bytes if db_bytes else 0.0  # type: ignore[arg-type]
    ok = None
    target = ""
    if count == 1000:
        target = "≤ 180 s, ≤ 1 GB, CPU/batch ≤ 1.2x at 10, written ≤ 3x the db"
        ok = wall <= 180 and rss <= 1024 and ratio <= 1.2 and amplification <= 3
    return {
        "case": f"{count} concurrent CAR-T batches, one process",
        "value": f"{wall:.2f} s wall",
        "target": target,
        "detail": f"{result['cpu_s']:.1f} CPU-s (user {result['user_s']:.1f}, "
        f"system {result['sys_s']:.1f}), {cpu_per:.3f} CPU-s/batch ({ratio:.2f}x at 10), "
        f"{result['records']:,} records, peak RSS {rss:.0f} MB, "
        f"{float(result['written_per_record']) / 1000:.1f} KB written/record "  # type: ignore[arg-type]
        f"(db {db_bytes / 2**20:.0f} MB: written {amplification:.2f}x the db); "
        f"{result['summary']}",
        "ok": ok,
    }


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


def run(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    single = min((_child(1) for _ in range(1 if quick else 3)), key=lambda r: r["wall_s"])
    rows.append(
        {
            "case": "CAR-T batch in simulation (9.5 simulated days)",
            "value": f"{single['wall_s']:.2f} s wall",
            "target": "≤ 2 s",
            "detail": f"{single['records']} records, {single['records'] / single['wall_s']:,.0f} "
            f"records/s, {single['cpu_s']:.2f} CPU-s, peak RSS {single['peak_rss_mb']:.0f} MB",
            "ok": single["wall_s"] <= 2.0 and single["complete"] == 1,
        }
    )
    at_10: float | None = None
    for count in sizes or ((10, 100) if quick else SIZES):
        result = _level(count)
        if count == 10:
            at_10 = float(result["cpu_per_batch_s"])  # type: ignore[arg-type]
        rows.append(_row(result, at_10))
    rows.append(_with_crashes(1 if quick else 3))
    rows.append(_over_the_wire())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, help="run this many batches here; print JSON")
    parser.add_argument("--on-hold", default="stop", choices=["restart", "stop", "abort"])
    parser.add_argument("--profile", help="with --child: write a cProfile to this file")
    parser.add_argument("--sizes", help="comma-separated batch counts (default 10,100,1000)")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.on_hold, args.profile)))
        return
    sizes = tuple(int(n) for n in args.sizes.split(",")) if args.sizes else SIZES
    at_10: float | None = None
    for count in sizes:
        result = _level(count, args.on_hold)
        if count == 10:
            at_10 = float(result["cpu_per_batch_s"])  # type: ignore[arg-type]
        row = _row(result, at_10)
        print(f"{row['case']:<42} {row['value']:>14}  {row['detail']}", flush=True)


if __name__ == "__main__":
    main()
