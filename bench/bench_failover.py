"""Failover: SIGKILL the controller driving a batch; how soon does a survivor take over?

``python bench/bench_failover.py [--kills 10] [--grace-s 2]`` (needs the PostgreSQL
binaries; ``apt-get install postgresql``), or :func:`run` for ``bench/run.py``.

Each kill: a fresh journal schema and a fresh served demo line (``cellauto sim serve``,
speed 36,000), two ``cellauto controller`` processes; a demo batch is queued, and the
controller that takes it is SIGKILLed at a seeded random moment 0.5-3 s after its
start. Measured from the kill: **claimed** (the survivor's claim, ``run_owners``
epoch 2) and **first record** (the first record of the run written after the kill,
the resumed run's). Both include the grace (``--grace-s``, 2 s by default): the
survivor learns of the death within milliseconds (its presence lock is free) and then
waits the grace before it takes over. The batch must then complete.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cellauto.records import Journal, RecordKind  # noqa: E402
from cellauto.records import backend as db  # noqa: E402
from cellauto.records.site_store import SiteStore  # noqa: E402
from cellauto.testing_pg import start_server  # noqa: E402
from tests.controller.site import Controller, served_demo_line, submit, wait_until  # noqa: E402


def _owner(url: str, run_id: str) -> tuple[str, int, int] | None:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        row = conn.execute(
            "SELECT controller, epoch, started_wall_ns FROM run_owners WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else (str(row[0]), int(row[1]), int(row[2]))


def one_kill(url: str, workdir: Path, rng: random.Random, grace_s: float) -> dict[str, Any]:
    """One round (see the module doc): seconds from the kill to the claim and the first
    record, and how the batch ended."""
    SiteStore(url, create=True).close()
    extra = ("--grace-s", str(grace_s))
    with (
        served_demo_line(workdir, speed=36_000.0) as (line, _actions),
        Controller(url, line, "alpha", workdir, *extra) as alpha,
        Controller(url, line, "beta", workdir, *extra) as beta,
    ):
        alpha.wait_for("controller alpha of line")
        beta.wait_for("controller beta of line")
        run_id = submit(url, "culture_days=7")
        first = wait_until(lambda: _owner(url, run_id), 60.0, "the claim")
        victim, survivor = (alpha, beta) if first[0] == "alpha" else (beta, alpha)
        victim.wait_for(f"run {run_id} started")
        with contextlib.suppress(subprocess.TimeoutExpired):
            victim.process.wait(timeout=rng.uniform(0.5, 3.0))
        killed_ns = time.time_ns()
        victim.kill()
        claim = wait_until(
            lambda: (o := _owner(url, run_id)) and o[1] == 2 and o, 60.0, "the takeover"
        )
        survivor.wait_for(f"run {run_id} ended", 120.0)
        survivor.stop()
    with Journal(url, create=False) as journal:
        records = journal.records(run_id)
    after = [r.wall_time_ns for r in records if r.wall_time_ns > killed_ns]
    ended = [r.payload for r in records if r.kind == RecordKind.RUN_ENDED]
    return {
        "claimed_s": (claim[2] - killed_ns) / 1e9,
        "first_record_s": (min(after) - killed_ns) / 1e9,
        "final_state": getattr(ended[0], "final_state", "?") if ended else "not ended",
    }


def run(*, quick: bool = False, kills: int | None = None, grace_s: float = 2.0) -> list[dict]:
    server = start_server()
    if server is None:
        return [{"case": "failover", "detail": "skipped: no PostgreSQL binaries"}]
    rng = random.Random(2026)
    rounds = kills if kills is not None else (2 if quick else 10)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(rounds):
                workdir = Path(tmp) / f"kill{n}"
                workdir.mkdir()
                results.append(one_kill(server.location_url(f"failover{n}"), workdir, rng, grace_s))
                print(results[-1], flush=True)
    finally:
        server.stop()
    claimed = [r["claimed_s"] for r in results]
    first = [r["first_record_s"] for r in results]
    complete = sum(r["final_state"] == "Complete" for r in results)
    return [
        {
            "case": f"failover: SIGKILL -> survivor's claim ({rounds} kills, grace {grace_s:g} s)",
            "value": f"{statistics.median(claimed):.2f} s",
            "target": "max <= 60 s",
            "ok": max(claimed) <= 60,
            "detail": f"median; max {max(claimed):.2f} s; 2 controllers, demo batch served "
            f"at speed 36,000; {complete}/{rounds} batches complete",
        },
        {
            "case": "failover: SIGKILL -> first record of the resumed run",
            "value": f"{statistics.median(first):.2f} s",
            "target": "max <= 60 s",
            "ok": max(first) <= 60,
            "detail": f"median; max {max(first):.2f} s",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--grace-s", type=float, default=2.0)
    args = parser.parse_args()
    for row in run(quick=args.quick, kills=args.kills, grace_s=args.grace_s):
        print(f"{row['case']}: {row.get('value', '')} ({row.get('detail', '')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
