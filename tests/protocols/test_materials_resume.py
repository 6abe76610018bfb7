"""A controller crash between a use's commit and its addition: consumed once, added once."""

from __future__ import annotations

from pathlib import Path

from cellauto.records.backend import Location
from cellauto.records.material_payloads import MaterialConsumed
from cellauto.records.payloads import Deviation, InstrumentCommand, InstrumentResponse
from cellauto.sim import simulate
from tests.protocols.materials_kit import rows

VECTOR = "CAR lentiviral vector"
#: The vector's use is committed at 28.8425 h; its add_reagent runs until 28.8758 h.
CRASH_H = 28.86


def test_crash_between_consume_and_add_decrements_once(
    db_location: Location, tmp_path: Path
) -> None:
    path = db_location
    result = simulate(
        "protocols/car_t_autologous.py",
        crashes=[CRASH_H],
        downtime_h=0.5,
        db=path,
        on_hold="restart",
        patient="typical",
    )
    assert result.outcome.exit_status == "complete", result.outcome.reason
    uses = [
        r.payload
        for r in result.records
        if isinstance(r.payload, MaterialConsumed) and r.payload.use_key == VECTOR
    ]
    assert len(uses) == 1 and uses[0].quantity_milli == 5000
    assert rows(path, f"SELECT quantity_milli FROM lot_uses WHERE use_key = '{VECTOR}'") == [
        (5000,)
    ]
    in_doubt = [
        r.payload
        for r in result.records
        if isinstance(r.payload, Deviation) and r.payload.check == f"material in doubt: {VECTOR}"
    ]
    assert len(in_doubt) == 1 and in_doubt[0].policy.value == "continue"
    assert uses[0].lot.lot_id in in_doubt[0].description
    kinds = [r.kind for r in result.records]
    assert kinds.count("run_resumed") == 1
    commands = {
        r.seq: r.payload
        for r in result.records
        if isinstance(r.payload, InstrumentCommand) and r.payload.method == "add_reagent"
    }
    vector = {seq for seq, c in commands.items() if c.arguments["reagent"]["name"] == VECTOR}
    done = [
        r.payload
        for r in result.records
        if isinstance(r.payload, InstrumentResponse)
        and r.payload.command_seq in vector
        and not r.payload.outcome_unknown
    ]
    # the command cut by the crash never reached the culture (the volume said so): the
    # resumed step added the vector once, from the use already counted
    assert len(done) == 1
    assert all(
        commands[seq].arguments["reagent"]["lot"] == uses[0].lot.supplier_lot for seq in vector
    )


def test_every_addition_carries_its_lot() -> None:
    result = simulate("protocols/car_t_autologous.py", patient="typical")
    adds = [
        r.payload.arguments["reagent"]
        for r in result.records
        if isinstance(r.payload, InstrumentCommand) and r.payload.method == "add_reagent"
    ]
    assert {a["name"] for a in adds} == {"CD3/CD28 activator", VECTOR}
    assert all(a["lot"].startswith(("cd3-cd28-activator-", "car-lentiviral-vector-")) for a in adds)
    consumed = [r.payload for r in result.records if isinstance(r.payload, MaterialConsumed)]
    assert {c.material for c in consumed} == {
        "CliniMACS tubing set",
        "TexMACS medium",
        "CD3/CD28 activator",
        VECTOR,
        "cryobag 250 mL",
        "CryoStor CS10",
    }
