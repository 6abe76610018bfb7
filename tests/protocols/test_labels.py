"""Final product labels: printed (ZPL kept whole), scanned back from the printed raster and
verified; a label that scans otherwise holds the run and is printed again after Restart."""

from __future__ import annotations

import hashlib

from cellauto.records.material_payloads import LabelPrinted, LabelVerified
from cellauto.sim import simulate
from cellauto.sim.faults import MisprintLabel, SmudgedLabel, WrongBagInView
from tests.protocols.bagging import protocol


def test_each_bag_label_is_printed_and_verified_by_a_person_scanning_it() -> None:
    run = simulate(protocol, params={"bags": 3}, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    printed, verified = run.of_kind(LabelPrinted), run.of_kind(LabelVerified)
    assert [p.container for p in printed] == [
        "final product 1",
        "final product 2",
        "final product 3",
    ]
    for label, check in zip(printed, verified, strict=True):
        assert label.zpl_sha256 == hashlib.sha256(label.zpl.encode()).hexdigest()
        assert label.zpl.startswith("^XA") and label.text.statement == "FOR AUTOLOGOUS USE ONLY"
        assert check.matches and check.problem is None
        assert check.scanned == label.symbols  # what was read is what was printed
    assert printed[1].symbols["din"].endswith("02") and printed[1].symbols["product"].endswith("B0")
    scans = [t for t in run.tasks if t.name == "scan the printed label"]
    assert [t.key for t in scans] == ["final product 1", "final product 2", "final product 3"]


def test_label_verified_by_the_lines_scanner() -> None:
    run = simulate(protocol, params={"label_scanner": True}, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert run.of_kind(LabelVerified)[0].matches
    assert not [t for t in run.tasks if t.name == "scan the printed label"]


def test_misprinted_label_held() -> None:
    fault = MisprintLabel(symbol="din", data="=G12349865432102")
    run = simulate(protocol, faults={"printer": [fault]}, patient="typical")
    assert run.exit_status == "stopped"  # held, then stopped by the unattended policy
    (check,) = run.of_kind(LabelVerified)
    assert not check.matches and check.scanned["din"] == "=G12349865432102"
    assert "din symbol" in (check.problem or "")
    deviation = run.deviations[-1]
    assert (deviation.check, deviation.policy) == ("label of final product", "hold")
    assert "Held" in run.states


def test_misprinted_label_is_printed_again_after_restart() -> None:
    fault = MisprintLabel(symbol="product", data="<S12341Z0")
    run = simulate(protocol, faults={"printer": [fault]}, on_hold="restart", patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert [v.matches for v in run.of_kind(LabelVerified)] == [False, True]
    assert len(run.of_kind(LabelPrinted)) == 2
    keys = [t.key for t in run.tasks if t.name == "scan the printed label"]
    assert keys == ["final product", "final product, reprint 1"]


def test_smudged_label_unreadable_held() -> None:
    run = simulate(
        protocol,
        faults={"printer": [SmudgedLabel(symbol="din")]},
        params={"label_scanner": True},
        patient="typical",
    )
    assert run.exit_status == "stopped"
    (check,) = run.of_kind(LabelVerified)
    assert not check.matches and "din" not in check.scanned
    assert "not read from the label" in (check.problem or "")


def test_smudged_identity_symbol_held() -> None:
    run = simulate(
        protocol, faults={"printer": [SmudgedLabel(symbol="identity")]}, patient="typical"
    )
    assert run.exit_status == "stopped"
    (check,) = run.of_kind(LabelVerified)
    assert not check.matches and "identity" not in check.scanned


def test_wrong_bag_in_view_at_the_label_scan_held() -> None:
    fault = WrongBagInView(container="final product", shows="apheresis bag")
    run = simulate(
        protocol, faults={"scanner": [fault]}, params={"label_scanner": True}, patient="typical"
    )
    assert run.exit_status == "stopped"
    (check,) = run.of_kind(LabelVerified)
    assert not check.matches and "should not" in (check.problem or "")
