"""The lot chosen by scanning its barcode at the point of use (``scan="operator"``)."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Material, Protocol, Run, per_batch
from cellauto.identity.lot_barcode import (
    LotBarcodeError,
    gs1_lot_data,
    lot_barcode_data,
    parse_lot_barcode,
)
from cellauto.instruments import Line
from cellauto.instruments.barcode_scanner import Scan
from cellauto.protocols import Runner, State, material_lots
from cellauto.protocols.execution import Execution
from cellauto.records import Journal
from cellauto.records.material_payloads import MaterialConsumed
from cellauto.records.payloads import Alarm, Deviation, TaskOpened
from cellauto.sim import simulate
from cellauto.sim.operators import Answer, SimulatedOperators
from cellauto.sim.site import SimSite
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import (
    START,
    TODAY,
    define,
    file_site,
    lot,
    reject,
    rows,
    sim_site,
)

pytestmark = pytest.mark.anyio

REHEARSAL = Line("rehearsal", {}, rehearsal=True)


def scan_protocol(*, amount_ml: float = 2.0, wait_h: float = 0.0) -> Protocol:
    protocol = Protocol(
        "il2-scan", version="1", materials=[Material("IL-2", per_batch(volume_ml=amount_ml))]
    )

    @protocol.step(expected_duration_h=0.1)
    async def stimulate(run: Run) -> None:
        await run.materials.use("IL-2", into="culture bag", scan="operator")
        await run.sleep(hours=wait_h)

    return protocol


def _prepare(journal: Journal, site: SimSite, script: dict[str, Any] | None = None) -> Execution:
    return Runner(journal, clock_origin=START).prepare(
        scan_protocol(), REHEARSAL, site=site, answerers=[SimulatedOperators(script)]
    )


async def _run(execution: Execution, *, restart_after_hold: bool = False) -> list[str]:
    """Execute to the end; at each hold note the deviation and Stop (or Restart once)."""
    held: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        while execution.state not in (State.COMPLETE, State.ABORTED, State.STOPPED):
            await anyio.sleep(60)
            if execution.state is State.HELD:
                held.append(execution.state.value)
                if restart_after_hold and len(held) == 1:
                    execution.command("Restart", by="sup", reason="another vial fetched")
                else:
                    execution.command("Stop", by="test")
                    break
    execution.close()
    return held


def _payloads(journal: Journal, run_id: str, kind: type) -> list[Any]:
    return [r.payload for r in journal.records(run_id) if isinstance(r.payload, kind)]


def _lots(site: SimSite) -> dict[str, tuple[int, int]]:
    with site.reading() as conn:
        rows = conn.execute("SELECT lot_id, remaining_milli, reserved_milli FROM lots").fetchall()
    return {lot_id: (remaining, reserved) for lot_id, remaining, reserved in rows}


async def test_the_reserved_lot_scanned_is_used(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1")])
    execution = _prepare(journal, site)
    await _run(execution)
    assert execution.state is State.COMPLETE
    (consumed,) = _payloads(journal, execution.run_id, MaterialConsumed)
    assert (consumed.lot.lot_id, consumed.how_chosen, consumed.scanned) == (
        "il2/L1", "scanned", "il2/L1",
    )  # fmt: skip
    tasks = [t.name for t in _payloads(journal, execution.run_id, TaskOpened)]
    assert tasks == ["scan IL-2 lot"]
    assert _lots(site) == {"il2/L1": (8000, 0)}


async def test_another_usable_lot_scanned_is_reserved_and_used(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1"), *lot("il2/L2", quantity_ml=5.0)])
    execution = _prepare(journal, site, {"scan IL-2 lot": Answer(value="il2/L2")})
    await _run(execution)
    assert execution.state is State.COMPLETE
    (consumed,) = _payloads(journal, execution.run_id, MaterialConsumed)
    assert (consumed.lot.lot_id, consumed.how_chosen) == ("il2/L2", "scanned")
    # the scanned lot consumed, the first reservation's unused part given back at the end
    assert _lots(site) == {"il2/L1": (10_000, 0), "il2/L2": (3000, 0)}
    with site.reading() as conn:
        reservations = conn.execute(
            "SELECT lot_id, reserved_milli, used_milli, open FROM lot_reservations ORDER BY 1"
        ).fetchall()
    assert reservations == [("il2/L1", 2000, 0, 0), ("il2/L2", 2000, 2000, 0)]


async def test_a_gs1_barcode_names_the_lot(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1"), *lot("il2/L2")])
    scanned = gs1_lot_data("il2/L2") + "\x1d17271231"
    execution = _prepare(journal, site, {"scan IL-2 lot": Answer(value=scanned)})
    await _run(execution)
    (consumed,) = _payloads(journal, execution.run_id, MaterialConsumed)
    assert (consumed.lot.lot_id, consumed.scanned) == ("il2/L2", scanned)


async def _held_with(journal: Journal, site: SimSite, scanned: str) -> str:
    """Scan ``scanned``: the run holds with one deviation (its text returned), an alarm
    names it, nothing is consumed."""
    execution = _prepare(journal, site, {"scan IL-2 lot": Answer(value=scanned)})
    assert await _run(execution) == ["Held"]
    (deviation,) = _payloads(journal, execution.run_id, Deviation)
    assert deviation.policy.value == "hold" and deviation.check == "material: IL-2"
    alarms = [a.message for a in _payloads(journal, execution.run_id, Alarm)]
    assert any(message in deviation.description for message in alarms)
    assert _payloads(journal, execution.run_id, MaterialConsumed) == []
    description: str = deviation.description
    return description


async def test_an_unknown_lot_is_held(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1")])
    text = await _held_with(journal, site, "il2/L9")
    assert "lot 'il2/L9' (IL-2): no such lot on the site: not used" in text
    assert _lots(site) == {"il2/L1": (10_000, 0)}


async def test_a_lot_of_another_material_is_held(journal: Journal) -> None:
    site = sim_site([define(), define("IL-7"), *lot("il2/L1"), *lot("il7/L1", material="IL-7")])
    text = await _held_with(journal, site, "il7/L1")
    assert "lot 'il7/L1' scanned is a lot of 'IL-7', not of 'IL-2': not used" in text
    assert _lots(site)["il7/L1"] == (10_000, 0)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (lot("il2/L2", release=False), "lot 'il2/L2' (IL-2) is quarantine on the site"),
        ([*lot("il2/L2"), reject("il2/L2")], "lot 'il2/L2' (IL-2) is rejected on the site"),
        (
            lot("il2/L2", expires_on=TODAY - timedelta(days=1)),
            f"lot 'il2/L2' (IL-2) expired {(TODAY - timedelta(days=1)).isoformat()}",
        ),
        (lot("il2/L2", quantity_ml=1.0), "lot 'il2/L2' (IL-2) needs 2 mL, 1 mL free"),
    ],
    ids=["quarantined", "rejected", "expired", "too-little"],
)
async def test_an_unusable_lot_scanned_is_held(
    journal: Journal, records: list[Any], expected: str
) -> None:
    site = sim_site([define(), *lot("il2/L1"), *records])
    text = await _held_with(journal, site, "il2/L2")
    assert expected in text
    assert _lots(site)["il2/L2"][1] == 0  # nothing reserved of it


async def test_garbage_is_refused_naming_what_was_read(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1")])
    text = await _held_with(journal, site, "=G123426123456 00")
    assert "scanned '=G123426123456 00'" in text and "not a lot's" in text


async def test_after_restart_the_scan_is_asked_again(journal: Journal) -> None:
    site = sim_site([define(), *lot("il2/L1")])
    script = {"scan IL-2 lot": Answer(value="il2/L9"), "scan IL-2 lot[IL-2, scan 2]": Answer()}
    execution = _prepare(journal, site, script)
    await _run(execution, restart_after_hold=True)
    assert execution.state is State.COMPLETE
    opened = [(t.name, t.key) for t in _payloads(journal, execution.run_id, TaskOpened)]
    assert opened == [("scan IL-2 lot", None), ("scan IL-2 lot", "IL-2, scan 2")]
    (consumed,) = _payloads(journal, execution.run_id, MaterialConsumed)
    assert consumed.lot.lot_id == "il2/L1"


def test_a_scan_answered_before_a_crash_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan is answered at 5 min; the controller dies before the use is recorded
    (held up 10 min here); the resumed run takes the recorded answer, asks nothing."""
    real = material_lots.consume

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(600)
        return await real(*args, **kwargs)

    monkeypatch.setattr(material_lots, "consume", slow)
    protocol = scan_protocol(wait_h=1.0)
    other = lot("il2/L2", expires_on=TODAY + timedelta(days=300))  # not the one reserved
    result = simulate(
        protocol,
        start=START,
        on_hold="restart",
        crashes=[0.15],
        downtime_h=0.1,
        db=tmp_path / "journal.db",
        site_records=[*other],
        operators={"scan IL-2 lot": Answer(value="il2/L2")},
        patient="typical",
    )
    assert result.outcome.exit_status == "complete", result.outcome.reason
    assert [r.kind for r in result.records].count("run_resumed") == 1
    assert [t.name for t in result.of_kind(TaskOpened)] == ["scan IL-2 lot"]
    (consumed,) = result.of_kind(MaterialConsumed)
    assert (consumed.lot.lot_id, consumed.how_chosen) == ("il2/L2", "scanned")
    kinds = [r.kind for r in result.records]
    assert kinds.index("task_answered") < kinds.index("run_resumed")
    assert kinds.index("run_resumed") < kinds.index("material_consumed")


class _Scanner:
    """A line's barcode scanner reading one lot barcode (no person asked)."""

    def __init__(self, data: str) -> None:
        self.data = data
        self.labels: list[str] = []

    async def scan(self, label: str) -> Scan:
        self.labels.append(label)
        return Scan(data=self.data, label=label)


async def test_a_scanner_reads_the_lot_without_a_person(journal: Journal) -> None:
    scanner = _Scanner(gs1_lot_data("il2/L2"))
    protocol = Protocol("p", version="1", materials=[Material("IL-2", per_batch(volume_ml=1))])

    @protocol.step
    async def work(run: Run) -> None:
        await run.materials.use("IL-2", into="culture bag", scan=scanner)  # type: ignore[arg-type]

    site = sim_site([define(), *lot("il2/L1"), *lot("il2/L2")])
    execution = Runner(journal, clock_origin=START).prepare(protocol, REHEARSAL, site=site)
    outcome = await execution.execute()
    execution.close()
    assert outcome.exit_status == "complete", outcome.reason
    assert scanner.labels == ["IL-2 lot"]
    assert _payloads(journal, execution.run_id, TaskOpened) == []
    (consumed,) = _payloads(journal, execution.run_id, MaterialConsumed)
    assert (consumed.lot.lot_id, consumed.scanned) == ("il2/L2", gs1_lot_data("il2/L2"))


@pytest.mark.parametrize(
    ("data", "lot_id"),
    [
        ("il2/L1", "il2/L1"),
        ("]C0il2/L1", "il2/L1"),
        (gs1_lot_data("A1234"), "A1234"),
        ("]C1010761234567890010A1234\x1d17261231", "A1234"),
        ("]C11726123110B-77", "B-77"),
        ("(01)07612345678900(10)A12(17)261231", "A12"),
    ],
)
def test_lot_barcodes_parsed(data: str, lot_id: str) -> None:
    assert parse_lot_barcode(data) == lot_id
    assert lot_barcode_data(lot_id) == lot_id


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("", "read nothing"),
        ("=G123426123456", "not a lot's"),
        ("(01)07612345678900", "no (10) lot"),
        ("]C1010761234567890017261231", "no (10) lot"),
        ("]C19912", "'9912' is not one this site reads"),
        ("]C1017612", "(01) needs 14 digits"),
        ("lot 7", "is not a lot id"),
        ("(01)x(10", "not a GS1 element string"),
    ],
)
def test_garbage_barcodes_refused(data: str, says: str) -> None:
    with pytest.raises(LotBarcodeError) as caught:
        parse_lot_barcode(data)
    assert says in str(caught.value)
    if data:
        assert repr(data) in str(caught.value)


async def test_a_bad_scan_option_is_a_protocol_error(journal: Journal) -> None:
    protocol = Protocol("p", version="1", materials=[Material("IL-2", per_batch(volume_ml=1))])

    @protocol.step
    async def work(run: Run) -> None:
        await run.materials.use("IL-2", into="culture bag", scan="person")  # type: ignore[arg-type]

    site = sim_site([define(), *lot("il2/L1")])
    execution = Runner(journal, clock_origin=START).prepare(protocol, REHEARSAL, site=site)
    outcome = await execution.execute()
    assert outcome.exit_status == "failed"
    assert "scan='person'" in outcome.reason


async def test_another_lot_scanned_on_a_journal_files_site(tmp_path: Path) -> None:
    """On a real site the extra reservation is its own commit before the use's."""
    path = tmp_path / "journal.db"
    file_site(path, [define(), *lot("il2/L1"), *lot("il2/L2", quantity_ml=5.0)])
    with Journal(path) as journal, closing(FileSite(path)) as site:
        execution = Runner(journal, clock_origin=START).prepare(
            scan_protocol(),
            REHEARSAL,
            site=site,
            answerers=[SimulatedOperators({"scan IL-2 lot": Answer(value="il2/L2")})],
        )
        outcome = await execution.execute()
        execution.close()
    assert outcome.exit_status == "complete", outcome.reason
    assert rows(path, "SELECT lot_id, remaining_milli, reserved_milli FROM lots ORDER BY 1") == [
        ("il2/L1", 10_000, 0),
        ("il2/L2", 3000, 0),
    ]
    assert rows(
        path, "SELECT lot_id, reserved_milli, used_milli, open FROM lot_reservations ORDER BY 1"
    ) == [("il2/L1", 2000, 0, 0), ("il2/L2", 2000, 2000, 0)]
    assert rows(path, "SELECT lot_id, quantity_milli FROM lot_uses") == [("il2/L2", 2000)]


async def test_a_lot_taken_before_its_reservation_holds_and_writes_no_use(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run reserves the scanned lot's last free quantity between the check and
    the reservation: the conditional update refuses, nothing is consumed, the run holds."""
    from cellauto.protocols import material_lots as materials

    site = sim_site([define(), *lot("il2/L1"), *lot("il2/L2", quantity_ml=2.0)])
    real = materials.reserve_more

    def taken_meanwhile(conn: Any, *args: Any) -> bool:
        conn.execute("UPDATE lots SET reserved_milli = 2000 WHERE lot_id = 'il2/L2'")
        return real(conn, *args)

    monkeypatch.setattr(materials, "reserve_more", taken_meanwhile)
    execution = _prepare(journal, site, {"scan IL-2 lot": Answer(value="il2/L2")})
    assert await _run(execution) == ["Held"]
    (deviation,) = _payloads(journal, execution.run_id, Deviation)
    assert "lot 'il2/L2' (IL-2) could not be reserved (2 mL on 2026-12-01)" in (
        deviation.description
    )
    assert _payloads(journal, execution.run_id, MaterialConsumed) == []
    with site.reading() as conn:
        assert conn.execute(
            "SELECT COUNT(*) FROM lot_reservations WHERE lot_id = 'il2/L2'"
        ).fetchone() == (0,)
