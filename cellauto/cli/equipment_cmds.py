"""``cellauto equipment``: the plant's instrument registry, its status and calibration.

Adding an instrument, changing its status and recording a calibration are each one
signing (``--as NAME`` and password) by someone with ``equipment.manage`` (a
supervisor). A run uses only instruments registered here, in service and calibrated
through the end of their use. Exit 0 done; 2 a refusal (journaled first) or bad input
(nothing written).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from typing import Any

import orjson

from cellauto.records.site_payloads_mat import Qualification
from cellauto.site.equipment import add_equipment, record_calibration, set_status
from cellauto.site.history import reading_journal
from cellauto.site.materials_read import EquipmentRow, list_equipment
from cellauto.site.policy import site_date

from .people_cmds import common_options, policy_or_none, print_table, reason_of, sign_in, store_of
from .prompt import Passwords

__all__ = ["add_parsers"]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _qualification_options(p: argparse.ArgumentParser) -> None:
    for name in ("iq", "oq", "pq"):
        p.add_argument(
            f"--{name}", type=_date, metavar="DATE", help=f"{name.upper()} completed on DATE"
        )


def _acting(p: argparse.ArgumentParser, *, reason_required: bool) -> None:
    p.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who acts")
    p.add_argument(
        "--reason",
        default=None if reason_required else "",
        help="why (journaled)"
        + ("; asked at the terminal when not given" if reason_required else ""),
    )
    common_options(p)


def add_parsers(sub: Any) -> None:
    equipment = sub.add_parser("equipment", help="the instrument registry", description=__doc__)
    verbs = equipment.add_subparsers(dest="verb", required=True, parser_class=type(equipment))

    p = verbs.add_parser("add", help="register an instrument (status qualifying)")
    p.add_argument("asset", metavar="ASSET", help="the plant's asset tag, e.g. BR-001")
    p.add_argument("--interface", required=True, help="e.g. Bioreactor, CellCounter")
    p.add_argument("--vendor", required=True, help="as the instrument reports it at connect")
    p.add_argument("--model", required=True, help="as the instrument reports it at connect")
    p.add_argument("--serial", required=True, help="as the instrument reports it at connect")
    _qualification_options(p)
    p.add_argument("--calibration-due", type=_date, metavar="DATE", help="calibrated through")
    p.add_argument("--notes", default="")
    _acting(p, reason_required=False)
    p.set_defaults(handler=equipment_add_command)

    p = verbs.add_parser("status", help="put an instrument in or out of service, or retire it")
    p.add_argument("asset", metavar="ASSET")
    p.add_argument("status", choices=["in_service", "out_of_service", "retired"])
    _qualification_options(p)
    p.add_argument("--note", default="", help="a maintenance note")
    _acting(p, reason_required=True)
    p.set_defaults(handler=equipment_status_command)

    p = verbs.add_parser("calibrate", help="record a calibration")
    p.add_argument("asset", metavar="ASSET")
    p.add_argument("--performed", type=_date, required=True, metavar="DATE")
    p.add_argument("--result", choices=["pass", "fail"], required=True)
    p.add_argument("--due", type=_date, required=True, metavar="DATE", help="next calibration")
    p.add_argument("--certificate", default="", metavar="ID")
    _acting(p, reason_required=False)
    p.set_defaults(handler=equipment_calibrate_command)

    p = verbs.add_parser("list", help="the registry (read-only)")
    p.add_argument("--json", action="store_true", help="one JSON array")
    common_options(p)
    p.set_defaults(handler=equipment_list_command)


def _qualification(args: argparse.Namespace) -> Qualification | None:
    given = Qualification(iq=args.iq, oq=args.oq, pq=args.pq)
    return None if given == Qualification() else given


def equipment_add_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"equipment add {args.asset}"
        )
        ref = add_equipment(
            store,
            who,
            asset=args.asset,
            interface=args.interface,
            vendor=args.vendor,
            model=args.model,
            serial=args.serial,
            qualification=_qualification(args),
            calibration_due=args.calibration_due,
            notes=args.notes,
            reason=args.reason,
        )
    print(f"{args.asset} added (qualifying); site record {ref.seq}")
    return 0


def equipment_status_command(args: argparse.Namespace) -> int:
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"equipment status {args.asset}"
        )
        ref = set_status(
            store,
            who,
            args.asset,
            args.status,
            reason=reason,
            qualification=_qualification(args),
            note=args.note,
        )
    print(f"{args.asset} {args.status}; site record {ref.seq}")
    return 0


def equipment_calibrate_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"equipment calibrate {args.asset}"
        )
        ref = record_calibration(
            store,
            who,
            args.asset,
            performed_on=args.performed,
            result=args.result,
            due=args.due,
            certificate=args.certificate,
            reason=args.reason,
        )
    outcome = f"calibrated through {args.due}" if args.result == "pass" else "out of service"
    print(f"{args.asset} calibration {args.result} recorded ({outcome}); site record {ref.seq}")
    return 0


def _flag(row: EquipmentRow, today: date) -> str:
    if row.calibration_due is not None and row.calibration_due < today:
        return "calibration overdue"
    missing = Qualification(iq=row.iq_on, oq=row.oq_on, pq=row.pq_on).missing()
    return f"{', '.join(missing)} not recorded" if missing else ""


def equipment_list_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        policy = policy_or_none(conn)
        rows = list_equipment(conn)
    today = site_date(policy, time.time_ns()) if policy else date.today()
    if args.json:
        items = [
            {
                "asset": r.asset,
                "interface": r.interface,
                "vendor": r.vendor,
                "model": r.model,
                "serial": r.serial,
                "status": r.status,
                "iq": r.iq_on,
                "oq": r.oq_on,
                "pq": r.pq_on,
                "calibration_due": r.calibration_due,
                "calibration_overdue": r.calibration_due is not None and r.calibration_due < today,
                "notes": r.notes,
            }
            for r in rows
        ]
        print(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        print(f"no instruments registered in {args.db}; `cellauto equipment add` registers one")
        return 0
    table = [["ASSET", "INTERFACE", "VENDOR MODEL", "SERIAL", "STATUS", "CALIBRATION DUE", ""]]
    for r in rows:
        due = "not needed" if r.calibration_due is None else r.calibration_due.isoformat()
        table.append(
            [
                r.asset,
                r.interface,
                f"{r.vendor} {r.model}",
                r.serial,
                r.status,
                due,
                _flag(r, today),
            ]
        )
    print_table(table)
    return 0
