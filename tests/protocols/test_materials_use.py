"""Materials used at run time: checked on the day of use, consumed once, held if unusable."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Material, Protocol, Run, measured, per_batch
from cellauto.instruments import Line
from cellauto.protocols import Runner, State
from cellauto.protocols.execution import Execution
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.material_payloads import MaterialConsumed, MaterialUseVoided
from cellauto.records.payloads import Deviation
from cellauto.records.site_payloads_mat import LotAdjusted
from cellauto.sim.site import SimSite
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import (
    LINE,
    START,
    TODAY,
    WHO,
    define,
    file_site,
    il2_protocol,
    lot,
    reject,
    rows,
    sim_site,
)

pytestmark = pytest.mark.anyio


async def _until_held(execution: Execution, *, also: Any = None) -> None:
    """Execute until the run is Held, then stop it (the test reads its records)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        if also is not None:
            tg.start_soon(also)
        while execution.state is not State.HELD:  # noqa: ASYNC110 (virtual time: polls are free)
            await anyio.sleep(60)
        execution.command("Stop", by="test")
    execution.close()


def _payloads(journal: Journal, run_id: str, kind: type) -> list[Any]:
    return [r.payload for r in journal.records(run_id) if isinstance(r.payload, kind)]


def _lot(site: SimSite) -> tuple[int, int]:
    with site.reading() as conn:
        row = conn.execute("SELECT remaining_milli, reserved_milli FROM lots").fetchone()
    return row[0], row[1]


async def test_a_use_is_recorded_and_counted_once_in_one_commit(
    db_location: Location, tmp_path: Path
) -> None:
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=10.0)])
    with Journal(path) as journal, closing(FileSite(path)) as site:
        execution = Runner(journal, clock_origin=START).prepare(
            il2_protocol(amount_ml=2.0), LINE, site=site
        )
        outcome = await execution.execute()
        execution.close()
        consumed = _payloads(journal, execution.run_id, MaterialConsumed)
    assert outcome.exit_status == "complete"
    assert [(c.use_key, c.lot.lot_id, c.quantity_milli) for c in consumed] == [
        ("IL-2 dose 1", "il2/L1", 2000)
    ]
    assert consumed[0].lot.site is not None and consumed[0].amount_basis == "2 mL per batch"
    assert rows(path, "SELECT use_key, lot_id, quantity_milli, voided FROM lot_uses") == [
        ("IL-2 dose 1", "il2/L1", 2000, 0)
    ]
    assert rows(path, "SELECT remaining_milli, reserved_milli FROM lots") == [(8000, 0)]
    assert rows(path, "SELECT used_milli, open FROM lot_reservations") == [(2000, 0)]


async def test_lot_expired_at_use_is_a_deviation(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1", expires_on=TODAY + timedelta(days=1))])
    execution = Runner(journal, clock_origin=START).prepare(
        il2_protocol(wait_h=48), LINE, site=site
    )
    await _until_held(execution)
    deviations = _payloads(journal, execution.run_id, Deviation)
    assert [d.policy.value for d in deviations] == ["hold"]
    expired = (TODAY + timedelta(days=1)).isoformat()
    use_day = (TODAY + timedelta(days=2)).isoformat()
    assert f"lot 'il2/L1' (IL-2) expired {expired} (use on {use_day}): not used" in (
        deviations[0].description
    )
    assert _payloads(journal, execution.run_id, MaterialConsumed) == []
    assert _lot(site) == (10_000, 0)  # nothing consumed; the reservation given back at the end


async def test_lot_rejected_during_run_deviation_at_next_use(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1")])
    execution = Runner(journal, clock_origin=START).prepare(
        il2_protocol(wait_h=10), LINE, site=site
    )

    async def qa_rejects() -> None:
        await anyio.sleep(3600)
        site.at(START + timedelta(hours=1)).append([reject("il2/L1")])

    await _until_held(execution, also=qa_rejects)
    deviations = _payloads(journal, execution.run_id, Deviation)
    assert len(deviations) == 1
    assert "lot 'il2/L1' (IL-2) is rejected on the site: not used" in deviations[0].description
    assert _payloads(journal, execution.run_id, MaterialConsumed) == []


async def test_rejected_between_check_and_commit_voids_the_use(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA's rejection lands after the controller's check, before its decrement: the
    post-state shows it, the use is voided (quantity given back) and held, nothing added."""
    from cellauto.protocols import material_lots as materials

    site = sim_site([define(), *lot("il2/L1")])
    real = materials.decrement

    def reject_in_the_window(conn: Any, run_id: str, lot_id: str, quantity: int) -> None:
        conn.execute("UPDATE lots SET status = 'rejected' WHERE lot_id = ?", (lot_id,))
        real(conn, run_id, lot_id, quantity)

    monkeypatch.setattr(materials, "decrement", reject_in_the_window)
    execution = Runner(journal, clock_origin=START).prepare(il2_protocol(), LINE, site=site)
    await _until_held(execution)
    kinds = [r.kind for r in journal.records(execution.run_id)]
    assert kinds.index("material_consumed") < kinds.index("material_use_voided")
    assert kinds.index("material_use_voided") < kinds.index("deviation")
    voided = _payloads(journal, execution.run_id, MaterialUseVoided)
    assert [(v.use_key, v.quantity_milli) for v in voided] == [("IL-2 dose 1", 2000)]
    assert rows(journal.location, "SELECT voided FROM lot_uses") == [(1,)]
    assert _lot(site)[0] == 10_000  # given back


async def test_a_material_not_in_the_bom_fails_the_step(journal: Journal) -> None:
    protocol = Protocol("p", version="1", materials=[Material("IL-2", per_batch(volume_ml=1))])

    @protocol.step
    async def work(run: Run) -> None:
        await run.materials.use("IL-7", into="culture bag")

    site = sim_site([define(), *lot("il2/L1")])
    execution = Runner(journal, clock_origin=START).prepare(protocol, LINE, site=site)
    outcome = await execution.execute()
    assert outcome.exit_status == "failed"
    assert "material 'IL-7' is not in the protocol's bill of materials" in outcome.reason


async def test_a_measured_amount_is_computed_once_and_kept(journal: Journal) -> None:
    seen: list[float] = []

    def amount(p: Any, lot: Any, values: Any) -> float:
        seen.append(values["cells"])
        return float(values["cells"]) / 1e8

    protocol = Protocol(
        "p",
        version="1",
        materials=[Material("IL-2", measured(amount, unit="mL", plan=lambda p, lot: 3.0))],
    )

    @protocol.step
    async def work(run: Run) -> None:
        await run.materials.use("IL-2", into="culture bag", values={"cells": 2.5e8})
        again = await run.materials.use("IL-2", into="culture bag", values={"cells": 9e8})
        run.set_value("used", again.quantity, unit="mL")

    site = sim_site([define(), *lot("il2/L1")])
    execution = Runner(journal, clock_origin=START).prepare(protocol, LINE, site=site)
    outcome = await execution.execute()
    assert outcome.exit_status == "complete"
    assert seen == [2.5e8]
    assert execution.values["used"] == 2.5
    checkpoints = [r.payload for r in journal.records(execution.run_id) if r.kind == "checkpoint"]
    assert [(c.name, c.value) for c in checkpoints] == [("IL-2: amount", 2500)]
    assert _lot(site) == (7500, 0)


async def test_not_enough_left_at_use_holds_and_restart_checks_again(journal: Journal) -> None:
    """The second dose finds too little left: held, nothing consumed; the stores correct
    the count, a supervisor restarts, and the use is checked again and made."""
    site = sim_site([define(), *lot("il2/L1", quantity_ml=3.0)])
    line = Line("rehearsal", {}, rehearsal=True)
    execution = Runner(journal, clock_origin=START).prepare(
        il2_protocol(amount_ml=2.0, uses=2), line, site=site
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        while execution.state is not State.HELD:  # noqa: ASYNC110 (virtual time: polls are free)
            await anyio.sleep(60)
        deviations = _payloads(journal, execution.run_id, Deviation)
        assert [d.description for d in deviations] == [
            "lot 'il2/L1' (IL-2) needs 2 mL, 1 mL free: not used"
        ]
        found = LotAdjusted(**WHO, lot_id="il2/L1", delta_milli=5000, cause="physical count")
        site.append([found])
        execution.command("Restart", by="sup", reason="count corrected: 6 mL on the shelf")
    execution.close()
    assert execution.state is State.COMPLETE
    consumed = _payloads(journal, execution.run_id, MaterialConsumed)
    assert [c.use_key for c in consumed] == ["IL-2 dose 1", "IL-2 dose 2"]
    assert _lot(site) == (4000, 0)
