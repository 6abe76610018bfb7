"""A small protocol with a bill of materials, and site records to set its lots up."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cellauto import Material, Protocol, Run, per_batch
from cellauto.instruments import Line
from cellauto.records.backend import Location
from cellauto.records.site_payloads_mat import (
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.records.site_store import SiteStore
from cellauto.sim.site import SIM_TERMINAL, SimSite
from cellauto.site.projection import apply_projection
from tests.raw_sql import raw_connect

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TODAY = START.date()
WHO = {"by": "qa.bob", "reason": "test", "terminal": SIM_TERMINAL}
LINE = Line("test", {})

SitePayloads = Sequence[MaterialDefined | LotReceived | LotReleased | LotRejected | LotAdjusted]


def define(material: str = "IL-2", unit: Unit = Unit.ML) -> MaterialDefined:
    return MaterialDefined(
        **WHO, material=material, material_kind=MaterialKindName.CYTOKINE, unit=unit,
        storage=Storage.FRIDGE,
    )  # fmt: skip


def lot(
    lot_id: str,
    *,
    material: str = "IL-2",
    quantity_ml: float = 10.0,
    expires_on: date = TODAY + timedelta(days=100),
    release: bool = True,
) -> list[LotReceived | LotReleased]:
    received = LotReceived(
        **WHO, lot_id=lot_id, material=material, supplier="Acme", supplier_lot=lot_id.upper(),
        received_on=TODAY - timedelta(days=10), expires_on=expires_on,
        quantity_milli=round(quantity_ml * 1000),
    )  # fmt: skip
    return [received, LotReleased(**WHO, lot_id=lot_id)] if release else [received]


def reject(lot_id: str) -> LotRejected:
    return LotRejected(**WHO, lot_id=lot_id, cause="CoA titre out of spec")


def sim_site(records: SitePayloads, now: datetime = START) -> SimSite:
    site = SimSite(now - timedelta(days=1))
    site.append(list(records))
    return site.at(now)


def file_site(path: Path | Location, records: SitePayloads) -> None:
    """Append ``records`` to the journal file's site chain (projected)."""
    with (
        SiteStore(Location.parse(path), project=apply_projection, create=True) as store,
        store.transaction() as tx,
    ):
        for payload in records:
            tx.append(payload)


def il2_protocol(
    *, amount_ml: float = 2.0, wait_h: float = 0.0, uses: int = 1, duration_h: float = 0.1
) -> Protocol:
    """Uses ``amount_ml`` of IL-2 ``uses`` times, ``wait_h`` hours after the start."""
    protocol = Protocol(
        "il2-test", version="1", materials=[Material("IL-2", per_batch(volume_ml=amount_ml))]
    )

    @protocol.step(expected_duration_h=duration_h)
    async def stimulate(run: Run) -> None:
        await run.sleep(hours=wait_h)
        for number in range(uses):
            await run.materials.use("IL-2", key=f"IL-2 dose {number + 1}", into="culture bag")

    return protocol


def rows(path: Path | Location, sql: str) -> list[tuple[object, ...]]:
    """The rows of ``sql`` on the journal at ``path`` (either backend); none when the
    table is missing."""
    conn = raw_connect(path)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
