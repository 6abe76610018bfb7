"""The NK expansion protocol: the same API and line serve a different process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cellauto.records import payloads as rec
from cellauto.records.material_payloads import CustodyMoved, LabelPrinted
from cellauto.sim import SimulatedRun

NK = Path(__file__).resolve().parents[2] / "protocols" / "nk_expansion.py"


def test_nk_batch_completes_with_its_own_release_checks(
    cellauto_sim: Callable[..., SimulatedRun],
) -> None:
    run = cellauto_sim(NK, seed=2)
    assert run.exit_status == "complete", run.outcome.reason
    assert run.check("NK cells (CD56+CD3-)").value >= 80
    assert run.check("residual T cells (CD3+)").value <= 5
    assert 80 <= run.check("dose").value <= 120
    assert not run.of_kind(rec.InstrumentCommand) or all(
        c.method != "add_reagent" or c.arguments["reagent"]["kind"] != "vector"
        for c in run.of_kind(rec.InstrumentCommand)
    )
    assert 14 <= run.duration_h / 24 <= 15


def test_nk_1_3_freezes_two_bags_and_checks_the_rate(
    cellauto_sim: Callable[..., SimulatedRun],
) -> None:
    run = cellauto_sim(NK, seed=2, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert -2.0 <= run.check("cooling rate through phase change").value <= -0.5
    started = [c for c in run.of_kind(rec.InstrumentCommand) if c.method == "start"]
    assert started[-1].arguments["container_ids"][:2] == [
        "NK final product 1",
        "NK final product 2",
    ]
    labels = run.of_kind(LabelPrinted)
    assert len(labels) == 2 and all("allogeneic" in label.text.product for label in labels)
    assert all("autologous" not in label.text.product for label in labels)
    assert run.values["harvest cells not washed"] > 0
    assert any(m.to_place.name == "waste" for m in run.of_kind(CustodyMoved))


def test_nk_release_samples_and_retained_vial(cellauto_sim: Callable[..., SimulatedRun]) -> None:
    run = cellauto_sim(NK, seed=2, patient="typical")
    counted = [
        r.arguments["sample"]["sample_id"]
        for r in run.of_kind(rec.InstrumentCommand)
        if r.instrument == "counter" and r.step == "prepare_release_samples"
    ]
    assert counted == ["count 1", "count 2"]
    started = [c for c in run.of_kind(rec.InstrumentCommand) if c.method == "start"]
    assert started[-1].arguments["container_ids"][2:] == ["QC retain 1", "QC retain 2"]
    assert 55 <= run.values["post-thaw viability"] <= 85
    assert run.check("post-thaw viability").spec.min == 60
