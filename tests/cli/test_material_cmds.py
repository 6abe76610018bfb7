"""``cellauto materials``: define, receive, release, reject, adjust, list; refusals exit 2
and are journaled; ``list`` computes expired and depleted on the day asked."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from tests.cli.people import People, own, people, staffed
from tests.raw_sql import raw_connect

__all__ = ["people", "staffed"]  # fixtures

VECTOR = "CAR lentiviral vector"
LOT = "car-lentiviral-vector/L2291"


@pytest.fixture
def stocked(staffed: People) -> People:
    """root, alice (operator), carol (supervisor), bob (qa); the vector defined and lot
    L2291 (12.5 mL, titre given) received by alice, in quarantine."""
    staffed.add("bob", "qa")
    done = _define(staffed)
    assert done.code == 0, done.err
    done = _receive(staffed)
    assert done.code == 0, done.err
    return staffed


def _define(p: People, who: str = "carol") -> object:
    return p(
        "materials",
        "define",
        VECTOR,
        "--kind",
        "vector",
        "--unit",
        "mL",
        "--storage",
        "ult",
        "--attribute",
        "titer_tu_per_ml",
        "--as",
        who,
        stdin=[own(who)],
    )


def _receive(
    p: People,
    *extra: object,
    who: str = "alice",
    lot: str = "L2291",
    attr: str = "titer_tu_per_ml=1.0e8",
) -> object:
    return p(
        "materials",
        "receive",
        VECTOR,
        "--supplier",
        "Vectors Inc",
        "--supplier-lot",
        lot,
        "--expires",
        "2099-01-31",
        "--quantity",
        "12.5",
        "--received",
        "2026-01-01",
        "--attr",
        attr,
        *extra,
        "--as",
        who,
        stdin=[own(who)],
    )


def _refusals(p: People) -> list[dict[str, object]]:
    with closing(raw_connect(p.db)) as conn:
        rows = conn.execute(
            "SELECT body FROM site_records WHERE kind = 'lot_act_refused' ORDER BY seq"
        )
        return [json.loads(body)["payload"] for (body,) in rows]


def _lots(p: People, *extra: object) -> list[dict[str, object]]:
    done = p.cli("materials", "list", "--json", "--db", p.db, *extra)
    assert done.code == 0, done.err
    rows: list[dict[str, object]] = json.loads(done.out)
    return rows


def test_receive_then_release_by_qa(stocked: People) -> None:
    (lot,) = _lots(stocked)
    assert (lot["lot_id"], lot["status"], lot["remaining_milli"]) == (LOT, "quarantine", 12_500)
    assert lot["unit"] == "mL" and lot["received_by"] == "alice"
    done = stocked("materials", "release", LOT, "--as", "bob", stdin=[own("bob")])
    assert done.code == 0, done.err
    assert "released, signed by bob" in done.out
    assert _lots(stocked)[0]["status"] == "released"


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_release_by_an_operator_or_supervisor_is_refused(stocked: People, who: str) -> None:
    done = stocked("materials", "release", LOT, "--as", who, stdin=[own(who)])
    assert done.code == 2
    assert "lot.release (qa)" in done.err
    assert _refusals(stocked)[-1]["cause"] == "permission"
    assert _lots(stocked)[0]["status"] == "quarantine"


def test_the_receiver_cannot_release(staffed: People) -> None:
    staffed.add("erin", "qa", "supervisor")
    assert _define(staffed).code == 0  # type: ignore[attr-defined]
    assert _receive(staffed, who="erin").code == 0  # type: ignore[attr-defined]
    done = staffed("materials", "release", LOT, "--as", "erin", stdin=[own("erin")])
    assert done.code == 2 and "may not release it" in done.err
    assert _refusals(staffed)[-1]["cause"] == "received_by_releaser"


def test_reject_needs_a_reason(stocked: People) -> None:
    done = stocked("materials", "reject", LOT, "--as", "bob", stdin=[own("bob")])
    assert done.code == 2 and "--reason" in done.err
    assert _lots(stocked)[0]["status"] == "quarantine"
    done = stocked(
        "materials", "reject", LOT, "--reason", "CoA out of spec", "--as", "bob", stdin=[own("bob")]
    )
    assert done.code == 0, done.err
    assert _lots(stocked, "--status", "rejected")[0]["lot_id"] == LOT


def test_define_refusals(staffed: People) -> None:
    done = _define(staffed, "alice")
    assert done.code == 2 and "material.define" in done.err  # type: ignore[attr-defined]
    assert _define(staffed).code == 0  # type: ignore[attr-defined]
    done = _define(staffed)
    assert done.code == 2 and "defined already" in done.err  # type: ignore[attr-defined]
    assert [r["cause"] for r in _refusals(staffed)] == ["permission", "material_exists"]


def test_receive_refusals(stocked: People) -> None:
    done = _receive(stocked)
    assert done.code == 2 and "received already" in done.err  # type: ignore[attr-defined]
    done = _receive(stocked, "--quantity", "0", lot="L2")
    assert done.code == 2 and "must be above 0" in done.err  # type: ignore[attr-defined]
    done = _receive(stocked, "--expires", "2025-12-31", lot="L3")
    assert done.code == 2 and "expires 2025-12-31" in done.err  # type: ignore[attr-defined]
    causes = [r["cause"] for r in _refusals(stocked)]
    assert causes == ["lot_exists", "quantity", "expiry_before_receipt"]
    done = stocked(
        "materials",
        "receive",
        "Unknown medium",
        "--supplier",
        "S",
        "--supplier-lot",
        "X",
        "--expires",
        "2099-01-01",
        "--quantity",
        "1",
        "--as",
        "alice",
        stdin=[own("alice")],
    )
    assert done.code == 2 and "is not defined" in done.err
    assert len(_lots(stocked)) == 1


def test_release_refused_without_a_required_attribute(stocked: People) -> None:
    done = _receive(stocked, lot="BARE", attr="coa=CoA-7")
    assert done.code == 0, done.err  # type: ignore[attr-defined]
    done = stocked(
        "materials", "release", "car-lentiviral-vector/BARE", "--as", "bob", stdin=[own("bob")]
    )
    assert done.code == 2 and "lacks titer_tu_per_ml" in done.err
    done = _receive(stocked, lot="FULL", attr="titer_tu_per_ml=1.2e8")
    assert done.code == 0  # type: ignore[attr-defined]
    (full,) = [lot for lot in _lots(stocked) if lot["lot_id"] == "car-lentiviral-vector/FULL"]
    assert full["attributes"] == {"titer_tu_per_ml": 1.2e8}


def test_list_computes_expired_and_depleted(stocked: People) -> None:
    assert stocked("materials", "release", LOT, "--as", "bob", stdin=[own("bob")]).code == 0
    assert _receive(stocked, "--lot-id", "vec-2", lot="L9").code == 0  # type: ignore[attr-defined]
    assert stocked("materials", "release", "vec-2", "--as", "bob", stdin=[own("bob")]).code == 0
    done = stocked(
        "materials",
        "adjust",
        "vec-2",
        "--delta",
        "-12.5",
        "--reason",
        "broken vial",
        "--as",
        "carol",
        stdin=[own("carol")],
    )
    assert done.code == 0, done.err
    states = {lot["lot_id"]: lot["status"] for lot in _lots(stocked)}
    assert states == {LOT: "released", "vec-2": "depleted"}
    later = {lot["lot_id"]: lot["status"] for lot in _lots(stocked, "--on", "2099-02-01")}
    assert later == {LOT: "expired", "vec-2": "expired"}  # expiry named first
    done = stocked.cli(
        "materials", "list", "--status", "expired", "--on", "2099-02-01", "--db", stocked.db
    )
    assert done.code == 0
    assert LOT in done.out and "expired" in done.out
    assert "12.5" in done.out and "mL" in done.out and "L2291" in done.out
    done = stocked.cli("materials", "list", "--status", "quarantine", "--db", stocked.db)
    assert done.code == 0 and "no quarantine lots" in done.out


def test_adjust_by_an_operator_is_refused(stocked: People) -> None:
    done = stocked(
        "materials",
        "adjust",
        LOT,
        "--delta",
        "-1",
        "--reason",
        "spill",
        "--as",
        "alice",
        stdin=[own("alice")],
    )
    assert done.code == 2 and "lot.adjust (supervisor)" in done.err
    assert _lots(stocked)[0]["remaining_milli"] == 12_500


def test_list_needs_no_account_and_an_empty_file_has_no_lots(people: People) -> None:
    people.bootstrap()
    done = people.cli("materials", "list", "--db", people.db)
    assert done.code == 0 and "no lots" in done.out


def test_bad_arguments_are_bad_input(stocked: People) -> None:
    done = stocked.cli("materials", "receive", VECTOR, "--quantity", "lots", "--db", stocked.db)
    assert done.code == 2
    done = stocked.cli(
        "materials", "define", "X", "--kind", "potion", "--unit", "mL", "--storage", "ult"
    )
    assert done.code == 2 and "potion" in done.err
    for flag, value in (("--unit", "gallon"), ("--storage", "attic")):
        args = {"--unit": "mL", "--storage": "ult", flag: value}
        done = stocked.cli(
            "materials", "define", "X", "--kind", "buffer", *(x for kv in args.items() for x in kv)
        )
        assert done.code == 2 and value in done.err


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--attr", "titer"), "is not NAME=VALUE"),
        (("--attr", "coa=1", "--attr", "coa=2"), "given twice"),
        (("--received", "yesterday"), "is not a date"),
        (("--quantity", "nan"), "not a finite number"),
    ],
)
def test_bad_receive_arguments_write_nothing(
    stocked: People, extra: tuple[str, ...], named: str
) -> None:
    done = _receive(stocked, *extra, lot="L7")
    assert done.code == 2 and named in done.err  # type: ignore[attr-defined]
    assert len(_lots(stocked)) == 1 and not _refusals(stocked)


def test_verify_is_intact_then_names_an_edited_lot(stocked: People) -> None:
    assert stocked("materials", "release", LOT, "--as", "bob", stdin=[own("bob")]).code == 0
    done = stocked.cli("verify", "--db", stocked.db)
    assert done.code == 0, done.out + done.err
    assert "site: intact" in done.out
    with closing(raw_connect(stocked.db)) as conn:
        conn.execute("UPDATE lots SET expires_on = '2199-12-31'")
    done = stocked.cli("verify", "--db", stocked.db)
    assert done.code == 1
    assert "site: BROKEN" in done.out
    assert f"lots table edited: row {LOT!r} expires_on '2199-12-31'" in done.out


def test_verify_names_an_edited_equipment_row(stocked: People) -> None:
    from datetime import date

    from cellauto.records.site_payloads_mat import EquipmentAdded
    from cellauto.site.store import open_site_store, this_terminal

    with open_site_store(stocked.db) as store, store.transaction() as tx:
        tx.append(
            EquipmentAdded(
                by="carol",
                terminal=this_terminal(),
                asset="BR-001",
                interface="Bioreactor",
                vendor="Simulated",
                model="SimBioreactor",
                serial="BR-7730",
                calibration_due=date(2099, 6, 30),
            )
        )
    assert stocked.cli("verify", "--db", stocked.db).code == 0
    with closing(raw_connect(stocked.db)) as conn:
        conn.execute("UPDATE equipment SET status = 'in_service'")
    done = stocked.cli("verify", "--db", stocked.db)
    assert done.code == 1
    assert "site: BROKEN" in done.out and "equipment table edited: row 'BR-001' status" in done.out
