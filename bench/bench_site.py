"""A site's load: N CAR-T batches on PostgreSQL, in three shapes, vs the same N in 1
process on an SQLite journal file, in the same run.

``python bench/bench_site.py [--batches 1000] [--shapes controllers,sqlite]`` (``--batches
100`` for a quick run; needs the PostgreSQL binaries), or :func:`run` for ``bench/run.py``.

Shapes (``--shapes``, comma-separated; default ``controllers,sqlite``):

* ``controllers``: the issue's benchmark. ``cellauto db init``, N runs submitted to the
  run queue (through :func:`cellauto.controller.queue.submit`, as ``cellauto run --queue``
  does, with ``--seed`` i: 1,000 ``cellauto run`` processes would take ~1 s each), then 2
  ``cellauto controller`` services (capacity N/2 each) on a line file with ``[simulation]
  line_per_run = true``: each run on its own simulated line in its controller's process,
  in virtual time. The bench polls the journal every second until every run is sealed.
  Wall: first ``run_started`` to last ``run_ended`` (their wall times in the journal);
  CPU seconds and peak RSS of each controller process (``wait4``'s rusage: the whole
  process, its start and stop included).
* ``processes``: two :func:`~cellauto.sim.batches.simulate_batches` processes on the
  PostgreSQL journal (a controller's shape without its queue, claims and presence),
  seeds split (0..N/2-1, N/2..N-1).
* ``sqlite``: one ``simulate_batches`` process, seeds 0..N-1, on an SQLite file.

Same protocol, same seeds (so the same patients), same outcomes expected. Reported per
shape: wall, CPU seconds of each process (user + system), records per second, peak RSS
of each process, the server's CPU (its backends, sampled from ``/proc`` while they live)
and the bytes it wrote (WAL position moved), the runs' final states, and whether the
journal verifies. ``--profile DIR``: each controller runs under cProfile, its stats in
``DIR/<name>.prof``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CAR_T = ROOT / "protocols" / "car_t_autologous.py"


def worker(db: str, first: int, count: int) -> None:
    """One process: ``count`` batches from seed ``first``; one JSON line of figures."""
    from cellauto.sim.batches import simulate_batches

    wall = time.perf_counter()
    done = simulate_batches(CAR_T, range(first, first + count), db=db, on_hold="stop")
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_SELF)
    states: dict[str, int] = {}
    for outcome in done.outcomes:
        states[outcome.state.value] = states.get(outcome.state.value, 0) + 1
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "records": done.records,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "states": states,
            }
        ),
        flush=True,
    )


def _spawn(db: str, first: int, count: int) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--worker", db, str(first), str(count)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"a batch process failed ({process.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


class ServerCpu:
    """The CPU seconds of a server's processes, sampled every 0.2 s while they live (an
    exited backend's last sample counts)."""

    def __init__(self, data_dir: Path) -> None:
        self._postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.2):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(entry.name)
                if pid == self._postmaster or int(fields[1]) == self._postmaster:
                    self._seen[pid] = (int(fields[11]) + int(fields[12])) / tick

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self._seen.values())


def _wal_lsn(url: str) -> int:
    import psycopg

    from cellauto.records.backend.pg import split_url

    with psycopg.connect(split_url(url)[0]) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def _verified(db: str) -> bool:
    from cellauto.records import Journal
    from cellauto.records.verify import verify_journal

    with Journal(db, create=False) as journal:
        return bool(verify_journal(journal).intact)


SHAPES = ("controllers", "processes", "sqlite")


def _processes(server: Any, n: int) -> dict[str, Any]:
    """Two simulate_batches processes on the PostgreSQL journal (schema ``pair``)."""
    from cellauto.records.site_store import SiteStore

    url = server.location_url("pair")
    SiteStore(url, create=True).close()
    cpu = ServerCpu(server.data_dir) if server.data_dir is not None else None
    wal_before = _wal_lsn(url)
    started = time.perf_counter()
    pair = [_spawn(url, 0, n // 2), _spawn(url, n // 2, n - n // 2)]
    pg = [_result(p) for p in pair]
    wall = time.perf_counter() - started
    server_cpu = cpu.stop() if cpu is not None else float("nan")
    records = sum(p["records"] for p in pg)
    states: dict[str, int] = {}
    for p in pg:
        for state, count in p["states"].items():
            states[state] = states.get(state, 0) + count
    return {
        "case": f"site: {n} CAR-T batches, 2 simulate_batches processes on one PostgreSQL journal",
        "value": f"{wall:.1f} s",
        "detail": f"wall; CPU {pg[0]['cpu_s']:.1f} + {pg[1]['cpu_s']:.1f} s "
        f"(processes) + {server_cpu:.1f} s (server); {records:,} records = "
        f"{records / wall:,.0f} records/s; peak RSS {pg[0]['peak_rss_mb']:.0f} / "
        f"{pg[1]['peak_rss_mb']:.0f} MB; WAL {(_wal_lsn(url) - wal_before) / 1e6:,.0f} MB; "
        f"{states}; verify {'intact' if _verified(url) else 'FAILED'}",
        "wall_s": wall,
    }


def _sqlite(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "site.db")
        started = time.perf_counter()
        lite = _result(_spawn(db, 0, n))
        wall = time.perf_counter() - started
        ok = _verified(db)
        size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
    return {
        "case": f"site: the same {n} batches, 1 simulate_batches process on an SQLite journal",
        "value": f"{wall:.1f} s",
        "detail": f"wall; CPU {lite['cpu_s']:.1f} s; "
        f"{lite['records']:,} records = {lite['records'] / wall:,.0f} records/s; "
        f"peak RSS {lite['peak_rss_mb']:.0f} MB; file {size_mb:,.0f} MB; "
        f"{lite['states']}; verify {'intact' if ok else 'FAILED'}",
        "wall_s": wall,
    }


def run(
    *,
    quick: bool = False,
    batches: int | None = None,
    shapes: tuple[str, ...] = ("controllers", "sqlite"),
    profile: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per shape (see the module doc); ``quick``: 100 batches, else 1,000."""
    from _site_services import controllers

    from cellauto.testing_pg import start_server

    n = batches if batches is not None else (100 if quick else 1000)
    rows: list[dict[str, Any]] = []
    if "controllers" in shapes or "processes" in shapes:
        server = start_server()
        if server is None:
            return [{"case": "site", "detail": "skipped: no PostgreSQL binaries"}]
        try:
            if "controllers" in shapes:
                rows.append(controllers(server, n, profile=profile))
            if "processes" in shapes:
                rows.append(_processes(server, n))
        finally:
            from cellauto.records.backend.pg import close_pools

            close_pools()  # before the server goes: no pool retries against it
            server.stop()
    if "sqlite" in shapes:
        rows.append(_sqlite(n))
    lite = next((r for r in rows if "SQLite" in r["case"]), None)
    for row in rows:
        if lite is not None and row is not lite and "wall_s" in row:
            row["detail"] += f"; {row['wall_s'] / lite['wall_s']:.2f}x the SQLite wall"
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--shapes",
        default="controllers,sqlite",
        help=f"comma-separated, of {', '.join(SHAPES)} (default controllers,sqlite)",
    )
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR")
    parser.add_argument(
        "--worker", nargs=3, metavar=("DB", "FIRST", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return 0
    shapes = tuple(shape.strip() for shape in args.shapes.split(",") if shape.strip())
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"--shapes: unknown {', '.join(unknown)}; known: {', '.join(SHAPES)}")
    batches = None if args.quick else args.batches
    for row in run(quick=args.quick, batches=batches, shapes=shapes, profile=args.profile):
        print(f"{row['case']}: {row.get('value', '')} {row.get('detail', '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
