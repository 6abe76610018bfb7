"""Every benchmark in one command; prints one table. ``python bench/run.py [--quick]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_journal
import bench_runner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for module in (bench_journal, bench_runner):
        rows.extend(module.run(quick=args.quick))
    width = max(len(str(r.get("case", ""))) for r in rows)
    print(f"{'benchmark':<{width}}  {'result':>16}  {'target':<16} detail")
    print("-" * (width + 60))
    for row in rows:
        print(
            f"{row.get('case', ''):<{width}}  {row.get('value', ''):>16}  "
            f"{row.get('target', ''):<16} {row.get('detail', '')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
