"""The fidelity skeleton (issue 14, seam S4): seeds summarised, in a pool the same."""

from __future__ import annotations

from pathlib import Path

from cellauto.sim.fidelity import Row, run_population

DEMO = Path(__file__).resolve().parents[2] / "protocols" / "demo_expansion.py"


def test_a_population_is_summarised_alike_in_process_and_in_a_pool() -> None:
    here = run_population(DEMO, [1, 2], workers=1)
    pooled = run_population(DEMO, [1, 2], workers=2)
    assert here == pooled
    assert [s.seed for s in here] == [1, 2] and here[0] != here[1]
    first = here[0]
    assert first.exit_status == "complete" and first.failed_checks == []
    assert first.population == "healthy_donor_t_cells" and first.patient is not None
    row = Row(
        name="viability at harvest %",
        kind="check",
        key="viability at harvest",
        unit="%",
        median_range=(80, 95),
        all_range=(70, 100),
        source="PROCESS.md",
    )
    result = row.evaluate(here)
    assert result.n == 2 and result.inside
    assert result.min is not None and result.max is not None and result.min <= result.max
    missing = row.model_copy(update={"key": "no such check"}).evaluate(here)
    assert (missing.n, missing.inside) == (0, False)
