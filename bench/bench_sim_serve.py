"""Start-up of ``cellauto sim serve LINE.toml``: from the command to its endpoints line.

Run ``python bench/bench_sim_serve.py [--quick] [LINE.toml]``; or import and call
:func:`run`, which returns rows for ``bench/run.py``. Each round starts a fresh process
of this interpreter, times the moment the endpoints JSON line arrives on its standard
output, then stops it with SIGINT (the process this script started, by its pid) and
waits for it. The figure is the median over the rounds (and the range).

``--compare /path/to/checkout`` interleaves the rounds with that checkout's
cellauto (put first on PYTHONPATH), so a busy moment of a shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LINE = ROOT / "lines" / "sim-opcua.toml"
ROUNDS = 5


def time_to_endpoints(line: Path, speed: float = 60.0, checkout: Path | None = None) -> float:
    """Wall seconds from starting ``cellauto sim serve`` to its endpoints JSON line.

    ``checkout``: run that source tree's cellauto (first on PYTHONPATH) instead.
    """
    argv = [sys.executable, "-m", "cellauto", "sim", "serve", str(line), "--speed", f"{speed:g}"]
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert child.stdout is not None
        for text in child.stdout:
            if text.startswith("{"):
                elapsed = time.perf_counter() - started
                json.loads(text)  # the endpoints, as JSON
                return elapsed
        raise RuntimeError(f"{' '.join(argv)} ended without printing its endpoints")
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _row(what: str, times: list[float]) -> dict[str, Any]:
    return {
        "case": what,
        "value": f"{statistics.median(times):.2f} s",
        "target": "-",
        "detail": f"median of {len(times)}; {min(times):.2f}-{max(times):.2f} s",
        "ok": None,
    }


def run(
    *, quick: bool = False, line: Path = LINE, compare: Path | None = None
) -> list[dict[str, Any]]:
    """This checkout's start-up; with ``compare``, that checkout's too, rounds interleaved."""
    rounds = 2 if quick else ROUNDS
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours.append(time_to_endpoints(line))
        if compare is not None:
            theirs.append(time_to_endpoints(line, checkout=compare))
    rows = [_row(f"start-up: `cellauto sim serve {line.name}` to its endpoints line", ours)]
    if compare is not None:
        rows.append(_row(f"the same, {compare} (same run, interleaved)", theirs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("line", nargs="?", type=Path, default=LINE)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare", type=Path, help="another checkout's source tree")
    args = parser.parse_args()
    for row in run(quick=args.quick, line=args.line, compare=args.compare):
        print(f"| {row['case']} | **{row['value']}** wall ({row['detail']}) | {row['target']} |")


if __name__ == "__main__":
    main()
