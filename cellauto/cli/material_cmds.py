"""``cellauto materials``: the materials the site uses and the lots it holds.

Defining a material (a supervisor or QA), receiving a lot into quarantine (an operator or
supervisor), releasing or rejecting it (QA, never the person who received it) and
adjusting its quantity (a supervisor) are each one signing: ``--as NAME`` and that
person's password (typed, or one line of stdin with ``--password-stdin``). Quantities are
in the material's unit (``--quantity 12.5`` mL). ``list`` reads only and needs no account.
Exit 0 done; 2 a refusal (journaled first) or bad input (nothing written); 1 otherwise.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from typing import Any

import orjson

from cellauto.errors import BadInputError
from cellauto.records.site_payloads import SitePolicy
from cellauto.records.site_payloads_mat import MaterialKindName, Storage, Unit
from cellauto.site.history import has_site_tables, reading_journal
from cellauto.site.materials import (
    adjust_lot,
    define_material,
    receive_lot,
    reject_lot,
    release_lot,
)
from cellauto.site.materials_read import LotRow, list_lots, list_materials, lot_state
from cellauto.site.policy import site_date

from .people_cmds import (
    acting_options,
    common_options,
    policy_or_none,
    print_table,
    reason_of,
    sign_in,
    store_of,
)
from .prompt import Passwords

STATUSES = ("quarantine", "released", "rejected", "expired", "depleted", "all")
_STORAGE_NAMES = {s.name.lower(): s for s in Storage}
_UNIT_NAMES = {"ml": Unit.ML, "ug": Unit.UG, "µg": Unit.UG, "iu": Unit.IU, "each": Unit.EACH}


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _kind(text: str) -> MaterialKindName:
    try:
        return MaterialKindName(text.lower())
    except ValueError as exc:
        kinds = ", ".join(k.value for k in MaterialKindName)
        raise argparse.ArgumentTypeError(f"kind {text!r} is none of {kinds}") from exc


def _unit(text: str) -> Unit:
    unit = _UNIT_NAMES.get(text.lower())
    if unit is None:
        raise argparse.ArgumentTypeError(f"unit {text!r} is none of mL, ug (µg), IU, each")
    return unit


def _storage(text: str) -> Storage:
    storage = _STORAGE_NAMES.get(text.lower())
    if storage is None:
        try:
            return Storage(text)
        except ValueError as exc:
            names = ", ".join(f"{name} ({s.value})" for name, s in _STORAGE_NAMES.items())
            raise argparse.ArgumentTypeError(f"storage {text!r} is none of {names}") from exc
    return storage


def _quantity(text: str) -> int:
    """A quantity in the material's unit, as integer milli-units (``12.5`` -> 12500)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return round(value * 1000)


def _attribute(text: str) -> tuple[str, float | str]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"--attr {text!r} is not NAME=VALUE")
    try:
        return name.strip(), float(value)
    except ValueError:
        return name.strip(), value.strip()


def add_parsers(sub: Any) -> None:
    materials = sub.add_parser("materials", help="materials and lots", description=__doc__)
    verbs = materials.add_subparsers(dest="verb", required=True, parser_class=type(materials))

    p = verbs.add_parser("define", help="define a material (supervisor or QA)")
    p.add_argument("name", metavar="NAME", help="as bills of materials name it")
    p.add_argument("--kind", type=_kind, required=True, help="reagent, vector, medium, ...")
    p.add_argument("--unit", type=_unit, required=True, help="mL, ug, IU or each")
    p.add_argument("--storage", type=_storage, required=True, help="ambient, fridge, ..., ln2")
    p.add_argument(
        "--attribute",
        action="append",
        default=[],
        metavar="NAME",
        help="an attribute every lot must carry before release (repeatable)",
    )
    p.add_argument("--description", default="")
    _acting(p)
    p.set_defaults(handler=define_command)

    p = verbs.add_parser("receive", help="receive a lot into quarantine (operator, supervisor)")
    p.add_argument("name", metavar="MATERIAL")
    p.add_argument("--supplier", required=True)
    p.add_argument("--supplier-lot", required=True, metavar="LOT", help="as on the CoA")
    p.add_argument("--expires", type=_date, required=True, metavar="DATE", help="last day of use")
    p.add_argument("--quantity", type=_quantity, required=True, metavar="Q", help="in its unit")
    p.add_argument("--received", type=_date, metavar="DATE", help="default today")
    p.add_argument("--attr", type=_attribute, action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--lot-id", metavar="ID", help="default <material-slug>/<supplier lot>")
    _acting(p)
    p.set_defaults(handler=receive_command)

    p = verbs.add_parser("release", help="release a lot for use (QA; signed)")
    p.add_argument("lot", metavar="LOT")
    _acting(p)
    p.set_defaults(handler=release_command)

    p = verbs.add_parser("reject", help="reject a lot (QA; signed)")
    p.add_argument("lot", metavar="LOT")
    acting_options(p)
    common_options(p)
    p.set_defaults(handler=reject_command)

    p = verbs.add_parser("adjust", help="correct a lot's quantity (supervisor)")
    p.add_argument("lot", metavar="LOT")
    p.add_argument(
        "--delta", type=_quantity, required=True, metavar="Q", help="in its unit, e.g. -0.5"
    )
    acting_options(p)
    common_options(p)
    p.set_defaults(handler=adjust_command)

    p = verbs.add_parser("list", help="the lots, their quantities and states today")
    p.add_argument("--material", metavar="NAME")
    p.add_argument("--status", choices=STATUSES, default="all")
    p.add_argument(
        "--on", type=_date, metavar="DATE", help="states as of DATE (default today, site zone)"
    )
    p.add_argument("--json", action="store_true", help="one JSON array")
    common_options(p, acting=False)
    p.set_defaults(handler=list_command)


def _acting(p: argparse.ArgumentParser) -> None:
    acting_options(p, reason=False)
    p.add_argument("--reason", default="", help="why (journaled)")
    common_options(p)


def define_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"materials define {args.name}"
        )
        ref = define_material(
            store,
            who,
            args.name,
            material_kind=args.kind,
            unit=args.unit,
            storage=args.storage,
            attributes=args.attribute,
            description=args.description,
            reason=args.reason,
        )
    print(f"material {args.name!r} defined; site record {ref.seq}")
    return 0


def receive_command(args: argparse.Namespace) -> int:
    attributes = dict(args.attr)
    if len(attributes) != len(args.attr):
        raise BadInputError("an --attr NAME is given twice")
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"materials receive {args.name}"
        )
        ref = receive_lot(
            store,
            who,
            args.name,
            supplier=args.supplier,
            supplier_lot=args.supplier_lot,
            expires_on=args.expires,
            quantity_milli=args.quantity,
            received_on=args.received,
            attributes=attributes,
            lot_id=args.lot_id,
            reason=args.reason,
        )
        with store.reading() as conn:
            (lot_id,) = conn.execute(
                "SELECT lot_id FROM lots WHERE source_seq = ?", (ref.seq,)
            ).fetchone()
    print(f"lot {lot_id} received into quarantine; site record {ref.seq}")
    return 0


def release_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"materials release {args.lot}"
        )
        decision = release_lot(store, who, args.lot, reason=args.reason)
    print(
        f"lot {args.lot} released, signed by {args.as_user}; site records"
        f" {decision.record.seq}, {decision.signature.seq}"
    )
    return 0


def reject_command(args: argparse.Namespace) -> int:
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"materials reject {args.lot}"
        )
        decision = reject_lot(store, who, args.lot, cause=reason)
    print(
        f"lot {args.lot} rejected, signed by {args.as_user}; site records"
        f" {decision.record.seq}, {decision.signature.seq}"
    )
    return 0


def adjust_command(args: argparse.Namespace) -> int:
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"materials adjust {args.lot}"
        )
        ref = adjust_lot(store, who, args.lot, delta_milli=args.delta, cause=reason)
    print(f"lot {args.lot} adjusted by {quantity_text(args.delta)}; site record {ref.seq}")
    return 0


def quantity_text(milli: int) -> str:
    """Milli-units as a number in the unit, exactly (``12500`` -> ``12.5``)."""
    sign = "-" if milli < 0 else ""
    whole, frac = divmod(abs(milli), 1000)
    return f"{sign}{whole}" + (f".{frac:03d}".rstrip("0") if frac else "")


def _json_row(lot: LotRow, unit: str, state: str) -> dict[str, object]:
    return {
        "lot_id": lot.lot_id,
        "material": lot.material,
        "unit": unit,
        "supplier": lot.supplier,
        "supplier_lot": lot.supplier_lot,
        "received_on": lot.received_on.isoformat(),
        "received_by": lot.received_by,
        "expires_on": lot.expires_on.isoformat(),
        "status": state,
        "decided": lot.status,
        "received_milli": lot.received_milli,
        "remaining_milli": lot.remaining_milli,
        "reserved_milli": lot.reserved_milli,
        "free_milli": lot.free_milli,
        "attributes": lot.attributes,
        "site_seq": lot.source_seq,
    }


def list_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        policy = (policy_or_none(conn) if has_site_tables(conn) else None) or SitePolicy()
        units = {m.material: m.unit for m in list_materials(conn)}
        lots = list_lots(conn, args.material)
    today = args.on or site_date(policy, time.time_ns())
    shown = [
        (lot, state)
        for lot in lots
        for state in [lot_state(lot, today)]
        if args.status in ("all", state)
    ]
    if args.json:
        rows = [_json_row(lot, units.get(lot.material, "?"), state) for lot, state in shown]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not shown:
        which = "" if args.status == "all" else f" {args.status}"
        of = f" of {args.material!r}" if args.material else ""
        print(f"no{which} lots{of} in {args.db}")
        return 0
    table = [
        [
            "LOT",
            "MATERIAL",
            "SUPPLIER LOT",
            "REMAINING",
            "RESERVED",
            "FREE",
            "UNIT",
            "EXPIRES",
            "STATUS",
        ]
    ]
    for lot, state in shown:
        table.append(
            [
                lot.lot_id,
                lot.material,
                lot.supplier_lot,
                quantity_text(lot.remaining_milli),
                quantity_text(lot.reserved_milli),
                quantity_text(lot.free_milli),
                units.get(lot.material, "?"),
                lot.expires_on.isoformat(),
                state,
            ]
        )
    print_table(table)
    print(f"(states as of {today}, {policy.time_zone})")
    return 0
