"""Start-up of the ``cellauto`` command against ``python -c pass``, in the same run.

Run ``python bench/bench_startup.py [--quick]``; or import and call :func:`run`, which
returns rows for ``bench/run.py``. Each command is a fresh process of this interpreter;
the cases are interleaved (one round runs every case once) so that a busy moment on a
shared machine hits them alike, and each figure is the median over the rounds. CPU
time is the child's user + system time (``getrusage(RUSAGE_CHILDREN)``).

The journal read by ``runs``, ``show`` and ``verify`` is made first, in a temporary
directory, with ``cellauto run protocols/demo_expansion.py --sim --seed 1``.

To measure another checkout with the same script, put it first on the path:
``PYTHONPATH=/path/to/checkout python bench/bench_startup.py``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "protocols" / "demo_expansion.py"
ROUNDS = 15
BASELINE = "python -c pass"
ED25519 = "cryptography.hazmat.primitives.asymmetric.ed25519"


def _cellauto() -> list[str]:
    """The console script next to this interpreter, else ``python -m cellauto``."""
    script = Path(sys.executable).with_name("cellauto")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cellauto"]


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process; output discarded, failure raised."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _cases(db: Path, run_id: str) -> dict[str, list[str]]:
    cli = _cellauto()
    verify_with_ed25519 = (
        f"import {ED25519}; import sys; from cellauto.cli import main; "
        f"sys.exit(main(['verify', '--db', {str(db)!r}]))"
    )
    return {
        BASELINE: [sys.executable, "-c", "pass"],
        "cellauto --help": [*cli, "--help"],
        "cellauto runs": [*cli, "runs", "--db", str(db)],
        "cellauto show RUN": [*cli, "show", run_id, "--db", str(db)],
        "cellauto verify": [*cli, "verify", "--db", str(db)],
        f"python -c 'import {ED25519}'": [sys.executable, "-c", f"import {ED25519}"],
        "cellauto verify, Ed25519 imported too": [sys.executable, "-c", verify_with_ed25519],
    }


def _make_journal(directory: Path) -> tuple[Path, str]:
    db = directory / "journal.db"
    done = subprocess.run(
        [*_cellauto(), "run", str(DEMO), "--sim", "--seed", "1", "--db", str(db)],
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))
    return db, run_id


class Timing(NamedTuple):
    """One case's medians, and their ratios to ``python -c pass`` of the same run."""

    case: str
    wall_s: float
    cpu_s: float
    wall_ratio: float
    cpu_ratio: float


def measure(rounds: int = ROUNDS) -> list[Timing]:
    """Every case, interleaved ``rounds`` times after one warm-up round; medians."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        db, run_id = _make_journal(Path(tmp))
        cases = _cases(db, run_id)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for argv in cases.values():  # warm the file cache and the .pyc files
            _timed(argv)
        for _ in range(rounds):
            for name, argv in cases.items():
                wall, cpu = _timed(argv)
                walls[name].append(wall)
                cpus[name].append(cpu)
    base_wall = statistics.median(walls[BASELINE])
    base_cpu = statistics.median(cpus[BASELINE])
    timings = []
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        cpu_ratio = cpu / base_cpu if base_cpu else float("nan")
        timings.append(Timing(name, wall, cpu, wall / base_wall, cpu_ratio))
    return timings


def run(quick: bool = False) -> list[dict[str, object]]:
    """Rows for ``bench/run.py``: each ``cellauto`` command against the 0.5 s budget."""
    rows: list[dict[str, object]] = []
    for t in measure(rounds=5 if quick else ROUNDS):
        budget = t.case.startswith("cellauto ")
        rows.append(
            {
                "case": f"start-up: {t.case}",
                "value": f"{t.wall_s:.3f} s wall",
                "target": "≤ 0.5 s" if budget else "",
                "detail": f"{t.cpu_s:.3f} CPU-s; {t.wall_ratio:.1f}x python -c pass",
                "ok": t.wall_s <= 0.5 if budget else None,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 15)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else ROUNDS)
    timings = measure(rounds)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {rounds} rounds")
    width = max(len(t.case) for t in timings)
    print(f"{'command':<{width}}  {'wall s':>7}  {'CPU s':>7}  {'wall/pass':>9}  {'CPU/pass':>8}")
    for t in timings:
        print(
            f"{t.case:<{width}}  {t.wall_s:>7.3f}  {t.cpu_s:>7.3f}  "
            f"{t.wall_ratio:>9.1f}  {t.cpu_ratio:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
