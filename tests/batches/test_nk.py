"""The NK expansion protocol: the same API and line serve a different process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cellauto.records import payloads as rec
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
