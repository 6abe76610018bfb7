"""A site's load: N CAR-T batches on 2 processes sharing one PostgreSQL journal vs the same N
in 1 process on an SQLite journal file.

``python bench/bench_site.py [--batches 1000]`` (``--batches 100`` for a quick run; needs
the PostgreSQL binaries), or :func:`run` for ``bench/run.py``.

Each process is a controller's shape without its wire: one journal (one writer thread),
the batches run concurrently in virtual time, each on its own in-process simulated line
(:func:`~cellauto.sim.batches.simulate_batches`; a served simulated line carries one
batch at a time, so the ``cellauto controller`` services themselves are measured by
``bench_failover.py``). The PostgreSQL pair splits the seeds (0..N/2-1, N/2..N-1); the
SQLite process runs all of them; same protocol, same seeds, same outcomes expected.
Reported: wall, CPU seconds of each process (user + system), records per second, peak
RSS of each process, the server's CPU (its backends, sampled from ``/proc`` while they
live) and the bytes it wrote (WAL position moved), and whether both journals verify.
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


def run(*, quick: bool = False, batches: int | None = None) -> list[dict[str, Any]]:
    """The two rows (see the module doc); ``quick``: 100 batches, else 1,000."""
    from cellauto.records.site_store import SiteStore
    from cellauto.testing_pg import start_server

    n = batches if batches is not None else (100 if quick else 1000)
    server = start_server()
    if server is None:
        return [{"case": "site", "detail": "skipped: no PostgreSQL binaries"}]
    try:
        url = server.location_url("site")
        SiteStore(url, create=True).close()
        cpu = ServerCpu(server.data_dir) if server.data_dir is not None else None
        wal_before = _wal_lsn(url)
        started = time.perf_counter()
        pair = [_spawn(url, 0, n // 2), _spawn(url, n // 2, n - n // 2)]
        pg = [_result(p) for p in pair]
        pg_wall = time.perf_counter() - started
        server_cpu = cpu.stop() if cpu is not None else float("nan")
        wal_mb = (_wal_lsn(url) - wal_before) / 1e6
        pg_ok = _verified(url)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "site.db")
        started = time.perf_counter()
        lite = _result(_spawn(db, 0, n))
        lite_wall = time.perf_counter() - started
        lite_ok = _verified(db)
        lite_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
    pg_records = sum(p["records"] for p in pg)
    pg_states: dict[str, int] = {}
    for p in pg:
        for state, count in p["states"].items():
            pg_states[state] = pg_states.get(state, 0) + count
    return [
        {
            "case": f"site: {n} CAR-T batches, 2 processes on one PostgreSQL journal",
            "value": f"{pg_wall:.1f} s",
            "detail": f"wall; CPU {pg[0]['cpu_s']:.1f} + {pg[1]['cpu_s']:.1f} s "
            f"(processes) + {server_cpu:.1f} s (server); {pg_records:,} records = "
            f"{pg_records / pg_wall:,.0f} records/s; peak RSS {pg[0]['peak_rss_mb']:.0f} / "
            f"{pg[1]['peak_rss_mb']:.0f} MB; WAL {wal_mb:,.0f} MB; {pg_states}; "
            f"verify {'intact' if pg_ok else 'FAILED'}",
        },
        {
            "case": f"site: the same {n} batches, 1 process on an SQLite journal",
            "value": f"{lite_wall:.1f} s",
            "detail": f"wall; CPU {lite['cpu_s']:.1f} s; "
            f"{lite['records']:,} records = {lite['records'] / lite_wall:,.0f} records/s; "
            f"peak RSS {lite['peak_rss_mb']:.0f} MB; file {lite_mb:,.0f} MB; "
            f"{lite['states']}; verify {'intact' if lite_ok else 'FAILED'}",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--worker", nargs=3, metavar=("DB", "FIRST", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return 0
    for row in run(quick=args.quick, batches=None if args.quick else args.batches):
        print(f"{row['case']}: {row.get('value', '')} {row.get('detail', '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
