"""How long a person's answer from another terminal takes to reach a running controller.

A controller runs in a subprocess (``cellauto run PROTO --sim --operators people``): one
step asks ``N`` confirmations in turn. This process is the other terminal: for each
task it signs and records the answer (``answer_task``: the face's fsync'd transaction)
and then waits until the controller has taken it up (the task's row leaves
``answered``: the controller read it, checked it and recorded ``task_answered``).

Reported: the face's own commit (signing included, the password checked once at
sign-in), and the latency from that commit to the take-up, median and 95th percentile,
against the controller's poll period (0.25 s of real time, ``PRAGMA data_version``):
the expected median is about half the period plus the take-up itself.

Run ``python bench/bench_answer_latency.py [--quick]``; :func:`run` returns rows for
``bench/run.py``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERIOD_S = 0.25

PROTOCOL = '''
from cellauto import Protocol, Run

protocol = Protocol("latency", version="1")


@protocol.step
async def confirm_many(run: Run) -> None:
    """Confirm {count} times."""
    for i in range({count}):
        await run.confirm("tick", key=str(i), instruction="Confirm.")
'''


def _staff(db: Path) -> tuple[object, object]:
    """A journal with root, carol (supervisor) and alice (operator, trained on latency@1);
    returns (the store, alice signed in)."""
    from cellauto.records.site_payloads import Argon2Params, SitePolicy, TrainingSubject
    from cellauto.site.accounts import add_account, bootstrap
    from cellauto.site.auth import authenticate
    from cellauto.site.password_changes import change_password
    from cellauto.site.store import open_site_store, this_terminal
    from cellauto.site.training import record_training

    terminal = this_terminal()
    store = open_site_store(db, create=True)
    cheap = SitePolicy(argon2=Argon2Params(time_cost=1, memory_kib=8, parallelism=1))
    bootstrap(store, "root", "Rita Admin", "the first keeper secret", policy=cheap,
              terminal=terminal)  # fmt: skip
    root = authenticate(store, "root", "the first keeper secret", purpose="b", terminal=terminal)
    signed_in = {}
    for name, role in (("carol", "supervisor"), ("alice", "operator")):
        add_account(store, root, name, name.title(), [role], "initial secret 12345", reason="b")
        first = authenticate(store, name, "initial secret 12345", purpose="b",
                             terminal=terminal, password_change=True)  # fmt: skip
        password = f"settled secret no. {len(name)}7!"
        change_password(store, first, password)
        signed_in[name] = authenticate(store, name, password, purpose="b", terminal=terminal)
    subject = TrainingSubject(kind="protocol", name="latency", version="1")
    record_training(store, signed_in["carol"], "alice", subject, reason="bench")  # type: ignore[arg-type]
    return store, signed_in["alice"]


def _status(conn: sqlite3.Connection, task_id: str) -> str | None:
    row = conn.execute("SELECT status FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


def measure(count: int) -> dict[str, float]:
    from cellauto.site.task_answers import answer_task

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = directory / "latency.db"
        store, alice = _staff(db)
        source = directory / "latency.py"
        source.write_text(PROTOCOL.format(count=count), encoding="utf-8")
        controller = subprocess.Popen(
            [sys.executable, "-m", "cellauto", "run", str(source), "--sim", "--operators",
             "people", "--db", str(db)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        conn = sqlite3.connect(db, timeout=10)
        commits: list[float] = []
        latencies: list[float] = []
        answered: set[str] = set()
        try:
            while len(answered) < count:
                if controller.poll() is not None:
                    raise RuntimeError(f"the controller ended: {controller.stderr.read()!r}")  # type: ignore[union-attr]
                row = conn.execute(
                    "SELECT task_id FROM tasks WHERE status = 'open' ORDER BY opened_wall_ns"
                ).fetchone()
                if row is None or row[0] in answered:
                    time.sleep(0.002)
                    continue
                task_id = str(row[0])
                started = time.perf_counter()
                answer_task(store, alice, task_id)  # type: ignore[arg-type]
                committed = time.perf_counter()
                while _status(conn, task_id) == "answered":
                    time.sleep(0.001)
                latencies.append(time.perf_counter() - committed)
                commits.append(committed - started)
                answered.add(task_id)
            controller.wait(timeout=60)
        finally:
            if controller.poll() is None:
                controller.kill()
                controller.wait()
            conn.close()
            store.close()  # type: ignore[attr-defined]
    latencies.sort()
    return {
        "answers": float(count),
        "commit_s": statistics.median(commits),
        "median_s": statistics.median(latencies),
        "p95_s": latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "max_s": latencies[-1],
    }


def run(quick: bool = False) -> list[dict[str, object]]:
    m = measure(10 if quick else 60)
    return [
        {
            "case": "people: answer from another terminal -> taken up by the controller",
            "value": f"{m['median_s'] * 1000:.0f} ms",
            "target": "median < 0.5 s",
            "detail": f"{m['answers']:.0f} answers: median {m['median_s'] * 1000:.0f} ms, "
            f"p95 {m['p95_s'] * 1000:.0f} ms, max {m['max_s'] * 1000:.0f} ms after the face's "
            f"commit ({m['commit_s'] * 1000:.1f} ms, signing included); poll period "
            f"{PERIOD_S * 1000:.0f} ms (data_version)",
            "ok": m["median_s"] < 0.5,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 answers instead of 60")
    args = parser.parse_args()
    for row in run(quick=args.quick):
        ok = "" if row["ok"] is None else ("yes" if row["ok"] else "NO")
        print(f"{row['case']:<72} {row['value']:>10}  {row['target']:<16} {ok:<4} {row['detail']}")


if __name__ == "__main__":
    main()
