"""``cellauto sim fidelity``: a shipped protocol over many seeds against published ranges."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cellauto.errors import BadInputError

__all__ = ["add_sim_parser", "fidelity_command"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1, not {value}")
    return value


def add_sim_parser(sim_sub: Any) -> None:
    p = sim_sub.add_parser(
        "fidelity",
        help="a protocol over many seeds against published ranges",
        description="Run PROTOCOL on the simulated line once per seed (drawn patients by "
        "default) and print, per published row, min / median / max, the range the median "
        "must lie in, the range every seed must stay in, the source, and ✓ or ✗. --out "
        "writes the table into FILE between the protocol's markers (docs/fidelity.md).",
    )
    p.add_argument("protocol", type=Path, metavar="PROTOCOL")
    p.add_argument("--seeds", type=_positive, default=100, help="how many seeds (default 100)")
    p.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="processes running seeds (default: one per CPU)",
    )
    p.add_argument("--patient", choices=("drawn", "typical"), default="drawn")
    p.add_argument("--out", type=Path, default=None, metavar="FILE")
    p.add_argument("--check", action="store_true", help="exit 1 when a row is outside")
    p.set_defaults(handler=fidelity_command)


def fidelity_command(args: argparse.Namespace) -> int:
    from cellauto.sim.fidelity import build_table, rows_for, run_population, write_section

    protocol: Path = args.protocol
    if not protocol.is_file():
        raise BadInputError(f"no protocol file {protocol}: name a shipped protocol's .py file")
    try:
        rows = rows_for(protocol)
    except KeyError as exc:
        raise BadInputError(str(exc.args[0])) from None
    seeds = range(args.first, args.first + args.seeds)
    summaries = run_population(protocol, seeds, patient=args.patient, workers=args.workers)
    table = build_table(protocol.name, summaries, rows, patient=args.patient)
    sys.stdout.write(table.markdown())
    if args.out is not None:
        changed = write_section(args.out, table)
        sys.stdout.write(f"{args.out}: {'updated' if changed else 'unchanged'}\n")
    if table.outside:
        sys.stdout.write(f"outside: {', '.join(table.outside)}\n")
    return 1 if args.check and not table.inside else 0
