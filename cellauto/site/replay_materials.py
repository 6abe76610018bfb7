"""Verify of the materials, lots and equipment projections, and of lot quantities across
the site chain and every run (the ``site_replay`` hook's share; design §1.6).

:func:`cellauto.site.replay.replay_problem` replays the site chain into a scratch
database (the material records through
:func:`~cellauto.site.projection_materials.apply_material_projection`) and then calls
:func:`materials_problem`, which compares:

1. ``materials``, ``lots`` (every column but the run side's ``remaining_milli`` and
   ``reserved_milli``) and ``equipment`` with the replay, row by row;
2. ``lot_uses`` rows of lots the site knows with the runs' ``material_consumed`` and
   ``material_use_voided`` records: each row is one consumption record (same run, record
   seq, use key, lot and quantity), ``voided`` exactly when the run voided that use, and
   every such record has its row;
3. each lot's ``remaining_milli`` with what the records say: received, plus the site's
   adjustments, minus every use a run recorded and did not void.

The first difference is named (``lots table edited: row 'vector/L2291' status
'released' but site record 12 says 'quarantine'``). Uses of lots the site does not know
(a simulated run's ``SIM-`` lots) are left to that run's own checks. ``reserved_milli`` is
not compared: reservations are not chained.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.material_payloads import MaterialConsumed, MaterialUseVoided

__all__ = ["materials_problem"]

_TABLES = (("materials", "material"), ("lots", "lot_id"), ("equipment", "asset"))
_RUN_SIDE = {"lots": frozenset({"remaining_milli", "reserved_milli"})}
"""Columns the run side changes (uses, reservations): compared below, or not at all."""


def _rows(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """The rows, or none when a file of schema version 4 has no such table."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def _table(conn: Conn, table: str, key: str) -> tuple[list[str], dict[str, Any]]:
    try:
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return [], {}
        raise
    names = [d[0] for d in cursor.description]
    return names, {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def _table_problem(conn: Conn, scratch: Conn, table: str, key: str) -> str | None:
    _, have = _table(conn, table, key)
    names, want = _table(scratch, table, key)
    skip = _RUN_SIDE.get(table, frozenset())
    for name in sorted(set(have) | set(want)):
        stored, replayed = have.get(name), want.get(name)
        if replayed is None:
            return f"{table} table edited: row {name!r} is there but no site record created it"
        if stored is None:
            return (
                f"{table} table edited: row {name!r} is missing but site record"
                f" {replayed['source_seq']} says it exists"
            )
        for column in names:
            if column not in skip and stored.get(column) != replayed[column]:
                return (
                    f"{table} table edited: row {name!r} {column} {stored.get(column)!r} but"
                    f" site record {replayed['source_seq']} says {replayed[column]!r}"
                )
    return None


class _Use(NamedTuple):
    """One use of a lot: as a ``lot_uses`` row has it, or as the run records say."""

    lot_id: str
    quantity_milli: int
    run_seq: int
    voided: int


def _payloads(conn: Conn, known: set[str]) -> tuple[dict[tuple[str, str], _Use], str | None]:
    """The uses the runs' records make of lots the site knows, keyed (run, use key)."""
    uses: dict[tuple[str, str], _Use] = {}
    voids: list[tuple[str, int, MaterialUseVoided]] = []
    rows = _rows(
        conn,
        "SELECT run_id, seq, kind, body FROM records WHERE kind IN (?, ?) ORDER BY run_id, seq",
        (RecordKind.MATERIAL_CONSUMED.value, RecordKind.MATERIAL_USE_VOIDED.value),
    )
    for run_id, seq, kind, body in rows:
        try:
            data = orjson.loads(body)["payload"]
            if kind == RecordKind.MATERIAL_CONSUMED.value:
                used = MaterialConsumed.model_validate(data)
                if used.lot.lot_id in known:
                    uses[run_id, used.use_key] = _Use(used.lot.lot_id, used.quantity_milli, seq, 0)
            else:
                voids.append((run_id, seq, MaterialUseVoided.model_validate(data)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
            return uses, f"lot quantities: run {run_id} record {seq} ({kind}) does not parse: {exc}"
    for run_id, seq, void in voids:
        if void.lot_id not in known:
            continue
        use = uses.get((run_id, void.use_key))
        if (
            use is None
            or use.voided
            or (use.lot_id, use.quantity_milli)
            != (
                void.lot_id,
                void.quantity_milli,
            )
        ):
            return uses, (
                f"lot quantities: run {run_id} record {seq} voids use {void.use_key!r} of lot"
                f" {void.lot_id!r} ({void.quantity_milli} milli), which no earlier"
                " material_consumed record of that run made (or it was voided already)"
            )
        uses[run_id, void.use_key] = use._replace(voided=1)
    return uses, None


def _uses_problem(conn: Conn, known: set[str], recorded: dict[tuple[str, str], _Use]) -> str | None:
    stored = {
        (run_id, use_key): _Use(lot_id, quantity, run_seq, voided)
        for run_id, use_key, lot_id, quantity, run_seq, voided in _rows(
            conn,
            "SELECT run_id, use_key, lot_id, quantity_milli, run_seq, voided FROM lot_uses"
            " ORDER BY run_id, use_key",
        )
    }
    for key in sorted(set(stored) | set(recorded)):
        have, want = stored.get(key), recorded.get(key)
        if have == want or (want is None and have is not None and have.lot_id not in known):
            continue
        row = f"lot_uses table edited: row {key[0]}/{key[1]!r}"
        if want is None:
            return f"{row} is there but no material_consumed record of run {key[0]} made it"
        if have is None:
            return f"{row} is missing but run {key[0]} record {want.run_seq} says the use was made"
        for field, stored_value, recorded_value in zip(_Use._fields, have, want, strict=True):
            if stored_value != recorded_value:
                return (
                    f"{row} {field} {stored_value!r} but run {key[0]}'s records say"
                    f" {recorded_value!r}"
                )
    return None


def _remaining_problem(conn: Conn, scratch: Conn, uses: Iterable[_Use]) -> str | None:
    used: dict[str, tuple[int, int]] = {}
    for use in uses:
        if not use.voided:
            total, count = used.get(use.lot_id, (0, 0))
            used[use.lot_id] = (total + use.quantity_milli, count + 1)
    have = dict(_rows(conn, "SELECT lot_id, remaining_milli FROM lots"))
    replayed = scratch.execute(
        "SELECT lot_id, received_milli, remaining_milli, source_seq FROM lots ORDER BY lot_id"
    )
    for lot_id, received, site_remaining, source in replayed:
        total, count = used.get(lot_id, (0, 0))
        want = site_remaining - total
        if have.get(lot_id) != want:
            adjusted = site_remaining - received
            return (
                f"lots table edited: row {lot_id!r} remaining_milli {have.get(lot_id)!r} but the"
                f" records say {want} (received {received}, adjusted {adjusted:+d} up to site"
                f" record {source}, {total} used by {count} run record(s))"
            )
    return None


def materials_problem(conn: Conn, scratch: Conn) -> str | None:
    """The first difference between the stored materials, lots, equipment and lot uses
    and the replay (``scratch``: the site chain replayed), or None when they agree."""
    for table, key in _TABLES:
        problem = _table_problem(conn, scratch, table, key)
        if problem is not None:
            return problem
    known = {lot_id for (lot_id,) in scratch.execute("SELECT lot_id FROM lots")}
    recorded, problem = _payloads(conn, known)
    return (
        problem
        or _uses_problem(conn, known, recorded)
        or _remaining_problem(conn, scratch, recorded.values())
    )
