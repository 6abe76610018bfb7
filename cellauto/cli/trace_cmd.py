"""``cellauto trace RUN_ID``: every container of a run, from its records (read-only)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from cellauto.cli._db import add_db_argument
from cellauto.errors import BadInputError
from cellauto.records import Journal
from cellauto.records.trace import ContainerTrace, RunTrace, trace_run
from cellauto.records.wording import iso


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="a run's containers and what touched them; --lot: a lot's batches",
        description="Every container of a run in genealogy order, with its ISBT 128 "
        "identity (DIN, flag, product code, chain-of-identity id), the transfers into and "
        "out of it, its custody (where, since when, moved by whom, the hand-off scan), its "
        "labels printed and verified, and the lots and instruments that touched it where "
        "the run recorded them. With --lot LOT instead: every run that used the lot, each "
        "use confirmed against its run's record. Reads the journal; never writes it.",
    )
    p.add_argument("run_id", metavar="RUN_ID", nargs="?", help="run id or a unique prefix of it")
    p.add_argument("--lot", metavar="LOT", help="every batch that used this lot (lot id)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    add_db_argument(p)
    p.set_defaults(handler=trace_command)


def trace_command(args: argparse.Namespace) -> int:
    if (args.run_id is None) == (args.lot is None):
        raise BadInputError("trace: give a RUN_ID, or --lot LOT (not both)")
    if args.lot is not None:
        from cellauto.cli.trace_lot import trace_lot_command

        return trace_lot_command(args.db, args.lot, output="json" if args.json else "text")
    with Journal(args.db, create=False) as journal:
        run_id = journal.resolve_run_id(args.run_id)
        trace = trace_run(journal.records(run_id), journal.read_connection())
    if args.json:
        print(orjson.dumps(trace.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in text_lines(trace):
            print(line)
    return 0


def text_lines(trace: RunTrace) -> list[str]:
    """The trace as the text ``cellauto trace`` prints."""
    head = f"run {trace.run_id} {trace.protocol} {trace.version}"
    if trace.containers:
        first = trace.containers[0]
        head += f"  DIN {first.din_text}  COI {first.coi} {first.coi_check}"
    lines = [head]
    for container in trace.containers:
        lines.extend(_container(container))
    lines.extend(f"missing: {what}" for what in trace.missing)
    return lines


def _container(c: ContainerTrace) -> list[str]:
    pad = "  " * c.depth
    mark = "└ " if c.depth else ""
    lines = [
        f"{pad}{mark}{c.key} ({c.container_type})  ={c.din}{c.flag} <{c.product_code}>  "
        f"created {iso(c.created['time_s'])} in {c.created['step']}"
    ]
    pad += "    "
    for t in c.transfers_in:
        lines.append(f"{pad}from {t['from']} by {t['by']} {iso(t['time_s'])}")
    for t in c.transfers_out:
        lines.append(f"{pad}to {t['to']} by {t['by']} {iso(t['time_s'])}")
    for move in c.custody:
        scan = f", scan {move['scan']}" if move["scan"] else ""
        via = f" via {move['via']}" if move["via"] else ""
        lines.append(
            f"{pad}custody: {move['from']} -> {move['to']}{via} {iso(move['time_s'])} "
            f"({move['by']}{scan})"
        )
    for label in c.labels:
        if label["event"] == "printed":
            detail = f"{label['printer']}, ZPL sha256 {label['zpl_sha256'][:12]}"
        else:
            detail = "ok" if label["matches"] else f"MISMATCH: {label['problem']}"
        lines.append(f"{pad}label {label['event']} {iso(label['time_s'])} {detail}")
    for lot in c.lots:
        lines.append(
            f"{pad}lot: {lot['material']} {lot['lot_id']} "
            f"({lot['quantity_milli'] / 1000:g} {lot['unit'] or 'units'}) in {lot['step']}"
        )
    for inst in c.instruments:
        extra = ", ".join(
            f"{k} {inst[k]}" for k in ("model", "serial", "asset", "calibration_due") if k in inst
        )
        lines.append(f"{pad}instrument: {inst['name']}" + (f" ({extra})" if extra else ""))
    lines.append(f"{pad}now: {c.place_now or '(no containers table row)'}")
    return lines
