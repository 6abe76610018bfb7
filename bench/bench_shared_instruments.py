"""20 bioreactors sharing one counter and one cytometer (issue 15, §5.4).

Run: ``python bench/bench_shared_instruments.py [--batches 20] [--gap-h 2]``. Twenty
autologous CAR-T batches, each on its own bioreactor and processor, started two hours
apart in one process and one journal, in virtual time. Case *shared*: every batch's
counter is one physical counter (asset ``CNT-001``, capacity 1, 90 s a sample) and every
cytometer one cytometer (``CYT-001``): each count and each immunophenotype waits in the
asset's fair queue (:mod:`cellauto.protocols.holds`). Case *dedicated*: the same 20
batches, same seeds, each with its own counter and cytometer. Both cases run in the same
invocation, each in a fresh subprocess (its own CPU time and memory).

Printed per case: wall and CPU seconds, batches complete, the mean batch duration and the
line's makespan (first start to last end, simulated hours), and per shared instrument:
holds, utilisation over the makespan, waits (all holds: median, p95, max; and of the holds
that waited), samples counted past their expiry (a sample's stability: 1 h after the draw),
max-hold alarms, and Jain's fairness index of the total wait per batch. A third case is
*shared* again with one count of batch 2 stuck ``--stuck-min`` (20) minutes longer than
the counter's maximum hold of 15 minutes allows: one max-hold alarm, and the batches
queued behind it wait.

``--child CASE`` runs one case here and prints its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

CAR_T = Path(__file__).resolve().parent.parent / "protocols" / "car_t_autologous.py"
SHARED = {"counter": "CNT-001", "cytometer": "CYT-001"}
MAX_HOLD_MIN = {"counter": 15, "cytometer": 30}  # 90 s and 20 min a sample


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stick_once(counter: Any, extra_s: float) -> None:
    """The counter's next count hangs ``extra_s`` longer (a stuck sample carousel)."""
    import anyio

    count = counter.count
    stuck = [True]

    async def count_once_stuck(*args: Any, **kwargs: Any) -> Any:
        if stuck[0]:
            stuck[0] = False
            await anyio.sleep(extra_s)
        return await count(*args, **kwargs)

    counter.count = count_once_stuck


def _run_case(
    db: Path, shared: bool, batches: int, gap_h: float, stuck_s: float = 0.0
) -> dict[str, Any]:
    import anyio

    from cellauto.clock import Clock, virtual_loop_factory
    from cellauto.protocols.holds import SharedPolicy, share
    from cellauto.protocols.loader import load_protocol
    from cellauto.protocols.params import build_params
    from cellauto.protocols.responder import HoldResponder
    from cellauto.protocols.runner import Runner
    from cellauto.records import Journal
    from cellauto.sim.line import sim_line_for_protocol
    from cellauto.sim.operators import simulated_operators
    from cellauto.sim.simulate import DEFAULT_SIM_START
    from cellauto.sim.site_for_run import simulated_site

    protocol = load_protocol(CAR_T)
    params = build_params(protocol.params, {}, rehearsal=True)
    policies = {
        name: SharedPolicy(asset, capacity=1, max_hold_s=MAX_HOLD_MIN[name] * 60, patience_s=3600)
        for name, asset in SHARED.items()
    }
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    statuses: dict[str, str] = {}

    async def main() -> None:
        with Journal(db) as journal:
            runner = Runner(journal, clock_origin=DEFAULT_SIM_START, reproducible=True)

            async def one(index: int, tg: anyio.abc.TaskGroup) -> None:
                await anyio.sleep(index * gap_h * 3600)
                origin = DEFAULT_SIM_START + timedelta(hours=index * gap_h)
                clock = Clock(origin)
                sim = sim_line_for_protocol(
                    protocol, params, clock=clock, seed=index + 1, name=f"line-{index:02d}"
                )
                assert sim.line is not None
                if shared:
                    for name, policy in policies.items():
                        share(sim.line.equipment[name], policy)
                if stuck_s and index == 1:
                    _stick_once(sim.line.equipment["counter"], stuck_s)
                responder = HoldResponder("Stop", by="bench", reason="unattended bench")
                people = simulated_operators(None, sim.world)
                site = simulated_site(protocol, params, sim.line, origin)
                execution = runner.prepare(
                    protocol,
                    sim.line,
                    params,
                    seed=index + 1,
                    clock=clock,
                    observers=[responder],
                    answerers=[people],
                    site=site,
                )
                responder.bind(execution, tg)
                started[execution.run_id] = clock.now_s()
                outcome = await execution.execute()
                ended[execution.run_id] = clock.now_s()
                statuses[execution.run_id] = outcome.exit_status
                execution.close()
                site.close()

            async with anyio.create_task_group() as tg:
                for index in range(batches):
                    tg.start_soon(one, index, tg)

    wall0, cpu0 = time.perf_counter(), _cpu_s()
    anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    first, last = min(started.values()), max(ended.values())
    makespan_s = last - first
    result: dict[str, Any] = {
        "case": ("shared" if shared else "dedicated")
        + (f", one count stuck {stuck_s / 60:g} min" if stuck_s else ""),
        "batches": batches,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "statuses": dict(sorted((s, list(statuses.values()).count(s)) for s in statuses.values())),
        "makespan_h": makespan_s / 3600,
        "mean_batch_h": statistics.fmean(ended[r] - started[r] for r in ended) / 3600,
        "instruments": {},
    }
    with sqlite3.connect(db) as conn:
        result["records"] = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        result["alarms_max_hold"] = conn.execute(
            "SELECT count(*) FROM records WHERE kind = 'alarm' AND body LIKE '%past its maximum%'"
        ).fetchone()[0]
        result["waited_records"] = conn.execute(
            "SELECT count(*) FROM records WHERE kind = 'instrument_waited'"
        ).fetchone()[0]
        has_holds = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'asset_holds'"
        ).fetchone()
        if has_holds:
            for name, asset in SHARED.items():
                rows = conn.execute(
                    "SELECT run_id, requested_wall_ns, granted_wall_ns, released_wall_ns,"
                    " deadline_wall_ns, status FROM asset_holds WHERE asset = ?",
                    (asset,),
                ).fetchall()
                result["instruments"][name] = _instrument(rows, makespan_s)
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _instrument(rows: list[tuple[Any, ...]], makespan_s: float) -> dict[str, Any]:
    waits = [(g - r) / 1e9 for _, r, g, _, _, _ in rows if g is not None]
    busy = sum((e - g) / 1e9 for _, _, g, e, _, _ in rows if g is not None and e is not None)
    late = sum(1 for _, _, g, _, d, _ in rows if g is not None and d is not None and g > d)
    per_run: dict[str, float] = {}
    for run_id, r, g, _, _, _ in rows:
        if g is not None:
            per_run[run_id] = per_run.get(run_id, 0.0) + (g - r) / 1e9
    totals = list(per_run.values())
    squares = sum(t * t for t in totals)
    jain = (sum(totals) ** 2) / (len(totals) * squares) if squares else 1.0
    waited = [w for w in waits if w > 0]
    return {
        "holds": len(rows),
        "utilisation": busy / makespan_s if makespan_s else 0.0,
        "wait_p50_s": _pct(waits, 0.5),
        "wait_p95_s": _pct(waits, 0.95),
        "wait_max_s": max(waits, default=0.0),
        "waited": len(waited),
        "waited_p50_s": _pct(waited, 0.5),
        "past_expiry": late,
        "jain": jain,
        "unreleased": sum(1 for *_, status in rows if status in ("waiting", "granted")),
    }


def _child(case: str, batches: int, gap_h: float, stuck_min: float = 0.0) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            case,
            "--batches",
            str(batches),
            "--gap-h",
            str(gap_h),
            "--stuck-min",
            str(stuck_min),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def table(shared: dict[str, Any], dedicated: dict[str, Any], *more: dict[str, Any]) -> str:
    lines = [
        "| case | wall / CPU | batches | mean batch | makespan | records | max-hold alarms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (dedicated, shared, *more):
        lines.append(
            f"| {r['case']} | {r['wall_s']:.1f} s / {r['cpu_s']:.1f} CPU-s | "
            f"{', '.join(f'{n} {s}' for s, n in r['statuses'].items())} | "
            f"{r['mean_batch_h']:.2f} h | {r['makespan_h']:.1f} h | {r['records']:,} | "
            f"{r['alarms_max_hold']} |"
        )
    lines += [
        "",
        "| shared instrument | holds | utilisation | wait p50 / p95 / max (all holds) "
        "| holds that waited (median) | past expiry | Jain (wait per batch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in (shared, *more):
        for name, i in case["instruments"].items():
            which = "" if case is shared else ", " + case["case"]
            lines.append(
                f"| {name} ({SHARED[name]}){which} | {i['holds']} | "
                f"{100 * i['utilisation']:.1f} % | "
                f"{i['wait_p50_s']:.0f} / {i['wait_p95_s']:.0f} / {i['wait_max_s']:.0f} s | "
                f"{i['waited']} ({i['waited_p50_s']:.0f} s) | {i['past_expiry']} | "
                f"{i['jain']:.2f} |"
            )
    delta = 60 * (shared["mean_batch_h"] - dedicated["mean_batch_h"])
    lines.append("")
    lines.append(
        f"Sharing lengthened the mean batch by {delta:.1f} min and the makespan by "
        f"{60 * (shared['makespan_h'] - dedicated['makespan_h']):.1f} min; "
        f"throughput {shared['batches'] / shared['makespan_h'] * 24:.2f} vs "
        f"{dedicated['batches'] / dedicated['makespan_h'] * 24:.2f} batches per line-day."
    )
    return "\n".join(lines)


def run(quick: bool = False) -> list[dict[str, object]]:
    """Rows for ``bench/run.py``: the 2 h case, shared vs dedicated (quick: 5 batches)."""
    batches = 5 if quick else 20
    dedicated = _child("dedicated", batches, 2.0)
    shared = _child("shared", batches, 2.0)
    counter = shared["instruments"]["counter"]
    cytometer = shared["instruments"]["cytometer"]
    return [
        {
            "case": f"{batches} CAR-T batches 2 h apart sharing one counter and one cytometer",
            "value": f"{shared['wall_s']:.1f} s wall",
            "target": "< 10 s wall",
            "detail": f"counter wait p50/p95/max {counter['wait_p50_s']:.0f}/"
            f"{counter['wait_p95_s']:.0f}/{counter['wait_max_s']:.0f} s, cytometer "
            f"{cytometer['wait_p50_s']:.0f}/{cytometer['wait_p95_s']:.0f}/"
            f"{cytometer['wait_max_s']:.0f} s; past expiry "
            f"{counter['past_expiry'] + cytometer['past_expiry']}; mean batch "
            f"{60 * (shared['mean_batch_h'] - dedicated['mean_batch_h']):+.1f} min vs dedicated "
            f"({dedicated['wall_s']:.1f} s wall); {shared['cpu_s']:.1f} vs "
            f"{dedicated['cpu_s']:.1f} CPU-s",
            "ok": shared["wall_s"] < 10,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=["shared", "dedicated"])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--gap-h", type=float, default=2.0)
    parser.add_argument(
        "--stuck-min", type=float, default=20.0, help="the stuck case: one count this much longer"
    )
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            result = _run_case(
                Path(tmp) / "journal.db",
                args.child == "shared",
                args.batches,
                args.gap_h,
                args.stuck_min * 60,
            )
        print(json.dumps(result))
        return
    dedicated = _child("dedicated", args.batches, args.gap_h)
    shared = _child("shared", args.batches, args.gap_h)
    stuck = _child("shared", args.batches, args.gap_h, args.stuck_min) if args.stuck_min else None
    print(table(shared, dedicated, *([stuck] if stuck else [])))


if __name__ == "__main__":
    main()
