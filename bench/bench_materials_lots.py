"""Lots in use (issue 11): a use's commit, the check before a run starts, ``trace --lot``.

The cases of :mod:`bench_materials` that need a journal file with a site; each against a
raw SQLite baseline on a file of the same schema, measured in the same run. The site is
written as site records (projected, chained, anchored) in big transactions, with no
people and no argon2: the records are what is measured against, not who made them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cellauto import Material, Protocol, Run, per_batch
from cellauto.cli.trace_lot import trace_lot
from cellauto.protocols.bom_check import BomPlan, check_bom
from cellauto.protocols.params import Params
from cellauto.records import Journal
from cellauto.records._lot_ops import ConsumeLot, LotAfter
from cellauto.records.material_payloads import MaterialConsumed
from cellauto.records.payloads import RunStarted
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_mat import (
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
)
from cellauto.records.site_store import SiteStore
from cellauto.sim.site import SIM_TERMINAL
from cellauto.site.materials_read import read_lot, snapshot
from cellauto.site.projection import apply_projection
from cellauto.site.view import FileSite

T = TypeVar("T")
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TODAY = START.date()
WHO: dict[str, Any] = {"by": "bench", "reason": "bench", "terminal": SIM_TERMINAL}
RUN_DAYS = 10
"""The bench protocol's planned duration: a lot must last through START + 10 days."""
NEED_MILLI = 10_000
"""What the bench protocol plans of each material: 10 mL."""


def _ms(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def _site(path: Path, key: Path, payloads: Sequence[SitePayload], batch: int = 5_000) -> None:
    """Append ``payloads`` to the file's site chain, ``batch`` records per transaction."""
    with SiteStore(path, project=apply_projection, signing_key=key, create=True) as store:
        for start in range(0, len(payloads), batch):
            with store.transaction() as tx:
                for payload in payloads[start : start + batch]:
                    tx.append(payload)


def _define(material: str) -> MaterialDefined:
    return MaterialDefined(
        **WHO, material=material, material_kind=MaterialKindName.MEDIUM, unit="mL",
        storage=Storage.FRIDGE,
    )  # fmt: skip


def _received(lot_id: str, material: str, quantity_milli: int, expires_on: date) -> LotReceived:
    return LotReceived(
        **WHO, lot_id=lot_id, material=material, supplier="Acme", supplier_lot=lot_id.upper(),
        received_on=TODAY - timedelta(days=400), expires_on=expires_on,
        quantity_milli=quantity_milli,
    )  # fmt: skip


def _consumed(lot: Any, key: str) -> MaterialConsumed:
    return MaterialConsumed(
        step="feed", use_key=key, material=lot.material, lot=lot, quantity_milli=1000,
        unit="mL", how_chosen="assigned", into="culture bag", amount_basis="1 mL per use",
    )  # fmt: skip


def _run_started(run_id: str) -> RunStarted:
    return RunStarted(
        run_id=run_id, protocol_name="bench", protocol_version="1",
        protocol_source_sha256=None, protocol_file=None, parameters={}, steps=[], line="bench",
        simulated=False, wall_clock="real", seed=None, operator="bench", instruments={},
        package_versions={},
    )  # fmt: skip


def _one_lot_site(path: Path, key: Path, lot_id: str) -> None:
    received = _received(lot_id, "IL-2", 10**12, TODAY + timedelta(days=365))
    _site(path, key, [_define("IL-2"), received, LotReleased(**WHO, lot_id=lot_id)])


def _raw_file(path: Path, copy_from: Path) -> sqlite3.Connection:
    """A bare SQLite file with the journal's schema and its ``lots`` rows, WAL, FULL sync."""
    source = sqlite3.connect(copy_from)
    schema = [sql for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE sql NOT NULL")]
    lots = source.execute("SELECT * FROM lots").fetchall()
    source.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for sql in schema:
        conn.execute(sql)
    if lots:
        marks = ",".join("?" * len(lots[0]))
        conn.executemany(f"INSERT INTO lots VALUES ({marks})", lots)
    return conn


# -- 1. a use committed -----------------------------------------------------------------
async def _consume(path: Path, key: Path, raw: sqlite3.Connection, n: int) -> dict[str, Any]:
    lot_id = "il-2/bench-1"
    journal = Journal(path, signing_key=key)
    conn = journal.read_connection()
    found = read_lot(conn, lot_id)
    assert found is not None
    lot = snapshot(found)
    run = journal.begin_run("bench-consume", time.monotonic)
    run.append(_run_started("bench-consume"))
    ours: list[float] = []
    bare: list[float] = []
    uses = 0
    for _ in range(5):  # interleaved rounds, so load on a shared machine hits both alike
        for _ in range(n // 5):
            uses += 1
            started = time.perf_counter()
            seq, _ = run.append(_consumed(lot, f"use {uses}"), wait=False)
            (after,) = await run.run_ops([ConsumeLot(run.run_id, f"use {uses}", lot_id, 1000, seq)])
            ours.append(time.perf_counter() - started)
            assert isinstance(after, LotAfter) and after.inserted
        for number in range(n // 5):
            started = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(
                "INSERT INTO lot_uses (run_id, use_key, lot_id, quantity_milli, run_seq)"
                " VALUES (?, ?, ?, ?, ?)",
                ("raw", f"use {uses} {number}", lot_id, 1000, uses),
            )
            raw.execute(
                "UPDATE lots SET remaining_milli = remaining_milli - ? WHERE lot_id = ?",
                (1000, lot_id),
            )
            raw.execute("COMMIT")
            bare.append(time.perf_counter() - started)
    left = conn.execute("SELECT remaining_milli FROM lots WHERE lot_id = ?", (lot_id,)).fetchone()
    journal.close()
    assert left[0] == 10**12 - 1000 * uses, "the lot must count every use once"
    return {"ours": ours, "raw": bare}


def consume_rows(directory: Path, key: Path, n: int) -> list[dict[str, object]]:
    path = directory / "consume.db"
    _one_lot_site(path, key, "il-2/bench-1")
    raw = _raw_file(directory / "consume-raw.db", path)
    got = asyncio.run(_consume(path, key, raw, n))
    raw.close()
    ours, bare = got["ours"], got["raw"]
    p50, p95, raw50, raw95 = _ms(ours, 0.5), _ms(ours, 0.95), _ms(bare, 0.5), _ms(bare, 0.95)
    return [
        {
            "case": f"use: material_consumed + ConsumeLot, one fsync'd commit (N={len(ours)})",
            "value": f"p50 {p50:.2f} ms",
            "target": "",
            "detail": f"p95 {p95:.2f} ms; raw INSERT+UPDATE+COMMIT (FULL) p50 {raw50:.2f} ms,"
            f" p95 {raw95:.2f} ms = {p50 / raw50:.2f}x at p50",
            "ok": None,
            "p50_ms": p50,
            "p95_ms": p95,
            "raw_p50_ms": raw50,
            "raw_p95_ms": raw95,
        }
    ]


# -- 2. the check before a run starts ----------------------------------------------------
KINDS = ("quarantine", "rejected", "expired", "short-dated", "too little", "reserved", "usable")
WEIGHTS = (0.15, 0.15, 0.20, 0.10, 0.20, 0.15, 0.05)


def _many_lots(materials: int, lots: int) -> tuple[list[SitePayload], list[str], dict[str, int]]:
    """Site records of ``materials`` x ``lots`` lots, most unusable; the lots to mark
    reserved by other runs; how many of each kind."""
    rng = np.random.default_rng(11)
    payloads: list[SitePayload] = []
    reserved: list[str] = []
    counts = dict.fromkeys(KINDS, 0)
    for m in range(materials):
        material = f"medium {m:02d}"
        payloads.append(_define(material))
        for number, pick in enumerate(rng.choice(len(KINDS), size=lots, p=WEIGHTS)):
            kind = KINDS[int(pick)]
            counts[kind] += 1
            lot_id = f"m{m:02d}/{number:04d}"
            days = int(rng.integers(RUN_DAYS + 1, 700))
            if kind == "expired":
                days = -int(rng.integers(1, 300))
            elif kind == "short-dated":
                days = int(rng.integers(0, RUN_DAYS))
            quantity = int(rng.integers(1, NEED_MILLI)) if kind == "too little" else 500_000
            payloads.append(_received(lot_id, material, quantity, TODAY + timedelta(days=days)))
            if kind == "rejected":
                payloads.append(LotRejected(**WHO, lot_id=lot_id, cause="CoA out of spec"))
            elif kind != "quarantine":
                payloads.append(LotReleased(**WHO, lot_id=lot_id))
            if kind == "reserved":
                reserved.append(lot_id)
    return payloads, reserved, counts


def _bench_protocol(materials: int) -> Protocol[Any]:
    protocol: Protocol[Any] = Protocol(
        "bench-bom",
        version="1",
        materials=[
            Material(f"medium {m:02d}", per_batch(volume_ml=NEED_MILLI / 1000))
            for m in range(materials)
        ],
    )

    @protocol.step(expected_duration_h=24.0 * RUN_DAYS)
    async def culture(run: Run[Any]) -> None:
        return None

    return protocol


def _timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def check_rows(directory: Path, key: Path, times: int) -> list[dict[str, object]]:
    materials, lots = 20, 1000
    path = directory / "bom.db"
    payloads, reserved, counts = _many_lots(materials, lots)
    started = time.perf_counter()
    _site(path, key, payloads)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(  # what other runs' claims reserved (free = remaining - reserved)
        "UPDATE lots SET reserved_milli = remaining_milli - 1000 WHERE lot_id = ?",
        [(lot_id,) for lot_id in reserved],
    )
    built_s = time.perf_counter() - started
    protocol, params, site = _bench_protocol(materials), Params(), FileSite(path)
    through = (START + timedelta(days=RUN_DAYS)).date().isoformat()
    names = [material.name for material in protocol.materials]

    def ours() -> BomPlan | None:
        return check_bom(protocol, params, site, start=START)

    def raw() -> list[tuple[Any, ...]]:
        found = []
        for name in names:
            rows = conn.execute(
                "SELECT lot_id, remaining_milli, reserved_milli, expires_on FROM lots"
                " WHERE material = ? AND status = 'released' AND expires_on >= ?"
                " ORDER BY expires_on, lot_id",
                (name, through),
            ).fetchall()
            found.append(next(r for r in rows if r[1] - r[2] >= NEED_MILLI))
        return found

    ours_s, raw_s = [], []
    for _ in range(times):  # interleaved
        spent, plan = _timed(ours)
        ours_s.append(spent)
        spent_raw, picked = _timed(raw)
        raw_s.append(spent_raw)
    assert plan is not None and len(plan.reservations) == materials
    chosen = [r.lot.lot_id for r in plan.reservations]
    assert chosen == [row[0] for row in picked], "cellauto and raw must pick the same lots (FEFO)"
    site.close()
    conn.close()
    ours_ms, raw_ms = statistics.median(ours_s) * 1000, statistics.median(raw_s) * 1000
    mix = ", ".join(f"{counts[k]} {k}" for k in KINDS)
    return [
        {
            "case": f"check before start: check_bom, {materials} materials x {lots:,} lots",
            "value": f"{ours_ms:.1f} ms",
            "target": "",
            "detail": f"raw SELECT per material {raw_ms:.2f} ms = {ours_ms / raw_ms:.1f}x;"
            f" lots: {mix}; site written in {built_s:.1f} s",
            "ok": None,
            "ms": ours_ms,
            "raw_ms": raw_ms,
        }
    ]


# -- 3. trace --lot -----------------------------------------------------------------------
async def _runs_using(path: Path, key: Path, lot_id: str, runs: int) -> None:
    """``runs`` runs, each a run_started and one material_consumed of ``lot_id`` with its
    ConsumeLot; committed 100 runs at a time through ``journal.run_ops``."""
    journal = Journal(path, signing_key=key)
    found = read_lot(journal.read_connection(), lot_id)
    assert found is not None
    lot = snapshot(found)
    ops: list[ConsumeLot] = []
    for number in range(runs):
        run = journal.begin_run(f"run-{number:05d}", time.monotonic)
        run.append(_run_started(run.run_id))
        seq, _ = run.append(_consumed(lot, "IL-2"))
        ops.append(ConsumeLot(run.run_id, "IL-2", lot_id, 1000, seq))
        if len(ops) == 100 or number == runs - 1:
            await journal.run_ops(ops)
            ops = []
    journal.close()


def trace_rows(directory: Path, key: Path, runs: int, times: int) -> list[dict[str, object]]:
    path, lot_id = directory / "trace.db", "il-2/traced"
    _one_lot_site(path, key, lot_id)
    started = time.perf_counter()
    asyncio.run(_runs_using(path, key, lot_id, runs))
    written_s = time.perf_counter() - started
    raw = sqlite3.connect(path)

    def bare() -> list[Any]:
        return raw.execute(
            "SELECT u.run_id, u.use_key, u.run_seq, u.quantity_milli, u.voided, r.hash, r.body"
            " FROM lot_uses u JOIN records r ON r.run_id = u.run_id AND r.seq = u.run_seq"
            " WHERE u.lot_id = ? ORDER BY u.run_id, u.run_seq",
            (lot_id,),
        ).fetchall()

    ours_s, raw_s = [], []
    with Journal(path, create=False) as journal:
        for _ in range(times):  # interleaved
            spent, traced = _timed(lambda: trace_lot(journal, journal.read_connection(), lot_id))
            ours_s.append(spent)
            spent_raw, rows = _timed(bare)
            raw_s.append(spent_raw)
    raw.close()
    assert len(traced.uses) == runs and traced.confirmed
    assert len(rows) == runs
    ours_ms, raw_ms = statistics.median(ours_s) * 1000, statistics.median(raw_s) * 1000
    return [
        {
            "case": f"trace --lot: trace_lot over {runs:,} runs using the lot",
            "value": f"{ours_ms:.0f} ms",
            "target": "",
            "detail": f"raw lot_uses JOIN records {raw_ms:.2f} ms = {ours_ms / raw_ms:.0f}x"
            f" ({ours_ms * 1000 / runs:.0f} µs per use confirmed); {runs:,} runs written in"
            f" {written_s:.1f} s",
            "ok": None,
            "ms": ours_ms,
            "raw_ms": raw_ms,
        }
    ]
